// The CPU kernels for AVX2 + FMA: kernels.inc compiled with that target (GCC only; other
// compilers get the generic kernels). Tile: 4 rows x 1 panel = 8 ymm accumulators, plus
// two weight halves and a broadcast: 11 of the 16 ymm registers. int8/int4: 4 rows x 1 panel
// (8 int32 sums, 4 unpacked weight vectors, 2 activation pairs), a single row 1 x 2 panels.
//
// Every standard header is included before the target pragma, so no inline library function
// is compiled for AVX2 and merged into code that runs on older CPUs.
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
// GCC 12's own intrinsics (_mm512_undefined_*) trip -Wmaybe-uninitialized: a known false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#endif

#include "runtime/cpu/cpu_kernels.h"

// 64-byte vectors stay inside this file (static functions), so the ABI note does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define GPT2_HAVE_AVX2_KERNELS 1
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,bmi,bmi2")

namespace gpt2::cpu::avx2 {
#define GPT2_ISA_AVX2 1
#define GPT2_MR 4
#define GPT2_NR_GEMV 2
#define GPT2_NR 1
#include "runtime/cpu/kernels.inc"
#undef GPT2_MR
#undef GPT2_NR
#undef GPT2_NR_GEMV
}  // namespace gpt2::cpu::avx2

#pragma GCC pop_options
#endif

namespace gpt2::cpu::avx2 {

const KernelTable* table() {
#if GPT2_HAVE_AVX2_KERNELS
  static const KernelTable t{Isa::avx2, 2, linear_panels, attention_query, layernorm_row};
  return &t;
#else
  return nullptr;
#endif
}

}  // namespace gpt2::cpu::avx2
