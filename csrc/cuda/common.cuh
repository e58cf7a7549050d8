// Shared helpers for the CUDA kernels: argument checks, accumulation types, vector loads,
// warp reductions and launch sizing.
#pragma once

// Only light c10 headers: ATen/cuda/CUDAContext.h would pull in the cuBLAS/cuSPARSE headers,
// which a minimal CUDA toolkit does not ship.
#include <ATen/ATen.h>
#include <ATen/cuda/detail/IntegerDivider.cuh>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "accumulate.h"

#include <cstdint>

namespace freqalign {
namespace gpu {

inline at::ScalarType accumulation_dtype(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

inline void check_cuda_float(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.is_cuda(), op, ": ", name, " must be a CUDA tensor, got one on ", t.device());
  const auto d = t.scalar_type();
  TORCH_CHECK(d == at::kHalf || d == at::kBFloat16 || d == at::kFloat || d == at::kDouble, op, ": ", name,
              " must be float16, bfloat16, float32 or float64, got ", d);
}

// A matrix/filter operand: on x's device, contiguous, in the accumulation dtype of `input`.
inline void check_operand(const at::Tensor& t, const at::Tensor& input, const char* op, const char* name) {
  TORCH_CHECK(t.device() == input.device(), op, ": ", name, " must be on ", input.device(), ", got ",
              t.device());
  TORCH_CHECK(t.scalar_type() == accumulation_dtype(input.scalar_type()), op, ": ", name, " must have dtype ",
              accumulation_dtype(input.scalar_type()), " (the accumulation dtype for ", input.scalar_type(),
              " input), got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

// V consecutive elements moved as one aligned load/store (16 bytes for V = 16 / sizeof(T)).
template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

__host__ __device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

template <typename A>
__device__ __forceinline__ A warp_sum(A value, int width) {
  // butterfly over `width` (a power of two <= 32) consecutive lanes; every lane gets the sum
  for (int offset = width / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

// Streaming multiprocessors of the current device (queried once per device).
inline int sm_count() {
  static int counts[64] = {0};
  const int device = c10::cuda::current_device();
  int& count = counts[device % 64];
  if (count == 0) C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

inline bool aligned(const void* p, int64_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline int next_pow2(int64_t n) {
  int p = 1;
  while (p < n && p < (1 << 30)) p *= 2;
  return p;
}

#define FREQALIGN_CUDA_DISPATCH(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

}  // namespace gpu
}  // namespace freqalign
