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
#endif
  const char* cap = std::getenv("FREQALIGN_CPU_ISA");
  if (cap != nullptr && std::string(cap) == "base") best = Isa::base;
  return best;
}

Isa cpu_isa() {
  static const Isa isa = detect();
  return isa;
}

}  // namespace cpu
}  // namespace freqalign
