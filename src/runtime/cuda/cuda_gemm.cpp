#include "runtime/cuda/cuda_gemm.h"

#include <string>
#include <utility>

#include "common/log.h"
#include "kernels/elementwise.cuh"
#include "kernels/gemv.cuh"

namespace gpt2::cuda_backend {

namespace {

cudaDataType_t cuda_type(DType dtype) {
  switch (dtype) {
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

}  // namespace

// A cuBLASLt matmul configuration for one GEMM shape, found once by the heuristic.
struct Gemm::Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

Gemm::Gemm(cudaStream_t stream, DType weight_dtype, bool verbose, MemoryStats* stats)
    : stream_(stream), wdt_(weight_dtype), verbose_(verbose) {
  cublasLtHandle_t lt = nullptr;
  GPT2_CUBLAS_CHECK(cublasLtCreate(&lt));
  lt_.reset(lt);
  workspace_ = DeviceBuffer(kWorkspaceBytes, "the cuBLAS workspace", stats);
  // cublasSetStream resets the workspace to cuBLAS's own pool, so the workspace comes after it.
  cublasHandle_t blas = nullptr;
  GPT2_CUBLAS_CHECK(cublasCreate(&blas));
  blas_.reset(blas);
  GPT2_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
  GPT2_CUBLAS_CHECK(cublasSetWorkspace(blas_, workspace_.get(), kWorkspaceBytes));
}

Gemm::~Gemm() = default;

bool Gemm::use_gemv(int64_t rows, int64_t in_features) { return cuda::gemv_fits(rows, in_features); }

// The cuBLASLt configuration of one GEMM shape (cached); null when cuBLASLt has no algorithm
// for it (with the bias epilogue, or at all); the caller then falls back.
Gemm::Plan* Gemm::plan(int64_t m, int64_t n, int64_t k, const float* bias) {
  const bool with_bias = bias != nullptr;
  const auto key = std::make_tuple(m, n, k, with_bias);
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();
  auto p = std::make_unique<Plan>();
  // Row-major out[n, m] = in[n, k] @ w[m, k]^T is column-major D (m x n) = op(A) B with
  // A = w seen as column-major k x m (transposed), B = in seen as column-major k x n.
  const cublasComputeType_t compute = CUBLAS_COMPUTE_32F;  // fp32 accumulation, pure fp32 for fp32 weights
  GPT2_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->op, compute, CUDA_R_32F));
  const cublasOperation_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
  GPT2_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof(transa)));
  GPT2_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof(transb)));
  const cublasLtEpilogue_t epilogue = with_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  GPT2_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  if (with_bias) {
    // fp32 bias, the D type (the default), set explicitly to say so; its alignment guides the heuristic.
    const int32_t bias_type = CUDA_R_32F;
    GPT2_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
    GPT2_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  }
  const cudaDataType_t ab = cuda_type(wdt_);
  GPT2_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, ab, static_cast<uint64_t>(k), static_cast<uint64_t>(m), k));
  GPT2_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, ab, static_cast<uint64_t>(k), static_cast<uint64_t>(n), k));
  GPT2_CUBLAS_CHECK(
      cublasLtMatrixLayoutCreate(&p->c, CUDA_R_32F, static_cast<uint64_t>(m), static_cast<uint64_t>(n), m));

  cublasLtMatmulPreference_t pref = nullptr;
  GPT2_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = kWorkspaceBytes;
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t status =
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  if (status == CUBLAS_STATUS_SUCCESS)
    status = cublasLtMatmulAlgoGetHeuristic(lt_, p->op, p->a, p->b, p->c, p->c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  // Any refusal of the heuristic (NOT_SUPPORTED, no result, or INVALID_VALUE, which some
  // cuBLASLt versions return for a layout/epilogue combination they do not handle, e.g. the odd
  // ld = 50257 of the LM head) falls back to classic cuBLAS, which does the same product; a
  // real problem with the operands then surfaces there as an error naming cublasGemmEx.
  if (status != CUBLAS_STATUS_SUCCESS || found == 0) {
    if (verbose_ && status != CUBLAS_STATUS_SUCCESS)
      log_note("cuBLASLt heuristic for " + std::to_string(m) + " x " + std::to_string(n) + " x " + std::to_string(k) +
               (with_bias ? " (bias epilogue)" : "") + ": " + cublasLtGetStatusString(status) +
               "; using cublasGemmEx");
    plans_.emplace(key, nullptr);
    return nullptr;
  }
  p->algo = result.algo;
  return plans_.emplace(key, std::move(p)).first->second.get();
}

void Gemm::run(float* out, const void* in, const void* w, const float* bias, int64_t n, int64_t m, int64_t k) {
  Plan* p = bias ? plan(m, n, k, bias) : nullptr;
  const bool bias_in_epilogue = p != nullptr;
  if (!p) p = plan(m, n, k, nullptr);
  const float alpha = 1.0f, beta = 0.0f;
  if (!p) {  // classic cuBLAS, same operands and layout as below
    const cudaDataType_t ab = cuda_type(wdt_);
    const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
    GPT2_CUBLAS_CHECK(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, mi, ni, ki, &alpha, w, ab, ki, in, ab, ki, &beta,
                                   out, CUDA_R_32F, mi, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (bias) cuda::bias_act(out, nullptr, wdt_, bias, n, m, /*gelu=*/false, stream_);
    return;
  }
  if (bias_in_epilogue)
    GPT2_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  GPT2_CUBLAS_CHECK(cublasLtMatmul(lt_, p->op, &alpha, w, p->a, in, p->b, &beta, out, p->c, out, p->c, &p->algo,
                                   workspace_.get(), kWorkspaceBytes, stream_));
  if (bias && !bias_in_epilogue) cuda::bias_act(out, nullptr, wdt_, bias, n, m, /*gelu=*/false, stream_);
}

}  // namespace gpt2::cuda_backend
