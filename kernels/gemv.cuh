// Decode-time linear layers: out = epilogue(in @ w^T + bias) for a few rows (B <= 8), as
// bandwidth-bound matrix-vector products that stream each weight row once.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"

namespace gpt2::cuda {

constexpr int kGemvMaxRows = 8;

// Sets the kernels' shared-memory limit (the input rows are staged in shared memory:
// rows * in_features * 4 bytes; the limit only grows) and reads the SM count. Call outside
// stream capture, before linear_gemv: the CUDA backend calls it at construction and when it
// uploads a matrix, for 8 rows of its width. Returns the largest staging size allowed (bytes).
int64_t gemv_prepare(int64_t max_staging_bytes);

// Whether linear_gemv takes a [rows, in_features] input (rows <= kGemvMaxRows and the
// staging fits the prepared limit).
bool gemv_fits(int64_t rows, int64_t in_features);

// out [rows, O] fp32 = act(in [rows, I] fp32 @ w[O, I]^T + bias[O]); bias may be null;
// act = GELU-tanh when `gelu`. w in `dtype` (f32, f16, bf16), rows 16-byte aligned (I % 8 == 0).
// pdl: programmatic dependent launch (kernels/common.cuh).
void linear_gemv(float* out, const float* in, const void* w, DType dtype, const float* bias, int64_t rows,
                 int64_t in_features, int64_t out_features, bool gelu, bool pdl, cudaStream_t stream);

}  // namespace gpt2::cuda
