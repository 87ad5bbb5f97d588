// The CUDA backend: the ops of runtime/backend.h on one NVIDIA GPU, all on one stream.
//
// Memory (all allocated before the first step, never during one):
// - weights: ONE device allocation (reserve_weights), each tensor a view into it (upload).
//   matrix, embedding and table uses in the weight dtype (bf16 by default, fp16 or fp32 on
//   request); vector uses (biases, LayerNorm gains) stay fp32 (0.1% of the bytes, and the
//   cuBLASLt bias epilogue and the kernels read fp32 vectors). The host's fp32 tensors go through
//   the cuBLAS workspace as a staging buffer, 32 MiB at a time, and are rounded on the device
//   (nearest even, like gpt2::f32_to_bf16).
// - KV caches (alloc_kv): one device allocation per cache, [n_layer][k|v][n_slots][n_head]
//   [n_ctx][head_dim] in the weight dtype; each KvLayer's k and v are views [n_slots * n_head *
//   n_ctx, head_dim] into it (runtime/kv_cache.h's layout).
// - activations (alloc): fp32, each with a 16-bit copy for the GEMMs that read it
//   (cuda_activations.h).
// - the step's batch (reserve_batch): one int32 buffer of fixed layout (cuda_batch.h),
//   uploaded once per step before its kernels; decode-attention scratch for max_sequences rows
//   of the widest cache; top-k results for max_rows rows.
//
// Ops: prefill GEMMs (rows > 8) run on cuBLASLt, decode GEMMs (rows <= 8) on the streaming GEMV
// of kernels/gemv.cu with bias and GELU fused (cuda_gemm.h). attention() takes c_attn's bias
// explicitly (the model's linear() for c_attn has none) and adds it where q, k, v are read
// anyway: kernels/kv_cache.cu (before the prefill kernel) or kernels/attention_decode.cu (decode:
// every sequence one token), which also write each row's k, v to its slot and position and the
// biased q, k, v back into qkv (backend.h's contract: an observer reads q and k from qkv).
// Which attention kernel runs: a decode-only batch (Batch::decode_only) takes the split decode
// kernel; any other batch, however ragged (a prompt chunk beside one-token sequences), the
// prefill kernel over the packed sequences.
//
// Steps (run_step): the batch is uploaded, then the ops run, or a decode step's CUDA graph is
// replayed (cuda_graph.h: one graph per StepKey, when the key is capturable and
// BackendOptions::cuda_graphs; a capture the driver refuses falls back to eager steps with a
// note). The kernels of a step use programmatic dependent launch on sm_90 unless
// BackendOptions::cuda_pdl is false (kernels/common.cuh).
//
// Sampling reads top_k (kernels/top_k.cu): each row's k most likely tokens are selected on the
// device and copied in one small transfer through pinned memory, instead of 50257 logits.
//
// Every CUDA / cuBLAS call is checked and turned into a gpt2::Error naming the call;
// out-of-memory errors say how much was asked and how much is free.
#include "runtime/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kernels/attention.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/embed.cuh"
#include "kernels/gather_rows.cuh"
#include "kernels/gemv.cuh"
#include "kernels/kv_cache.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/top_k.cuh"
#include "runtime/cuda/cuda_activations.h"
#include "runtime/cuda/cuda_batch.h"
#include "runtime/cuda/cuda_gemm.h"
#include "runtime/cuda/cuda_graph.h"
#include "runtime/cuda/cuda_memory.h"

namespace gpt2 {

namespace {

using namespace cuda_backend;

std::string internal(const char* op, const std::string& what) {
  return std::string("internal: CUDA ") + op + ": " + what;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(const BackendOptions& options, DType weight_dtype);
  // Queued work finishes before anything it uses goes (errors are moot here). The members then
  // go in reverse declaration order: graphs, buffers, the GEMM handles and workspace, the stream.
  ~CudaBackend() override {
    if (stream_) cudaStreamSynchronize(stream_);
  }

  std::string name() const override { return "cuda"; }
  DType weight_dtype() const override { return wdt_; }
  std::string describe() const override {
    return "cuda (" + device_name_ + ", sm_" + cc_ + ", " + dtype_name(wdt_) + " weights" +
           (graphs_.enabled() ? "" : ", no graphs") + (options_.cuda_pdl ? "" : ", no PDL") +
           (prefill_kernel_ == cuda::PrefillKernel::simt ? ", SIMT attention" : "") + ")";
  }
  int64_t peak_device_bytes() const override { return stats_.peak; }

 protected:
  size_t do_upload_bytes(int64_t rows, int64_t cols, WeightUse use) const override;
  void do_reserve_weights(size_t bytes) override;
  Tensor do_upload(const Tensor& host, WeightUse use) override;
  Tensor do_alloc(int64_t rows, int64_t cols) override { return activations_.alloc(rows, cols, stream_); }
  KvCache do_alloc_kv(int n_layer, int n_slots, int n_ctx, int n_head, int head_dim) override;
  void do_reserve_batch(int max_rows, int max_sequences) override;
  void do_run_step(const Batch& batch, const StepKey& key, const std::function<void()>& record) override;

  void do_embed(Tensor x, Tensor wte, Tensor wpe, const Batch& batch) override;
  void do_layernorm(Tensor out, Tensor x, Tensor g, Tensor b, float eps) override;
  void do_add_layernorm(Tensor residual, Tensor delta, Tensor out, Tensor g, Tensor b, float eps) override;
  void do_linear(Tensor out, Tensor in, Tensor w, Tensor bias, Epilogue epilogue) override;
  void do_attention(Tensor out, Tensor qkv, Tensor qkv_bias, const KvLayer& kv, const Batch& batch) override;
  void do_gather_rows(Tensor out, Tensor in, const Batch& batch) override;
  void do_read(float* dst, Tensor src) override;
  void do_top_k(Tensor logits, int64_t n_cols, int k, int32_t* ids, float* values, int32_t* invalid) override;

 private:
  void reserve_decode_scratch();
  void reserve_top_k(int64_t rows);

  BackendOptions options_;
  DType wdt_;
  std::string device_name_, cc_;
  bool pdl_ = false;  // programmatic dependent launch: options.cuda_pdl on sm_90 and newer
  cuda::PrefillKernel prefill_kernel_ = cuda::PrefillKernel::auto_select;

  // Declaration order is destruction order reversed (see ~CudaBackend): stats_ before every
  // DeviceBuffer (their destructors update it), the stream before everything queued on it.
  MemoryStats stats_;
  OwnedStream stream_;
  std::unique_ptr<Gemm> gemm_;  // cuBLASLt, classic cuBLAS and their workspace

  DeviceBuffer weights_;
  size_t weights_used_ = 0;       // bytes of weights_ handed out by upload()
  int64_t gemv_prepared_cols_ = 0;  // the widest matrix input the decode GEMV's staging is set for

  int kv_max_heads_ = 0;   // the largest n_head of any cache (decode counters per row)
  int64_t kv_max_units_ = 0;  // the largest n_head * decode splits of any cache (partials per row)

  Activations activations_;
  DeviceBatchBuffer batch_;
  int max_sequences_ = 0;

  // Decode attention scratch: [max_sequences][heads][splits] partial outputs and (m, l), and
  // [max_sequences][heads] counters (kept zero by the kernel between calls).
  DeviceBuffer decode_partial_o_, decode_partial_ml_, decode_counters_;
  int64_t decode_units_ = 0;   // rows * n_head * splits the partials hold
  int64_t decode_heads_ = 0;   // rows * n_head the counters hold

  // top_k's results: rows of ids [k], values [k] and then invalid [rows], on the device and
  // pinned on the host (one copy per call); sized for top_k_rows_ rows of kMaxTopK.
  DeviceBuffer top_k_device_;
  PinnedBuffer top_k_host_;
  int64_t top_k_rows_ = 0;

  StepGraphs graphs_;
};

CudaBackend::CudaBackend(const BackendOptions& options, DType weight_dtype)
    : options_(options), wdt_(weight_dtype), activations_(weight_dtype, &stats_), graphs_(options.cuda_graphs) {
  int device = 0;
  GPT2_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  GPT2_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  device_name_ = prop.name;
  cc_ = std::to_string(prop.major) + std::to_string(prop.minor);
  pdl_ = options.cuda_pdl && prop.major >= 9;
  prefill_kernel_ =
      options.cuda_attention == CudaAttention::simt ? cuda::PrefillKernel::simt : cuda::PrefillKernel::auto_select;
  cudaStream_t stream = nullptr;
  GPT2_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  stream_.reset(stream);
  gemm_ = std::make_unique<Gemm>(stream_, wdt_, options.verbose, &stats_);
  cuda::gemv_prepare(0);  // reads the SM count; the staging limit grows with each matrix (upload)
}

// ---- weights ------------------------------------------------------------------------------------

size_t CudaBackend::do_upload_bytes(int64_t rows, int64_t cols, WeightUse use) const {
  const DType dtype = use == WeightUse::vector ? DType::f32 : wdt_;
  return align_up(static_cast<size_t>(rows * cols) * dtype_size(dtype), kDeviceAlign);
}

void CudaBackend::do_reserve_weights(size_t bytes) {
  if (weights_.get()) throw Error(internal("reserve_weights", "called twice"));
  weights_ = DeviceBuffer(bytes, "the weights (" + mib(bytes) + ")", &stats_);
  weights_used_ = 0;
}

Tensor CudaBackend::do_upload(const Tensor& host, WeightUse use) {
  const size_t bytes = do_upload_bytes(host.rows, host.cols, use);
  if (!weights_.get() || weights_used_ + bytes > weights_.bytes())
    throw Error(internal("upload", "past the weight memory reserved by reserve_weights"));
  Tensor t;
  t.data = weights_.as<char>() + weights_used_;
  t.dtype = use == WeightUse::vector ? DType::f32 : wdt_;
  t.rows = host.rows;
  t.cols = host.cols;
  weights_used_ += bytes;
  if (t.dtype == DType::f32) {
    GPT2_CUDA_CHECK(cudaMemcpyAsync(t.data, host.data, host.bytes(), cudaMemcpyHostToDevice, stream_));
  } else {
    // Through the GEMM workspace (free outside a step), one chunk at a time: stream order makes
    // each chunk's copy wait for the previous chunk's conversion.
    const int64_t chunk = static_cast<int64_t>(Gemm::kWorkspaceBytes / sizeof(float));
    float* staging = static_cast<float*>(gemm_->workspace());
    const size_t out_size = dtype_size(t.dtype);
    for (int64_t at = 0; at < host.numel(); at += chunk) {
      const int64_t n = std::min(chunk, host.numel() - at);
      GPT2_CUDA_CHECK(cudaMemcpyAsync(staging, host.f32() + at, static_cast<size_t>(n) * sizeof(float),
                                      cudaMemcpyHostToDevice, stream_));
      cuda::convert(static_cast<char*>(t.data) + static_cast<size_t>(at) * out_size, t.dtype, staging, n, stream_);
    }
  }
  // The decode GEMV stages up to 8 input rows in shared memory: allow it for this matrix's width.
  if ((use == WeightUse::matrix || use == WeightUse::embedding) && host.cols > gemv_prepared_cols_) {
    cuda::gemv_prepare(cuda::kGemvMaxRows * host.cols * static_cast<int64_t>(sizeof(float)));
    gemv_prepared_cols_ = host.cols;
  }
  GPT2_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host copy may go once upload() returns
  return t;
}

// ---- KV cache, batch, scratch -------------------------------------------------------------------

KvCache CudaBackend::do_alloc_kv(int n_layer, int n_slots, int n_ctx, int n_head, int head_dim) {
  if (head_dim != cuda::kAttentionHeadDim)
    throw Error("the CUDA backend needs head_dim " + std::to_string(cuda::kAttentionHeadDim) + " (got " +
                std::to_string(head_dim) + "); use --device cpu");
  const int64_t per_tensor_elems = static_cast<int64_t>(n_slots) * n_head * n_ctx * head_dim;
  const size_t per_tensor = align_up(static_cast<size_t>(per_tensor_elems) * dtype_size(wdt_), kDeviceAlign);
  auto memory = std::make_shared<DeviceBuffer>(per_tensor * 2 * static_cast<size_t>(n_layer),
                      "the KV cache (" + std::to_string(n_slots) + " sequences of " + std::to_string(n_ctx) +
                          " positions, " + std::to_string(n_layer) + " layers)",
                      &stats_);
  GPT2_CUDA_CHECK(cudaMemsetAsync(memory->get(), 0, memory->bytes(), stream_));
  std::vector<KvLayer> layers =
      kv_layer_views(memory->get(), per_tensor, wdt_, n_layer, n_slots, n_ctx, n_head, head_dim);
  // A captured decode graph holds the KV layers' pointers of the step it was captured in. StepKey
  // names the cache, but a new cache may reuse a freed one's address: recapture (see cuda_graph.h).
  GPT2_CUDA_CHECK(cudaStreamSynchronize(stream_));  // no graph still running when it is destroyed
  graphs_.clear();
  kv_max_heads_ = std::max(kv_max_heads_, n_head);
  kv_max_units_ = std::max(kv_max_units_, static_cast<int64_t>(n_head) * cuda::attention_decode_splits(n_ctx));
  reserve_decode_scratch();
  GPT2_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the cache and scratch are zero before any step
  return KvCache(std::move(layers), n_slots, n_ctx, std::move(memory));  // the cache owns its memory
}

void CudaBackend::do_reserve_batch(int max_rows, int max_sequences) {
  batch_.reserve(max_rows, max_sequences, &stats_);
  max_sequences_ = max_sequences;
  reserve_decode_scratch();
  reserve_top_k(max_rows);
}

// The decode kernel's scratch is per row of a decode step (at most max_sequences rows) and per
// head and split of the cache it attends over, so it needs both reserve_batch and alloc_kv,
// which may come in either order; a later, wider cache grows it. Growing frees memory that
// captured graphs point to, so they are dropped first (they are recaptured on next use).
void CudaBackend::reserve_decode_scratch() {
  if (max_sequences_ == 0 || kv_max_units_ == 0) return;
  const int64_t units = static_cast<int64_t>(max_sequences_) * kv_max_units_;
  const int64_t heads = static_cast<int64_t>(max_sequences_) * kv_max_heads_;
  if (units <= decode_units_ && heads <= decode_heads_) return;
  GPT2_CUDA_CHECK(cudaStreamSynchronize(stream_));
  graphs_.clear();
  decode_partial_o_ = DeviceBuffer();
  decode_partial_ml_ = DeviceBuffer();
  decode_counters_ = DeviceBuffer();
  const size_t hd = cuda::kAttentionHeadDim;
  decode_partial_o_ = DeviceBuffer(static_cast<size_t>(units) * hd * 4, "the decode attention scratch", &stats_);
  decode_partial_ml_ = DeviceBuffer(static_cast<size_t>(units) * 2 * 4, "the decode attention scratch", &stats_);
  decode_counters_ = DeviceBuffer(static_cast<size_t>(heads) * 4, "the decode attention scratch", &stats_);
  GPT2_CUDA_CHECK(cudaMemsetAsync(decode_counters_.get(), 0, decode_counters_.bytes(), stream_));
  decode_units_ = units;
  decode_heads_ = heads;
}

void CudaBackend::reserve_top_k(int64_t rows) {
  if (rows <= top_k_rows_) return;
  GPT2_CUDA_CHECK(cudaStreamSynchronize(stream_));
  const size_t bytes = static_cast<size_t>(rows) * (2 * kMaxTopK + 1) * 4;
  top_k_device_ = DeviceBuffer();
  top_k_device_ = DeviceBuffer(bytes, "the top-k candidates", &stats_);
  top_k_host_ = PinnedBuffer(bytes);
  top_k_rows_ = rows;
}

void CudaBackend::do_run_step(const Batch& batch, const StepKey& key, const std::function<void()>& record) {
  batch_.upload(batch, stream_);
  if (key.capturable() && graphs_.enabled())
    graphs_.run(stream_, key, record, [this] { activations_.forget(); });
  else
    record();
}

// ---- ops ----------------------------------------------------------------------------------------

void CudaBackend::do_embed(Tensor x, Tensor wte, Tensor wpe, const Batch& batch) {
  if (wte.dtype != wdt_ || wpe.dtype != wdt_)
    throw Error(internal("embed", "wte and wpe must be uploaded as embedding / table (the weight dtype)"));
  cuda::embed(x.f32(), wte.data, wpe.data, wdt_, batch_.view(), batch.rows(), static_cast<int>(x.cols), pdl_,
              stream_);
  activations_.wrote(x, /*shadow_written=*/false);
}

void CudaBackend::do_layernorm(Tensor out, Tensor x, Tensor g, Tensor b, float eps) {
  void* shadow = activations_.shadow_for_write(out);
  cuda::layernorm(out.f32(), shadow, wdt_, x.f32(), nullptr, g.f32(), b.f32(), out.rows, static_cast<int>(out.cols),
                  eps, pdl_, stream_);
  activations_.wrote(out, shadow != nullptr);
}

void CudaBackend::do_add_layernorm(Tensor residual, Tensor delta, Tensor out, Tensor g, Tensor b, float eps) {
  void* shadow = activations_.shadow_for_write(out);
  cuda::layernorm(out.f32(), shadow, wdt_, residual.f32(), delta.f32(), g.f32(), b.f32(), out.rows,
                  static_cast<int>(out.cols), eps, pdl_, stream_);
  activations_.wrote(residual, /*shadow_written=*/false);
  activations_.wrote(out, shadow != nullptr);
}

void CudaBackend::do_linear(Tensor out, Tensor in, Tensor w, Tensor bias, Epilogue epilogue) {
  if (w.dtype != wdt_)
    throw Error(internal("linear", std::string("the weight is ") + dtype_name(w.dtype) + ", the backend's dtype " +
                                       dtype_name(wdt_) + " (upload it as a matrix)"));
  const float* b = bias.empty() ? nullptr : bias.f32();
  const bool gelu = epilogue == Epilogue::gelu;
  if (Gemm::use_gemv(in.rows, in.cols)) {
    cuda::linear_gemv(out.f32(), in.f32(), w.data, wdt_, b, in.rows, in.cols, out.cols, gelu, pdl_, stream_);
    activations_.wrote(out, /*shadow_written=*/false);
    return;
  }
  const void* input = activations_.gemm_input(in, stream_);
  if (gelu) {  // GEMM, then bias + GELU in one pass that also writes the next GEMM's 16-bit input
    gemm_->run(out.f32(), input, w.data, nullptr, in.rows, out.cols, in.cols);
    void* shadow = activations_.shadow_for_write(out);
    cuda::bias_act(out.f32(), shadow, wdt_, b, out.rows, out.cols, /*gelu=*/true, stream_);
    activations_.wrote(out, shadow != nullptr);
  } else {
    gemm_->run(out.f32(), input, w.data, b, in.rows, out.cols, in.cols);
    activations_.wrote(out, /*shadow_written=*/false);
  }
}

void CudaBackend::do_attention(Tensor out, Tensor qkv, Tensor qkv_bias, const KvLayer& kv, const Batch& batch) {
  if (kv.k.dtype != wdt_ || kv.v.dtype != wdt_ || kv.head_dim != cuda::kAttentionHeadDim)
    throw Error(internal("attention", "the KV cache was not allocated by this backend"));
  const float* bias = qkv_bias.empty() ? nullptr : qkv_bias.f32();
  const int H = kv.n_head, hd = kv.head_dim, n_ctx = kv.n_ctx, N = batch.rows();
  if (batch.decode_only()) {  // row s is sequence s
    if (static_cast<int64_t>(N) * H * cuda::attention_decode_splits(n_ctx) > decode_units_ ||
        static_cast<int64_t>(N) * H > decode_heads_)
      throw Error(internal("attention", "decode scratch not reserved for this cache and batch"));
    cuda::attention_decode(out.f32(), qkv.f32(), kv.k.data, kv.v.data, wdt_, bias, batch_.view(), N, H, hd, n_ctx,
                           decode_partial_o_.as<float>(), decode_partial_ml_.as<float>(),
                           decode_counters_.as<int32_t>(), pdl_, stream_);
    activations_.wrote(out, /*shadow_written=*/false);
  } else {
    cuda::qkv_bias_kv_append(qkv.f32(), kv.k.data, kv.v.data, wdt_, bias, batch_.view(), N, H, hd, n_ctx, stream_);
    void* shadow = activations_.shadow_for_write(out);
    cuda::attention_prefill(out.f32(), shadow, qkv.f32(), kv.k.data, kv.v.data, wdt_, batch_.view(),
                            batch.sequences(), batch.max_seq_tokens, H, hd, n_ctx, prefill_kernel_, stream_);
    activations_.wrote(out, shadow != nullptr);
  }
  if (bias) activations_.wrote(qkv, /*shadow_written=*/false);
}

void CudaBackend::do_gather_rows(Tensor out, Tensor in, const Batch& batch) {
  cuda::gather_rows(out.f32(), in.f32(), batch_.view(), batch.n_logit_rows(), in.cols, pdl_, stream_);
  activations_.wrote(out, /*shadow_written=*/false);
}

void CudaBackend::do_read(float* dst, Tensor src) {
  GPT2_CUDA_CHECK(cudaMemcpyAsync(dst, src.data, src.bytes(), cudaMemcpyDeviceToHost, stream_));
  GPT2_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::do_top_k(Tensor logits, int64_t n_cols, int k, int32_t* ids, float* values, int32_t* invalid) {
  reserve_top_k(logits.rows);  // sized by reserve_batch for every step's logits; grows for a larger caller
  const int64_t rows = logits.rows, n = rows * k;
  int32_t* d_ids = top_k_device_.as<int32_t>();     // [rows, k]
  float* d_values = top_k_device_.as<float>() + n;  // [rows, k]
  int32_t* d_invalid = d_ids + 2 * n;               // [rows]
  static_assert(kMaxTopK <= cuda::kTopKMax, "the kernel must serve every k the interface allows");
  cuda::top_k(d_ids, d_values, d_invalid, logits.f32(), rows, n_cols, logits.cols, k, stream_);
  GPT2_CUDA_CHECK(cudaMemcpyAsync(top_k_host_.as<int32_t>(), d_ids, static_cast<size_t>(2 * n + rows) * 4,
                                  cudaMemcpyDeviceToHost, stream_));
  GPT2_CUDA_CHECK(cudaStreamSynchronize(stream_));
  const int32_t* host = top_k_host_.as<int32_t>();
  std::memcpy(ids, host, static_cast<size_t>(n) * 4);
  std::memcpy(values, host + n, static_cast<size_t>(n) * 4);
  std::memcpy(invalid, host + 2 * n, static_cast<size_t>(rows) * 4);
}

}  // namespace

bool cuda_device_usable(std::string* reason) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    if (reason) *reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
    return false;
  }
  if (count == 0) {
    if (reason) *reason = "no CUDA device found";
    return false;
  }
  int device = 0;
  cudaDeviceProp prop{};
  err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaGetDeviceProperties(&prop, device);
  if (err != cudaSuccess) {
    cudaGetLastError();
    if (reason) *reason = std::string("cudaGetDeviceProperties: ") + cudaGetErrorString(err);
    return false;
  }
  if (prop.major < 8) {
    if (reason)
      *reason = std::string(prop.name) + " has compute capability " + std::to_string(prop.major) + "." +
                std::to_string(prop.minor) + "; gpt2 needs 8.0 or newer (bf16)";
    return false;
  }
  return cuda::kernels_loadable(reason);
}

std::string cuda_unsupported_shape(const Workload& workload) {
  if (workload.head_dim != cuda::kAttentionHeadDim)
    return "the CUDA backend needs head_dim " + std::to_string(cuda::kAttentionHeadDim) + " (got " +
           std::to_string(workload.head_dim) + ")";
  if (workload.layernorm_cols % 8 != 0 || workload.layernorm_cols > cuda::kLayernormMaxCols)
    return "the CUDA backend needs n_embd a multiple of 8 and at most " + std::to_string(cuda::kLayernormMaxCols) +
           " (got " + std::to_string(workload.layernorm_cols) + ")";
  return "";
}

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options) {
  std::string reason;
  if (!cuda_device_usable(&reason)) throw Error("no usable CUDA device (" + reason + ")");
  const DType dtype = options.auto_dtype ? DType::bf16 : options.weight_dtype;
  if (dtype == DType::i8)
    throw UsageError("--dtype int8 is not supported on CUDA (use bf16, fp16 or fp32, or --device cpu)");
  if (dtype != DType::f32 && dtype != DType::f16 && dtype != DType::bf16)
    throw UsageError(std::string("--dtype ") + dtype_name(dtype) + " is not supported on CUDA");
  return std::make_unique<CudaBackend>(options, dtype);
}

}  // namespace gpt2
