// CPU backend internals: the packed weight layout and the table of vectorized kernels.
//
// Packed ("panel") layout of a linear weight w [O, I] (PyTorch [out, in]):
//   the O outputs are cut into P = ceil(O / 16) panels of 16 consecutive outputs. Rows past O in
//   the last panel are zero.
//   fp32, bf16: a panel stores its 16 x I block k-major: element (o, k) at panel o / 16, offset
//     (k * 16 + o % 16).
//   int8, int4 (weight-only, integers q with one fp32 scale per group of `group_size`
//     consecutive k of one output, scale (o, g) at [(o / 16) * n_groups + g] * 16 + o % 16):
//     I is padded with zeros to Ip = a multiple of 4, and a panel is cut into 32-byte blocks
//     laid out for the integer dot products (_mm256_madd_epi16 multiplies pairs of adjacent
//     16-bit values, so a block keeps the two k of a pair side by side):
//     int8: block t holds k = 2t, 2t+1: byte h * 16 + i = q(o = 16p + 8h + i / 2, k = 2t + i % 2);
//       sign-extending each 16-byte half gives 8 outputs x (k, k+1).
//     int4: block t holds k = 4t .. 4t+3 as nibbles u = q + 8 in [0, 15]: byte b (lane = b / 16,
//       i = b % 16, h = i / 8, j = i % 8) is output o = 16p + 8h + 4 lane + j / 2, with
//       k = 4t + j % 2 in the low nibble and k = 4t + 2 + j % 2 in the high nibble; masking the
//       nibbles and interleaving with zero bytes (unpacklo/hi_epi8, per 128-bit lane) gives
//       8 outputs x (k, k+1) of 16-bit values directly.
// Why: for fp32/bf16 one output's dot product is a single sequential FMA chain over k on one lane
// of a 16-wide vector, whatever the number of rows processed together (GEMV at decode, register-
// blocked GEMM at prefill) and whatever the thread split. Prefill and decode therefore give
// bit-identical results, and results never depend on the thread count. A panel also streams
// as one contiguous block, which is what the memory-bound decode GEMV wants.
// Integer weights multiply integer activations: each row of the input is quantized per group
// (the weights' groups) to 16-bit fixed point, x ~ xq * sx with |xq| <= 32767 (quantize_rows);
// a group's dot product sum_k xq_k q_k is exact in int32, and the output accumulates
// (sum_k xq_k q_k) * (sx_g * sw_g) over groups in fp32, in group order: as exact-by-construction
// as the fp32 path, and again independent of tiling and threads. The activations' rounding,
// at most 2^-16 of the largest |x| of the group, is ~100x below bf16's and negligible beside
// the weights' own (weight-only quantization in effect; the kernels are ~2x the fp32 FMA path's
// throughput per weight).
//
// Kernels exist once in source (kernels.inc, GCC vector extensions; the integer kernels with
// AVX2 intrinsics, and AVX-512 ones that take a whole 32-byte block per zmm) and are compiled
// three times with different target ISAs (generic x86-64/SSE2, AVX2+FMA, AVX-512); the table
// is chosen at run time from the CPU's features, so one binary runs on any x86-64.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "runtime/backend.h"
#include "runtime/tensor.h"

namespace gpt2::cpu {

constexpr int64_t kPanel = 16;  // outputs per panel (one AVX-512 vector of fp32)

enum class Isa { generic, avx2, avx512 };
const char* isa_name(Isa isa);

// The input of an integer linear, quantized per row and group (quantize_rows): xq [n_rows, Ip]
// (zero past I), sx [n_rows, n_groups], and for int4 the offset of its unsigned nibbles,
// corr [n_rows, n_groups] = 8 * sum_{k in g} xq_k (zero for int8).
struct QuantizedRows {
  const int16_t* xq = nullptr;
  const float* sx = nullptr;
  const int32_t* corr = nullptr;
  int64_t ld = 0;        // Ip
  int64_t n_groups = 0;
};

// out [n_rows, O] (row stride ldo) = epilogue(in [n_rows, I] (row stride ldi) @ w^T + bias)
// with w a packed Tensor (rows = O, cols = I, dtype f32 | bf16 | i8 | i4).
struct LinearArgs {
  float* out = nullptr;
  int64_t ldo = 0;
  const float* in = nullptr;
  int64_t ldi = 0;
  int64_t n_rows = 0;
  Tensor w;
  const float* bias = nullptr;  // [O] or null
  Epilogue epilogue = Epilogue::none;
  // Integer weights: `in` already quantized for w's groups (the backend does it once per op);
  // when null, linear_panels quantizes it itself.
  const QuantizedRows* quantized = nullptr;
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

// The best table this CPU supports, at most `limit` ("" or avx512: no limit; avx2; generic), for
// testing and benchmarking the fallbacks (BackendOptions::cpu_isa, --cpu-isa). Throws
// gpt2::UsageError for another name.
const KernelTable& best_kernels(const std::string& limit);
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
constexpr int32_t kInt8Group = 64;  // int8 quantized from floats: groups of 64 k
constexpr int32_t kInt4Group = 32;  // int4: groups of 32, GGUF's Q4_0 blocks
constexpr int32_t kMaxIntGroup = 256;  // int32 sums of a group cannot overflow

int64_t panel_count(int64_t out);
int64_t padded_k(DType dtype, int64_t in);  // Ip: `in` padded for the layout (integer dtypes: to 4)
// Bytes of the packed data and of the scales (int8/int4 only) of an [out, in] matrix.
size_t packed_bytes(DType dtype, int64_t out, int64_t in);
size_t packed_scale_bytes(DType dtype, int64_t out, int64_t in, int32_t group_size);

// How a host matrix is packed for a backend of dtype `backend`: fp32 and bf16 backends take every
// source as that dtype (integers dequantized first); int8/int4 backends quantize float sources
// to their own dtype (kInt8Group / kInt4Group) and run integer sources (a quantized GGUF's
// blocks) as they are, in the source's own dtype and groups: a file's quantization is never
// requantized.
struct PackPlan {
  DType dtype;
  int32_t group_size;  // 0 for fp32/bf16
};
PackPlan pack_plan(const Tensor& src, DType backend);

// Packs a row-major [out, in] source (dtype f32, bf16 or f16, or i8/i4 with row-major scales
// [out, ceil(in / group)]) into `data` (and `scales` for i8/i4) as `dtype` with `group_size`;
// returns the view. Integer sources of the same dtype and group are copied as they are; float
// sources are quantized: int8 symmetric absmax (scale = max|w| / 127, q = round(w / scale)),
// int4 exactly as ggml's quantize_row_q4_0_ref (d = the value of largest |w| / -8, rounded to
// fp16 as Q4_0 stores it; q = min(15, trunc(w / d + 8.5)) - 8). Other combinations dequantize
// first. Parallel over panels on `pool` (each panel written by one task: deterministic).
Tensor pack_matrix(const Tensor& src, DType dtype, int32_t group_size, void* data, float* scales, ThreadPool& pool);
// One row of a packed matrix, dequantized to fp32 (the embedding lookup of a tied wte).
void unpack_row(float* dst, const Tensor& packed, int64_t row);

// Quantizes in [n_rows, I] (row stride ldi) for integer weights with groups of `group_size`
// (quantized rows: module comment) into buffers of at least n_rows * Ip int16, n_rows * n_groups
// float and int32; `int4` sets the nibble offset correction.
struct QuantizedRowsBuffer {
  std::vector<int16_t> xq;
  std::vector<float> sx;
  std::vector<int32_t> corr;
};
QuantizedRows quantize_rows(const float* in, int64_t ldi, int64_t n_rows, int64_t in_cols, int32_t group_size,
                            bool int4, QuantizedRowsBuffer& buffer);
// The same for a linear's input, into a buffer of the calling thread (for kernels called without
// LinearArgs::quantized; valid until the thread's next call).
QuantizedRows quantize_input(const LinearArgs& args);

}  // namespace gpt2::cpu
