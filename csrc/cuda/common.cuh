// Helpers of the CUDA kernels: the device check, vector loads, warp reductions and launch
// sizing (accumulation types, dispatch and the operand checks: ../shared.h).
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

#include "shared.h"

#include <cstdint>

namespace freqalign {
namespace gpu {

inline void check_cuda_float(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.is_cuda(), op, ": ", name, " must be a CUDA tensor, got one on ", t.device());
  check_float_dtype(t, op, name);
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

}  // namespace gpu
}  // namespace freqalign
