// The linear layers' matrix products on the CUDA backend: which kernel runs a product, and the
// cuBLASLt configurations of the large ones.
//
// out [n, m] = in [n, k] @ w [m, k]^T (+ bias), row-major, w in the weight dtype ([out, in],
// PyTorch nn.Linear), fp32 accumulation and output:
// - n <= 8 rows (decode): the streaming GEMV of kernels/gemv.cu reads the fp32 input and fuses
//   bias and GELU (Gemm::use_gemv says when; the backend calls cuda::linear_gemv itself);
// - more rows (prefill, scoring): cuBLASLt with the weight dtype for both operands (tensor
//   cores for fp16/bf16), the bias in its epilogue; the plan (matmul descriptor, layouts, the
//   heuristic's algorithm) is found once per shape and cached. Where cuBLASLt offers no
//   algorithm (e.g. an fp32 output whose leading dimension is the odd vocabulary size 50257),
//   classic cuBLAS GemmEx does the same product and kernels/elementwise.cu adds the bias.
//
// One 32 MiB workspace serves cuBLASLt and classic cuBLAS (one stream: never used at once); a
// user workspace also keeps cuBLAS from allocating inside a decode-graph capture. Between
// steps it is free for other stream-ordered uses (the weight upload's staging).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "common/dtype.h"
#include "runtime/cuda/cuda_memory.h"

namespace gpt2::cuda_backend {

class Gemm {
 public:
  static constexpr size_t kWorkspaceBytes = 32u << 20;  // Hopper's cuBLASLt kernels want >= 32 MiB

  // Each handle is owned as soon as it exists, so a throw part-way (no memory for the
  // workspace, a cuBLAS that fails to initialize) releases what was already created.
  Gemm(cudaStream_t stream, DType weight_dtype, bool verbose, MemoryStats* stats);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // Whether a product with an input of [rows, in_features] runs the decode GEMV.
  static bool use_gemv(int64_t rows, int64_t in_features);

  // out [n, m] fp32 = in [n, k] @ w [m, k]^T + bias [m] (bias may be null); in and w in the
  // weight dtype (in: the 16-bit copy of the activation, or its fp32 data with fp32 weights).
  void run(float* out, const void* in, const void* w, const float* bias, int64_t n, int64_t m, int64_t k);

  void* workspace() const { return workspace_.get(); }

 private:
  struct Plan;
  Plan* plan(int64_t m, int64_t n, int64_t k, const float* bias);

  cudaStream_t stream_;
  DType wdt_;
  bool verbose_;
  // Destroyed in reverse: the plans, then classic cuBLAS, its workspace, the cuBLASLt handle.
  OwnedLtHandle lt_;
  DeviceBuffer workspace_;
  OwnedBlasHandle blas_;
  // Per (m, n, k, with bias); a null entry: cuBLASLt has no algorithm for that configuration.
  std::map<std::tuple<int64_t, int64_t, int64_t, bool>, std::unique_ptr<Plan>> plans_;
};

}  // namespace gpt2::cuda_backend
