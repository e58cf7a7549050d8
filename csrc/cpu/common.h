// Helpers of the CPU kernels: the device check and ISA selection (the rest: ../shared.h).
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

#include "shared.h"

#include <cstdint>
#include <cstring>

namespace freqalign {
namespace cpu {

enum class Isa { base, avx2 };

// The widest instruction set this CPU runs (checked once); FREQALIGN_CPU_ISA=base forces the baseline.
Isa cpu_isa();

inline void check_cpu_float(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), op, ": ", name, " must be a CPU tensor, got one on ", t.device());
  check_float_dtype(t, op, name);
}

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
