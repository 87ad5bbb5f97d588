// CPU backend internals: the packed weight layout and the table of vectorized kernels.
//
// Packed ("panel") layout of a linear weight w [O, I] (PyTorch [out, in]):
//   the O outputs are cut into P = ceil(O / 16) panels of 16 consecutive outputs; a panel
//   stores its 16 x I block k-major: element (o, k) lives at panel o / 16, offset
//   (k * 16 + o % 16). Rows past O in the last panel are zero.
//   int8 weights carry one fp32 scale per group of `group_size` consecutive k of one output,
//   stored panel-major too: scale (o, g) at [(o / 16) * n_groups + g] * 16 + o % 16.
// Why: one output's dot product is then a single sequential FMA chain over k on one lane of a
// 16-wide vector, whatever the number of rows processed together (GEMV at decode, register-
// blocked GEMM at prefill) and whatever the thread split. Prefill and decode therefore give
// bit-identical results, and results never depend on the thread count. A panel also streams
// as one contiguous block, which is what the memory-bound decode GEMV wants.
//
// Kernels exist once in source (kernels.inc, GCC vector extensions) and are compiled three
// times with different target ISAs (generic x86-64/SSE2, AVX2+FMA, AVX-512); the table is
// chosen at run time from the CPU's features, so one binary runs on any x86-64.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/backend.h"
#include "runtime/tensor.h"

namespace gpt2::cpu {

constexpr int64_t kPanel = 16;  // outputs per panel (one AVX-512 vector of fp32)

enum class Isa { generic, avx2, avx512 };
const char* isa_name(Isa isa);

// out [n_rows, O] (row stride ldo) = epilogue(in [n_rows, I] (row stride ldi) @ w^T + bias)
// with w a packed Tensor (rows = O, cols = I, dtype f32 | bf16 | i8).
struct LinearArgs {
  float* out = nullptr;
  int64_t ldo = 0;
  const float* in = nullptr;
  int64_t ldi = 0;
  int64_t n_rows = 0;
  Tensor w;
  const float* bias = nullptr;  // [O] or null
  Epilogue epilogue = Epilogue::none;
};

struct KernelTable {
  Isa isa;
  int panels_per_task;  // panels per task of a parallel linear: a multiple of the tile widths
  // Computes outputs of panels [p_begin, p_end) for every row. Single-threaded.
  void (*linear_panels)(const LinearArgs& args, int64_t p_begin, int64_t p_end);
  // One query row of causal attention for one head:
  //   out [hd] = sum_j softmax_j(scale * q . k_j) v_j,  j in [0, n_keys)
  // k_j = k + j * stride, v_j = v + j * stride; scores: scratch of n_keys floats.
  void (*attention_query)(float* out, const float* q, const float* k, const float* v, int64_t stride,
                          int64_t n_keys, int64_t hd, float scale, float* scores);
  // out [C] = (x - mean) / sqrt(var + eps) * g + b, statistics in fp32 (two passes).
  void (*layernorm_row)(float* out, const float* x, const float* g, const float* b, int64_t C, float eps);
};

// The best table this CPU supports (GPT2_CPU_ISA=generic|avx2|avx512 in the environment
// lowers the choice, for testing and benchmarking the fallbacks).
const KernelTable& best_kernels();
// The table of one ISA, or null when the CPU (or the compiler) cannot run it.
const KernelTable* kernels_for(Isa isa);

namespace generic {
const KernelTable* table();
}
namespace avx2 {
const KernelTable* table();  // null when not compiled in
}
namespace avx512 {
const KernelTable* table();
}

// ---- packing (cpu_pack.cpp) ----
int64_t panel_count(int64_t out);
// Bytes of the packed data and of the scales (int8 only) of an [out, in] matrix.
size_t packed_bytes(DType dtype, int64_t out, int64_t in);
size_t packed_scale_bytes(DType dtype, int64_t out, int64_t in, int32_t group_size);
// Packs a row-major [out, in] source (dtype f32, bf16 or f16, or i8 with row-major scales
// [out, ceil(in / group)]) into `data` (and `scales` for i8) as `dtype`; returns the view.
// int8 from a float source: symmetric absmax quantization per group of `group_size`.
// Parallel over panels with n_threads (deterministic).
Tensor pack_matrix(const Tensor& src, DType dtype, int32_t group_size, void* data, float* scales,
                   int n_threads);
// One row of a packed matrix, dequantized to fp32 (the embedding lookup of a tied wte).
void unpack_row(float* dst, const Tensor& packed, int64_t row);

}  // namespace gpt2::cpu
