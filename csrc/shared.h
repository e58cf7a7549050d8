// Helpers shared by the CPU (csrc/cpu) and CUDA (csrc/cuda) kernels: the accumulation type,
// dtype dispatch, argument checks and the geometry of a pooling call.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace freqalign {

// Accumulation: float64 for float64 inputs, float32 for everything else (fp16/bf16 included).
template <typename T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};
template <typename T>
using acc_t = typename AccOf<T>::type;

inline at::ScalarType accumulation_dtype(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

#define FREQALIGN_DISPATCH_FLOATING(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

inline void check_float_dtype(const at::Tensor& t, const char* op, const char* name) {
  const auto d = t.scalar_type();
  TORCH_CHECK(d == at::kHalf || d == at::kBFloat16 || d == at::kFloat || d == at::kDouble, op, ": ", name,
              " must be float16, bfloat16, float32 or float64, got ", d);
}

// A matrix/filter operand: on `input`'s device, contiguous, in the accumulation dtype of `input`.
inline void check_operand(const at::Tensor& t, const at::Tensor& input, const char* op, const char* name) {
  TORCH_CHECK(t.device() == input.device(), op, ": ", name, " must be on ", input.device(), ", got ",
              t.device());
  TORCH_CHECK(t.scalar_type() == accumulation_dtype(input.scalar_type()), op, ": ", name, " must have dtype ",
              accumulation_dtype(input.scalar_type()), " (the accumulation dtype for ", input.scalar_type(),
              " input), got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

// Geometry of a pooling call: x (B, C, H, W) with element strides, K filters, G = C / K
// channels per group (grouped pooling; 1 otherwise).
struct PoolGeom {
  int64_t B, C, H, W, K, G;
  int64_t sb, sc, sh, sw;
};

// The argument checks of each op, shared by its CPU and CUDA implementations (which check the
// device and dtype of the main input first); the attention op's are in attention_fc.h.

// transform2d: x (..., H, W), left (H, H) and right (W, W) operands.
inline void check_transform2d(const at::Tensor& x, const at::Tensor& left, const at::Tensor& right) {
  TORCH_CHECK(x.dim() >= 2, "transform2d: x must have at least 2 dims (..., H, W), got shape ", x.sizes());
  check_operand(left, x, "transform2d", "left");
  check_operand(right, x, "transform2d", "right");
  const int64_t nd = x.dim(), H = x.size(nd - 2), W = x.size(nd - 1);
  TORCH_CHECK(left.dim() == 2 && left.size(0) == H && left.size(1) == H, "transform2d: left must be (H, H) = (",
              H, ", ", H, ") for x of shape ", x.sizes(), ", got ", left.sizes());
  TORCH_CHECK(right.dim() == 2 && right.size(0) == W && right.size(1) == W, "transform2d: right must be (W, W) = (",
              W, ", ", W, ") for x of shape ", x.sizes(), ", got ", right.sizes());
}

// pool_forward: x (B, C, H, W) against filters (K, H, W); its geometry, the strides of size-1
// dims normalised (they are arbitrary) so that layout tests see the real layout.
inline PoolGeom pool_geometry(const at::Tensor& x, const at::Tensor& filters, bool grouped, const char* op) {
  check_operand(filters, x, op, "filters");
  TORCH_CHECK(x.dim() == 4, op, ": x must be 4-D (B, C, H, W), got shape ", x.sizes());
  TORCH_CHECK(filters.dim() == 3, op, ": filters must be 3-D (K, H, W), got shape ", filters.sizes());
  PoolGeom g{x.size(0), x.size(1), x.size(2), x.size(3), filters.size(0), 1,
             x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  TORCH_CHECK(filters.size(1) == g.H && filters.size(2) == g.W, op, ": filters (K, H, W) must match the ",
              "spatial size of x (H=", g.H, ", W=", g.W, "), got shape ", filters.sizes());
  TORCH_CHECK(g.K >= 1, op, ": filters must hold at least one filter (K >= 1)");
  if (grouped) {
    TORCH_CHECK(g.C % g.K == 0, op, ": grouped pooling needs C divisible by K, got C=", g.C, ", K=", g.K);
    g.G = g.C / g.K;
  }
  if (g.W == 1) g.sw = 1;
  if (g.H == 1) g.sh = g.W * g.sw;
  return g;
}

// pool_backward: grad (B, C) grouped, else (B, C, K), against filters (K, H, W); the geometry of
// its (B, C, H, W) output (no strides).
inline PoolGeom pool_backward_geometry(const at::Tensor& grad, const at::Tensor& filters, bool grouped) {
  check_operand(filters, grad, "pool_backward", "filters");
  TORCH_CHECK(filters.dim() == 3, "pool_backward: filters must be 3-D (K, H, W), got shape ", filters.sizes());
  const int64_t K = filters.size(0);
  TORCH_CHECK(K >= 1, "pool_backward: filters must hold at least one filter (K >= 1)");
  if (grouped) {
    TORCH_CHECK(grad.dim() == 2, "pool_backward: grouped grad must be 2-D (B, C), got shape ", grad.sizes());
  } else {
    TORCH_CHECK(grad.dim() == 3 && grad.size(2) == K, "pool_backward: ungrouped grad must be 3-D (B, C, K) ",
                "with K=", K, " (the number of filters), got shape ", grad.sizes());
  }
  PoolGeom g{grad.size(0), grad.size(1), filters.size(1), filters.size(2), K, 1, 0, 0, 0, 0};
  if (grouped) {
    TORCH_CHECK(g.C % K == 0, "pool_backward: grouped pooling needs C divisible by K, got C=", g.C, ", K=", K);
    g.G = g.C / K;
  }
  return g;
}

}  // namespace freqalign
