// Decode GEMV: out[b, o] = act(sum_i in[b, i] * w[o, i] + bias[o])   for b < B <= 8
//
// Shapes: in [B, I] fp32, w [O, I] row-major in fp32/fp16/bf16 ([out, in], so each output is
// a dot product with one contiguous weight row), bias [O] fp32, out [B, O] fp32.
// Why a custom kernel: at decode time B*I is tiny and the step is bound by reading the
// weights once from HBM (bytes = O * I * sizeof(w)). cuBLAS picks GEMM tilings that waste
// most of a tile at B = 1; this kernel streams every weight byte exactly once with 16-byte
// loads and reuses it for all B rows.
// Work split: blocks of 8 warps; each warp owns 2 output rows at a time (grid-stride over
// O). A lane loads 16 bytes (8 halves or 4 floats) of each of its 2 rows per step, 4 steps
// unrolled, so 8 independent 16-byte loads are in flight per lane before the first FMA.
// The B input rows are staged once per block in shared memory as fp32 (B*I*4 bytes, up to
// 8 * 6400 * 4 = 200 KiB for gpt2-xl's mlp c_proj; the launch grid is capped at what stays
// resident so the staging is paid once per block, not once per row).
// Launch: programmatic dependent launch (kernels/common.cuh); the first chunk of each warp's
// weights is loaded before waiting for the previous kernel, since no kernel writes weights.
// Numerics: fp32 products and sums; each lane's partial sums are combined by a warp
// butterfly (order differs from the CPU, within fp32 rounding). Weights are read with
// evict-first loads (__ldcs) so they do not push the activations out of L2.
// Source: the Flash-Decoding / llm.c decode style of "one warp per output row" GEMV.
#include "kernels/common.cuh"
#include "kernels/gemv.cuh"

namespace gpt2::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRowsPerWarp = 2;
constexpr int kUnroll = 4;

int g_sm_count = 0;
int g_smem_per_sm = 0;
int64_t g_max_staging = 48 * 1024;

// Loads one chunk (kUnroll steps of 32 lanes x 16 bytes) of rows row0 .. row0 + kRowsPerWarp - 1
// starting at element `base`; a past-the-end row re-reads the last one (never stored).
template <typename W>
__device__ __forceinline__ void load_chunk(uint4 (&raw)[kUnroll][kRowsPerWarp], const W* w, int row0, int base, int I,
                                           int O) {
  constexpr int VEC = Pack<W>::n;
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int i = base + u * 32 * VEC;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = min(row0 + r, O - 1);
      raw[u][r] = i < I ? __ldcs(reinterpret_cast<const uint4*>(w + static_cast<int64_t>(row) * I) + i / VEC)
                        : make_uint4(0, 0, 0, 0);
    }
  }
}

template <typename W, int MAXB>
__global__ __launch_bounds__(kThreads) void linear_gemv_kernel(float* out, const float* in, const W* w,
                                                               const float* bias, int B, int I, int O, int gelu) {
  extern __shared__ float4 staged4[];
  constexpr int VEC = Pack<W>::n;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int rows_per_block = kWarps * kRowsPerWarp;
  const int first_row0 = (blockIdx.x * kWarps + warp) * kRowsPerWarp;

  // No kernel writes the weights, so the first chunk of this warp's first rows is requested
  // before waiting for the previous kernel (PDL): its DRAM latency overlaps that kernel's tail.
  // For 768-wide bf16 rows the chunk is the whole row.
  uint4 prefetched[kUnroll][kRowsPerWarp];
  if (first_row0 < O) load_chunk<W>(prefetched, w, first_row0, lane * VEC, I, O);
  bool use_prefetched = first_row0 < O;

  pdl_wait();
  const float* staged = reinterpret_cast<const float*>(staged4);
  const float4* in4 = reinterpret_cast<const float4*>(in);
  for (int i = threadIdx.x; i < B * I / 4; i += kThreads) staged4[i] = in4[i];
  __syncthreads();

  for (int row0 = first_row0; row0 < O; row0 += gridDim.x * rows_per_block) {
    float acc[kRowsPerWarp][MAXB];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r)
#pragma unroll
      for (int b = 0; b < MAXB; ++b) acc[r][b] = 0.0f;

    for (int base = lane * VEC; base < I; base += 32 * VEC * kUnroll) {
      uint4 raw[kUnroll][kRowsPerWarp];
      if (use_prefetched) {  // the first chunk of the first rows
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
#pragma unroll
          for (int r = 0; r < kRowsPerWarp; ++r) raw[u][r] = prefetched[u][r];
        use_prefetched = false;
      } else {
        load_chunk<W>(raw, w, row0, base, I, O);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = base + u * 32 * VEC;
        if (i >= I) break;
        float wf[kRowsPerWarp][VEC];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) unpack16<W>(raw[u][r], wf[r]);
#pragma unroll
        for (int b = 0; b < MAXB; ++b) {
          if (b < B) {
            float xv[VEC];
            const float4* xs = reinterpret_cast<const float4*>(staged + b * I + i);
#pragma unroll
            for (int q = 0; q < VEC / 4; ++q) {
              const float4 t = xs[q];
              xv[4 * q] = t.x;
              xv[4 * q + 1] = t.y;
              xv[4 * q + 2] = t.z;
              xv[4 * q + 3] = t.w;
            }
#pragma unroll
            for (int r = 0; r < kRowsPerWarp; ++r)
#pragma unroll
              for (int e = 0; e < VEC; ++e) acc[r][b] = fmaf(wf[r][e], xv[e], acc[r][b]);
          }
        }
      }
    }

#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r)
#pragma unroll
      for (int b = 0; b < MAXB; ++b) acc[r][b] = warp_sum(acc[r][b]);

    if (lane == 0) {
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const int row = row0 + r;
        if (row < O) {
          const float bv = bias ? bias[row] : 0.0f;
#pragma unroll
          for (int b = 0; b < MAXB; ++b) {
            if (b < B) {
              float v = acc[r][b] + bv;
              if (gelu) v = gelu_tanh(v);
              out[static_cast<int64_t>(b) * O + row] = v;
            }
          }
        }
      }
    }
  }
}

template <typename W, int MAXB>
void set_smem_limit(int bytes) {
  const cudaError_t err =
      cudaFuncSetAttribute(linear_gemv_kernel<W, MAXB>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (err != cudaSuccess) throw Error(std::string("gemv_prepare: cudaFuncSetAttribute: ") + cudaGetErrorString(err));
}

template <typename W, int MAXB>
void launch(float* out, const float* in, const W* w, const float* bias, int B, int I, int O, bool gelu, bool pdl,
            cudaStream_t stream) {
  const int64_t smem = static_cast<int64_t>(B) * I * 4;
  const int rows_per_block = kWarps * kRowsPerWarp;
  const int needed = (O + rows_per_block - 1) / rows_per_block;
  // Blocks that stay resident per SM (registers and staging); more would only queue and
  // re-stage the input.
  int per_sm = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, linear_gemv_kernel<W, MAXB>, kThreads,
                                                    static_cast<size_t>(smem)) != cudaSuccess) {
    cudaGetLastError();
    per_sm = static_cast<int>(g_smem_per_sm / (smem + 1024));
  }
  per_sm = per_sm < 1 ? 1 : per_sm;
  const int cap = g_sm_count * per_sm;
  const int grid = needed < cap ? needed : cap;
  launch_pdl("linear_gemv", linear_gemv_kernel<W, MAXB>, dim3(grid), dim3(kThreads), static_cast<size_t>(smem),
             pdl, stream, out, in, w, bias, B, I, O, gelu ? 1 : 0);
}

}  // namespace

int64_t gemv_prepare(int64_t max_staging_bytes) {
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&g_sm_count, cudaDevAttrMultiProcessorCount, device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&g_smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device);
  int optin = 0;
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (err != cudaSuccess) throw Error(std::string("gemv_prepare: ") + cudaGetErrorString(err));
  int64_t limit = max_staging_bytes < optin ? max_staging_bytes : optin;
  if (limit < 48 * 1024) limit = 48 * 1024;
  // Never lower the limit: the kernels' attribute is process-wide, and a backend that prepared
  // it for a wider matrix (still alive, perhaps holding a captured decode graph whose GEMV nodes
  // use that much staging) must keep launching. A higher limit costs nothing.
  if (limit < g_max_staging) limit = g_max_staging;
  const int bytes = static_cast<int>(limit);
  set_smem_limit<float, 1>(bytes);
  set_smem_limit<float, kGemvMaxRows>(bytes);
  set_smem_limit<__half, 1>(bytes);
  set_smem_limit<__half, kGemvMaxRows>(bytes);
  set_smem_limit<__nv_bfloat16, 1>(bytes);
  set_smem_limit<__nv_bfloat16, kGemvMaxRows>(bytes);
  g_max_staging = limit;
  return limit;
}

bool gemv_fits(int64_t rows, int64_t in_features) {
  return rows >= 1 && rows <= kGemvMaxRows && in_features % 8 == 0 && rows * in_features * 4 <= g_max_staging &&
         g_sm_count > 0;
}

void linear_gemv(float* out, const float* in, const void* w, DType dtype, const float* bias, int64_t rows,
                 int64_t in_features, int64_t out_features, bool gelu, bool pdl, cudaStream_t stream) {
  if (!gemv_fits(rows, in_features))
    throw Error("linear_gemv: " + std::to_string(rows) + " x " + std::to_string(in_features) +
                " input does not fit the decode GEMV (at most " + std::to_string(kGemvMaxRows) +
                " rows, in_features % 8 == 0, staging within the prepared limit)");
  const int B = static_cast<int>(rows), I = static_cast<int>(in_features), O = static_cast<int>(out_features);
  GPT2_DISPATCH_FLOAT_TYPES(dtype, "linear_gemv", {
    if (B == 1)
      launch<T, 1>(out, in, static_cast<const T*>(w), bias, B, I, O, gelu, pdl, stream);
    else
      launch<T, kGemvMaxRows>(out, in, static_cast<const T*>(w), bias, B, I, O, gelu, pdl, stream);
  });
  check_launch("linear_gemv");
}

}  // namespace gpt2::cuda
