// GPT-2 (Radford et al. 2019): the forward pass, written once against the Backend ops.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "runtime/backend.h"

namespace gpt2 {

enum class Logits { last, all };  // logits of each sequence's last token, or of every token

struct RunLimits {
  int max_batch = 1;        // sequences per step
  int max_tokens = 1024;    // new tokens per sequence per step (prefill length)
  bool all_logits = false;  // whether steps may ask for Logits::all (sizes the logits buffer)
};

class Gpt2 {
 public:
  // Loads the host weights into the backend; the host copy is released afterwards.
  Gpt2(HostModel host, std::unique_ptr<Backend> backend, const RunLimits& limits);

  const Config& config() const { return config_; }
  const std::string& name() const { return name_; }
  Backend& backend() { return *backend_; }
  const RunLimits& limits() const { return limits_; }

  int pos() const { return pos_; }  // tokens per sequence already in the KV cache
  void reset() {  // forgets the cache (the next step starts at position 0) and the last logits
    pos_ = 0;
    last_batch_ = 0;
  }

  // tokens [B, T] row-major, appended after the cached tokens of each sequence.
  // logits: [B, T, n_vocab] for Logits::all, [B, n_vocab] for Logits::last.
  // Throws gpt2::Error when B, T or pos + T exceed the limits or the context.
  void forward(const int32_t* tokens, int batch, int n_tokens, Logits which, std::vector<float>& logits);

  // The same step with Logits::last, leaving the logits [B, V] in the backend: read them with
  // last_logits(), or each sequence's k most likely tokens with top_k() (Backend::top_k), which
  // on CUDA copies k values per sequence instead of V.
  void forward_last(const int32_t* tokens, int batch, int n_tokens);
  void last_logits(std::vector<float>& logits);  // [B, V]
  // ids, values [B, k] and invalid [B] of the first n_vocab logits, as Backend::top_k.
  void top_k(int n_vocab, int k, std::vector<int32_t>& ids, std::vector<float>& values, std::vector<int32_t>& invalid);

 private:
  void run(const int32_t* tokens, int batch, int n_tokens, Logits which);  // checks, the step, pos
  void step(const StepShape& shape, Logits which);
  int last_batch_ = 0;  // sequences of the last step when it kept only their last logits, else 0

  Config config_;
  std::string name_;
  RunLimits limits_;
  std::unique_ptr<Backend> backend_;
  int pos_ = 0;
  // Activations, allocated once for the largest step.
  Tensor x_;       // [N, C]  residual stream
  Tensor h_;       // [N, C]  LayerNorm output
  Tensor qkv_;     // [N, 3C]
  Tensor att_;     // [N, C]  attention output (heads concatenated)
  Tensor delta_;   // [N, C]  projection output, added to the residual stream
  Tensor fc_;      // [N, 4C] GELU(c_fc)
  Tensor h_last_;  // [B, C]  final LayerNorm of each sequence's last token
  Tensor logits_;  // [N or B, V]
};

}  // namespace gpt2
