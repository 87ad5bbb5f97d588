// Causal self-attention over the KV cache: prefill (many queries per sequence, tiled with an
// online softmax) and decode (one query per sequence, Flash-Decoding split over the cache).
// head_dim must be 64 (every GPT-2 size); the launchers check it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"

namespace gpt2::cuda {

constexpr int kAttentionHeadDim = 64;

// Prefill: out [B*T, C] fp32 = softmax(q k^T / sqrt(64), causal) v for the T queries of each
// sequence at positions *pos + t, over cache positions [0, *pos + t]. q is read from qkv
// [B*T, 3C] (bias already added: see qkv_bias_kv_append, which must run first and fills the
// cache for positions *pos .. *pos + T - 1). Caches [max_batch, n_head, n_ctx, 64] in `dtype`.
// out16 (optional, same dtype as the cache, f16/bf16 only) receives out rounded, for the
// attention c_proj GEMM.
void attention_prefill(float* out, void* out16, const float* qkv, const void* k_cache, const void* v_cache,
                       DType dtype, const int32_t* pos, int batch, int n_tokens, int n_head, int head_dim, int n_ctx,
                       cudaStream_t stream);

// Number of cache splits (thread blocks per head and sequence) the decode kernel launches
// for a context of n_ctx positions; blocks past the current length exit at once.
int attention_decode_splits(int n_ctx);

// Decode (T = 1): for each sequence b and head h, adds the QKV bias (bias [3C] or null), writes
// k and v of position *pos to the caches, and computes out [B, C] for the query at *pos over
// cache positions [0, *pos]. Scratch, owned by the caller and sized for `batch`:
// partial_o [B * n_head * splits * 64] fp32, partial_ml [B * n_head * splits * 2] fp32,
// counters [B * n_head] int32, zero before the first call (the kernel leaves them zero).
void attention_decode(float* out, const float* qkv, void* k_cache, void* v_cache, DType dtype, const float* bias,
                      const int32_t* pos, int batch, int n_head, int head_dim, int n_ctx, float* partial_o,
                      float* partial_ml, int32_t* counters, cudaStream_t stream);

}  // namespace gpt2::cuda
