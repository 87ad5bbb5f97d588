// Backend: the operations GPT-2's forward pass is made of. The forward pass itself is
// written once, in src/model/gpt2.cpp; a backend (cpu/, cuda/) implements these ops on its
// own memory. Activations are fp32 [rows, cols] row-major; weights are in the backend's
// weight dtype ([out, in] for linear layers).
//
// A step processes B sequences of T new tokens each, all at positions [pos, pos + T)
// (every sequence of a batch has the same length). N = B * T rows of activations,
// sequence-major: row b * T + t is token t of sequence b.
//
// Step state (tokens, positions) is set once by set_step(); ops read it from there, never
// from their arguments, so a backend may record the ops of a step once and replay them
// (the CUDA backend captures the decode step in a CUDA graph).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "model/config.h"
#include "model/weights.h"
#include "runtime/tensor.h"

namespace gpt2 {

struct StepShape {
  int batch = 1;     // B sequences
  int n_tokens = 1;  // T new tokens per sequence
  int pos = 0;       // position of the first new token (tokens already in the KV cache)
  int rows() const { return batch * n_tokens; }
};

enum class Epilogue { none, gelu };

enum class Device { auto_select, cpu, cuda };

struct BackendOptions {
  Device device = Device::auto_select;
  bool auto_dtype = true;           // let the backend choose (CPU: f32, CUDA: bf16)
  DType weight_dtype = DType::f32;  // when !auto_dtype: f32, f16 (CUDA), bf16, i8 (CPU)
  int threads = 0;                  // CPU threads; 0 = all cores
  bool verbose = false;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;  // "cpu" or "cuda"
  virtual DType weight_dtype() const = 0;
  virtual std::string describe() const = 0;  // e.g. "cpu (2 threads, avx512)" / "cuda (NVIDIA H200)"

  // Once per run: copies (and converts) the host weights ([out, in], fp32) into backend
  // memory, and allocates the KV cache for max_batch sequences of config.n_ctx positions.
  // `host` may be released afterwards.
  virtual void load(const Config& config, const ModelWeights& host, int max_batch) = 0;
  virtual const ModelWeights& weights() const = 0;

  // An fp32 activation buffer [rows, cols], owned by the backend until it is destroyed.
  virtual Tensor alloc(int64_t rows, int64_t cols) = 0;

  // Step state: tokens [B * T] (host memory) and the shape of the next step.
  virtual void set_step(const int32_t* tokens, const StepShape& shape) = 0;
  // Runs `record`, which issues the ops of one step. A backend may capture them once per
  // shape (batch, n_tokens) and replay the capture for later steps of that shape.
  virtual void run_step(const StepShape& shape, const std::function<void()>& record) = 0;

  // ---- ops (shapes: N = B*T rows, C = n_embd) ----
  // x [N, C] = wte[tokens] + wpe[positions]
  virtual void embed(Tensor x) = 0;
  // out [N, C] = LayerNorm(x) * g + b, fp32 statistics, eps = config.layer_norm_epsilon
  virtual void layernorm(Tensor out, Tensor x, Tensor g, Tensor b) = 0;
  // residual [N, C] += delta;  out = LayerNorm(residual) * g + b
  virtual void add_layernorm(Tensor residual, Tensor delta, Tensor out, Tensor g, Tensor b) = 0;
  // out [N, O] = epilogue(in [N, I] @ w[O, I]^T + bias[O]); bias may be empty
  virtual void linear(Tensor out, Tensor in, Tensor w, Tensor bias, Epilogue epilogue) = 0;
  // Causal self-attention of layer `layer`: qkv [N, 3C] (q | k | v, heads of head_dim
  // inside each); appends k, v at the step's positions to the KV cache, then
  // out [N, C] = softmax(q k^T / sqrt(head_dim)) v over cache positions [0, pos + t].
  virtual void attention(Tensor out, Tensor qkv, int layer) = 0;
  // out [B, C] = in [B*T, C] rows b*T + T-1 (the last token of each sequence)
  virtual void take_last(Tensor out, Tensor in) = 0;

  // Copies an fp32 activation to host memory (waits for the work before it).
  virtual void read(float* dst, Tensor src) = 0;

  // The k most likely of the first n_cols entries of each row of logits [rows, V] (k <= kMaxTopK,
  // k <= n_cols <= V), to host memory: ids, values [rows, k], most likely first (value
  // descending, equal values by smaller index, +0 equal to -0; the values' exact bits);
  // invalid [rows]: 1 when the row's first n_cols hold a NaN or +inf (its ids and values are
  // then meaningless), else 0. Waits for the work before it. The sampler's candidates
  // (sampling/sampler.h): on CUDA, a step copies k values per row instead of V.
  static constexpr int kMaxTopK = 256;
  virtual void top_k(Tensor logits, int64_t n_cols, int k, int32_t* ids, float* values, int32_t* invalid) = 0;

  // Peak device memory this backend has had allocated (weights, KV cache, activations,
  // workspaces), in bytes, for `gpt2 bench`; -1 when the backend has no device memory (CPU)
  // or cannot tell. Optional: a backend that keeps device memory should override it.
  virtual int64_t peak_device_bytes() const { return -1; }
};

// Creates the backend options.device asks for, for a model of shape `config`. auto_select:
// CUDA when a usable device is present and can run the request (the model's shape, the
// dtype: int8 is CPU-only), else the CPU with a one-line note on stderr (in a build without
// CUDA only with verbose). cuda without a usable device: gpt2::Error naming the reason.
std::unique_ptr<Backend> make_backend(const BackendOptions& options, const Config& config);
// The same without a model shape: auto_select does not check the shape.
std::unique_ptr<Backend> make_backend(const BackendOptions& options);

// Whether a usable CUDA device is present; `reason` says why not. Never crashes.
bool cuda_available(std::string* reason);

}  // namespace gpt2
