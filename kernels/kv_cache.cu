// QKV bias add + KV cache append:
//   q[r, :]          = qkv[r, 0:C]   + bias[0:C]          (in place)
//   k_cache[b,h,p,d] = qkv[r, C + h*hd + d]  + bias[C + h*hd + d]
//   v_cache[b,h,p,d] = qkv[r, 2C + h*hd + d] + bias[2C + h*hd + d]
// with r = b*T + t and p = pos + t (pos read from device memory).
//
// Shapes: qkv [B*T, 3C] fp32; caches [max_batch, n_head, n_ctx, head_dim] in the cache dtype
// (head-major, so attention reads each head's keys as one contiguous [len, head_dim] block).
// Work split: one block per row r, threads stride over the 3C columns (coalesced reads; the
// cache writes are coalesced within each head's head_dim run).
// Why fused: the bias of c_attn is deferred by the backend's linear() to this kernel, so q/k/v
// are read once and the cache written once, with no separate bias pass over [B*T, 3C].
// Numerics: one fp32 add, then rounding to the cache dtype (nearest even).
// Source: the KV cache of autoregressive Transformers (Pope et al. 2022, "Efficiently Scaling
// Transformer Inference").
#include "kernels/common.cuh"
#include "kernels/kv_cache.cuh"

namespace gpt2::cuda {

namespace {

template <typename T>
__global__ void qkv_bias_kv_append_kernel(float* qkv, T* k_cache, T* v_cache, const float* bias, const int32_t* pos,
                                          int n_tokens, int n_head, int head_dim, int n_ctx) {
  const int row = blockIdx.x;
  const int b = row / n_tokens;
  const int p = *pos + row % n_tokens;
  const int C = n_head * head_dim;
  float* src = qkv + static_cast<int64_t>(row) * 3 * C;
  for (int c = threadIdx.x; c < 3 * C; c += blockDim.x) {
    const float v = src[c] + (bias ? bias[c] : 0.0f);
    if (c < C) {
      if (bias) src[c] = v;
      continue;
    }
    const int part = c / C;  // 1: k, 2: v
    const int cc = c - part * C;
    const int h = cc / head_dim;
    const int d = cc - h * head_dim;
    const int64_t at = ((static_cast<int64_t>(b) * n_head + h) * n_ctx + p) * head_dim + d;
    (part == 1 ? k_cache : v_cache)[at] = from_float<T>(v);
  }
}

}  // namespace

void qkv_bias_kv_append(float* qkv, void* k_cache, void* v_cache, DType dtype, const float* bias,
                        const int32_t* pos, int batch, int n_tokens, int n_head, int head_dim, int n_ctx,
                        cudaStream_t stream) {
  const int rows = batch * n_tokens;
  if (rows <= 0) return;
  GPT2_DISPATCH_FLOAT_TYPES(dtype, "qkv_bias_kv_append", {
    qkv_bias_kv_append_kernel<T><<<rows, 256, 0, stream>>>(qkv, static_cast<T*>(k_cache), static_cast<T*>(v_cache),
                                                           bias, pos, n_tokens, n_head, head_dim, n_ctx);
  });
  check_launch("qkv_bias_kv_append");
}

}  // namespace gpt2::cuda
