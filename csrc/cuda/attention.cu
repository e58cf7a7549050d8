// CUDA kernels of freqalign::ms_attention and freqalign::ms_attention_backward (FcaNet's
// multi-spectral channel attention, fused; the CPU version and the op contract: ../cpu/attention.cpp).
//
// Forward: the grouped pooling kernel (freqalign::pool_forward), the FC layers on (B, C) through
// ATen, then one elementwise scaling pass. Backward: one reduction pass s = sum_hw grad * x, the
// FC backward on (B, C), one elementwise pass grad_x = grad * att + d_pooled * filter.
// Layouts: dense NCHW or channels_last (attention_layout); flat 32-bit indices split into
// (b, c, hw) with multiply-shift dividers.
#include "common.cuh"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "attention_fc.h"

namespace freqalign {
namespace gpu {
namespace {

using Divider = at::cuda::detail::IntDivider<unsigned int>;
constexpr int kThreads = 256;

struct ScalePlan {
  unsigned n, C, HW;
  Divider divHW, divC, divG;
};

// out[i] = a[b, c] * in[i] + d[b, c] * f[c / G, hw] (HAS_D), flat index i in x's layout.
template <typename T, typename A, bool CL, bool HAS_D>
__global__ void __launch_bounds__(kThreads)
    attention_scale(const T* __restrict__ in, const A* __restrict__ a, const A* __restrict__ d,
                    const A* __restrict__ f, T* __restrict__ out, ScalePlan g) {
  for (unsigned i = blockIdx.x * kThreads + threadIdx.x; i < g.n; i += gridDim.x * kThreads) {
    unsigned p, c, hw;
    if (CL) {
      const auto pc = g.divC.divmod(i);  // (b * HW + hw, c)
      const auto bh = g.divHW.divmod(pc.div);
      c = pc.mod, hw = bh.mod, p = bh.div * g.C + c;
    } else {
      const auto ph = g.divHW.divmod(i);  // (b * C + c, hw)
      p = ph.div, hw = ph.mod, c = g.divC.mod(p);
    }
    A v = a[p] * static_cast<A>(in[i]);
    if (HAS_D) v += d[p] * f[static_cast<int64_t>(g.divG.div(c)) * g.HW + hw];
    out[i] = static_cast<T>(v);
  }
}

// NCHW: one warp per (b, c) plane, s[p] = sum_hw grad * x.
template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    attention_reduce_planes(const T* __restrict__ grad, const T* __restrict__ x, A* __restrict__ s, int64_t planes,
                            int64_t HW) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32;
  if (p >= planes) return;
  const int lane = threadIdx.x & 31;
  A acc = 0;
  for (int64_t i = lane; i < HW; i += 32) acc += static_cast<A>(grad[p * HW + i]) * static_cast<A>(x[p * HW + i]);
  acc = warp_sum(acc, 32);
  if (lane == 0) s[p] = acc;
}

// channels_last: a block owns 32 channels of one image; its 8 warps split the pixels, shared
// memory adds them.
template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    attention_reduce_channels(const T* __restrict__ grad, const T* __restrict__ x, A* __restrict__ s, int64_t C,
                              int64_t HW, int64_t c_blocks) {
  __shared__ A partial[kThreads / 32][32];
  const int64_t b = blockIdx.x / c_blocks, c = (blockIdx.x % c_blocks) * 32 + (threadIdx.x & 31);
  const int warp = threadIdx.x / 32;
  A acc = 0;
  if (c < C) {
    for (int64_t hw = warp; hw < HW; hw += kThreads / 32) {
      const int64_t i = (b * HW + hw) * C + c;
      acc += static_cast<A>(grad[i]) * static_cast<A>(x[i]);
    }
  }
  partial[warp][threadIdx.x & 31] = acc;
  __syncthreads();
  if (warp == 0 && c < C) {
    A total = 0;
    for (int w = 0; w < kThreads / 32; ++w) total += partial[w][threadIdx.x];
    s[b * C + c] = total;
  }
}

at::Tensor grouped_pool(const at::Tensor& x, const at::Tensor& filters) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("freqalign::pool_forward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, bool)>();
  return op.call(x, filters, true);
}

// out = a * in + d * filter (d undefined: the scaling alone), in `in`'s layout.
void launch_scale(const at::Tensor& in, const at::Tensor& a, const at::Tensor& d, const at::Tensor& filters,
                  const PoolGeom& geom, bool cl, at::Tensor& out) {
  const int64_t n = in.numel();
  TORCH_CHECK(n < (int64_t(1) << 31), "ms_attention (cuda): x must have fewer than 2^31 elements, got ", n);
  const unsigned HW = static_cast<unsigned>(geom.H * geom.W), C = static_cast<unsigned>(geom.C);
  const ScalePlan g{static_cast<unsigned>(n), C, HW, Divider(std::max(HW, 1u)), Divider(std::max(C, 1u)),
                    Divider(static_cast<unsigned>(std::max<int64_t>(geom.G, 1)))};
  const int blocks = static_cast<int>(std::min<int64_t>(ceil_div(n, kThreads), 32LL * sm_count()));
  auto stream = current_stream();
  FREQALIGN_DISPATCH_FLOATING(in.scalar_type(), "ms_attention_scale_cuda", [&] {
    using A = acc_t<scalar_t>;
    const scalar_t* ip = in.const_data_ptr<scalar_t>();
    const A* ap = a.const_data_ptr<A>();
    const A* fp = filters.const_data_ptr<A>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    if (d.defined()) {
      const A* dp = d.const_data_ptr<A>();
      if (cl) attention_scale<scalar_t, A, true, true><<<blocks, kThreads, 0, stream>>>(ip, ap, dp, fp, op, g);
      else attention_scale<scalar_t, A, false, true><<<blocks, kThreads, 0, stream>>>(ip, ap, dp, fp, op, g);
    } else {
      if (cl) attention_scale<scalar_t, A, true, false><<<blocks, kThreads, 0, stream>>>(ip, ap, nullptr, fp, op, g);
      else attention_scale<scalar_t, A, false, false><<<blocks, kThreads, 0, stream>>>(ip, ap, nullptr, fp, op, g);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ms_attention_cuda(const at::Tensor& x,
                                                                             const at::Tensor& filters,
                                                                             const at::Tensor& w1,
                                                                             const at::Tensor& w2) {
  check_cuda_float(x, "ms_attention", "x");
  const PoolGeom g = attention_geometry(x, filters, w1, w2, "ms_attention");
  const c10::cuda::CUDAGuard guard(x.device());
  at::AutoDispatchBelowADInplaceOrView no_autograd;
  const auto layout = attention_layout(x);
  const at::Tensor xw = x.contiguous(layout);
  at::Tensor pooled = grouped_pool(xw, filters).to(filters.scalar_type());
  auto [hidden, att] = attention_fc(pooled, w1, w2);
  at::Tensor y = at::empty(x.sizes(), x.options().memory_format(layout));
  if (y.numel() > 0) launch_scale(xw, att, at::Tensor(), filters, g, layout == at::MemoryFormat::ChannelsLast, y);
  return {y, pooled, hidden, att};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_attention_backward_cuda(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& filters, const at::Tensor& w1,
    const at::Tensor& w2, const at::Tensor& pooled, const at::Tensor& hidden, const at::Tensor& att) {
  check_cuda_float(x, "ms_attention_backward", "x");
  const PoolGeom g = attention_geometry(x, filters, w1, w2, "ms_attention_backward");
  TORCH_CHECK(grad.sizes() == x.sizes(), "ms_attention_backward: grad must have the shape of x ", x.sizes(),
              ", got ", grad.sizes());
  const c10::cuda::CUDAGuard guard(x.device());
  at::AutoDispatchBelowADInplaceOrView no_autograd;
  const auto layout = attention_layout(x);
  const bool cl = layout == at::MemoryFormat::ChannelsLast;
  const at::Tensor xw = x.contiguous(layout);
  const at::Tensor gw = grad.to(x.scalar_type()).contiguous(layout);
  at::Tensor s = at::zeros({g.B, g.C}, filters.options());
  const int64_t HW = g.H * g.W;
  if (x.numel() > 0) {
    auto stream = current_stream();
    FREQALIGN_DISPATCH_FLOATING(x.scalar_type(), "ms_attention_reduce_cuda", [&] {
      using A = acc_t<scalar_t>;
      const scalar_t* gp = gw.const_data_ptr<scalar_t>();
      const scalar_t* xp = xw.const_data_ptr<scalar_t>();
      A* sp = s.mutable_data_ptr<A>();
      if (cl) {
        const int64_t c_blocks = ceil_div(g.C, 32);
        TORCH_CHECK(g.B * c_blocks < (int64_t(1) << 31), "ms_attention_backward (cuda): too many channel blocks");
        attention_reduce_channels<scalar_t, A>
            <<<static_cast<unsigned>(g.B * c_blocks), kThreads, 0, stream>>>(gp, xp, sp, g.C, HW, c_blocks);
      } else {
        const int64_t planes = g.B * g.C;
        attention_reduce_planes<scalar_t, A>
            <<<static_cast<unsigned>(ceil_div(planes, kThreads / 32)), kThreads, 0, stream>>>(gp, xp, sp, planes, HW);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  auto [grad_pooled, grad_w1, grad_w2] = attention_fc_backward(s, pooled, hidden, att, w1, w2);
  at::Tensor grad_x = at::empty(x.sizes(), x.options().memory_format(layout));
  if (x.numel() > 0) launch_scale(gw, att.contiguous(), grad_pooled.contiguous(), filters, g, cl, grad_x);
  return {grad_x, grad_w1, grad_w2};
}

}  // namespace

TORCH_LIBRARY_IMPL(freqalign, CUDA, m) {
  m.impl("ms_attention", &ms_attention_cuda);
  m.impl("ms_attention_backward", &ms_attention_backward_cuda);
}

}  // namespace gpu
}  // namespace freqalign
