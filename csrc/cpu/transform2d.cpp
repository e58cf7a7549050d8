// CPU kernel for freqalign::transform2d: y[p] = left @ x[p] @ right^T for every (H, W) plane.
#include "common.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include <torch/library.h>

namespace freqalign {
namespace cpu {

#define FREQALIGN_KERNELS "transform2d_kernels.inc"
#include "isa_variants.h"
#undef FREQALIGN_KERNELS

namespace {

at::Tensor transform2d_cpu(const at::Tensor& x, const at::Tensor& left, const at::Tensor& right) {
  check_cpu_float(x, "transform2d", "x");
  TORCH_CHECK(x.dim() >= 2, "transform2d: x must have at least 2 dims (..., H, W), got shape ", x.sizes());
  check_operand(left, x, "transform2d", "left");
  check_operand(right, x, "transform2d", "right");
  const int64_t nd = x.dim(), H = x.size(nd - 2), W = x.size(nd - 1);
  TORCH_CHECK(left.dim() == 2 && left.size(0) == H && left.size(1) == H, "transform2d: left must be (H, H) = (",
              H, ", ", H, ") for x of shape ", x.sizes(), ", got ", left.sizes());
  TORCH_CHECK(right.dim() == 2 && right.size(0) == W && right.size(1) == W, "transform2d: right must be (W, W) = (",
              W, ", ", W, ") for x of shape ", x.sizes(), ", got ", right.sizes());
  at::Tensor y = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  if (y.numel() == 0) return y;
  std::vector<int64_t> bsizes(x.sizes().begin(), x.sizes().end() - 2);
  std::vector<int64_t> bstrides(x.strides().begin(), x.strides().end() - 2);
  FREQALIGN_DISPATCH_FLOATING(x.scalar_type(), "transform2d_cpu", [&] {
    using A = acc_t<scalar_t>;
    FREQALIGN_ISA_CALL(transform2d<scalar_t>, x.const_data_ptr<scalar_t>(), bsizes, bstrides, H, W,
                       x.stride(nd - 2), x.stride(nd - 1), left.const_data_ptr<A>(), right.const_data_ptr<A>(),
                       y.mutable_data_ptr<scalar_t>());
  });
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(freqalign, CPU, m) { m.impl("transform2d", &transform2d_cpu); }

}  // namespace cpu
}  // namespace freqalign
