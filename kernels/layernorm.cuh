// LayerNorm, alone or fused with the residual add before it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"

namespace gpt2::cuda {

// Largest n_embd the kernel handles (one row lives in registers: 4 float4 per thread x 128).
constexpr int kLayernormMaxCols = 2048;

// When delta is not null: x += delta (written back), then LayerNorm of the sum; else LayerNorm
// of x (x untouched). out [rows, cols] fp32 = (x - mean) / sqrt(var + eps) * g + b;
// out16 (optional, dtype16 f16/bf16) receives the same values rounded, for the next GEMM.
// g, b [cols] fp32. cols % 4 == 0, cols <= kLayernormMaxCols; pointers 16-byte aligned.
// pdl: programmatic dependent launch (kernels/common.cuh).
void layernorm(float* out, void* out16, DType dtype16, float* x, const float* delta, const float* g,
               const float* b, int64_t rows, int cols, float eps, bool pdl, cudaStream_t stream);

}  // namespace gpt2::cuda
