// The generation loop: prefill the prompt, then decode one token per sample per step
// through the KV cache, sampling each next token, until every sample has stopped.
//
//   prompt [P] --prefill as B identical rows--> logits [B, n_vocab]
//   step s: token[b] = Sampler(seed).sample(logits[b], history of b, sample b, step s)
//           stop b at <|endoftext|> (unless ignore_eos), at a stop string, at n_predict
//           tokens, or when the sequence fills the context (prompt + tokens == n_ctx)
//           then forward token[B] at position P + s --> logits [B, n_vocab]
//
// When the model offers it (TokenModel::forward_top_k; the real model does), a step returns
// only each row's m most likely tokens, as many as the sampler needs to decide exactly
// (Sampler::top_needed / sample_top), so a GPU copies m values per row instead of n_vocab; a
// row they cannot decide (a tie at the boundary) fetches the step's logits after all.
//
// A sequence never grows past n_ctx tokens: the last token sampled is the one that fills
// position n_ctx - 1, so no forward step ever reads a position outside the context. Samples
// that stop early keep being fed their last token (batch rows must have equal lengths);
// their logits are ignored.
//
// The loop talks to the model and the tokenizer through two small interfaces, so it is
// tested with scripted models and text, and the sampling library depends on neither
// library; sampling/generate_gpt2.h connects the real ones.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sampling/sampler.h"

namespace gpt2 {

// Each row's most likely tokens, most likely first (logit descending, equal logits by
// smaller id).
struct TopTokens {
  int k = 0;
  std::vector<int32_t> ids;      // [rows, k]
  std::vector<float> logits;     // [rows, k]
  std::vector<int32_t> invalid;  // [rows]: 1 when the row holds a NaN or +inf logit
};

// What the loop needs from a language model.
class TokenModel {
 public:
  virtual ~TokenModel() = default;
  virtual int n_vocab() const = 0;
  virtual int n_ctx() const = 0;
  virtual void reset() = 0;  // empties the KV cache: the next forward starts at position 0
  // tokens [batch, n_tokens] row-major, appended after each row's cached tokens;
  // logits [batch, n_vocab]: the next-token logits after each row's last token.
  virtual void forward(const int32_t* tokens, int batch, int n_tokens, std::vector<float>& logits) = 0;

  // Optional, for a model whose logits live on a device: the same step as forward(), but
  // returning only each row's k most likely tokens among ids [0, n_vocab) (k <= max_top_k()),
  // so a step copies k candidates per row instead of the whole vocabulary; last_logits() then
  // gives that step's full logits [batch, n_vocab()] for a row the candidates cannot decide.
  virtual int max_top_k() const { return 0; }  // 0: not offered
  virtual void forward_top_k(const int32_t* tokens, int batch, int n_tokens, int n_vocab, int k, TopTokens& top);
  virtual void last_logits(std::vector<float>& logits);
};

// What the loop needs from a tokenizer: each sample's tokens as printable text.
class TokenText {
 public:
  virtual ~TokenText() = default;
  virtual void start(int n_samples) = 0;
  // Text that the token completes: whole UTF-8 characters only (bytes of a character
  // split across tokens are held back until it completes).
  virtual std::string push(int sample, int32_t id) = 0;
  virtual std::string finish(int sample) = 0;  // what is held back when the sample ends
};

// Cuts a sample's text at the first stop string. Text is released only once it cannot be
// the start of a stop string, so a stop string that spans tokens is never printed.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stop);
  // Appends text; returns what is now safe to print. Once a stop string is complete,
  // stopped() is true and the text before it is the last returned.
  std::string push(const std::string& text);
  std::string finish();  // the held-back rest, when the sample ends for another reason
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_;
  std::string held_;
  bool stopped_ = false;
};

enum class FinishReason { length, stop, eos };
const char* finish_reason_name(FinishReason reason);  // "length", "stop", "eos"

struct GenerateOptions {
  int n_predict = 128;  // new tokens per sample at most
  int num_samples = 1;  // continuations of the prompt, generated as one batch
  std::vector<std::string> stop;
  bool ignore_eos = false;  // <|endoftext|> is never sampled (its logit is -inf)
  int32_t eot = 50256;      // <|endoftext|>: ends a sample; starts an empty prompt
  int n_vocab = 0;          // ids the sampler may choose: the model's (0) or fewer
  SamplerParams sampler;
  uint64_t seed = 0;
};

struct GeneratedSample {
  std::vector<int32_t> tokens;  // every token sampled, except the <|endoftext|> that ended it
  std::string text;             // their text, cut before a stop string
  FinishReason finish_reason = FinishReason::length;
};

struct GenerateStats {
  int prompt_tokens = 0;       // per sample
  int decode_steps = 0;        // forward steps of one token per sample
  double prefill_seconds = 0;  // the prompt's forward pass
  double first_token_seconds = 0;  // start to the first sampled token (prefill + sampling)
  double decode_seconds = 0;   // first token to the end
};

struct GenerateResult {
  std::vector<int32_t> prompt_tokens;  // as run: [<|endoftext|>] for an empty prompt
  std::vector<GeneratedSample> samples;
  bool context_full = false;  // stopped at the end of the context before n_predict tokens
  GenerateStats stats;
};

// Throws gpt2::Error (with the token count and how far to shorten it) when a prompt of
// n_prompt tokens leaves no position of the context for a new token (an empty prompt
// counts as one token: <|endoftext|>).
void check_prompt_fits(int n_prompt, int n_ctx);

// Receives each piece of printable text of a sample as soon as it is final.
using OnText = std::function<void(int sample, const std::string& text)>;

// Throws gpt2::Error when the prompt leaves no room in the context for a new token.
GenerateResult generate(TokenModel& model, TokenText& text, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const OnText& on_text = nullptr);

}  // namespace gpt2
