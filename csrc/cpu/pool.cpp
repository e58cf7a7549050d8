// CPU pooling kernels: freqalign::pool_forward and freqalign::pool_backward (fused, any strides).
#include "common.h"

#include <algorithm>
#include <vector>

#include <torch/library.h>

namespace freqalign {
namespace cpu {

#define FREQALIGN_KERNELS "pool_kernels.inc"
#include "isa_variants.h"
#undef FREQALIGN_KERNELS

namespace {

// Ungrouped pooling is a matrix product (B*C, HW) @ (HW, K); for float32/float64 whose planes or
// pixels are BLAS-addressable (contiguous or channels-last) BLAS is the fastest kernel, reading x
// in place through a strided view. Returns an undefined tensor when the layout does not fit.
at::Tensor ungrouped_forward_blas(const at::Tensor& x, const at::Tensor& filters, const PoolGeom& g) {
  const int64_t HW = g.H * g.W;
  at::Tensor view;  // (B, C, HW) over x's storage
  if (g.sh == g.W && g.sw == 1) {
    view = x.as_strided({g.B, g.C, HW}, {g.sb, g.sc, 1});
  } else if (g.sc == 1 && g.sh == g.W * g.sw) {
    view = x.as_strided({g.B, g.C, HW}, {g.sb, 1, g.sw});
  } else {
    return at::Tensor();
  }
  at::AutoDispatchBelowAutograd no_autograd;  // a kernel: nothing here is recorded for autograd
  return at::matmul(view, filters.view({g.K, HW}).t());
}

at::Tensor pool_forward_cpu(const at::Tensor& x, const at::Tensor& filters, bool grouped) {
  check_cpu_float(x, "pool_forward", "x");
  const PoolGeom g = pool_geometry(x, filters, grouped, "pool_forward");
  const bool blas_dtype = x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble;
  if (!grouped && blas_dtype && x.numel() > 0) {
    at::Tensor blas = ungrouped_forward_blas(x, filters, g);
    if (blas.defined()) return blas;
  }
  at::Tensor out = grouped ? at::empty({g.B, g.C}, x.options()) : at::empty({g.B, g.C, g.K}, x.options());
  if (out.numel() == 0) return out;
  if (g.H * g.W == 0) return out.zero_();
  FREQALIGN_DISPATCH_FLOATING(x.scalar_type(), "pool_forward_cpu", [&] {
    FREQALIGN_ISA_CALL(pool_forward<scalar_t>, x.const_data_ptr<scalar_t>(), g,
                       filters.const_data_ptr<acc_t<scalar_t>>(), grouped, out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor pool_backward_cpu(const at::Tensor& grad, const at::Tensor& filters, bool grouped) {
  check_cpu_float(grad, "pool_backward", "grad");
  const PoolGeom g = pool_backward_geometry(grad, filters, grouped);
  const int64_t B = g.B, C = g.C, K = g.K;
  at::Tensor out = at::empty({B, C, g.H, g.W}, grad.options());
  if (out.numel() == 0) return out;
  if (!grouped && (grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble)) {
    // (B*C, K) @ (K, HW) straight into the output: BLAS is fastest here (reshape copies only an
    // expanded grad, B*C*K elements).
    at::AutoDispatchBelowAutograd no_autograd;
    at::Tensor out2d = out.view({B * C, g.H * g.W});
    at::mm_out(out2d, grad.reshape({B * C, K}), filters.view({K, g.H * g.W}));
    return out;
  }
  const int64_t gsk = grouped ? 0 : grad.stride(2);
  FREQALIGN_DISPATCH_FLOATING(grad.scalar_type(), "pool_backward_cpu", [&] {
    FREQALIGN_ISA_CALL(pool_backward<scalar_t>, grad.const_data_ptr<scalar_t>(), grad.stride(0),
                       grad.stride(1), gsk, g, filters.const_data_ptr<acc_t<scalar_t>>(), grouped,
                       out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(freqalign, CPU, m) {
  m.impl("pool_forward", &pool_forward_cpu);
  m.impl("pool_backward", &pool_backward_cpu);
}

}  // namespace cpu
}  // namespace freqalign
