// The real model and tokenizer behind generate()'s two interfaces. Inline on purpose: the
// sampling library links neither the model nor the tokenizer library; the programs that
// use these (the CLI, tests) link all three.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "model/gpt2.h"
#include "sampling/generate.h"
#include "tokenizer/tokenizer.h"

namespace gpt2 {

class Gpt2TokenModel : public TokenModel {
 public:
  explicit Gpt2TokenModel(Gpt2& model) : model_(&model) {}
  int n_vocab() const override { return model_->config().n_vocab; }
  int n_ctx() const override { return model_->config().n_ctx; }
  void reset() override { model_->reset(); }
  void forward(const int32_t* tokens, int batch, int n_tokens, std::vector<float>& logits) override {
    run(tokens, batch, n_tokens);
    model_->last_logits(logits);
  }
  int max_top_k() const override { return Backend::kMaxTopK; }
  void forward_top_k(const int32_t* tokens, int batch, int n_tokens, int n_vocab, int k, TopTokens& top) override {
    run(tokens, batch, n_tokens);
    model_->top_k(n_vocab, k, top.ids, top.logits, top.invalid);
    top.k = k;
  }
  void last_logits(std::vector<float>& logits) override { model_->last_logits(logits); }

 private:
  // A prompt longer than the run's step limit is prefilled in chunks; the last chunk's last
  // logits are the next-token logits.
  void run(const int32_t* tokens, int batch, int n_tokens) {
    const int chunk = model_->limits().max_tokens;
    if (n_tokens <= chunk) {
      model_->forward_last(tokens, batch, n_tokens);
      return;
    }
    std::vector<int32_t> part;
    for (int t0 = 0; t0 < n_tokens; t0 += chunk) {
      const int t = std::min(chunk, n_tokens - t0);
      part.resize(static_cast<size_t>(batch) * t);
      for (int b = 0; b < batch; ++b) {
        for (int i = 0; i < t; ++i)
          part[static_cast<size_t>(b) * t + i] = tokens[static_cast<size_t>(b) * n_tokens + t0 + i];
      }
      model_->forward_last(part.data(), batch, t);
    }
  }

  Gpt2* model_;
};

class TokenizerText : public TokenText {
 public:
  explicit TokenizerText(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {}
  void start(int n_samples) override { decoders_.assign(static_cast<size_t>(n_samples), StreamDecoder(*tokenizer_)); }
  std::string push(int sample, int32_t id) override { return decoders_.at(static_cast<size_t>(sample)).push(id); }
  std::string finish(int sample) override { return decoders_.at(static_cast<size_t>(sample)).finish(); }

 private:
  const Tokenizer* tokenizer_;
  std::vector<StreamDecoder> decoders_;
};

}  // namespace gpt2
