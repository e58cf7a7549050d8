// CPU kernels of freqalign::ms_attention and freqalign::ms_attention_backward (FcaNet's
// multi-spectral channel attention, fused; docs/design.md section 2, "Attention op").
//
// Forward: one pooling pass (freqalign::pool_forward, grouped), the FC layers on (B, C), one
// scaling pass. Backward: one pass s = sum_hw grad * x, the FC backward on (B, C), one pass
// grad_x = grad * att + d_pooled * filter. Only x and (B, C) tensors are kept between them.
#include "common.h"

#include <algorithm>
#include <vector>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "attention_fc.h"

namespace freqalign {
namespace cpu {

#define FREQALIGN_KERNELS "attention_kernels.inc"
#include "isa_variants.h"
#undef FREQALIGN_KERNELS

namespace {

at::Tensor grouped_pool(const at::Tensor& x, const at::Tensor& filters) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("freqalign::pool_forward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, bool)>();
  return op.call(x, filters, true);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ms_attention_cpu(const at::Tensor& x,
                                                                            const at::Tensor& filters,
                                                                            const at::Tensor& w1,
                                                                            const at::Tensor& w2) {
  check_cpu_float(x, "ms_attention", "x");
  const PoolGeom g = attention_geometry(x, filters, w1, w2, "ms_attention");
  at::AutoDispatchBelowADInplaceOrView no_autograd;  // a kernel: nothing here is recorded for autograd
  const auto layout = attention_layout(x);
  const at::Tensor xw = x.contiguous(layout);
  at::Tensor pooled = grouped_pool(xw, filters).to(filters.scalar_type());
  auto [hidden, att] = attention_fc(pooled, w1, w2);
  at::Tensor y = at::empty(x.sizes(), x.options().memory_format(layout));
  if (y.numel() > 0) {
    FREQALIGN_DISPATCH_FLOATING(x.scalar_type(), "ms_attention_cpu", [&] {
      using A = acc_t<scalar_t>;
      FREQALIGN_ISA_CALL(attention_scale<scalar_t>, xw.const_data_ptr<scalar_t>(), att.const_data_ptr<A>(),
                         nullptr, filters.const_data_ptr<A>(), g, layout == at::MemoryFormat::ChannelsLast,
                         y.mutable_data_ptr<scalar_t>());
    });
  }
  return {y, pooled, hidden, att};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_attention_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& filters, const at::Tensor& w1,
    const at::Tensor& w2, const at::Tensor& pooled, const at::Tensor& hidden, const at::Tensor& att) {
  check_cpu_float(x, "ms_attention_backward", "x");
  const PoolGeom g = attention_geometry(x, filters, w1, w2, "ms_attention_backward");
  TORCH_CHECK(grad.sizes() == x.sizes(), "ms_attention_backward: grad must have the shape of x ", x.sizes(),
              ", got ", grad.sizes());
  at::AutoDispatchBelowADInplaceOrView no_autograd;
  const auto layout = attention_layout(x);
  const at::Tensor xw = x.contiguous(layout);
  const at::Tensor gw = grad.to(x.scalar_type()).contiguous(layout);
  at::Tensor s = at::zeros({g.B, g.C}, filters.options());
  at::Tensor grad_x = at::empty(x.sizes(), x.options().memory_format(layout));
  const bool cl = layout == at::MemoryFormat::ChannelsLast;
  if (x.numel() > 0) {
    FREQALIGN_DISPATCH_FLOATING(x.scalar_type(), "ms_attention_reduce_cpu", [&] {
      FREQALIGN_ISA_CALL(attention_reduce<scalar_t>, gw.const_data_ptr<scalar_t>(), xw.const_data_ptr<scalar_t>(),
                         g, cl, s.mutable_data_ptr<acc_t<scalar_t>>());
    });
  }
  auto [grad_pooled, grad_w1, grad_w2] = attention_fc_backward(s, pooled, hidden, att, w1, w2);
  if (x.numel() > 0) {
    const at::Tensor attc = att.contiguous(), dp = grad_pooled.contiguous();
    FREQALIGN_DISPATCH_FLOATING(x.scalar_type(), "ms_attention_grad_cpu", [&] {
      using A = acc_t<scalar_t>;
      FREQALIGN_ISA_CALL(attention_scale<scalar_t>, gw.const_data_ptr<scalar_t>(), attc.const_data_ptr<A>(),
                         dp.const_data_ptr<A>(), filters.const_data_ptr<A>(), g, cl,
                         grad_x.mutable_data_ptr<scalar_t>());
    });
  }
  return {grad_x, grad_w1, grad_w2};
}

}  // namespace

TORCH_LIBRARY_IMPL(freqalign, CPU, m) {
  m.impl("ms_attention", &ms_attention_cpu);
  m.impl("ms_attention_backward", &ms_attention_backward_cpu);
}

}  // namespace cpu
}  // namespace freqalign
