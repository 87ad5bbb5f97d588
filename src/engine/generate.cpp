// generate() on the scheduler (see generate.h).
#include "engine/generate.h"

#include <algorithm>
#include <chrono>

#include "common/error.h"

namespace gpt2 {

GenerateResult generate(StepModel& model, const TokenText& text, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const OnText& on_text, const OnSample& on_sample) {
  if (options.n_predict < 1) throw UsageError("-n must be 1 or more");
  if (options.num_samples < 1) throw UsageError("--num-samples must be 1 or more");
  const auto start = std::chrono::steady_clock::now();

  GenerateResult result;
  // GPT-2 was trained on documents separated by <|endoftext|>: an empty prompt starts a new
  // document, as the GPT-2 samples were generated.
  result.prompt_tokens = prompt.empty() ? std::vector<int32_t>{options.eot} : prompt;
  check_prompt_fits(static_cast<int>(result.prompt_tokens.size()), model.n_ctx());
  result.samples.resize(static_cast<size_t>(options.num_samples));

  SchedulerOptions so;
  so.max_queue = options.num_samples;
  so.prefill_chunk = options.prefill_chunk;
  so.eot = options.eot;
  so.n_vocab = options.n_vocab;
  Scheduler scheduler(model, text, so);
  std::vector<Completion> done(static_cast<size_t>(options.num_samples));
  for (int b = 0; b < options.num_samples; ++b) {
    Request r;
    r.prompt = result.prompt_tokens;
    r.params.n_predict = options.n_predict;
    r.params.stop = options.stop;
    r.params.ignore_eos = options.ignore_eos;
    r.params.sampler = options.sampler;
    r.params.seed = options.seed;
    r.params.sample_index = b;
    if (on_text) r.on_text = [&on_text, b](const std::string& piece) { on_text(b, piece); };
    r.on_done = [&, b](const Completion& c) {
      done[static_cast<size_t>(b)] = c;
      GeneratedSample& s = result.samples[static_cast<size_t>(b)];
      s.tokens = c.tokens;
      s.text = c.text;
      s.finish_reason = c.finish_reason;
      if (on_sample) on_sample(b, s);
    };
    scheduler.submit(std::move(r));
  }
  scheduler.run_until_idle();
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  result.stats.prompt_tokens = static_cast<int>(result.prompt_tokens.size());
  double first = total;
  for (const Completion& c : done) {
    if (!c.token_s.empty()) first = std::min(first, c.token_s.front());
    result.stats.decode_tokens += std::max(0, static_cast<int>(c.tokens.size()) - 1);
    result.context_full = result.context_full || c.context_full;
  }
  result.stats.first_token_seconds = first;
  result.stats.decode_seconds = total - first;
  return result;
}

}  // namespace gpt2
