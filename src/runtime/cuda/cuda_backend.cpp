// The CUDA backend: GPT-2's ops on one NVIDIA GPU.
//
// Memory (all allocated in load()/alloc(), never during a step):
// - weights: ONE device allocation. Matrices (wte, wpe, c_attn, c_proj, c_fc, mlp c_proj, an
//   untied lm_head) in the weight dtype (bf16 by default, fp16 or fp32 on request); biases and
//   LayerNorm gains stay fp32 (0.1% of the bytes, and the cuBLASLt bias epilogue and the
//   kernels read fp32 vectors). The host's fp32 tensors are uploaded through a staging buffer
//   and rounded on the device (nearest even, like gpt2::f32_to_bf16).
// - KV cache: [n_layer][k|v][max_batch][n_head][n_ctx][head_dim] in the weight dtype.
// - activations: fp32 as backend.h requires; with 16-bit weights each buffer also carries a
//   16-bit "shadow" copy. cuBLASLt needs A and B of one type, so the ops that produce a GEMM's
//   input (LayerNorm, prefill attention, the bias+GELU epilogue) write the 16-bit copy in the
//   same pass. The backend records at record time which buffers' shadows are current; a GEMM
//   whose input shadow is stale converts it first (one extra pass, never wrong).
// - step state: [pos, tokens...] int32 on the device, written by set_step before the step's
//   work; kernels read the position from there, so a captured decode graph replays at any pos.
//
// Ops: prefill GEMMs (rows > 8) use cuBLASLt (bf16/fp16 tensor cores, fp32 accumulation and
// output, bias epilogue; classic cuBLAS GemmEx where cuBLASLt offers no algorithm); decode GEMMs (rows <= 8) use the streaming GEMV of kernels/gemv.cu
// with bias and GELU fused. The bias of c_attn is deferred from linear() to attention(), where
// kernels/kv_cache.cu (prefill) or kernels/attention_decode.cu (decode) adds it while writing
// K and V to the cache. Any other op that reads the QKV buffer first applies the bias
// ("settle"), so the ops keep backend.h's meaning whoever calls them. One difference remains:
// after attention() the QKV buffer differs from the CPU's (which leaves it as it was): in
// prefill q holds its bias and k, v do not; in decode none does. The forward pass never reads
// it again.
//
// Sampling reads top_k (kernels/top_k.cu): each sequence's k most likely tokens (k = top-k plus
// the penalty window, 42 with the default sampler) are selected on the device and copied in one
// small transfer through pinned memory, instead of 50257 logits per sequence per step.
//
// Decode steps (T = 1) are captured into a CUDA graph per batch size on first use and
// replayed afterwards (set GPT2_CUDA_GRAPHS=0 in the environment to run them eagerly; a capture
// the driver refuses falls back to eager steps with a note on stderr, see run_step); the
// step's own kernels use programmatic dependent launch on sm_90 (kernels/common.cuh;
// GPT2_CUDA_PDL=0 turns it off).
//
// Every CUDA / cuBLASLt call is checked and turned into a gpt2::Error naming the call;
// out-of-memory errors say how much was asked and how much is free.
#include "runtime/cuda/cuda_backend.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kernels/attention.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/embed.cuh"
#include "kernels/gemv.cuh"
#include "kernels/kv_cache.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/top_k.cuh"

namespace gpt2 {

namespace {

void check_cuda(cudaError_t err, const char* call, int line) {
  if (err == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  throw Error(std::string("CUDA error: ") + cudaGetErrorString(err) + " (" + call + ", cuda_backend.cpp:" +
              std::to_string(line) + ")");
}

void check_cublas(cublasStatus_t status, const char* call, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  cudaGetLastError();  // a CUDA error behind it would otherwise be blamed on the next launch
  throw Error(std::string("cuBLAS error: ") + cublasLtGetStatusString(status) + " (" + call +
              ", cuda_backend.cpp:" + std::to_string(line) + ")");
}

#define GPT2_CUDA_CHECK(call) check_cuda((call), #call, __LINE__)
#define GPT2_CUBLAS_CHECK(call) check_cublas((call), #call, __LINE__)

std::string mib(size_t bytes) { return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB"; }

size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

struct MemoryStats {
  int64_t current = 0;
  int64_t peak = 0;
};

// A device allocation: move-only owner, the destructor never throws.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t bytes, const std::string& what, MemoryStats* stats) : bytes_(bytes), stats_(stats) {
    if (bytes == 0) return;
    const cudaError_t err = cudaMalloc(&ptr_, bytes);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      ptr_ = nullptr;
      throw Error("CUDA out of memory allocating " + what + ": asked for " + mib(bytes) + ", " + mib(free_bytes) +
                  " free of " + mib(total_bytes) + " (HINT: a smaller --batch or a 16-bit --dtype needs less)");
    }
    check_cuda(err, ("cudaMalloc for " + what).c_str(), __LINE__);
    if (stats_) {
      stats_->current += static_cast<int64_t>(bytes);
      stats_->peak = std::max(stats_->peak, stats_->current);
    }
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept { swap(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    DeviceBuffer(std::move(other)).swap(*this);
    return *this;
  }
  ~DeviceBuffer() {
    if (!ptr_) return;
    cudaFree(ptr_);
    if (stats_) stats_->current -= static_cast<int64_t>(bytes_);
  }

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void swap(DeviceBuffer& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(bytes_, other.bytes_);
    std::swap(stats_, other.stats_);
  }
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  MemoryStats* stats_ = nullptr;
};

// Page-locked host memory for the step state, so its upload is a true async copy.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t bytes) { GPT2_CUDA_CHECK(cudaMallocHost(&ptr_, bytes)); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  PinnedBuffer(PinnedBuffer&& other) noexcept { std::swap(ptr_, other.ptr_); }
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    return *this;
  }
  ~PinnedBuffer() {
    if (ptr_) cudaFreeHost(ptr_);
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
};

// An owned CUDA stream or cuBLAS(Lt) handle: destroyed once by its destructor, which never
// throws (a failure to destroy is moot at that point). Converts to the raw handle for calls.
template <typename Handle, typename Destroy>
class Owned {
 public:
  Owned() = default;
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() {
    if (handle_) Destroy{}(handle_);
  }
  void reset(Handle handle) { handle_ = handle; }  // takes ownership (set once, while still empty)
  operator Handle() const { return handle_; }

 private:
  Handle handle_ = nullptr;
};
struct DestroyStream {
  void operator()(cudaStream_t s) const { cudaStreamDestroy(s); }
};
struct DestroyLtHandle {
  void operator()(cublasLtHandle_t h) const { cublasLtDestroy(h); }
};
struct DestroyBlasHandle {
  void operator()(cublasHandle_t h) const { cublasDestroy(h); }
};
using OwnedStream = Owned<cudaStream_t, DestroyStream>;
using OwnedLtHandle = Owned<cublasLtHandle_t, DestroyLtHandle>;
using OwnedBlasHandle = Owned<cublasHandle_t, DestroyBlasHandle>;

class GraphExec {
 public:
  explicit GraphExec(cudaGraphExec_t exec) : exec_(exec) {}
  GraphExec(const GraphExec&) = delete;
  GraphExec& operator=(const GraphExec&) = delete;
  ~GraphExec() {
    if (exec_) cudaGraphExecDestroy(exec_);
  }
  cudaGraphExec_t get() const { return exec_; }

 private:
  cudaGraphExec_t exec_ = nullptr;
};

// A cuBLASLt matmul configuration for one GEMM shape, found once by the heuristic.
struct GemmPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  GemmPlan() = default;
  GemmPlan(const GemmPlan&) = delete;
  GemmPlan& operator=(const GemmPlan&) = delete;
  ~GemmPlan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// An fp32 activation buffer and its optional 16-bit copy for GEMM inputs.
struct Activation {
  DeviceBuffer buffer;
  float* data = nullptr;
  void* shadow = nullptr;   // [rows, cols] in the weight dtype, or null (fp32 weights)
  int64_t rows = 0, cols = 0;
  int64_t shadow_rows = 0;  // leading rows whose shadow matches data (known at record time)
};

cudaDataType_t cuda_type(DType dtype) {
  switch (dtype) {
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

bool graphs_enabled() {
  const char* env = std::getenv("GPT2_CUDA_GRAPHS");
  return !(env && std::strcmp(env, "0") == 0);
}

constexpr size_t kWorkspaceBytes = 32u << 20;  // cuBLASLt workspace (Hopper kernels want >= 32 MiB)
constexpr size_t kAlign = 256;

class CudaBackend final : public Backend {
 public:
  // Each handle is owned as soon as it exists, so a throw part-way (no memory for the workspace,
  // a cuBLAS that fails to initialize) destroys what was already created.
  CudaBackend(const BackendOptions& options, DType weight_dtype) : options_(options), wdt_(weight_dtype) {
    GPT2_CUDA_CHECK(cudaGetDevice(&device_));
    cudaDeviceProp prop{};
    GPT2_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    device_name_ = prop.name;
    cc_ = std::to_string(prop.major) + std::to_string(prop.minor);
    cudaStream_t stream = nullptr;
    GPT2_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    stream_.reset(stream);
    cublasLtHandle_t lt = nullptr;
    GPT2_CUBLAS_CHECK(cublasLtCreate(&lt));
    lt_.reset(lt);
    workspace_ = DeviceBuffer(kWorkspaceBytes, "the cuBLASLt workspace", &stats_);
    // Classic cuBLAS: the fallback for GEMM shapes cuBLASLt's heuristic has no algorithm for.
    // cublasSetStream resets the workspace to cuBLAS's own pool, so the workspace comes after it;
    // a user workspace also keeps cuBLAS from allocating inside a decode-graph capture.
    cublasHandle_t blas = nullptr;
    GPT2_CUBLAS_CHECK(cublasCreate(&blas));
    blas_.reset(blas);
    GPT2_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    GPT2_CUBLAS_CHECK(cublasSetWorkspace(blas_, workspace_.get(), kWorkspaceBytes));
    use_graphs_ = graphs_enabled();
  }

  // Queued work finishes before anything it uses goes (errors are moot here). The members then
  // go in reverse declaration order: graphs and GEMM plans, buffers, the cuBLAS handle, its
  // workspace, the cuBLASLt handle, and the stream last.
  ~CudaBackend() override {
    if (stream_) cudaStreamSynchronize(stream_);
  }

  std::string name() const override { return "cuda"; }
  DType weight_dtype() const override { return wdt_; }
  std::string describe() const override {
    return "cuda (" + device_name_ + ", sm_" + cc_ + ", " + dtype_name(wdt_) + " weights" +
           (use_graphs_ ? "" : ", no graphs") + ")";
  }
  const ModelWeights& weights() const override { return weights_; }
  int64_t peak_device_bytes() const override { return stats_.peak; }

  void load(const Config& config, const ModelWeights& host, int max_batch) override;
  Tensor alloc(int64_t rows, int64_t cols) override;
  void set_step(const int32_t* tokens, const StepShape& shape) override;
  void run_step(const StepShape& shape, const std::function<void()>& record) override;

  void embed(Tensor x) override;
  void layernorm(Tensor out, Tensor x, Tensor g, Tensor b) override;
  void add_layernorm(Tensor residual, Tensor delta, Tensor out, Tensor g, Tensor b) override;
  void linear(Tensor out, Tensor in, Tensor w, Tensor bias, Epilogue epilogue) override;
  void attention(Tensor out, Tensor qkv, int layer) override;
  void take_last(Tensor out, Tensor in) override;
  void read(float* dst, Tensor src) override;
  void top_k(Tensor logits, int64_t n_cols, int k, int32_t* ids, float* values, int32_t* invalid) override;

 private:
  void require_loaded(const char* op) const {
    if (!loaded_) throw Error(std::string("internal: CUDA ") + op + " before load()");
  }
  Activation& activation(const Tensor& t, const char* op);
  void* shadow_for_write(const Tensor& t);
  void wrote(const Tensor& t, bool shadow_written);
  const void* gemm_input(const Tensor& in);
  void settle(const Tensor& t);
  void apply_pending();
  void forget_shadows();  // no 16-bit copy is known current (conservative: GEMMs reconvert)
  void gemm(const Tensor& out, const Tensor& in, const Tensor& w, const float* bias);
  GemmPlan* plan(int64_t m, int64_t n, int64_t k, bool with_bias, const float* bias);
  void* k_cache(int layer) const;
  void* v_cache(int layer) const;

  BackendOptions options_;
  DType wdt_;
  int device_ = 0;
  std::string device_name_, cc_;
  // Declaration order is destruction order reversed (see ~CudaBackend): stats_ before every
  // DeviceBuffer (their destructors update it), workspace_ before blas_, which uses it.
  OwnedStream stream_;
  OwnedLtHandle lt_;
  MemoryStats stats_;
  DeviceBuffer workspace_;  // cuBLASLt's and classic cuBLAS's (one stream: never used at once)
  OwnedBlasHandle blas_;
  bool use_graphs_ = true;
  int graph_failures_ = 0;  // failed decode-graph captures (run_step)

  bool loaded_ = false;
  Config config_;
  int max_batch_ = 1;
  DeviceBuffer weight_storage_;
  ModelWeights weights_;
  std::unordered_map<const void*, int> qkv_weight_layer_;  // attn_qkv_w data -> layer

  DeviceBuffer kv_;
  size_t kv_layer_bytes_ = 0;  // one of K or V for one layer

  DeviceBuffer step_state_;  // int32 [1 + max_batch * n_ctx]: pos, tokens
  PinnedBuffer step_host_;
  StepShape shape_;
  bool have_step_ = false;

  DeviceBuffer decode_partial_o_, decode_partial_ml_, decode_counters_;
  // top_k's results, [max_batch] rows of ids [k], values [k] and then invalid [max_batch], on
  // the device and pinned on the host (one copy per call).
  DeviceBuffer top_k_device_;
  PinnedBuffer top_k_host_;

  std::vector<std::unique_ptr<Activation>> activations_;
  std::unordered_map<const void*, Activation*> activation_by_data_;

  // The c_attn bias that linear() left for attention() to add (see the header comment).
  struct PendingBias {
    const void* qkv = nullptr;
    const float* bias = nullptr;
    int64_t rows = 0, cols = 0;
  } pending_;

  // Per GEMM shape; a null entry: cuBLASLt offers no algorithm with the bias epilogue.
  std::map<std::tuple<int64_t, int64_t, int64_t, bool>, std::unique_ptr<GemmPlan>> plans_;
  std::map<int, std::unique_ptr<GraphExec>> graphs_;  // decode graph per batch size
};

void CudaBackend::load(const Config& config, const ModelWeights& host, int max_batch) {
  if (loaded_) throw Error("internal: CUDA backend loaded twice");
  if (max_batch < 1) throw Error("internal: max_batch must be at least 1");
  const std::string unsupported = cuda_unsupported_shape(config);
  if (!unsupported.empty()) throw Error(unsupported + "; use --device cpu");
  if (static_cast<int>(host.h.size()) != config.n_layer)
    throw Error("internal: host weights have " + std::to_string(host.h.size()) + " layers, config " +
                std::to_string(config.n_layer));
  config_ = config;
  max_batch_ = max_batch;

  // ---- lay out every tensor in one allocation ----
  struct Item {
    const Tensor* host;
    Tensor* dev;
    size_t offset;
  };
  std::vector<Item> items;
  size_t total = 0;
  size_t largest_matrix = 0;
  auto place = [&](const Tensor& h, Tensor& d, DType dtype) {
    if (h.empty()) throw Error("internal: a host weight tensor is missing");
    if (h.dtype != DType::f32) throw Error("internal: host weights must be fp32");
    d = Tensor{};
    d.dtype = dtype;
    d.rows = h.rows;
    d.cols = h.cols;
    items.push_back({&h, &d, total});
    total = align_up(total + d.bytes(), kAlign);
    if (dtype != DType::f32) largest_matrix = std::max(largest_matrix, h.bytes());
  };
  ModelWeights& w = weights_;
  w = ModelWeights{};
  const bool tied = host.lm_head.empty() || host.lm_head.data == host.wte.data;
  for (const WeightPair& p : weight_pairs(w, host, /*with_lm_head=*/!tied))
    place(*p.src, *p.dst, p.role == WeightRole::vector ? DType::f32 : wdt_);

  weight_storage_ = DeviceBuffer(total, "the weights (" + mib(total) + ")", &stats_);
  {
    DeviceBuffer staging;
    if (largest_matrix > 0) staging = DeviceBuffer(largest_matrix, "the weight upload staging buffer", &stats_);
    char* base = weight_storage_.as<char>();
    for (const Item& item : items) {
      item.dev->data = base + item.offset;
      if (item.dev->dtype == DType::f32) {
        GPT2_CUDA_CHECK(cudaMemcpyAsync(item.dev->data, item.host->data, item.host->bytes(), cudaMemcpyHostToDevice,
                                        stream_));
      } else {
        GPT2_CUDA_CHECK(cudaMemcpyAsync(staging.get(), item.host->data, item.host->bytes(), cudaMemcpyHostToDevice,
                                        stream_));
        cuda::convert(item.dev->data, item.dev->dtype, staging.as<float>(), item.host->numel(), stream_);
      }
    }
    GPT2_CUDA_CHECK(cudaStreamSynchronize(stream_));  // before the staging buffer is freed
  }
  if (tied) w.lm_head = w.wte;
  for (int l = 0; l < config.n_layer; ++l) qkv_weight_layer_[w.h[l].attn_qkv_w.data] = l;

  // ---- KV cache, step state, decode scratch ----
  const int64_t H = config.n_head, hd = config.head_dim();
  kv_layer_bytes_ = align_up(static_cast<size_t>(max_batch) * H * config.n_ctx * hd * dtype_size(wdt_), kAlign);
  kv_ = DeviceBuffer(kv_layer_bytes_ * 2 * config.n_layer,
                     "the KV cache (" + std::to_string(max_batch) + " sequences of " + std::to_string(config.n_ctx) +
                         " positions)",
                     &stats_);
  const size_t step_ints = 1 + static_cast<size_t>(max_batch) * config.n_ctx;
  step_state_ = DeviceBuffer(step_ints * sizeof(int32_t), "the step state", &stats_);
  step_host_ = PinnedBuffer(step_ints * sizeof(int32_t));
  const int64_t splits = cuda::attention_decode_splits(config.n_ctx);
  decode_partial_o_ = DeviceBuffer(static_cast<size_t>(max_batch * H * splits * hd) * 4, "attention scratch", &stats_);
  decode_partial_ml_ = DeviceBuffer(static_cast<size_t>(max_batch * H * splits * 2) * 4, "attention scratch", &stats_);
  decode_counters_ = DeviceBuffer(static_cast<size_t>(max_batch * H) * 4, "attention scratch", &stats_);
  const size_t top_k_bytes = static_cast<size_t>(max_batch) * (2 * kMaxTopK + 1) * 4;
  top_k_device_ = DeviceBuffer(top_k_bytes, "the top-k candidates", &stats_);
  top_k_host_ = PinnedBuffer(top_k_bytes);
  GPT2_CUDA_CHECK(cudaMemsetAsync(decode_counters_.get(), 0, decode_counters_.bytes(), stream_));
  GPT2_CUDA_CHECK(cudaMemsetAsync(step_state_.get(), 0, step_state_.bytes(), stream_));
  GPT2_CUDA_CHECK(cudaStreamSynchronize(stream_));

  // The decode GEMV stages its input rows in shared memory: up to min(B, 8) rows of 4C floats.
  const int64_t gemv_rows = std::min<int64_t>(max_batch, cuda::kGemvMaxRows);
  cuda::gemv_prepare(gemv_rows * 4 * config.n_embd * 4);
  loaded_ = true;
}

Tensor CudaBackend::alloc(int64_t rows, int64_t cols) {
  require_loaded("alloc");
  if (rows < 1 || cols < 1) throw Error("internal: activation of " + std::to_string(rows) + " x " +
                                        std::to_string(cols) + " elements");
  auto a = std::make_unique<Activation>();
  const size_t f32_bytes = align_up(static_cast<size_t>(rows * cols) * 4, kAlign);
  const size_t shadow_bytes = wdt_ == DType::f32 ? 0 : static_cast<size_t>(rows * cols) * dtype_size(wdt_);
  a->buffer = DeviceBuffer(f32_bytes + shadow_bytes,
                           "an activation buffer of " + std::to_string(rows) + " x " + std::to_string(cols), &stats_);
  a->data = a->buffer.as<float>();
  a->shadow = shadow_bytes ? a->buffer.as<char>() + f32_bytes : nullptr;
  a->rows = rows;
  a->cols = cols;
  GPT2_CUDA_CHECK(cudaMemsetAsync(a->buffer.get(), 0, a->buffer.bytes(), stream_));
  Tensor t;
  t.data = a->data;
  t.dtype = DType::f32;
  t.rows = rows;
  t.cols = cols;
  activation_by_data_[a->data] = a.get();
  activations_.push_back(std::move(a));
  return t;
}

Activation& CudaBackend::activation(const Tensor& t, const char* op) {
  auto it = activation_by_data_.find(t.data);
  if (it == activation_by_data_.end())
    throw Error(std::string("internal: CUDA ") + op + " got a tensor not allocated by this backend's alloc()");
  Activation& a = *it->second;
  if (t.cols != a.cols || t.rows > a.rows)
    throw Error(std::string("internal: CUDA ") + op + ": tensor view " + std::to_string(t.rows) + " x " +
                std::to_string(t.cols) + " exceeds its buffer");
  return a;
}

void* CudaBackend::shadow_for_write(const Tensor& t) {
  auto it = activation_by_data_.find(t.data);
  return it == activation_by_data_.end() ? nullptr : it->second->shadow;
}

// Records that the first t.rows rows of t were written (and whether its shadow was too).
void CudaBackend::wrote(const Tensor& t, bool shadow_written) {
  auto it = activation_by_data_.find(t.data);
  if (it != activation_by_data_.end()) it->second->shadow_rows = shadow_written ? t.rows : 0;
  if (pending_.qkv == t.data) pending_ = PendingBias{};  // overwritten: nothing left to add
}

// The 16-bit copy of `in` a cuBLASLt GEMM reads (or in's fp32 data with fp32 weights).
const void* CudaBackend::gemm_input(const Tensor& in) {
  if (wdt_ == DType::f32) return in.data;
  Activation& a = activation(in, "linear");
  if (a.shadow_rows < in.rows) {
    cuda::convert(a.shadow, wdt_, a.data, in.numel(), stream_);
    a.shadow_rows = in.rows;
  }
  return a.shadow;
}

// Applies a deferred c_attn bias before anything other than attention() reads the buffer.
void CudaBackend::settle(const Tensor& t) {
  if (pending_.qkv != nullptr && pending_.qkv == t.data) apply_pending();
}

// Applies the deferred c_attn bias, whichever buffer it is for (its fp32 data only, so that
// buffer's 16-bit copy is stale afterwards).
void CudaBackend::apply_pending() {
  if (pending_.qkv == nullptr) return;
  const PendingBias p = pending_;
  pending_ = PendingBias{};
  cuda::bias_act(static_cast<float*>(const_cast<void*>(p.qkv)), nullptr, wdt_, p.bias, p.rows, p.cols,
                 /*gelu=*/false, stream_);
  auto it = activation_by_data_.find(p.qkv);
  if (it != activation_by_data_.end()) it->second->shadow_rows = 0;
}

void CudaBackend::forget_shadows() {
  for (auto& a : activations_) a->shadow_rows = 0;
}

void* CudaBackend::k_cache(int layer) const { return kv_.as<char>() + (2 * static_cast<size_t>(layer)) * kv_layer_bytes_; }
void* CudaBackend::v_cache(int layer) const {
  return kv_.as<char>() + (2 * static_cast<size_t>(layer) + 1) * kv_layer_bytes_;
}

void CudaBackend::set_step(const int32_t* tokens, const StepShape& shape) {
  require_loaded("set_step");
  if (shape.batch < 1 || shape.batch > max_batch_ || shape.n_tokens < 1 || shape.pos < 0 ||
      shape.pos + shape.n_tokens > config_.n_ctx)
    throw Error("internal: CUDA step of " + std::to_string(shape.batch) + " x " + std::to_string(shape.n_tokens) +
                " tokens at position " + std::to_string(shape.pos) + " is outside the run's limits");
  for (int i = 0; i < shape.rows(); ++i)  // embed reads wte[token] unchecked on the device
    if (tokens[i] < 0 || tokens[i] >= config_.n_vocab)
      throw Error("internal: token id " + std::to_string(tokens[i]) + " outside the vocabulary");
  // The pinned staging may still feed the previous step's upload: wait for the stream first.
  GPT2_CUDA_CHECK(cudaStreamSynchronize(stream_));
  int32_t* staged = step_host_.as<int32_t>();
  const size_t n = static_cast<size_t>(shape.rows());
  staged[0] = shape.pos;
  std::memcpy(staged + 1, tokens, n * sizeof(int32_t));
  GPT2_CUDA_CHECK(cudaMemcpyAsync(step_state_.get(), staged, (n + 1) * sizeof(int32_t), cudaMemcpyHostToDevice,
                                  stream_));
  shape_ = shape;
  have_step_ = true;
}

void CudaBackend::run_step(const StepShape& shape, const std::function<void()>& record) {
  require_loaded("run_step");
  if (!have_step_ || shape.batch != shape_.batch || shape.n_tokens != shape_.n_tokens || shape.pos != shape_.pos)
    throw Error("internal: run_step without a matching set_step");
  if (shape.n_tokens != 1 || !use_graphs_) {
    record();
    return;
  }
  // A graph must not depend on record state left by earlier steps, and its replays bypass the
  // record state: a bias deferred before the step is applied now (inside a capture it would be
  // added again at every replay; before a replay, the replay may overwrite its buffer), and a
  // capture takes no 16-bit copy as current unless the step itself wrote it. The forward pass
  // writes every GEMM input within the step, so this costs nothing there.
  apply_pending();
  auto it = graphs_.find(shape.batch);
  if (it == graphs_.end()) {
    forget_shadows();
    // Capture, then instantiate. If either fails for a graph-specific reason (a PDL launch or
    // programmatic edge the driver refuses in capture, an instantiation error), the step is not
    // lost: nothing captured has run, so the host-side record state (deferred bias, which 16-bit
    // shadows are current) is reset and the same ops run eagerly, now and for later decode
    // steps once a retry failed too, with a note on stderr (describe() then says "no graphs").
    // An error that is not about graphs recurs in the eager run and propagates from there.
    GPT2_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    std::string failure;
    try {
      record();
      apply_pending();  // a captured step leaves no deferred bias behind
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "a non-standard exception";
    }
    cudaGraph_t graph = nullptr;
    const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
    if (failure.empty() && end != cudaSuccess)
      failure = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(end);
    cudaGraphExec_t exec = nullptr;
    if (failure.empty()) {
      const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
      if (err != cudaSuccess) {
        failure = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(err);
        exec = nullptr;
      }
    }
    if (graph) cudaGraphDestroy(graph);
    if (!failure.empty()) {
      cudaGetLastError();  // clear the capture's (non-sticky) error
      pending_ = PendingBias{};
      forget_shadows();
      // One retry at the next decode step (a first capture can trip over one-time work, e.g. a
      // kernel's lazy loading); after a second failure every decode step runs eagerly.
      if (++graph_failures_ >= 2) use_graphs_ = false;
      std::fprintf(stderr, "note: CUDA graph capture of the decode step failed (%s); running it without graphs%s\n",
                   failure.c_str(), use_graphs_ ? " (capture retried at the next decode step)" : "");
      record();
      return;
    }
    it = graphs_.emplace(shape.batch, std::make_unique<GraphExec>(exec)).first;
  }
  GPT2_CUDA_CHECK(cudaGraphLaunch(it->second->get(), stream_));
  forget_shadows();  // the replay wrote 16-bit copies and fp32 data the host did not see
}

const int32_t* step_pos(const DeviceBuffer& state) { return state.as<int32_t>(); }
const int32_t* step_tokens(const DeviceBuffer& state) { return state.as<int32_t>() + 1; }

void CudaBackend::embed(Tensor x) {
  require_loaded("embed");
  if (!have_step_ || x.rows != shape_.rows() || x.cols != config_.n_embd)
    throw Error("internal: CUDA embed: output must be [B*T, n_embd] of the current step");
  activation(x, "embed");
  cuda::embed(x.f32(), weights_.wte.data, weights_.wpe.data, wdt_, step_tokens(step_state_), step_pos(step_state_),
              static_cast<int>(x.rows), shape_.n_tokens, config_.n_embd, stream_);
  wrote(x, false);
}

void CudaBackend::layernorm(Tensor out, Tensor x, Tensor g, Tensor b) {
  require_loaded("layernorm");
  settle(x);
  if (out.rows != x.rows || out.cols != x.cols || g.numel() != x.cols || b.numel() != x.cols)
    throw Error("internal: CUDA layernorm: shapes differ");
  activation(out, "layernorm");
  void* shadow = shadow_for_write(out);
  cuda::layernorm(out.f32(), shadow, wdt_, x.f32(), nullptr, g.f32(), b.f32(), out.rows, static_cast<int>(out.cols),
                  config_.layer_norm_epsilon, stream_);
  wrote(out, shadow != nullptr);
}

void CudaBackend::add_layernorm(Tensor residual, Tensor delta, Tensor out, Tensor g, Tensor b) {
  require_loaded("add_layernorm");
  settle(delta);
  settle(residual);
  if (delta.rows != residual.rows || delta.cols != residual.cols || out.rows != residual.rows ||
      out.cols != residual.cols || g.numel() != residual.cols || b.numel() != residual.cols)
    throw Error("internal: CUDA add_layernorm: shapes differ");
  activation(out, "add_layernorm");
  void* shadow = shadow_for_write(out);
  cuda::layernorm(out.f32(), shadow, wdt_, residual.f32(), delta.f32(), g.f32(), b.f32(), out.rows,
                  static_cast<int>(out.cols), config_.layer_norm_epsilon, stream_);
  wrote(residual, false);
  wrote(out, shadow != nullptr);
}

void CudaBackend::linear(Tensor out, Tensor in, Tensor w, Tensor bias, Epilogue epilogue) {
  require_loaded("linear");
  settle(in);
  if (in.cols != w.cols || out.cols != w.rows || out.rows != in.rows || (!bias.empty() && bias.numel() != w.rows))
    throw Error("internal: CUDA linear: [" + std::to_string(in.rows) + ", " + std::to_string(in.cols) + "] @ [" +
                std::to_string(w.rows) + ", " + std::to_string(w.cols) + "]^T -> [" + std::to_string(out.rows) +
                ", " + std::to_string(out.cols) + "]");
  if (w.dtype != wdt_) throw Error("internal: CUDA linear: weight is not in the backend's dtype");
  activation(out, "linear");
  const float* b = bias.empty() ? nullptr : bias.f32();
  // c_attn: leave the bias to attention(), which adds it while writing the KV cache.
  const bool defer_bias = b && epilogue == Epilogue::none && qkv_weight_layer_.count(w.data) > 0;
  const float* applied = defer_bias ? nullptr : b;
  const bool gelu = epilogue == Epilogue::gelu;

  if (cuda::gemv_fits(in.rows, in.cols)) {
    cuda::linear_gemv(out.f32(), in.f32(), w.data, wdt_, applied, in.rows, in.cols, out.cols, gelu, stream_);
    wrote(out, false);
  } else if (gelu) {
    gemm(out, in, w, nullptr);
    void* shadow = shadow_for_write(out);
    cuda::bias_act(out.f32(), shadow, wdt_, applied, out.rows, out.cols, /*gelu=*/true, stream_);
    wrote(out, shadow != nullptr);
  } else {
    gemm(out, in, w, applied);
    wrote(out, false);
  }
  if (defer_bias) {
    apply_pending();  // another buffer's deferred bias (out's own was dropped by wrote(out))
    pending_ = PendingBias{out.data, b, out.rows, out.cols};
  }
}

// The cuBLASLt configuration of one GEMM shape (cached); null when cuBLASLt has no algorithm
// for it (with the bias epilogue, or at all: e.g. an fp32 output whose leading dimension is
// the odd vocabulary size 50257); the caller then falls back.
GemmPlan* CudaBackend::plan(int64_t m, int64_t n, int64_t k, bool with_bias, const float* bias) {
  auto key = std::make_tuple(m, n, k, with_bias);
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();
  auto p = std::make_unique<GemmPlan>();
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
    if (options_.verbose && status != CUBLAS_STATUS_SUCCESS)
      std::fprintf(stderr, "note: cuBLASLt heuristic for %lld x %lld x %lld%s: %s; using cublasGemmEx\n",
                   static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(k),
                   with_bias ? " (bias epilogue)" : "", cublasLtGetStatusString(status));
    plans_.emplace(key, nullptr);
    return nullptr;
  }
  p->algo = result.algo;
  return plans_.emplace(key, std::move(p)).first->second.get();
}

void CudaBackend::gemm(const Tensor& out, const Tensor& in, const Tensor& w, const float* bias) {
  const void* b_matrix = gemm_input(in);
  GemmPlan* p = bias ? plan(out.cols, in.rows, in.cols, /*with_bias=*/true, bias) : nullptr;
  const bool bias_in_epilogue = p != nullptr;
  if (!p) p = plan(out.cols, in.rows, in.cols, /*with_bias=*/false, nullptr);
  const float alpha = 1.0f, beta = 0.0f;
  if (!p) {  // classic cuBLAS, same operands and layout as below
    const cudaDataType_t ab = cuda_type(wdt_);
    const int m = static_cast<int>(out.cols), n = static_cast<int>(in.rows), k = static_cast<int>(in.cols);
    GPT2_CUBLAS_CHECK(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, w.data, ab, k, b_matrix, ab, k,
                                   &beta, out.data, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (bias) cuda::bias_act(out.f32(), nullptr, wdt_, bias, out.rows, out.cols, /*gelu=*/false, stream_);
    return;
  }
  if (bias_in_epilogue)
    GPT2_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  GPT2_CUBLAS_CHECK(cublasLtMatmul(lt_, p->op, &alpha, w.data, p->a, b_matrix, p->b, &beta, out.data, p->c, out.data,
                                   p->c, &p->algo, workspace_.get(), kWorkspaceBytes, stream_));
  if (bias && !bias_in_epilogue)
    cuda::bias_act(out.f32(), nullptr, wdt_, bias, out.rows, out.cols, /*gelu=*/false, stream_);
}

void CudaBackend::attention(Tensor out, Tensor qkv, int layer) {
  require_loaded("attention");
  const int64_t C = config_.n_embd;
  if (layer < 0 || layer >= config_.n_layer) throw Error("internal: CUDA attention: no layer " + std::to_string(layer));
  if (!have_step_ || qkv.rows != shape_.rows() || qkv.cols != 3 * C || out.rows != qkv.rows || out.cols != C)
    throw Error("internal: CUDA attention: qkv must be [B*T, 3C] and out [B*T, C] of the current step");
  activation(out, "attention");
  activation(qkv, "attention");
  const float* bias = pending_.qkv == qkv.data ? pending_.bias : nullptr;
  if (bias) pending_ = PendingBias{};  // taken here; a bias pending on another buffer stays
  const int H = config_.n_head, hd = config_.head_dim(), n_ctx = config_.n_ctx;
  const int32_t* pos = step_pos(step_state_);
  if (shape_.n_tokens == 1) {
    cuda::attention_decode(out.f32(), qkv.f32(), k_cache(layer), v_cache(layer), wdt_, bias, pos, shape_.batch, H, hd,
                           n_ctx, decode_partial_o_.as<float>(), decode_partial_ml_.as<float>(),
                           decode_counters_.as<int32_t>(), stream_);
    wrote(out, false);
  } else {
    cuda::qkv_bias_kv_append(qkv.f32(), k_cache(layer), v_cache(layer), wdt_, bias, pos, shape_.batch,
                             shape_.n_tokens, H, hd, n_ctx, stream_);
    void* shadow = shadow_for_write(out);
    cuda::attention_prefill(out.f32(), shadow, qkv.f32(), k_cache(layer), v_cache(layer), wdt_, pos, shape_.batch,
                            shape_.n_tokens, H, hd, n_ctx, stream_);
    wrote(out, shadow != nullptr);
  }
  wrote(qkv, false);
}

void CudaBackend::take_last(Tensor out, Tensor in) {
  require_loaded("take_last");
  settle(in);
  if (!have_step_ || in.rows != shape_.rows() || out.rows != shape_.batch || out.cols != in.cols)
    throw Error("internal: CUDA take_last: in must be [B*T, C] and out [B, C] of the current step");
  activation(out, "take_last");
  const size_t row_bytes = static_cast<size_t>(in.cols) * 4;
  const float* first = in.f32() + static_cast<int64_t>(shape_.n_tokens - 1) * in.cols;
  GPT2_CUDA_CHECK(cudaMemcpy2DAsync(out.data, row_bytes, first, row_bytes * shape_.n_tokens, row_bytes,
                                    static_cast<size_t>(shape_.batch), cudaMemcpyDeviceToDevice, stream_));
  wrote(out, false);
}

void CudaBackend::read(float* dst, Tensor src) {
  require_loaded("read");
  settle(src);
  if (src.dtype != DType::f32) throw Error("internal: CUDA read of a non-fp32 tensor");
  GPT2_CUDA_CHECK(cudaMemcpyAsync(dst, src.data, src.bytes(), cudaMemcpyDeviceToHost, stream_));
  GPT2_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::top_k(Tensor logits, int64_t n_cols, int k, int32_t* ids, float* values, int32_t* invalid) {
  require_loaded("top_k");
  settle(logits);
  if (k < 1 || k > kMaxTopK || k > n_cols || n_cols > logits.cols || logits.rows > max_batch_)
    throw Error("internal: CUDA top_k of " + std::to_string(k) + " over " + std::to_string(n_cols) + " of " +
                std::to_string(logits.cols) + " columns in " + std::to_string(logits.rows) + " rows");
  activation(logits, "top_k");
  const int64_t rows = logits.rows, n = rows * k;
  int32_t* d_ids = top_k_device_.as<int32_t>();  // [rows, k]
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

std::string cuda_unsupported_shape(const Config& config) {
  if (config.head_dim() != cuda::kAttentionHeadDim)
    return "the CUDA backend needs head_dim 64 (n_embd / n_head = " + std::to_string(config.head_dim()) + ")";
  if (config.n_embd % 8 != 0 || config.n_embd > cuda::kLayernormMaxCols)
    return "the CUDA backend needs n_embd a multiple of 8 and at most " + std::to_string(cuda::kLayernormMaxCols) +
           " (got " + std::to_string(config.n_embd) + ")";
  return "";
}

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options) {
  std::string reason;
  if (!cuda_device_usable(&reason)) throw Error("no usable CUDA device (" + reason + ")");
  DType dtype = options.auto_dtype ? DType::bf16 : options.weight_dtype;
  if (dtype == DType::i8)
    throw UsageError("--dtype int8 is not supported on CUDA (use bf16, fp16 or fp32, or --device cpu)");
  if (dtype != DType::f32 && dtype != DType::f16 && dtype != DType::bf16)
    throw UsageError(std::string("--dtype ") + dtype_name(dtype) + " is not supported on CUDA");
  return std::make_unique<CudaBackend>(options, dtype);
}

}  // namespace gpt2
