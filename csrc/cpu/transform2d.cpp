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
  check_transform2d(x, left, right);
  const int64_t nd = x.dim(), H = x.size(nd - 2), W = x.size(nd - 1);
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
