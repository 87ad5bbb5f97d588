// Element-wise kernels.
//
// convert:  dst[i] = round_to_nearest_even(src[i])       fp32 [n] -> fp16/bf16/fp32 [n]
// bias_act: x[r, c] = act(x[r, c] + bias[c])              fp32 [rows, cols], in place
//           x16[r, c] = dtype16(x[r, c])                  optional fp16/bf16 copy
//           act = identity or gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
//
// Work split: grid-stride loops, one element per thread per iteration (these kernels run
// once per prefill GEMM or once at load; they are bandwidth-bound and simple on purpose).
// bias_act follows a cuBLASLt GEMM whose output is fp32: applying bias and GELU here and
// writing the 16-bit copy in the same pass costs one read and two writes of [rows, cols],
// instead of a separate conversion pass before the next GEMM.
// Numerics: fp32 math; tanhf (accurate) for GELU so the CPU backend agrees.
// Source: GELU, Hendrycks & Gimpel 2016 (arXiv:1606.08415), the tanh form GPT-2 uses.
#include "kernels/common.cuh"
#include "kernels/elementwise.cuh"

namespace gpt2::cuda {

namespace {

template <typename T>
__global__ void convert_kernel(T* dst, const float* src, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = from_float<T>(src[i]);
}

template <typename T>
__global__ void bias_act_kernel(float* x, T* x16, const float* bias, int64_t rows, int64_t cols, int gelu) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = x[i];
    if (bias) v += bias[i % cols];
    if (gelu) v = gelu_tanh(v);
    x[i] = v;
    if (x16) x16[i] = from_float<T>(v);
  }
}

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

}  // namespace

void convert(void* dst, DType dtype, const float* src, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  GPT2_DISPATCH_FLOAT_TYPES(dtype, "convert", {
    convert_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(static_cast<T*>(dst), src, n);
  });
  check_launch("convert");
}

void bias_act(float* x, void* x16, DType dtype16, const float* bias, int64_t rows, int64_t cols, bool gelu,
              cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n <= 0) return;
  if (x16 && dtype16 == DType::bf16) {
    bias_act_kernel<__nv_bfloat16><<<grid_for(n), kThreads, 0, stream>>>(
        x, static_cast<__nv_bfloat16*>(x16), bias, rows, cols, gelu ? 1 : 0);
  } else if (x16 && dtype16 == DType::f16) {
    bias_act_kernel<__half><<<grid_for(n), kThreads, 0, stream>>>(x, static_cast<__half*>(x16), bias, rows, cols,
                                                                   gelu ? 1 : 0);
  } else if (!x16) {
    bias_act_kernel<__half><<<grid_for(n), kThreads, 0, stream>>>(x, nullptr, bias, rows, cols, gelu ? 1 : 0);
  } else {
    throw Error(std::string("bias_act: unsupported 16-bit copy dtype ") + dtype_name(dtype16));
  }
  check_launch("bias_act");
}

bool kernels_loadable(std::string* reason) {
  cudaFuncAttributes attributes{};
  const cudaError_t err = cudaFuncGetAttributes(&attributes, convert_kernel<float>);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    if (reason) *reason = std::string("this build has no code for the device: ") + cudaGetErrorString(err);
    return false;
  }
  return true;
}

}  // namespace gpt2::cuda
