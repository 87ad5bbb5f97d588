// Backend: an executor of the operations a transformer's forward pass is made of. It knows
// nothing of GPT-2: the model (src/model/gpt2.cpp) uploads its tensors for a use, allocates its
// activations and KV cache here, and issues ops with every operand explicit. The forward pass
// is written once; cpu/ and cuda/ implement the ops on their own memory.
//
// Shapes: activations are fp32 [rows, cols] row-major; matrices are [out, in] (PyTorch
// nn.Linear), in whatever form the backend chose for their WeightUse (packed, 16-bit,
// quantized). A step's rows are a Batch (runtime/batch.h): N rows, packed sequence by sequence,
// each with its own token, position and KV slot.
//
// Public ops are not virtual: each checks its operands once, for every backend, and then calls
// the backend's math (the protected do_* functions). A check that fails is gpt2::Error
// ("internal: ..."): a shape error is a bug of the caller, not of the input.
//
// run_step(batch, key, record) uploads the batch once and runs `record`, which issues the ops;
// a backend may capture them once per StepKey and replay them for later steps with that key
// (the CUDA backend captures decode steps in CUDA graphs). Ops therefore take the step's rows
// from the Batch handed to run_step, never from host memory that changes between steps.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <tuple>

#include "runtime/batch.h"
#include "runtime/kv_cache.h"
#include "runtime/tensor.h"

namespace gpt2 {

enum class Epilogue { none, gelu };

enum class Device { auto_select, cpu, cuda };

// What a weight tensor is used for, so that a backend can choose how to store it.
enum class WeightUse {
  matrix,     // the right operand of linear(), [out, in]: in the weight dtype, maybe packed
  embedding,  // [V, C]: rows gathered by embed(), and also the right operand of linear()
              //   (a tied LM head)
  table,      // [n, C]: rows gathered by embed() only (position embeddings)
  vector,     // [1, n]: a bias or a LayerNorm gain or bias, fp32
};

// Attention kernels on CUDA: auto picks per dtype and shape; simt forces the fp32 SIMT kernel
// (a debugging aid: gpu-check.sh reruns failures with it).
enum class CudaAttention { auto_select, simt };

struct BackendOptions {
  Device device = Device::auto_select;
  bool auto_dtype = true;           // let the backend choose (CPU: weight_dtype if i8, else f32; CUDA: bf16)
  DType weight_dtype = DType::f32;  // when !auto_dtype: f32, f16 (CUDA), bf16, i8, i4 (CPU); with
                                    //   auto_dtype, i8 asks the CPU for integer kernels (a quantized file)
  int threads = 0;                  // CPU threads; 0 = all cores
  bool verbose = false;
  std::string cpu_isa;              // "" (the best this CPU runs), generic, avx2 or avx512
  bool cuda_graphs = true;          // capture decode steps in CUDA graphs
  bool cuda_pdl = true;             // programmatic dependent launch on sm_90
  CudaAttention cuda_attention = CudaAttention::auto_select;
};

// What the ops of one step are, beyond the values they read: a backend that captures a
// step's ops (CUDA graphs) keys the capture by all of it. The other tensors a step uses (the
// model's weights and activations) are the same for every step of one Gpt2, whose backend it is.
struct StepKey {
  int rows = 0;            // N
  int logit_rows = 0;      // R
  int sequences = 0;       // S
  int max_seq_tokens = 0;  // new tokens of the longest sequence (1: a decode step)
  bool observed = false;   // a caller reads activations during the step: never captured
  const void* cache = nullptr;  // the KV cache the step reads and writes (its first layer's k)

  static StepKey of(const Batch& batch, const KvCache& kv, bool observed) {
    return StepKey{batch.rows(), batch.n_logit_rows(), batch.sequences(), batch.max_seq_tokens, observed,
                   kv.n_layer() > 0 ? kv.layer(0).k.data : nullptr};
  }
  // Only decode steps are worth capturing (prefill is a few long GEMMs); an observed step
  // reads activations back between ops.
  bool capturable() const { return max_seq_tokens == 1 && !observed; }
  bool operator<(const StepKey& o) const {
    return std::tie(rows, logit_rows, sequences, max_seq_tokens, observed, cache) <
           std::tie(o.rows, o.logit_rows, o.sequences, o.max_seq_tokens, o.observed, o.cache);
  }
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;  // "cpu" or "cuda"
  virtual DType weight_dtype() const = 0;
  virtual std::string describe() const = 0;  // e.g. "cpu (2 threads, avx512)" / "cuda (NVIDIA H200)"
  // Peak device memory held (weights, KV cache, activations, workspaces) in bytes; -1 when the
  // backend has no device memory (CPU).
  virtual int64_t peak_device_bytes() const { return -1; }

  // ---- memory: everything is allocated before the first step, owned until destruction ----
  // Weights: bytes that upload() of a host tensor for `use` will take; one reservation of their
  // sum; then each tensor uploaded (copied and converted). Host data is fp32, or for matrices and
  // embeddings of a quantized file i8 / i4 with scales (HostModel): a backend that takes those
  // (do_takes_host) keeps them as they are, for any other upload() dequantizes them to fp32 first.
  size_t upload_bytes(int64_t rows, int64_t cols, WeightUse use) const;  // an fp32 host tensor
  size_t upload_bytes(const Tensor& host, WeightUse use) const;
  void reserve_weights(size_t bytes);
  Tensor upload(const Tensor& host, WeightUse use);
  // An fp32 activation buffer [rows, cols], zeroed.
  Tensor alloc(int64_t rows, int64_t cols);
  // A KV cache of n_layer layers for n_slots sequences of n_ctx positions.
  KvCache alloc_kv(int n_layer, int n_slots, int n_ctx, int n_head, int head_dim);

  // ---- a step ----
  // Uploads the batch (rows <= max_rows of the batch buffer, sized by the first call of
  // reserve_batch) and runs `record`, or replays what `record` issued for the same key.
  void reserve_batch(int max_rows, int max_sequences);
  void run_step(const Batch& batch, const StepKey& key, const std::function<void()>& record);

  // ---- ops (inside run_step's record; N = batch.rows(), C = row width) ----
  // x [N, C] = wte[tokens[n]] + wpe[positions[n]]
  void embed(Tensor x, Tensor wte, Tensor wpe, const Batch& batch);
  // out [n, C] = (x - mean) / sqrt(var + eps) * g + b per row, fp32 statistics
  void layernorm(Tensor out, Tensor x, Tensor g, Tensor b, float eps);
  // residual [n, C] += delta;  out = LayerNorm(residual) * g + b
  void add_layernorm(Tensor residual, Tensor delta, Tensor out, Tensor g, Tensor b, float eps);
  // out [n, O] = epilogue(in [n, I] @ w[O, I]^T + bias[O]); bias may be empty
  void linear(Tensor out, Tensor in, Tensor w, Tensor bias, Epilogue epilogue);
  // Causal self-attention of one layer, with c_attn's bias fused in:
  //   qkv [N, 3C] (q | k | v, n_head heads of head_dim each) += qkv_bias [1, 3C] (may be empty);
  //   k, v of row n -> cache slot row_slots[n], position positions[n];
  //   out [N, C] = softmax(q k^T / sqrt(head_dim)) v over positions [0, positions[n]] of the slot.
  // qkv holds q | k | v with the bias afterwards (an observer reads q and k from it).
  void attention(Tensor out, Tensor qkv, Tensor qkv_bias, const KvLayer& kv, const Batch& batch);
  // out [R, C] = in [N, C] rows batch.logit_rows
  void gather_rows(Tensor out, Tensor in, const Batch& batch);

  // ---- results to the host (wait for the work before them) ----
  void read(float* dst, Tensor src);  // an fp32 tensor [rows, cols]
  // The k most likely of the first n_cols entries of each row of logits [rows, V] (k <= kMaxTopK,
  // k <= n_cols <= V), to host memory: ids, values [rows, k], most likely first (value
  // descending, equal values by smaller index, +0 equal to -0; the values' exact bits);
  // invalid [rows]: 1 when the row's first n_cols hold a NaN or +inf (its ids and values are
  // then meaningless), else 0. The sampler's candidates: on CUDA a step copies k values per row
  // instead of V.
  static constexpr int kMaxTopK = 256;
  void top_k(Tensor logits, int64_t n_cols, int k, int32_t* ids, float* values, int32_t* invalid);

 protected:
  virtual size_t do_upload_bytes(int64_t rows, int64_t cols, WeightUse use) const = 0;
  // Host tensors of dtypes other than fp32 that do_upload takes as they are (default: none), and
  // the bytes they take.
  virtual bool do_takes_host(DType dtype, WeightUse use) const { return dtype == DType::f32; }
  virtual size_t do_upload_bytes_for(const Tensor& host, WeightUse use) const {
    return do_upload_bytes(host.rows, host.cols, use);
  }
  virtual void do_reserve_weights(size_t bytes) = 0;
  virtual Tensor do_upload(const Tensor& host, WeightUse use) = 0;
  virtual Tensor do_alloc(int64_t rows, int64_t cols) = 0;
  virtual KvCache do_alloc_kv(int n_layer, int n_slots, int n_ctx, int n_head, int head_dim) = 0;
  virtual void do_reserve_batch(int max_rows, int max_sequences) = 0;
  virtual void do_run_step(const Batch& batch, const StepKey& key, const std::function<void()>& record) = 0;

  virtual void do_embed(Tensor x, Tensor wte, Tensor wpe, const Batch& batch) = 0;
  virtual void do_layernorm(Tensor out, Tensor x, Tensor g, Tensor b, float eps) = 0;
  virtual void do_add_layernorm(Tensor residual, Tensor delta, Tensor out, Tensor g, Tensor b, float eps) = 0;
  virtual void do_linear(Tensor out, Tensor in, Tensor w, Tensor bias, Epilogue epilogue) = 0;
  virtual void do_attention(Tensor out, Tensor qkv, Tensor qkv_bias, const KvLayer& kv, const Batch& batch) = 0;
  virtual void do_gather_rows(Tensor out, Tensor in, const Batch& batch) = 0;
  virtual void do_read(float* dst, Tensor src) = 0;
  virtual void do_top_k(Tensor logits, int64_t n_cols, int k, int32_t* ids, float* values, int32_t* invalid) = 0;

 private:
  // The batch of the step in progress (between run_step's upload and its end), so that every
  // op can check it was given that batch.
  const Batch* step_batch_ = nullptr;
  int max_rows_ = 0;
  int max_sequences_ = 0;
  void require_step(const Batch& batch, const char* op) const;
};

}  // namespace gpt2
