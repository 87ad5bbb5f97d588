// Causal self-attention over the KV cache: prefill (many queries per sequence, tiled with an
// online softmax) and decode (one query per sequence, Flash-Decoding split over the cache).
// head_dim must be 64 (every GPT-2 size); the launchers check it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "kernels/batch.cuh"

namespace gpt2::cuda {

constexpr int kAttentionHeadDim = 64;

// Which prefill kernel runs for a 16-bit cache: the tensor-core one, or the fp32 SIMT kernel
// (a triage aid: BackendOptions::cuda_attention = simt). fp32 caches always use the SIMT kernel.
enum class PrefillKernel { auto_select, simt };

// Prefill, any mix of sequences (the packed layout of kernels/batch.cuh): for each sequence s of
// n_seqs, its n_s = seq_first_row[s + 1] - seq_first_row[s] queries at rows seq_first_row[s] + t,
// positions seq_pos[s] + t, attend over positions [0, seq_pos[s] + t] of slot seq_slot[s]:
// out [N, C] fp32 = softmax(q k^T / sqrt(64), causal) v. q is read from qkv [N, 3C] (bias
// already added: qkv_bias_kv_append must run first; it also fills the cache with the step's own
// keys and values). max_seq_tokens = the largest n_s (the grid covers it; blocks past a shorter
// sequence's end exit). Caches [n_slots, n_head, n_ctx, 64] in `dtype`. out16 (optional, same
// dtype as the cache, f16/bf16 only) receives out rounded, for the attention c_proj GEMM.
void attention_prefill(float* out, void* out16, const float* qkv, const void* k_cache, const void* v_cache,
                       DType dtype, DeviceBatch batch, int n_seqs, int max_seq_tokens, int n_head, int head_dim,
                       int n_ctx, PrefillKernel kernel, cudaStream_t stream);

// Number of cache splits (thread blocks per head and sequence) the decode kernel launches
// for a context of n_ctx positions; blocks past the current length exit at once.
int attention_decode_splits(int n_ctx);

// Decode (every sequence one new token; row b is sequence b, at slot batch.row_slots[b] and
// position p_b = batch.positions[b]): for each row b and head h, adds the QKV bias (bias [3C] or
// null), writes k and v of position p_b to the slot's caches, computes out [B, C] for the query
// over positions [0, p_b] of the slot, and writes q, k, v with the bias back into qkv [B, 3C].
// Scratch, owned by the caller and sized for at least `batch_rows` rows:
// partial_o [B * n_head * splits * 64] fp32, partial_ml [B * n_head * splits * 2] fp32,
// counters [B * n_head] int32, zero before the first call (the kernel leaves them zero).
// pdl: programmatic dependent launch (kernels/common.cuh).
void attention_decode(float* out, float* qkv, void* k_cache, void* v_cache, DType dtype, const float* bias,
                      DeviceBatch batch, int batch_rows, int n_head, int head_dim, int n_ctx, float* partial_o,
                      float* partial_ml, int32_t* counters, bool pdl, cudaStream_t stream);

}  // namespace gpt2::cuda
