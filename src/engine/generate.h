// generate(): one prompt, K samples, through the scheduler (engine/scheduler.h) — the loop of
// `gpt2 generate`. Each sample is its own sequence in its own KV slot, drawing from stream
// `sample` of the seed, so sample b is the same text whether it is generated alone or with
// others; samples stream their text as it is generated (on_text) and report when they end
// (on_done), in whatever order they finish.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/scheduler.h"
#include "engine/step_model.h"

namespace gpt2 {

struct GenerateOptions {
  int n_predict = 128;  // new tokens per sample at most
  int num_samples = 1;  // continuations of the prompt, generated together
  std::vector<std::string> stop;
  bool ignore_eos = false;  // <|endoftext|> is never sampled (its logit is -inf)
  int32_t eot = 50256;      // <|endoftext|>: ends a sample; starts an empty prompt
  int n_vocab = 0;          // ids the sampler may choose: the model's (0) or fewer
  SamplerParams sampler;
  uint64_t seed = 0;
  int prefill_chunk = 256;  // prompt tokens per step
};

struct GeneratedSample {
  std::vector<int32_t> tokens;  // every token sampled, except the <|endoftext|> that ended it
  std::string text;             // their text, cut before a stop string
  FinishReason finish_reason = FinishReason::length;
};

struct GenerateStats {
  int prompt_tokens = 0;           // per sample
  int decode_tokens = 0;           // tokens sampled after each sample's first, over all samples
  double first_token_seconds = 0;  // start to the first sampled token (prefill + sampling)
  double decode_seconds = 0;       // first token to the end
};

struct GenerateResult {
  std::vector<int32_t> prompt_tokens;  // as run: [<|endoftext|>] for an empty prompt
  std::vector<GeneratedSample> samples;
  bool context_full = false;  // a sample stopped at the end of the context before n_predict tokens
  GenerateStats stats;
};

// Receives each piece of printable text of a sample as soon as it is final, and each sample
// when it ends.
using OnText = std::function<void(int sample, const std::string& text)>;
using OnSample = std::function<void(int sample, const GeneratedSample& done)>;

// Throws gpt2::Error when the prompt leaves no room in the context for a new token, and
// gpt2::UsageError for invalid options.
GenerateResult generate(StepModel& model, const TokenText& text, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const OnText& on_text = nullptr,
                        const OnSample& on_sample = nullptr);

}  // namespace gpt2
