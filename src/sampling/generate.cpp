// The generation loop (see generate.h for the data flow).
#include "sampling/generate.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <utility>

#include "common/error.h"

namespace gpt2 {

StopMatcher::StopMatcher(std::vector<std::string> stop) : stop_(std::move(stop)) {
  for (const std::string& s : stop_) {
    if (s.empty()) throw UsageError("--stop must not be empty");
  }
}

std::string StopMatcher::push(const std::string& text) {
  if (stopped_) return {};
  held_ += text;
  // The earliest complete stop string wins. A match can only start inside the held text:
  // everything released before could not begin one.
  size_t cut = std::string::npos;
  for (const std::string& s : stop_) cut = std::min(cut, held_.find(s));
  if (cut != std::string::npos) {
    std::string out = held_.substr(0, cut);
    held_.clear();
    stopped_ = true;
    return out;
  }
  // Hold back the longest end of the text that is the beginning of some stop string.
  size_t hold = 0;
  for (const std::string& s : stop_) {
    for (size_t k = std::min(s.size() - 1, held_.size()); k > hold; --k) {
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return out;
}

std::string StopMatcher::finish() {
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

void TokenModel::forward_top_k(const int32_t*, int, int, int, int, TopTokens&) {
  throw Error("internal: this model does not offer forward_top_k");
}

void TokenModel::last_logits(std::vector<float>&) { throw Error("internal: this model does not offer last_logits"); }

void check_prompt_fits(int n_prompt, int n_ctx) {
  if (n_prompt < n_ctx) return;
  throw Error("the prompt is " + std::to_string(n_prompt) + " tokens but the model's context is " +
              std::to_string(n_ctx) + " tokens with at least one needed for generation: shorten the prompt to " +
              std::to_string(n_ctx - 1) + " tokens or fewer (drop at least " + std::to_string(n_prompt - n_ctx + 1) +
              ")");
}

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::length: return "length";
    case FinishReason::stop: return "stop";
    case FinishReason::eos: return "eos";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The state of one sample while it is generated.
struct Running {
  std::vector<int32_t> history;  // prompt + sampled tokens (the penalty window's source)
  StopMatcher stop;
  bool done = false;
};

}  // namespace

GenerateResult generate(TokenModel& model, TokenText& text, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const OnText& on_text) {
  if (options.n_predict < 1) throw UsageError("-n must be 1 or more");
  if (options.num_samples < 1) throw UsageError("--num-samples must be 1 or more");
  const auto start = Clock::now();

  GenerateResult result;
  // GPT-2 was trained on documents separated by <|endoftext|>: an empty prompt starts
  // a new document, as the GPT-2 samples were generated.
  result.prompt_tokens = prompt.empty() ? std::vector<int32_t>{options.eot} : prompt;
  const int n_prompt = static_cast<int>(result.prompt_tokens.size());
  const int n_ctx = model.n_ctx();
  check_prompt_fits(n_prompt, n_ctx);
  const int room = n_ctx - n_prompt;  // new tokens that fit in the context
  const int budget = std::min(options.n_predict, room);
  const bool context_limits = options.n_predict > room;

  const int n_samples = options.num_samples;
  const int model_vocab = model.n_vocab();
  const int n_vocab = options.n_vocab > 0 ? std::min(options.n_vocab, model_vocab) : model_vocab;
  Sampler sampler(options.sampler, options.seed);
  text.start(n_samples);
  std::vector<Running> running;
  running.reserve(static_cast<size_t>(n_samples));
  for (int b = 0; b < n_samples; ++b) running.push_back(Running{result.prompt_tokens, StopMatcher(options.stop)});
  result.samples.resize(static_cast<size_t>(n_samples));

  // Prefill: the prompt as B identical rows.
  std::vector<int32_t> rows;
  rows.reserve(static_cast<size_t>(n_samples) * n_prompt);
  for (int b = 0; b < n_samples; ++b) rows.insert(rows.end(), result.prompt_tokens.begin(), result.prompt_tokens.end());
  // Each step either copies every logit (`logits`) or, when the model offers it and the sampler
  // can decide from fewer, each row's `m` most likely (`top`); a row they cannot decide exactly
  // (see Sampler::sample_top) then fetches the step's logits after all.
  std::vector<float> logits;
  bool have_logits = false;
  TopTokens top;
  const int32_t banned = options.ignore_eos && options.eot >= 0 && options.eot < n_vocab ? options.eot : -1;
  auto forward = [&](const int32_t* tokens, int n_tokens, size_t history_length) {
    const int m = sampler.top_needed(history_length, banned >= 0);
    if (m > 0 && m <= model.max_top_k() && m < n_vocab) {
      model.forward_top_k(tokens, n_samples, n_tokens, n_vocab, m, top);
      if (top.k != m || top.ids.size() != static_cast<size_t>(n_samples) * m ||
          top.logits.size() != top.ids.size() || top.invalid.size() != static_cast<size_t>(n_samples))
        throw Error("internal: the model returned a malformed top-" + std::to_string(m));
      have_logits = false;
      return;
    }
    top.k = 0;
    model.forward(tokens, n_samples, n_tokens, logits);
    if (logits.size() != static_cast<size_t>(n_samples) * model_vocab)
      throw Error("internal: the model returned " + std::to_string(logits.size()) + " logits for " +
                  std::to_string(n_samples) + " rows of " + std::to_string(model_vocab));
    have_logits = true;
  };
  auto next_token = [&](int b, const std::vector<int32_t>& history, int step) {
    if (top.k > 0 && !top.invalid[b]) {
      const size_t at = static_cast<size_t>(b) * top.k;
      const int32_t id = sampler.sample_top(top.ids.data() + at, top.logits.data() + at, top.k, n_vocab, history,
                                            banned, b, step);
      if (id >= 0) return id;
    }
    if (!have_logits) {
      model.last_logits(logits);
      if (logits.size() != static_cast<size_t>(n_samples) * model_vocab)
        throw Error("internal: the model returned " + std::to_string(logits.size()) + " logits");
      have_logits = true;
    }
    float* row = logits.data() + static_cast<size_t>(b) * model_vocab;
    if (banned >= 0) row[banned] = -std::numeric_limits<float>::infinity();
    return sampler.sample(row, n_vocab, history, b, step);
  };
  model.reset();
  forward(rows.data(), n_prompt, result.prompt_tokens.size());
  result.stats.prompt_tokens = n_prompt;
  result.stats.prefill_seconds = seconds_since(start);

  auto emit = [&](int b, const std::string& piece) {
    if (piece.empty()) return;
    result.samples[b].text += piece;
    if (on_text) on_text(b, piece);
  };
  auto finish = [&](int b, FinishReason reason) {
    Running& r = running[b];
    // Bytes held back as an incomplete character, then text held back as a possible stop string.
    if (reason != FinishReason::stop) emit(b, r.stop.push(text.finish(b)));
    if (!r.stop.stopped()) emit(b, r.stop.finish());
    // A stop string can also complete in those last bytes.
    result.samples[b].finish_reason = r.stop.stopped() ? FinishReason::stop : reason;
    r.done = true;
  };

  Clock::time_point first_token;
  std::vector<int32_t> next(static_cast<size_t>(n_samples));
  for (int step = 0;; ++step) {
    for (int b = 0; b < n_samples; ++b) {
      Running& r = running[b];
      if (r.done) continue;
      const int32_t id = next_token(b, r.history, step);
      if (id == options.eot && !options.ignore_eos) {
        finish(b, FinishReason::eos);
        continue;
      }
      r.history.push_back(id);
      GeneratedSample& sample = result.samples[b];
      sample.tokens.push_back(id);
      emit(b, r.stop.push(text.push(b, id)));
      if (r.stop.stopped()) {
        finish(b, FinishReason::stop);
      } else if (static_cast<int>(sample.tokens.size()) == budget) {
        finish(b, FinishReason::length);
      }
    }
    if (step == 0) {
      first_token = Clock::now();
      result.stats.first_token_seconds = std::chrono::duration<double>(first_token - start).count();
    }
    bool all_done = true;
    for (const Running& r : running) all_done = all_done && r.done;
    if (all_done) break;
    // Finished rows are fed their last token again; only equal-length rows can share a step.
    size_t longest = 0;  // the penalty window of the longest running history bounds them all
    for (int b = 0; b < n_samples; ++b) {
      next[b] = running[b].history.back();
      if (!running[b].done) longest = std::max(longest, running[b].history.size());
    }
    forward(next.data(), 1, longest);
    ++result.stats.decode_steps;
  }
  result.stats.decode_seconds = seconds_since(first_token);
  // Only a sample that ran out of room, not one that ended by eos or a stop string, was
  // cut by the context.
  for (const GeneratedSample& s : result.samples)
    result.context_full = result.context_full || (s.finish_reason == FinishReason::length && context_limits);
  return result;
}

}  // namespace gpt2
