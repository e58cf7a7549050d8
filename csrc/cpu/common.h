// Shared helpers for the CPU kernels: argument checks, dtype dispatch, ISA selection.
//
// The hot loops live in *_kernels.inc files written with GCC/Clang vector extensions. Each .cpp
// includes its .inc once per instruction set inside its own namespace (a `#pragma GCC target`
// region), so one portable binary carries a baseline (SSE2) and an AVX2+FMA build of every kernel
// and picks one at run time (never -march=native). An AVX-512 build measured no faster on the
// dev machine (the DCT reached the same GFLOP/s, pooling is memory-bound), so there is none.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "accumulate.h"

#include <cstdint>
#include <cstring>

namespace freqalign {
namespace cpu {

enum class Isa { base, avx2 };

// The widest instruction set this CPU runs (checked once); FREQALIGN_CPU_ISA=base forces the baseline.
Isa cpu_isa();

inline at::ScalarType accumulation_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_cpu_float(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), op, ": ", name, " must be a CPU tensor, got one on ", t.device());
  const auto d = t.scalar_type();
  TORCH_CHECK(d == at::kHalf || d == at::kBFloat16 || d == at::kFloat || d == at::kDouble, op, ": ",
              name, " must be float16, bfloat16, float32 or float64, got ", d);
}

// A matrix/filter operand: CPU, contiguous, in the accumulation dtype of `input_dtype`.
inline void check_operand(const at::Tensor& t, at::ScalarType input_dtype, const char* op,
                          const char* name) {
  TORCH_CHECK(t.device().is_cpu(), op, ": ", name, " must be a CPU tensor, got one on ", t.device());
  TORCH_CHECK(t.scalar_type() == accumulation_dtype(input_dtype), op, ": ", name, " must have dtype ",
              accumulation_dtype(input_dtype), " (the accumulation dtype for ", input_dtype,
              " input), got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

#define FREQALIGN_DISPATCH_FLOATING(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

// Geometry of a pooling call: x (B, C, H, W) with element strides, K filters, G = C / K.
struct PoolGeom {
  int64_t B, C, H, W, K, G;
  int64_t sb, sc, sh, sw;
};

// Call NS::FN<...>(args) for the selected instruction set; NS is the per-ISA namespace prefix.
#define FREQALIGN_ISA_CALL(FN, ...)                        \
  do {                                                     \
    switch (::freqalign::cpu::cpu_isa()) {                 \
      case ::freqalign::cpu::Isa::avx2:                    \
        isa_avx2::FN(__VA_ARGS__);                         \
        break;                                             \
      default:                                             \
        isa_base::FN(__VA_ARGS__);                         \
    }                                                      \
  } while (0)

}  // namespace cpu
}  // namespace freqalign
