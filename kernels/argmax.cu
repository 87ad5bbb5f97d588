// Row-wise argmax: out[r] = min { j : logits[r, j] = max_k logits[r, k] }
//
// Shapes: logits [rows, cols] fp32 row-major (rows = batch, cols = n_vocab), out [rows] int32.
// Work split: one block of 1024 threads per row; each thread scans a strided slice keeping
// (value, index), then a warp butterfly and one pass over the 32 warp results. The
// comparison prefers the larger value and, on equal values, the smaller index, so the result
// does not depend on the thread split (the same answer as a left-to-right host scan).
// Numerics: exact (comparisons only); NaN compares false and is never selected.
#include "kernels/argmax.cuh"
#include "kernels/common.cuh"

namespace gpt2::cuda {

namespace {

constexpr int kThreads = 1024;

__device__ __forceinline__ void take_better(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

__global__ __launch_bounds__(kThreads) void argmax_kernel(int32_t* out, const float* logits, int cols) {
  __shared__ float best_v[kThreads / 32];
  __shared__ int best_i[kThreads / 32];
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * cols;
  float v = -INFINITY;
  int i = 0x7fffffff;  // "no index yet": loses every tie against a real index
  for (int j = threadIdx.x; j < cols; j += kThreads) take_better(v, i, row[j], j);
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    take_better(v, i, __shfl_xor_sync(0xffffffffu, v, offset), __shfl_xor_sync(0xffffffffu, i, offset));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    best_v[warp] = v;
    best_i[warp] = i;
  }
  __syncthreads();
  if (warp == 0) {
    v = best_v[lane];
    i = best_i[lane];
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
      take_better(v, i, __shfl_xor_sync(0xffffffffu, v, offset), __shfl_xor_sync(0xffffffffu, i, offset));
    if (lane == 0) out[blockIdx.x] = i == 0x7fffffff ? 0 : i;
  }
}

}  // namespace

void argmax(int32_t* out, const float* logits, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows <= 0) return;
  if (cols <= 0 || cols > 0x7ffffffe) throw Error("argmax: bad row length " + std::to_string(cols));
  argmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(out, logits, static_cast<int>(cols));
  check_launch("argmax");
}

}  // namespace gpt2::cuda
