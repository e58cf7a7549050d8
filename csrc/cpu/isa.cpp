// Run-time choice of the instruction set for the CPU kernels (see common.h).
#include "common.h"

#include <cstdlib>
#include <string>

namespace freqalign {
namespace cpu {

static Isa detect() {
  Isa best = Isa::base;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::avx2;
  if (best == Isa::avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    best = Isa::avx512;
#endif
  const char* cap = std::getenv("FREQALIGN_CPU_ISA");
  if (cap != nullptr) {
    const std::string name(cap);
    if (name == "base") best = Isa::base;
    if (name == "avx2" && best == Isa::avx512) best = Isa::avx2;
  }
  return best;
}

Isa cpu_isa() {
  static const Isa isa = detect();
  return isa;
}

}  // namespace cpu
}  // namespace freqalign
