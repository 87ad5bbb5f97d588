// QKV bias add + KV cache append, per row n of the step (slot s = row_slots[n], p = positions[n]):
//   qkv[n, :]        = qkv[n, :] + bias                    (in place: q, k and v)
//   k_cache[s,h,p,d] = qkv[n, C + h*hd + d]
//   v_cache[s,h,p,d] = qkv[n, 2C + h*hd + d]
//
// Shapes: qkv [N, 3C] fp32; row_slots, positions [N] int32 (the device batch, kernels/batch.cuh:
// every row its own slot and position, so a batch may mix sequences at any positions); caches
// [n_slots, n_head, n_ctx, head_dim] in the cache dtype (head-major, so attention reads each
// head's keys as one contiguous [len, head_dim] block).
// Work split: one block per row n, threads stride over the 3C columns (coalesced reads and
// write-backs; the cache writes are coalesced within each head's head_dim run).
// Why fused: attention() receives c_attn's bias (the model's linear() for c_attn runs without
// it), so q/k/v are read once, biased once, and the cache written in the same pass, with no
// separate bias pass over [N, 3C]. Writing the biased q, k, v back into qkv costs one store per
// element and keeps the op's contract: an observer reads q and k from qkv afterwards.
// Numerics: one fp32 add, then rounding to the cache dtype (nearest even) for the cache only.
// Source: the KV cache of autoregressive Transformers (Pope et al. 2022, "Efficiently Scaling
// Transformer Inference").
#include "kernels/common.cuh"
#include "kernels/kv_cache.cuh"

namespace gpt2::cuda {

namespace {

template <typename T>
__global__ void qkv_bias_kv_append_kernel(float* qkv, T* k_cache, T* v_cache, const float* bias, DeviceBatch batch,
                                          int n_head, int head_dim, int n_ctx) {
  const int row = blockIdx.x;
  const int64_t slot = batch.row_slots[row];
  const int64_t p = batch.positions[row];
  const int C = n_head * head_dim;
  float* src = qkv + static_cast<int64_t>(row) * 3 * C;
  for (int c = threadIdx.x; c < 3 * C; c += blockDim.x) {
    float v = src[c];
    if (bias) {
      v += bias[c];
      src[c] = v;
    }
    if (c < C) continue;
    const int part = c / C;  // 1: k, 2: v
    const int cc = c - part * C;
    const int h = cc / head_dim;
    const int d = cc - h * head_dim;
    const int64_t at = ((slot * n_head + h) * n_ctx + p) * head_dim + d;
    (part == 1 ? k_cache : v_cache)[at] = from_float<T>(v);
  }
}

}  // namespace

void qkv_bias_kv_append(float* qkv, void* k_cache, void* v_cache, DType dtype, const float* bias, DeviceBatch batch,
                        int rows, int n_head, int head_dim, int n_ctx, cudaStream_t stream) {
  if (rows <= 0) return;
  GPT2_DISPATCH_FLOAT_TYPES(dtype, "qkv_bias_kv_append", {
    qkv_bias_kv_append_kernel<T><<<rows, 256, 0, stream>>>(qkv, static_cast<T*>(k_cache), static_cast<T*>(v_cache),
                                                           bias, batch, n_head, head_dim, n_ctx);
  });
  check_launch("qkv_bias_kv_append");
}

}  // namespace gpt2::cuda
