// The tensor types of GGUF files (ggml's block formats): their sizes, and their values as fp32
// or, for the symmetric formats, as integers with one scale per group.
//
// Each quantized type stores a row of n values as n / block_size blocks of block_bytes; the
// formula of each (llama.cpp ggml/src/ggml-common.h and ggml-quants.c, dequantize_row_*):
//   Q8_0  32 values, 34 bytes: f16 d, int8 q[32]                      x = d * q
//   Q4_0  32 values, 18 bytes: f16 d, 16 bytes of nibbles             x = d * (q - 8)
//         (value j < 16 in the low nibble of byte j, value j + 16 in its high nibble)
//   Q4_1  32 values, 20 bytes: f16 d, f16 m, nibbles as Q4_0          x = d * q + m
//   Q5_0  32 values, 22 bytes: f16 d, u32 qh (the 5th bits), nibbles  x = d * (q - 16)
//   Q5_1  32 values, 24 bytes: f16 d, f16 m, u32 qh, nibbles          x = d * q + m
//   Q4_K  256 values, 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins for
//         8 sub-blocks of 32, 128 bytes of nibbles                    x = d * sc * q - dmin * m
//   Q5_K  256 values, 176 bytes: as Q4_K plus 32 bytes of 5th bits
//   Q6_K  256 values, 210 bytes: 128 bytes low nibbles, 64 bytes of high 2 bits, int8 scales
//         for 16 sub-blocks of 16, f16 d                              x = d * sc * (q - 32)
// The operations are done in fp32 in the order ggml's reference code does them, so the values
// are bit for bit those llama.cpp's dequantization gives.
//
// Integer form: Q8_0, Q4_0, Q5_0 (groups of 32) and Q6_K (groups of 16) are symmetric, so each
// value is exactly q * s with q a small integer and s = d (or d * sc, exact in fp32: an 11-bit
// times an 8-bit significand): the CPU backend runs them as they are, with no requantization
// (Q4_0 on the int4 kernels, the others on int8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/dtype.h"

namespace gpt2 {

// ggml_type ids as they appear in a GGUF file.
enum class GgmlType : uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8,
  q4_k = 12, q5_k = 13, q6_k = 14, bf16 = 30,
};

struct GgmlTypeInfo {
  const char* name;     // "Q4_0", as llama.cpp prints it
  int64_t block_size;   // values per block (1 for F32/F16/BF16)
  size_t block_bytes;   // bytes per block
  bool supported;       // this engine reads it
};

// The type with this id, or null when the id names no ggml type. Types ggml knows that this
// engine does not read (IQ*, Q2_K, Q3_K, TQ*, MXFP4, I8 ...) have supported == false and a name
// for the error message.
const GgmlTypeInfo* ggml_type_info(uint32_t id);

// n values (a multiple of the block size) of a supported type from `src` to fp32.
void ggml_dequantize(GgmlType type, const uint8_t* src, float* dst, int64_t n);

// Whether a type has an exact integer form: its dtype (i4 for Q4_0, i8 for Q8_0, Q5_0, Q6_K)
// and group size.
bool ggml_integer_form(GgmlType type, DType* dtype, int32_t* group_size);
// n values (a multiple of the block size) of such a type to q [n] and scales [n / group_size],
// with q[i] * scales[i / group_size] == the dequantized value exactly.
void ggml_to_integers(GgmlType type, const uint8_t* src, int8_t* q, float* scales, int64_t n);

}  // namespace gpt2
