// The QKV bias add fused with appending K and V to the KV cache (prefill steps; the decode
// attention kernel does the same for its single token itself).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"

namespace gpt2::cuda {

// qkv [B*T, 3C] fp32 (q | k | v, n_head heads of head_dim inside each), bias [3C] fp32 or null.
// q += bias_q in place (the attention kernel reads q from qkv); k + bias_k and v + bias_v go
// to k_cache / v_cache at positions *pos + t. Cache layout (one layer):
// [max_batch, n_head, n_ctx, head_dim] in `dtype`.
void qkv_bias_kv_append(float* qkv, void* k_cache, void* v_cache, DType dtype, const float* bias,
                        const int32_t* pos, int batch, int n_tokens, int n_head, int head_dim, int n_ctx,
                        cudaStream_t stream);

}  // namespace gpt2::cuda
