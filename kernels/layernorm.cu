// Residual add fused with LayerNorm (Ba et al. 2016, arXiv:1607.06450):
//   x[r, :] += delta[r, :]                              (when delta is given)
//   mean = sum_c x[r, c] / C,  var = sum_c (x[r, c] - mean)^2 / C
//   out[r, c] = (x[r, c] - mean) / sqrt(var + eps) * g[c] + b[c]
//
// Shapes: x, delta, out [rows, C] fp32 row-major; g, b [C] fp32; out16 [rows, C] fp16/bf16.
// Work split: one block of 128 threads per row; thread i holds float4 number i, i+128, i+256,
// i+384 of the row in registers (C <= 2048), so x and delta are read once, x written once
// and out written once: one pass over memory, two reductions on registers.
// Numerics: fp32 statistics; the variance is the two-pass form sum((x - mean)^2) computed
// from registers (no E[x^2] - mean^2 cancellation, which matters for GPT-2's residual stream
// whose outlier dimensions reach the thousands). 1 / sqrtf (not rsqrtf) for CPU parity.
// Source: PyTorch torch.nn.LayerNorm (biased variance, eps inside the square root).
#include "kernels/common.cuh"
#include "kernels/layernorm.cuh"

namespace gpt2::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int kVecPerThread = kLayernormMaxCols / 4 / kThreads;  // 4

// Sum over the block; `scratch` holds one float per warp. Ends with a barrier so that the
// scratch may be reused by the next call.
__device__ float block_sum(float v, float* scratch) {
  v = warp_sum(v);
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < kThreads / 32; ++w) total += scratch[w];
  __syncthreads();
  return total;
}

__device__ __forceinline__ void store4(__half* dst, float4 v) {
  __half2* d = reinterpret_cast<__half2*>(dst);
  d[0] = __floats2half2_rn(v.x, v.y);
  d[1] = __floats2half2_rn(v.z, v.w);
}
__device__ __forceinline__ void store4(__nv_bfloat16* dst, float4 v) {
  __nv_bfloat162* d = reinterpret_cast<__nv_bfloat162*>(dst);
  d[0] = __floats2bfloat162_rn(v.x, v.y);
  d[1] = __floats2bfloat162_rn(v.z, v.w);
}

template <typename S>
__global__ __launch_bounds__(kThreads) void layernorm_kernel(float* out, S* out16, float* x, const float* delta,
                                                             const float* g, const float* b, int cols, float eps) {
  __shared__ float scratch[kThreads / 32];
  pdl_wait();
  const int64_t row = blockIdx.x;
  const int n4 = cols / 4;
  float4* x4 = reinterpret_cast<float4*>(x + row * cols);
  const float4* d4 = delta ? reinterpret_cast<const float4*>(delta + row * cols) : nullptr;

  float4 v[kVecPerThread];
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kVecPerThread; ++k) {
    const int i = threadIdx.x + k * kThreads;
    v[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (i < n4) {
      v[k] = x4[i];
      if (d4) {
        const float4 d = d4[i];
        v[k].x += d.x;
        v[k].y += d.y;
        v[k].z += d.z;
        v[k].w += d.w;
        x4[i] = v[k];  // the residual stream keeps the sum
      }
      sum += (v[k].x + v[k].y) + (v[k].z + v[k].w);
    }
  }
  const float mean = block_sum(sum, scratch) / cols;

  float sq = 0.0f;
#pragma unroll
  for (int k = 0; k < kVecPerThread; ++k) {
    const int i = threadIdx.x + k * kThreads;
    if (i < n4) {
      const float a = v[k].x - mean, bb = v[k].y - mean, c = v[k].z - mean, d = v[k].w - mean;
      sq += (a * a + bb * bb) + (c * c + d * d);
    }
  }
  const float rstd = 1.0f / sqrtf(block_sum(sq, scratch) / cols + eps);

  const float4* g4 = reinterpret_cast<const float4*>(g);
  const float4* b4 = reinterpret_cast<const float4*>(b);
  float4* o4 = reinterpret_cast<float4*>(out + row * cols);
#pragma unroll
  for (int k = 0; k < kVecPerThread; ++k) {
    const int i = threadIdx.x + k * kThreads;
    if (i < n4) {
      const float4 gg = g4[i], bv = b4[i];
      float4 o;
      o.x = (v[k].x - mean) * rstd * gg.x + bv.x;
      o.y = (v[k].y - mean) * rstd * gg.y + bv.y;
      o.z = (v[k].z - mean) * rstd * gg.z + bv.z;
      o.w = (v[k].w - mean) * rstd * gg.w + bv.w;
      o4[i] = o;
      if (out16) store4(out16 + row * cols + 4 * i, o);
    }
  }
}

}  // namespace

void layernorm(float* out, void* out16, DType dtype16, float* x, const float* delta, const float* g,
               const float* b, int64_t rows, int cols, float eps, bool pdl, cudaStream_t stream) {
  if (rows <= 0) return;
  if (cols % 4 != 0 || cols > kLayernormMaxCols)
    throw Error("layernorm: n_embd " + std::to_string(cols) + " must be a multiple of 4 and at most " +
                std::to_string(kLayernormMaxCols));
  const dim3 grid(static_cast<unsigned>(rows)), block(kThreads);
  if (out16 && dtype16 == DType::bf16) {
    launch_pdl("layernorm", layernorm_kernel<__nv_bfloat16>, grid, block, 0, pdl, stream, out,
               static_cast<__nv_bfloat16*>(out16), x, delta, g, b, cols, eps);
  } else if (out16 && dtype16 == DType::f16) {
    launch_pdl("layernorm", layernorm_kernel<__half>, grid, block, 0, pdl, stream, out, static_cast<__half*>(out16),
               x, delta, g, b, cols, eps);
  } else if (!out16) {
    launch_pdl("layernorm", layernorm_kernel<__half>, grid, block, 0, pdl, stream, out,
               static_cast<__half*>(nullptr), x, delta, g, b, cols, eps);
  } else {
    throw Error(std::string("layernorm: unsupported 16-bit copy dtype ") + dtype_name(dtype16));
  }
  check_launch("layernorm");
}

}  // namespace gpt2::cuda
