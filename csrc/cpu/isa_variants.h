// Paste the kernel file FREQALIGN_KERNELS once per instruction set, each in its own namespace
// (isa_base: the x86-64 baseline, SSE2; isa_avx2: AVX2+FMA+F16C) compiled for that target; FREQALIGN_ISA_CALL picks one at run
// time. Include this after common.h and every system header (nothing may be included in a
// target region).
#ifndef FREQALIGN_KERNELS
#error "define FREQALIGN_KERNELS (the .inc file to compile per ISA) before including isa_variants.h"
#endif

#define FA_VBYTES 32
namespace isa_base {
#include "simd.inc"
#include FREQALIGN_KERNELS
}  // namespace isa_base
#undef FA_VBYTES

#if defined(__x86_64__) || defined(__i386__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
#define FA_VBYTES 32
namespace isa_avx2 {
#include "simd.inc"
#include FREQALIGN_KERNELS
}  // namespace isa_avx2
#undef FA_VBYTES
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else
// Other architectures: one portable build (the compiler vectorises for its baseline).
namespace isa_avx2 = isa_base;
#endif
