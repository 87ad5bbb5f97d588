// The CPU kernels for AVX-512 (F, BW, VL, DQ): kernels.inc compiled with that target (GCC only;
// other compilers get the generic kernels). Tile: 8 rows x 3 panels = 24 zmm accumulators,
// 3 weight vectors and a broadcast in the 32 zmm registers; per k, 8 broadcasts + 3 loads feed
// 24 FMAs. int8/int4: a block of 16 outputs x 2 k (int8) or 4 k (int4) is one zmm of 16-bit
// weights per madd (kernels.inc); a single row runs 1 x 6 panels, many rows 4 x 1.
//
// Every standard header is included before the target pragma, so no inline library function
// is compiled for AVX-512 and merged into code that runs on older CPUs.
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
#define GPT2_HAVE_AVX512_KERNELS 1
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi,bmi2")

namespace gpt2::cpu::avx512 {
#define GPT2_ISA_AVX512 1
#define GPT2_MR 8
#define GPT2_NR_GEMV 6
#define GPT2_NR 3
#include "runtime/cpu/kernels.inc"
#undef GPT2_MR
#undef GPT2_NR
#undef GPT2_NR_GEMV
}  // namespace gpt2::cpu::avx512

#pragma GCC pop_options
#endif

namespace gpt2::cpu::avx512 {

const KernelTable* table() {
#if GPT2_HAVE_AVX512_KERNELS
  static const KernelTable t{Isa::avx512, 6, linear_panels, attention_query, layernorm_row};
  return &t;
#else
  return nullptr;
#endif
}

}  // namespace gpt2::cpu::avx512
