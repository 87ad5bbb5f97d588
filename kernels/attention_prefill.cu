// Fused causal attention for prefill (FlashAttention's tiling and online softmax,
// Dao et al. 2022, arXiv:2205.14135; SIMT fp32 math):
//   for each sequence s, head h, query t of the sequence at position i = seq_pos[s] + t:
//     s_j = (q_i . k_j) / sqrt(64)   for positions j <= i of the slot seq_slot[s]
//     out_i = sum_j softmax(s)_j v_j
//
// Shapes: qkv [N, 3C] fp32 (q at columns h*64 .. h*64+63), rows packed sequence by sequence
// (kernels/batch.cuh: sequence s owns rows seq_first_row[s] .. seq_first_row[s + 1] - 1, so
// the query of token t is row seq_first_row[s] + t); k/v cache [n_slots, n_head, n_ctx, 64]
// (fp32, fp16 or bf16); out [N, C] fp32, head h in columns h*64 .. h*64+63.
// Work split: one block of 256 threads per (64-query tile, head, sequence); the grid's tiles
// cover the longest sequence of the batch, and a block whose tile starts past its own
// sequence's length exits at once (a long prompt chunk and one-token sequences share a launch;
// FlashAttention's variable-length kernels split the grid the same way). Four threads share
// a query: thread (q = tid/4, kl = tid%4) holds the full q row in registers, scores keys
// kl, kl+4, ..., kl+28 of each 32-key tile, and accumulates the output dims of float4 chunks
// kl, kl+4, kl+8, kl+12 (dims 4*(kl + 4c) .. 4*(kl + 4c) + 3).
// Shared memory per tile: K and V (32 x 64, fp32) and the probabilities P (64 x 32). Every
// inner-loop read is a 16-byte load, and the paddings make each warp's loads conflict-free:
// K rows of 68 floats put the 4 rows a warp reads at banks 0, 4, 8, 12 (+16); P rows of 36
// floats put the warp's 8 queries in 8 disjoint bank quads; in V the 4 chunks a warp reads at
// once are adjacent. The 8 queries of a warp read the same K and V addresses (broadcast).
// Causal mask: the key loop stops after the tile's last visible key (tiles entirely in the
// future are skipped, not masked); only the diagonal tiles mask per element. Memory O(T):
// the T x T score matrix is never formed, only one 64 x 32 tile per block.
// Numerics: fp32 throughout. q is pre-scaled by log2(e)/sqrt(64) so the softmax uses exp2f;
// the running max m and sum l are rescaled by exp2(m_old - m_new) at each tile (the online
// softmax of Milakov & Gimelshein 2018). Every query sees key 0, so m is finite after the
// first tile and no 0/0 or inf-inf arises.
// Cost: per tile a thread does 8 x 64 + 32 x 16 = 1024 FMAs on CUDA cores. This fp32 kernel
// serves fp32 caches; 16-bit caches use the tensor-core kernel below.
//
// Tensor-core variant (fp16/bf16 caches; FlashAttention-2's split of queries over warps):
// one block of 4 warps per (64-query tile, head, sequence), the same packed layout and early
// exit as above; warp w owns queries 16w .. 16w+15
// and keeps its Q (rounded to the cache dtype) as WMMA A fragments and its 16 x 64 output as
// fp32 accumulator fragments for the whole key loop. Per 64-key tile: S = Q K^T (16 WMMA
// 16x16x16 products per warp, fp32 accumulation) to shared memory; the online softmax in fp32
// by two lanes per query row (same recurrence as above), P rounded to the cache dtype;
// O rows rescaled through shared memory (the accumulator layout is opaque; skipped when no
// row's maximum moved); O += P V (16 products). Shared memory 45 KB: K, V, P tiles padded to
// 72 halves per row (rows 4 banks apart for the fragment loads), S/O staging 68 floats per row.
// Numerics: q and p are rounded to fp16/bf16 (as any tensor-core attention does); l sums the
// fp32 p. Expected error vs fp32: about the cache dtype's rounding (2^-9 bf16, 2^-12 fp16).
// PrefillKernel::simt (BackendOptions::cuda_attention = simt) forces the fp32 kernel for every
// dtype (triage).
#include <mma.h>

#include "kernels/attention.cuh"
#include "kernels/common.cuh"

namespace gpt2::cuda {

namespace {

constexpr int kHeadDim = kAttentionHeadDim;
constexpr int kQueries = 64;  // queries per block
constexpr int kKeys = 32;     // keys per tile
constexpr int kThreads = 256;
constexpr int kKeysPerThread = kKeys / 4;
constexpr int kDimsPerThread = kHeadDim / 4;
static_assert(kThreads == kQueries * 4, "four threads per query");

template <typename T>
__global__ __launch_bounds__(kThreads) void attention_prefill_kernel(float* out, T* out16, const float* qkv,
                                                                     const T* k_cache, const T* v_cache,
                                                                     DeviceBatch batch, int n_head, int n_ctx,
                                                                     float scale_log2) {
  __shared__ __align__(16) float k_s[kKeys][kHeadDim + 4];
  __shared__ __align__(16) float v_s[kKeys][kHeadDim];
  __shared__ __align__(16) float p_s[kQueries][kKeys + 4];

  const int seq = blockIdx.z;
  const int h = blockIdx.y;
  const int t0 = blockIdx.x * kQueries;
  const int64_t first_row = batch.seq_first_row[seq];
  const int n_tokens = batch.seq_first_row[seq + 1] - static_cast<int>(first_row);
  if (t0 >= n_tokens) return;  // past this sequence's last query (whole block: no barrier is skipped)
  const int64_t slot = batch.seq_slot[seq];
  const int C = n_head * kHeadDim;
  const int pos0 = batch.seq_pos[seq];
  const int qi = threadIdx.x / 4;
  const int kl = threadIdx.x % 4;
  const int t = t0 + qi;
  const bool valid = t < n_tokens;
  // Threads past the last query mirror it (they must take part in barriers and shuffles).
  const int tq = valid ? t : n_tokens - 1;
  const int qpos = pos0 + tq;

  float q[kHeadDim];
  const float4* q4 = reinterpret_cast<const float4*>(qkv + (first_row + tq) * 3 * C + h * kHeadDim);
#pragma unroll
  for (int i = 0; i < kHeadDim / 4; ++i) {
    const float4 v = q4[i];
    q[4 * i] = v.x * scale_log2;
    q[4 * i + 1] = v.y * scale_log2;
    q[4 * i + 2] = v.z * scale_log2;
    q[4 * i + 3] = v.w * scale_log2;
  }
  float4 o[kDimsPerThread / 4];  // chunk c holds dims 4 * (kl + 4 c) .. + 3
#pragma unroll
  for (int c = 0; c < kDimsPerThread / 4; ++c) o[c] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  float m = -INFINITY;
  float l = 0.0f;

  const int t_last = min(t0 + kQueries, n_tokens) - 1;
  const int kend = pos0 + t_last + 1;  // keys [0, kend) are visible to some query of the tile
  const int64_t head_base = (slot * n_head + h) * n_ctx * kHeadDim;

  for (int k0 = 0; k0 < kend; k0 += kKeys) {
    for (int e = threadIdx.x; e < kKeys * kHeadDim; e += kThreads) {
      const int j = e / kHeadDim;
      const int d = e % kHeadDim;
      float kv = 0.0f, vv = 0.0f;
      if (k0 + j < kend) {
        const int64_t at = head_base + static_cast<int64_t>(k0 + j) * kHeadDim + d;
        kv = to_float(k_cache[at]);
        vv = to_float(v_cache[at]);
      }
      k_s[j][d] = kv;
      v_s[j][d] = vv;
    }
    __syncthreads();

    float s[kKeysPerThread];
    float tile_max = -INFINITY;
#pragma unroll
    for (int kk = 0; kk < kKeysPerThread; ++kk) {
      const int j = kl + 4 * kk;
      const float4* krow = reinterpret_cast<const float4*>(&k_s[j][0]);
      float acc = 0.0f;
#pragma unroll
      for (int d4 = 0; d4 < kHeadDim / 4; ++d4) {
        const float4 kv = krow[d4];
        acc = fmaf(q[4 * d4], kv.x, acc);
        acc = fmaf(q[4 * d4 + 1], kv.y, acc);
        acc = fmaf(q[4 * d4 + 2], kv.z, acc);
        acc = fmaf(q[4 * d4 + 3], kv.w, acc);
      }
      s[kk] = k0 + j <= qpos ? acc : -INFINITY;
      tile_max = fmaxf(tile_max, s[kk]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
    const float m_new = fmaxf(m, tile_max);  // finite: key 0 is in the first tile of every query
    const float correction = exp2f(m - m_new);
    float tile_sum = 0.0f;
#pragma unroll
    for (int kk = 0; kk < kKeysPerThread; ++kk) {
      const float p = exp2f(s[kk] - m_new);
      tile_sum += p;
      p_s[qi][kl + 4 * kk] = p;
    }
    tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 1);
    tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 2);
    l = l * correction + tile_sum;
    m = m_new;
#pragma unroll
    for (int c = 0; c < kDimsPerThread / 4; ++c) {
      o[c].x *= correction;
      o[c].y *= correction;
      o[c].z *= correction;
      o[c].w *= correction;
    }
    __syncthreads();  // p_s complete

    const float4* prow = reinterpret_cast<const float4*>(&p_s[qi][0]);
#pragma unroll 2
    for (int j4 = 0; j4 < kKeys / 4; ++j4) {
      const float4 p4 = prow[j4];
      const float p[4] = {p4.x, p4.y, p4.z, p4.w};
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
        const float4* vrow = reinterpret_cast<const float4*>(&v_s[4 * j4 + jj][0]);
#pragma unroll
        for (int c = 0; c < kDimsPerThread / 4; ++c) {
          const float4 v = vrow[kl + 4 * c];
          o[c].x = fmaf(p[jj], v.x, o[c].x);
          o[c].y = fmaf(p[jj], v.y, o[c].y);
          o[c].z = fmaf(p[jj], v.z, o[c].z);
          o[c].w = fmaf(p[jj], v.w, o[c].w);
        }
      }
    }
    __syncthreads();  // the next tile overwrites k_s, v_s and p_s
  }

  if (valid) {
    const float inv_l = 1.0f / l;
    const int64_t at = (first_row + t) * C + h * kHeadDim;
#pragma unroll
    for (int c = 0; c < kDimsPerThread / 4; ++c) {
      const int d = 4 * (kl + 4 * c);
      const float4 v = make_float4(o[c].x * inv_l, o[c].y * inv_l, o[c].z * inv_l, o[c].w * inv_l);
      *reinterpret_cast<float4*>(out + at + d) = v;
      if (out16) {
        out16[at + d] = from_float<T>(v.x);
        out16[at + d + 1] = from_float<T>(v.y);
        out16[at + d + 2] = from_float<T>(v.z);
        out16[at + d + 3] = from_float<T>(v.w);
      }
    }
  }
}


// ---- tensor-core variant (fp16 / bf16 caches) ----------------------------------------------------
namespace wmma = nvcuda::wmma;

constexpr int kTcQueries = 64;  // 16 per warp
constexpr int kTcKeys = 64;
constexpr int kTcThreads = 128;
constexpr int kTcLd = kHeadDim + 8;   // halves per K/V/P row
constexpr int kTcSld = kTcKeys + 4;   // floats per S/O staging row
static_assert(kTcKeys == kHeadDim, "the S/O staging rows serve both 64 keys and 64 dims");

template <typename T>
__global__ __launch_bounds__(kTcThreads) void attention_prefill_tc_kernel(float* out, T* out16, const float* qkv,
                                                                          const T* k_cache, const T* v_cache,
                                                                          DeviceBatch batch, int n_head, int n_ctx,
                                                                          float scale_log2) {
  __shared__ __align__(128) T k_s[kTcKeys][kTcLd];
  __shared__ __align__(128) T v_s[kTcKeys][kTcLd];
  __shared__ __align__(128) float s_s[kTcThreads / 32][16][kTcSld];
  __shared__ __align__(128) T p_s[kTcThreads / 32][16][kTcLd];

  const int seq = blockIdx.z;
  const int h = blockIdx.y;
  const int t0 = blockIdx.x * kTcQueries;
  const int64_t first_row = batch.seq_first_row[seq];
  const int n_tokens = batch.seq_first_row[seq + 1] - static_cast<int>(first_row);
  if (t0 >= n_tokens) return;  // past this sequence's last query (whole block: no barrier is skipped)
  const int64_t slot = batch.seq_slot[seq];
  const int C = n_head * kHeadDim;
  const int pos0 = batch.seq_pos[seq];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;

  // Q of the block, rounded to T, staged in k_s; each warp keeps its rows as A fragments.
  for (int c = threadIdx.x; c < kTcQueries * kHeadDim / 4; c += kTcThreads) {
    const int r = c / (kHeadDim / 4);
    const int d = (c % (kHeadDim / 4)) * 4;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (t0 + r < n_tokens)
      v = *reinterpret_cast<const float4*>(qkv + (first_row + t0 + r) * 3 * C + h * kHeadDim + d);
    k_s[r][d] = from_float<T>(v.x);
    k_s[r][d + 1] = from_float<T>(v.y);
    k_s[r][d + 2] = from_float<T>(v.z);
    k_s[r][d + 3] = from_float<T>(v.w);
  }
  __syncthreads();
  wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> q_frag[kHeadDim / 16];
#pragma unroll
  for (int kt = 0; kt < kHeadDim / 16; ++kt) wmma::load_matrix_sync(q_frag[kt], &k_s[warp * 16][kt * 16], kTcLd);
  __syncthreads();  // k_s now holds K tiles

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> o_frag[kHeadDim / 16];
#pragma unroll
  for (int nt = 0; nt < kHeadDim / 16; ++nt) wmma::fill_fragment(o_frag[nt], 0.0f);

  // Softmax state of query row r = lane / 2 of this warp; the lane covers columns half + 2c.
  const int r = lane / 2;
  const int half = lane % 2;
  const int t = t0 + warp * 16 + r;
  const int qpos = pos0 + min(t, n_tokens - 1);  // rows past the last query mirror it (never stored)
  float m = -INFINITY;
  float l = 0.0f;

  const int t_last = min(t0 + kTcQueries, n_tokens) - 1;
  const int kend = pos0 + t_last + 1;
  const int64_t head_base = (slot * n_head + h) * n_ctx * kHeadDim;
  float (*sw)[kTcSld] = s_s[warp];
  T (*pw)[kTcLd] = p_s[warp];

  for (int k0 = 0; k0 < kend; k0 += kTcKeys) {
    for (int c = threadIdx.x; c < kTcKeys * kHeadDim / 8; c += kTcThreads) {
      const int j = c / (kHeadDim / 8);
      const int d = (c % (kHeadDim / 8)) * 8;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (k0 + j < kend) {
        const int64_t at = head_base + static_cast<int64_t>(k0 + j) * kHeadDim + d;
        kv = *reinterpret_cast<const uint4*>(k_cache + at);
        vv = *reinterpret_cast<const uint4*>(v_cache + at);
      }
      *reinterpret_cast<uint4*>(&k_s[j][d]) = kv;
      *reinterpret_cast<uint4*>(&v_s[j][d]) = vv;
    }
    __syncthreads();

    // S = Q K^T for the warp's 16 rows x 64 keys; K^T is K read column-major.
#pragma unroll
    for (int nt = 0; nt < kTcKeys / 16; ++nt) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int kt = 0; kt < kHeadDim / 16; ++kt) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> k_frag;
        wmma::load_matrix_sync(k_frag, &k_s[nt * 16][kt * 16], kTcLd);
        wmma::mma_sync(acc, q_frag[kt], k_frag, acc);
      }
      wmma::store_matrix_sync(&sw[0][nt * 16], acc, kTcSld, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax of row r over this tile (fp32).
    float sv[kTcKeys / 2];
    float tile_max = -INFINITY;
#pragma unroll
    for (int c = 0; c < kTcKeys / 2; ++c) {
      const int j = half + 2 * c;
      const float sc = k0 + j <= qpos ? sw[r][j] * scale_log2 : -INFINITY;
      sv[c] = sc;
      tile_max = fmaxf(tile_max, sc);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float m_new = fmaxf(m, tile_max);  // finite: key 0 is in the first tile of every row
    const float correction = exp2f(m - m_new);
    float tile_sum = 0.0f;
#pragma unroll
    for (int c = 0; c < kTcKeys / 2; ++c) {
      const float p = exp2f(sv[c] - m_new);
      tile_sum += p;
      pw[r][half + 2 * c] = from_float<T>(p);
    }
    tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 1);
    l = l * correction + tile_sum;
    m = m_new;
    __syncwarp();  // S reads done before the staging is reused for O; P complete

    if (!__all_sync(0xffffffffu, correction == 1.0f)) {
#pragma unroll
      for (int nt = 0; nt < kHeadDim / 16; ++nt)
        wmma::store_matrix_sync(&sw[0][nt * 16], o_frag[nt], kTcSld, wmma::mem_row_major);
      __syncwarp();
#pragma unroll
      for (int c = 0; c < kHeadDim / 2; ++c) sw[r][half + 2 * c] *= correction;
      __syncwarp();
#pragma unroll
      for (int nt = 0; nt < kHeadDim / 16; ++nt)
        wmma::load_matrix_sync(o_frag[nt], &sw[0][nt * 16], kTcSld, wmma::mem_row_major);
    }

    // O += P V
#pragma unroll
    for (int kt = 0; kt < kTcKeys / 16; ++kt) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> p_frag;
      wmma::load_matrix_sync(p_frag, &pw[0][kt * 16], kTcLd);
#pragma unroll
      for (int nt = 0; nt < kHeadDim / 16; ++nt) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> v_frag;
        wmma::load_matrix_sync(v_frag, &v_s[kt * 16][nt * 16], kTcLd);
        wmma::mma_sync(o_frag[nt], p_frag, v_frag, o_frag[nt]);
      }
    }
    __syncthreads();  // every warp is done with k_s, v_s (and its own S/P) before the next tile
  }

#pragma unroll
  for (int nt = 0; nt < kHeadDim / 16; ++nt)
    wmma::store_matrix_sync(&sw[0][nt * 16], o_frag[nt], kTcSld, wmma::mem_row_major);
  __syncwarp();
  if (t < n_tokens) {
    const float inv_l = 1.0f / l;
    const int64_t at = (first_row + t) * C + h * kHeadDim;
#pragma unroll
    for (int c = 0; c < kHeadDim / 2; ++c) {
      const int d = half + 2 * c;
      const float v = sw[r][d] * inv_l;
      out[at + d] = v;
      if (out16) out16[at + d] = from_float<T>(v);
    }
  }
}

}  // namespace

void attention_prefill(float* out, void* out16, const float* qkv, const void* k_cache, const void* v_cache,
                       DType dtype, DeviceBatch batch, int n_seqs, int max_seq_tokens, int n_head, int head_dim,
                       int n_ctx, PrefillKernel kernel, cudaStream_t stream) {
  if (head_dim != kHeadDim)
    throw Error("attention_prefill: head_dim " + std::to_string(head_dim) + " is not supported (only 64)");
  if (n_seqs <= 0 || max_seq_tokens <= 0) return;
  if (n_seqs > 65535) throw Error("attention_prefill: " + std::to_string(n_seqs) + " sequences exceed the grid");
  if (out16 && dtype == DType::f32) throw Error("attention_prefill: a 16-bit output copy needs a 16-bit cache");
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(head_dim));
  if (dtype != DType::f32 && kernel != PrefillKernel::simt) {
    const dim3 tc_grid((max_seq_tokens + kTcQueries - 1) / kTcQueries, n_head, n_seqs);
    if (dtype == DType::bf16) {
      attention_prefill_tc_kernel<__nv_bfloat16><<<tc_grid, kTcThreads, 0, stream>>>(
          out, static_cast<__nv_bfloat16*>(out16), qkv, static_cast<const __nv_bfloat16*>(k_cache),
          static_cast<const __nv_bfloat16*>(v_cache), batch, n_head, n_ctx, scale_log2);
    } else if (dtype == DType::f16) {
      attention_prefill_tc_kernel<__half><<<tc_grid, kTcThreads, 0, stream>>>(
          out, static_cast<__half*>(out16), qkv, static_cast<const __half*>(k_cache),
          static_cast<const __half*>(v_cache), batch, n_head, n_ctx, scale_log2);
    } else {
      throw Error(std::string("attention_prefill: unsupported dtype ") + dtype_name(dtype));
    }
    check_launch("attention_prefill (tensor cores)");
    return;
  }
  const dim3 grid((max_seq_tokens + kQueries - 1) / kQueries, n_head, n_seqs);
  GPT2_DISPATCH_FLOAT_TYPES(dtype, "attention_prefill", {
    attention_prefill_kernel<T><<<grid, kThreads, 0, stream>>>(out, static_cast<T*>(out16), qkv,
                                                               static_cast<const T*>(k_cache),
                                                               static_cast<const T*>(v_cache), batch, n_head, n_ctx,
                                                               scale_log2);
  });
  check_launch("attention_prefill");
}

}  // namespace gpt2::cuda
