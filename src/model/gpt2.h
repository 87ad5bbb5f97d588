// GPT-2 (Radford et al. 2019): the forward pass, written once against the Backend ops.
//
// A step is a Batch (runtime/batch.h): any mix of sequences, each with its own KV-cache slot,
// its own position and its own number of new tokens (a prompt chunk beside single decode
// tokens). forward() runs it through every block, writing each row's key and value into its
// slot, and leaves the logits of the batch's logit rows in the backend:
//
//   Gpt2 model(host, backend, limits);
//   KvCache kv = model.make_kv_cache(n_slots);
//   const int slot = kv.acquire();
//   Batch batch;  batch.add(slot, kv.length(slot), ids, n, Logits::last);
//   Outputs out;  model.forward(batch, kv, out);     // out.logits [R, n_vocab] on the backend
//   backend.read(host, out.logits) or backend.top_k(out.logits, ...)
//
// An Outputs may carry a StepObserver (model/observer.h) that sees the residual stream after
// each block and the q, k of chosen layers; without one nothing is read back and a decode step
// may be replayed from a CUDA graph.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "runtime/backend.h"

namespace gpt2 {

class StepObserver;

struct RunLimits {
  int max_rows = 1024;       // rows per step (all sequences' new tokens together)
  int max_sequences = 1;     // sequences per step
  int max_logit_rows = 1;    // rows of logits per step
};

// What a run's buffers besides the weights take, from the config alone (no weight read), so that
// the CLI can refuse an impossible run before a long load. Saturating (common/memory.h mul_sizes).
struct RunBytes {
  size_t activations = 0;   // Gpt2's activations for the limits, fp32 (backend memory)
  size_t kv_cache = 0;      // a KV cache of limits.max_sequences slots, fp32 (backend memory; the CPU's dtype)
  size_t host_logits = 0;   // max_logit_rows rows of logits read back to the host, fp32
  size_t backend() const;   // activations + kv_cache
};
RunBytes run_bytes(const Config& config, const RunLimits& limits);

struct Outputs {
  StepObserver* observer = nullptr;  // in: optional, see model/observer.h
  Tensor logits;                     // out: [R, n_vocab] in backend memory, R = batch.n_logit_rows();
                                     //   valid until the next forward
};

class Gpt2 {
 public:
  // Uploads the host weights to the backend (the host copy is released afterwards) and
  // allocates the activations for steps within `limits`.
  Gpt2(HostModel host, std::unique_ptr<Backend> backend, const RunLimits& limits);

  const Config& config() const { return config_; }
  const std::string& name() const { return name_; }
  Backend& backend() { return *backend_; }
  const ModelWeights& weights() const { return weights_; }
  const RunLimits& limits() const { return limits_; }

  // A KV cache for n_slots sequences of the model's context.
  KvCache make_kv_cache(int n_slots);

  // Runs one step. Throws gpt2::Error, before any work, when the batch is outside the limits,
  // a token is outside the vocabulary, a slot is not allocated or appears twice, or a sequence
  // would pass the context or leave a gap in its slot. Afterwards kv.length(slot) is the end of
  // each sequence's new tokens.
  void forward(const Batch& batch, KvCache& kv, Outputs& out);

 private:
  void check(const Batch& batch, const KvCache& kv) const;
  void step(const Batch& batch, const KvCache& kv, StepObserver* observer);

  Config config_;
  std::string name_;
  RunLimits limits_;
  std::unique_ptr<Backend> backend_;
  ModelWeights weights_;  // backend-resident
  // Activations, allocated once for the largest step.
  Tensor x_;       // [N, C]  residual stream
  Tensor h_;       // [N, C]  LayerNorm output
  Tensor qkv_;     // [N, 3C]
  Tensor att_;     // [N, C]  attention output (heads concatenated)
  Tensor delta_;   // [N, C]  projection output, added to the residual stream
  Tensor fc_;      // [N, 4C] GELU(c_fc)
  Tensor h_out_;   // [R, C]  final LayerNorm of the logit rows
  Tensor logits_;  // [R, V]
};

}  // namespace gpt2
