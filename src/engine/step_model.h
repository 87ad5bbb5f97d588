// What the scheduler needs of a language model, and of a tokenizer, as two small interfaces: the
// scheduler is tested with scripted models and texts, and runs GPT-2 through Gpt2StepModel.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/memory.h"
#include "runtime/batch.h"
#include "runtime/kv_cache.h"

namespace gpt2 {

class Gpt2;
class Tokenizer;

// Each logit row's most likely tokens, most likely first (logit descending, equal logits by
// smaller id: common/order.h).
struct TopTokens {
  int k = 0;
  std::vector<int32_t> ids;      // [rows, k]
  std::vector<float> logits;     // [rows, k]
  std::vector<int32_t> invalid;  // [rows]: 1 when the row holds a NaN or +inf logit
};

class StepModel {
 public:
  virtual ~StepModel() = default;
  virtual int n_vocab() const = 0;
  virtual int n_ctx() const = 0;
  virtual int max_rows() const = 0;       // tokens per step
  virtual int max_sequences() const = 0;  // sequences per step
  virtual int max_logit_rows() const { return max_sequences(); }  // rows of logits per step
  virtual KvCache& kv() = 0;              // the slots sequences run in

  // Runs one step; the logits of the batch's logit rows are then available until the next.
  virtual void forward(const Batch& batch) = 0;
  virtual void logits(std::vector<float>& out) = 0;  // [R, n_vocab]
  // Each logit row's k most likely among ids [0, n_cols) (k <= max_top_k()); 0: not offered.
  virtual int max_top_k() const { return 0; }
  virtual void top_k(int n_cols, int k, TopTokens& top);
};

// GPT-2 on a backend, with a KV cache of n_slots slots.
class Gpt2StepModel : public StepModel {
 public:
  Gpt2StepModel(Gpt2& model, int n_slots);
  ~Gpt2StepModel() override;
  int n_vocab() const override;
  int n_ctx() const override;
  int max_rows() const override;
  int max_sequences() const override;
  int max_logit_rows() const override;
  KvCache& kv() override { return kv_; }
  void forward(const Batch& batch) override;
  void logits(std::vector<float>& out) override;
  int max_top_k() const override;
  void top_k(int n_cols, int k, TopTokens& top) override;

 private:
  Gpt2* model_;
  KvCache kv_;
  HostMemory host_logits_;  // the most logits() hands back, [max_logit_rows, n_vocab] fp32, counted
  struct State;
  std::unique_ptr<State> state_;
};

// A sequence's tokens as printable text: whole UTF-8 characters only (bytes of a character
// split across tokens are held back until it completes).
class TokenStream {
 public:
  virtual ~TokenStream() = default;
  virtual std::string push(int32_t id) = 0;
  virtual std::string finish() = 0;  // what is held back when the sequence ends
};

class TokenText {
 public:
  virtual ~TokenText() = default;
  virtual std::unique_ptr<TokenStream> stream() const = 0;
};

// The tokenizer's streaming decoder behind TokenText.
class TokenizerText : public TokenText {
 public:
  explicit TokenizerText(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {}
  std::unique_ptr<TokenStream> stream() const override;

 private:
  const Tokenizer* tokenizer_;
};

}  // namespace gpt2
