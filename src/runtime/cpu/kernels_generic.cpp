// The CPU kernels for any x86-64 (SSE2) or other CPU: kernels.inc compiled for the baseline
// target. Tile: 2 rows x 1 panel (8 accumulator xmm + 4 weight xmm of the 16 SSE registers);
// int8/int4 weights: one output at a time (a correctness fallback).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "runtime/cpu/cpu_kernels.h"

// 64-byte vectors stay inside this file (static functions), so the ABI note does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace gpt2::cpu::generic {

#define GPT2_MR 2
#define GPT2_NR_GEMV 1
#define GPT2_NR 1
#include "runtime/cpu/kernels.inc"
#undef GPT2_MR
#undef GPT2_NR
#undef GPT2_NR_GEMV

const KernelTable* table() {
  static const KernelTable t{Isa::generic, 1, linear_panels, attention_query, layernorm_row};
  return &t;
}

}  // namespace gpt2::cpu::generic
