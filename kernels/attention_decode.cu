// Decode attention (Flash-Decoding: Dao, Haziza, Massa, Sizov 2023, "Flash-Decoding for
// long-context inference"), fused with the QKV bias add and the KV cache append:
//   for each row b (one sequence, one new token at position p = positions[b] of slot
//   s = row_slots[b]) and head h:
//     q = qkv[b, q_h] + bias_q;  k_cache[s,h,p] = qkv[b, k_h] + bias_k;  v_cache[s,h,p] = ... v
//     split j covers cache positions [32 j, 32 j + 32) ∩ [0, p]:
//       m_j = max_i (q . k_i) / 8,  l_j = sum_i exp(s_i - m_j),  o_j = sum_i exp(s_i - m_j) v_i
//     out[b, h] = sum_j exp(m_j - M) o_j / sum_j exp(m_j - M) l_j,  M = max_j m_j
//     qkv[b, q_h | k_h | v_h] += bias  (written back, so qkv holds the biased q, k, v afterwards)
//
// Shapes: qkv [B, 3C] fp32, positions and row_slots [B] (the device batch, kernels/batch.cuh:
// every sequence at its own position in its own slot), caches [n_slots, n_head, n_ctx, 64],
// out [B, C] fp32; scratch partial_o [B, n_head, splits, 64], partial_ml [B, n_head, splits, 2],
// counters [B, n_head] (indexed by row, not slot, so the scratch is sized by the step).
// Work split: grid (splits = n_ctx / 32, n_head, B) of 128-thread blocks, so even 12 heads at
// batch 1 give hundreds of blocks at long contexts. The grid covers the whole context and
// blocks past their row's current length return at once: the launch has the same shape at every
// position, which is what lets the decode step be captured once in a CUDA graph while each
// row's position and slot come from device memory. In a block, scores use 16 keys x 8 slices of
// 8 dims (one 16-byte load of a 16-bit cache per thread per key), reduced over 8 lanes; P.V uses
// 16 key groups x 8 dim slices, reduced through shared memory.
// Combine: each block writes (o_j, m_j, l_j), then counts itself done with an atomic on its
// (b, h) counter; the last block of the (b, h) (the one that sees count = active - 1) reads
// the partials and writes out[b, h] — no second kernel (the threadFenceReduction pattern of
// the CUDA samples: __threadfence before the count, L2 loads (__ldcg) after it). The last
// block resets the counter to zero for the next step. It is also the one that writes the biased
// q, k, v of (b, h) back into qkv: every other block of (b, h) has read them before counting
// itself done, so none can read a value with the bias already added.
// The block whose split holds position p writes the new k, v to the cache, then a barrier
// makes them visible to its own threads (plain loads, never the non-coherent read-only path);
// no other block reads position p.
// Numerics: fp32; q pre-scaled by log2(e)/8 so exponentials are exp2f. Every active split has
// at least one key (its first position is <= p), so each m_j is finite.
#include "kernels/attention.cuh"
#include "kernels/common.cuh"

namespace gpt2::cuda {

namespace {

constexpr int kHeadDim = kAttentionHeadDim;
constexpr int kChunk = 32;  // cache positions per block
constexpr int kThreads = 128;
constexpr int kSlice = 8;                     // dims per thread in a key's dot product
constexpr int kSlices = kHeadDim / kSlice;    // 8
constexpr int kKeyLanes = kThreads / kSlices; // 16 keys at a time
static_assert(kChunk == 32, "the softmax of a split is done by one warp, one key per lane");

// The 16 bytes are copied into a register first: binding unpack16's reference straight to the
// global lvalue made the compiler read them piecewise (4-byte loads, not one 16-byte load).
template <typename T>
__device__ __forceinline__ void load8(const T* src, float* dst) {
  constexpr int VEC = Pack<T>::n;
#pragma unroll
  for (int e0 = 0; e0 < kSlice; e0 += VEC) {
    const uint4 raw = *reinterpret_cast<const uint4*>(src + e0);
    unpack16<T>(raw, dst + e0);
  }
}

template <typename T>
__global__ __launch_bounds__(kThreads) void attention_decode_kernel(float* out, float* qkv, T* k_cache, T* v_cache,
                                                                    const float* bias, DeviceBatch batch, int n_head,
                                                                    int n_ctx, int n_splits, float scale_log2,
                                                                    float* partial_o, float* partial_ml,
                                                                    int32_t* counters) {
  __shared__ float q_s[kHeadDim];
  __shared__ float p_s[kChunk];
  __shared__ float red[kKeyLanes][kHeadDim];
  __shared__ float stat[2];
  __shared__ int is_last;

  pdl_wait();
  const int split = blockIdx.x;
  const int h = blockIdx.y;
  const int b = blockIdx.z;
  const int pos0 = batch.positions[b];
  const int64_t slot = batch.row_slots[b];
  const int len = pos0 + 1;
  const int start = split * kChunk;
  if (start >= len) return;  // past the current length (whole block: no barrier is skipped)
  const int active = (len + kChunk - 1) / kChunk;
  const int C = n_head * kHeadDim;
  const int tid = threadIdx.x;
  float* row = qkv + static_cast<int64_t>(b) * 3 * C;
  const int64_t head_base = (slot * n_head + h) * n_ctx * kHeadDim;

  if (tid < kHeadDim) {
    const int c = h * kHeadDim + tid;
    q_s[tid] = (row[c] + (bias ? bias[c] : 0.0f)) * scale_log2;
    if (pos0 < start + kChunk) {  // this split holds the new token: append it to the cache
      const int64_t at = head_base + static_cast<int64_t>(pos0) * kHeadDim + tid;
      k_cache[at] = from_float<T>(row[C + c] + (bias ? bias[C + c] : 0.0f));
      v_cache[at] = from_float<T>(row[2 * C + c] + (bias ? bias[2 * C + c] : 0.0f));
    }
  }
  __syncthreads();

  // Scores: thread (key lane kk, slice sl) dots 8 dims; 8 lanes reduce to one score.
  const int sl = tid % kSlices;
  const int kk = tid / kSlices;
  for (int j = kk; j < kChunk; j += kKeyLanes) {
    const int key = start + j;
    float partial = 0.0f;
    if (key < len) {
      float kv[kSlice];
      load8(k_cache + head_base + static_cast<int64_t>(key) * kHeadDim + sl * kSlice, kv);
#pragma unroll
      for (int e = 0; e < kSlice; ++e) partial = fmaf(kv[e], q_s[sl * kSlice + e], partial);
    }
    partial += __shfl_xor_sync(0xffffffffu, partial, 1);
    partial += __shfl_xor_sync(0xffffffffu, partial, 2);
    partial += __shfl_xor_sync(0xffffffffu, partial, 4);
    if (sl == 0) p_s[j] = key < len ? partial : -INFINITY;
  }
  __syncthreads();

  if (tid < 32) {  // softmax statistics of this split: one key per lane
    const float s = p_s[tid];
    const float m = warp_max(s);
    const float p = exp2f(s - m);
    const float l = warp_sum(p);
    p_s[tid] = p;
    if (tid == 0) {
      stat[0] = m;
      stat[1] = l;
    }
  }
  __syncthreads();

  // P.V: thread (key group kk, slice sl) accumulates 8 dims over keys kk, kk + 16.
  float acc[kSlice];
#pragma unroll
  for (int e = 0; e < kSlice; ++e) acc[e] = 0.0f;
  for (int j = kk; j < kChunk; j += kKeyLanes) {
    const int key = start + j;
    if (key < len) {
      const float p = p_s[j];
      float vv[kSlice];
      load8(v_cache + head_base + static_cast<int64_t>(key) * kHeadDim + sl * kSlice, vv);
#pragma unroll
      for (int e = 0; e < kSlice; ++e) acc[e] = fmaf(p, vv[e], acc[e]);
    }
  }
#pragma unroll
  for (int e = 0; e < kSlice; ++e) red[kk][sl * kSlice + e] = acc[e];
  __syncthreads();

  const int64_t part = (static_cast<int64_t>(b) * n_head + h) * n_splits;
  if (tid < kHeadDim) {
    float o = 0.0f;
#pragma unroll
    for (int g = 0; g < kKeyLanes; ++g) o += red[g][tid];
    partial_o[(part + split) * kHeadDim + tid] = o;
    if (tid == 0) {
      partial_ml[(part + split) * 2] = stat[0];
      partial_ml[(part + split) * 2 + 1] = stat[1];
    }
  }

  // Count this split done; the last one combines.
  __threadfence();
  __syncthreads();
  if (tid == 0) {
    const int done = atomicAdd(&counters[b * n_head + h], 1);
    is_last = done == active - 1;
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();

  if (tid < kHeadDim) {
    float M = -INFINITY;
    for (int s = 0; s < active; ++s) M = fmaxf(M, __ldcg(&partial_ml[(part + s) * 2]));
    float L = 0.0f, o = 0.0f;
    for (int s = 0; s < active; ++s) {
      const float w = exp2f(__ldcg(&partial_ml[(part + s) * 2]) - M);
      L = fmaf(w, __ldcg(&partial_ml[(part + s) * 2 + 1]), L);
      o = fmaf(w, __ldcg(&partial_o[(part + s) * kHeadDim + tid]), o);
    }
    out[static_cast<int64_t>(b) * C + h * kHeadDim + tid] = o / L;
    if (bias) {  // every other block of (b, h) has read q, k, v (see the header comment)
      const int c = h * kHeadDim + tid;
      row[c] += bias[c];
      row[C + c] += bias[C + c];
      row[2 * C + c] += bias[2 * C + c];
    }
  }
  if (tid == 0) counters[b * n_head + h] = 0;
}

}  // namespace

int attention_decode_splits(int n_ctx) { return (n_ctx + kChunk - 1) / kChunk; }

void attention_decode(float* out, float* qkv, void* k_cache, void* v_cache, DType dtype, const float* bias,
                      DeviceBatch batch, int batch_rows, int n_head, int head_dim, int n_ctx, float* partial_o,
                      float* partial_ml, int32_t* counters, bool pdl, cudaStream_t stream) {
  if (head_dim != kHeadDim)
    throw Error("attention_decode: head_dim " + std::to_string(head_dim) + " is not supported (only 64)");
  if (batch_rows <= 0) return;
  const int splits = attention_decode_splits(n_ctx);
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(head_dim));
  const dim3 grid(splits, n_head, batch_rows);
  GPT2_DISPATCH_FLOAT_TYPES(dtype, "attention_decode", {
    launch_pdl("attention_decode", attention_decode_kernel<T>, grid, dim3(kThreads), 0, pdl, stream, out, qkv,
               static_cast<T*>(k_cache), static_cast<T*>(v_cache), bias, batch, n_head, n_ctx, splits, scale_log2,
               partial_o, partial_ml, counters);
  });
  check_launch("attention_decode");
}

}  // namespace gpt2::cuda
