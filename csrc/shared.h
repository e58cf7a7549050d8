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

}  // namespace freqalign
