// The scheduler: many independent generation requests through one model, continuously batched.
//
// Each request has its own prompt, sampler settings, seed, stop strings and token limit. Every
// step() builds one Batch (runtime/batch.h) of every running sequence:
//   1. admit: waiting requests take free KV slots, oldest first (a request waits, never fails,
//      while every slot is busy; the queue itself is bounded: submit() refuses past max_queue);
//   2. decode rows first: each sequence that has a token to feed brings that one token at its
//      own position in its own slot;
//   3. prefill chunks with the rows left (at most prefill_chunk per sequence per step, oldest
//      first), so a long prompt is spread over several steps and never stalls the others;
//   4. one forward step; each sequence whose row produced logits samples its next token
//      (exactly from the row's top candidates when the sampler can decide from them:
//      Sampler::top_needed / sample_top), streams its text (UTF-8-safe, stop strings held back
//      until they cannot match), and finishes at <|endoftext|>, a stop string, its token limit,
//      or the end of the context; a finished or cancelled sequence frees its slot at once.
//
// Results do not depend on the company a sequence keeps: the CPU backend computes every row with
// the same operations whatever the batch, and the sampler's draw is a pure function of (seed,
// sample_index, step). A sequence never grows past n_ctx tokens: the last token sampled is the
// one that fills position n_ctx - 1, and it is not fed.
//
// Threads: submit(), cancel() and the counters are safe from any thread; step() runs on one
// thread at a time, and the callbacks run on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/step_model.h"
#include "sampling/sampler.h"

namespace gpt2 {

// Cuts a sequence's text at the first stop string. Text is released only once it cannot be the
// start of a stop string, so a stop string that spans tokens is never printed.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stop);
  // Appends text; returns what is now safe to print. Once a stop string is complete,
  // stopped() is true and the text before it is the last returned.
  std::string push(const std::string& text);
  std::string finish();  // the held-back rest, when the sequence ends for another reason
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_;
  std::string held_;
  bool stopped_ = false;
};

enum class FinishReason { length, stop, eos, cancelled };
const char* finish_reason_name(FinishReason reason);  // "length", "stop", "eos", "cancelled"

struct GenerationParams {
  int n_predict = 128;  // new tokens at most (0 only with prompt_logprobs: scoring the prompt)
  std::vector<std::string> stop;
  bool ignore_eos = false;  // <|endoftext|> is never sampled (its logit is -inf)
  SamplerParams sampler;
  uint64_t seed = 0;
  int sample_index = 0;  // which of the seed's draw streams (sample b of --num-samples)
  // Log-probabilities, as `gpt2 score` computes them: log-softmax of the model's raw logits
  // (before penalties and temperature), in double. logprobs >= 0: each sampled token's, with
  // the `logprobs` most likely alternatives (at most kMaxLogprobs); prompt_logprobs: each prompt
  // token's given the tokens before it (OpenAI's echo). Either makes the steps that need them
  // copy whole rows of logits.
  int logprobs = -1;
  bool prompt_logprobs = false;
};

constexpr int kMaxLogprobs = 20;

struct TokenLogprob {
  int32_t id = 0;
  double logprob = 0;  // NaN for the first prompt token (nothing before it to predict it)
  std::vector<std::pair<int32_t, double>> top;  // most likely first (common/order.h)
};

struct Completion {
  uint64_t id = 0;
  int prompt_tokens = 0;
  std::vector<int32_t> tokens;  // every token sampled, except the <|endoftext|> that ended it
  std::string text;             // their text, cut before a stop string
  FinishReason finish_reason = FinishReason::length;
  bool context_full = false;    // ended by the end of the context before n_predict tokens
  std::vector<TokenLogprob> prompt_logprobs;  // [prompt tokens] with prompt_logprobs
  std::vector<TokenLogprob> token_logprobs;   // [tokens] with logprobs >= 0
  // Seconds since submit(): when the sequence got its slot, and when each token was sampled.
  double admitted_s = 0;
  std::vector<double> token_s;
};

struct Request {
  std::vector<int32_t> prompt;  // at least one token (an empty prompt is [<|endoftext|>])
  GenerationParams params;
  std::function<void(const std::string& text)> on_text;  // printable text as soon as it is final
  std::function<void(const Completion& done)> on_done;   // exactly once per request
};

struct SchedulerOptions {
  int max_queue = 1024;     // requests waiting for a slot
  int prefill_chunk = 256;  // prompt tokens per sequence per step at most
  int32_t eot = 50256;      // <|endoftext|>
  int n_vocab = 0;          // ids the sampler may choose (the tokenizer's); 0: the model's
};

// submit() past max_queue waiting requests.
struct QueueFull : Error {
  using Error::Error;
};

class Scheduler {
 public:
  Scheduler(StepModel& model, const TokenText& text, const SchedulerOptions& options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request and returns its id. Throws QueueFull when max_queue requests wait,
  // gpt2::Error (check_prompt_fits) when the prompt leaves no room for a new token, and
  // gpt2::UsageError for invalid parameters.
  uint64_t submit(Request request);
  // Cancels a request, waiting or running: its slot is free and its on_done (cancelled) has
  // run by the end of the next step(). Unknown or finished ids are ignored.
  void cancel(uint64_t id);

  // One step (see the header comment). Returns false when there was nothing to do.
  bool step();
  void run_until_idle();

  int waiting() const;  // requests queued for a slot
  int running() const;  // sequences holding a slot
  bool idle() const { return waiting() == 0 && running() == 0; }

 private:
  struct Sequence;
  using Clock = std::chrono::steady_clock;

  void admit();
  void build_batch();
  void sample_all();
  void finish(Sequence& s, FinishReason reason);
  TokenLogprob logprob_of(const float* row, int32_t id, int top) const;
  void emit(Sequence& s, const std::string& text);

  StepModel& model_;
  const TokenText& text_;
  SchedulerOptions options_;
  int n_vocab_;  // ids the sampler chooses from

  mutable std::mutex mutex_;  // guards waiting_, cancelled_, next_id_, n_running_
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::set<uint64_t> cancelled_;
  uint64_t next_id_ = 1;
  int n_running_ = 0;

  std::vector<std::unique_ptr<Sequence>> running_;  // step thread only, admission order
  Batch batch_;
  // What a logit row is for: the sequence's next token (predicts < 0), or the log-probability of
  // its prompt token `predicts`.
  struct LogitRow {
    Sequence* seq;
    int predicts;
  };
  std::vector<Sequence*> seq_owner_;  // [S] the sequence of each batch sequence
  std::vector<LogitRow> logit_rows_;  // [R]
  std::vector<float> logits_;
  TopTokens top_;
};

// Throws gpt2::Error (with the token count and how far to shorten it) when a prompt of
// n_prompt tokens leaves no position of the context for a new token.
void check_prompt_fits(int n_prompt, int n_ctx);

}  // namespace gpt2
