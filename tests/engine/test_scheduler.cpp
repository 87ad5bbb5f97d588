// The scheduler (engine/scheduler.h) on the real tiny model and on a scripted one: requests run
// together give exactly what each gives alone; churn (random lengths, limits, stop strings,
// cancellations) through few slots finishes every request exactly once and leaks no slot;
// chunked prefill never stalls the sequences already decoding; the queue bound and bad requests
// are clear errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/scheduler.h"
#include "engine/step_model.h"
#include "model/gpt2.h"
#include "model/source.h"
#include "runtime/device.h"
#include "tokenizer/tokenizer.h"

using namespace gpt2;

namespace {

const std::string kTinyDir = std::string(GPT2_TEST_DATA) + "/models/tiny-gpt2";

// Steps of n_slots sequences: their decode rows and one prefill chunk (all of whose rows may
// bring logits).
std::unique_ptr<Gpt2> tiny_model(int n_slots, int chunk) {
  BackendOptions options;
  options.device = Device::cpu;
  options.threads = 2;
  RunLimits limits;
  limits.max_sequences = n_slots;
  limits.max_logit_rows = n_slots + chunk;
  limits.max_rows = n_slots + chunk;
  return std::make_unique<Gpt2>(load_model(kTinyDir), make_backend(options), limits);
}

struct Spec {
  std::vector<int32_t> prompt;
  GenerationParams params;
};

// Random requests: prompts of 1..60 tokens, limits of 1..24, greedy or seeded sampling, some
// with stop strings, some ignoring <|endoftext|>.
std::vector<Spec> random_specs(int n, uint32_t seed, const Tokenizer& tokenizer) {
  std::mt19937 rng(seed);
  std::vector<Spec> specs(static_cast<size_t>(n));
  for (Spec& s : specs) {
    const int len = std::uniform_int_distribution<int>(1, 60)(rng);
    for (int i = 0; i < len; ++i) s.prompt.push_back(std::uniform_int_distribution<int32_t>(0, 50255)(rng));
    s.params.n_predict = std::uniform_int_distribution<int>(1, 24)(rng);
    s.params.seed = rng();
    s.params.ignore_eos = rng() % 2 == 0;
    if (rng() % 3 == 0) {
      s.params.sampler.greedy = true;
    } else {
      s.params.sampler.temperature = 1.3f;
      s.params.sampler.top_k = 60;
      s.params.sampler.min_p = 0.0f;
    }
    // A stop string that is the text of a common short token: some requests stop early.
    if (rng() % 4 == 0) s.params.stop = {tokenizer.token_bytes(static_cast<int32_t>(rng() % 256))};
  }
  return specs;
}

struct Outcome {
  int done_calls = 0;
  Completion completion;
};

// Runs the specs through a scheduler of n_slots slots; `cancel_at` maps a step number to the
// request (by index) cancelled before that step.
std::vector<Outcome> run_specs(Gpt2& model, int n_slots, const std::vector<Spec>& specs, const Tokenizer& tokenizer,
                               const std::map<int, size_t>& cancel_at = {}, int* free_after = nullptr) {
  Gpt2StepModel step_model(model, n_slots);
  TokenizerText text(tokenizer);
  SchedulerOptions so;
  so.max_queue = static_cast<int>(specs.size());
  so.prefill_chunk = 16;
  Scheduler scheduler(step_model, text, so);
  std::vector<Outcome> out(specs.size());
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < specs.size(); ++i) {
    Request r;
    r.prompt = specs[i].prompt;
    r.params = specs[i].params;
    r.on_text = [&out, i](const std::string& piece) { out[i].completion.text += piece; };
    r.on_done = [&out, i](const Completion& c) {
      ++out[i].done_calls;
      const std::string streamed = out[i].completion.text;
      out[i].completion = c;
      CHECK(streamed == c.text);  // what streamed is what the completion says
    };
    ids.push_back(scheduler.submit(std::move(r)));
  }
  for (int step = 0;; ++step) {
    auto it = cancel_at.find(step);
    if (it != cancel_at.end()) scheduler.cancel(ids[it->second]);
    if (!scheduler.step()) break;
    REQUIRE(step < 100000);  // bounded
  }
  CHECK(scheduler.idle());
  if (free_after) *free_after = step_model.kv().free_slots();
  return out;
}

}  // namespace

TEST_CASE("scheduler: requests run together give exactly what each gives alone", "[scheduler]") {
  const Tokenizer tokenizer = Tokenizer::builtin();
  const std::vector<Spec> specs = random_specs(24, 7, tokenizer);
  auto together_model = tiny_model(8, 16);
  int free_slots = -1;
  const std::vector<Outcome> together = run_specs(*together_model, 8, specs, tokenizer, {}, &free_slots);
  CHECK(free_slots == 8);
  auto alone_model = tiny_model(1, 16);
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::vector<Outcome> alone = run_specs(*alone_model, 1, {specs[i]}, tokenizer);
    INFO("request " << i);
    REQUIRE(together[i].done_calls == 1);
    CHECK(together[i].completion.tokens == alone[0].completion.tokens);
    CHECK(together[i].completion.text == alone[0].completion.text);
    CHECK(together[i].completion.finish_reason == alone[0].completion.finish_reason);
  }
}

TEST_CASE("scheduler: 200 requests with cancellations through 8 slots", "[scheduler]") {
  const Tokenizer tokenizer = Tokenizer::builtin();
  const std::vector<Spec> specs = random_specs(200, 11, tokenizer);
  std::map<int, size_t> cancel_at;
  std::mt19937 rng(5);
  std::set<size_t> cancelled;
  for (int c = 0; c < 25; ++c) {
    const size_t victim = rng() % specs.size();
    cancel_at[static_cast<int>(rng() % 400)] = victim;
  }
  for (const auto& [step, victim] : cancel_at) cancelled.insert(victim);
  auto model = tiny_model(8, 16);
  int free_slots = -1;
  const std::vector<Outcome> out = run_specs(*model, 8, specs, tokenizer, cancel_at, &free_slots);
  CHECK(free_slots == 8);  // no slot leaked

  auto alone_model = tiny_model(1, 16);
  int n_cancelled = 0, n_stop = 0, n_eos = 0, n_length = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    INFO("request " << i);
    REQUIRE(out[i].done_calls == 1);  // finished or cancelled exactly once
    const Completion& c = out[i].completion;
    const std::vector<Outcome> alone = run_specs(*alone_model, 1, {specs[i]}, tokenizer);
    const Completion& a = alone[0].completion;
    if (c.finish_reason == FinishReason::cancelled) {
      ++n_cancelled;
      CHECK(cancelled.count(i) == 1);
      // What it produced before the cancellation is the start of what it produces alone.
      REQUIRE(c.tokens.size() <= a.tokens.size());
      CHECK(std::equal(c.tokens.begin(), c.tokens.end(), a.tokens.begin()));
      continue;
    }
    CHECK(c.tokens == a.tokens);
    CHECK(c.text == a.text);
    CHECK(c.finish_reason == a.finish_reason);
    n_stop += c.finish_reason == FinishReason::stop;
    n_eos += c.finish_reason == FinishReason::eos;
    n_length += c.finish_reason == FinishReason::length;
  }
  INFO("cancelled " << n_cancelled << ", stop " << n_stop << ", eos " << n_eos << ", length " << n_length);
  CHECK(n_cancelled > 0);  // the churn exercised every ending
  CHECK(n_stop > 0);
  CHECK(n_length > 0);
}

namespace {

// A scripted model (next token = last + 1) that records each step's sequences.
class Counting : public StepModel {
 public:
  explicit Counting(int slots) : kv_({}, slots, 512) {}
  int n_vocab() const override { return 1000; }
  int n_ctx() const override { return 512; }
  int max_rows() const override { return 40; }
  int max_sequences() const override { return kv_.n_slots(); }
  KvCache& kv() override { return kv_; }
  void forward(const Batch& batch) override {
    steps.push_back(batch);
    logits_.assign(static_cast<size_t>(batch.n_logit_rows()) * 1000, 0.0f);
    for (int i = 0; i < batch.n_logit_rows(); ++i)
      logits_[static_cast<size_t>(i) * 1000 + (batch.tokens[batch.logit_rows[i]] + 1) % 999] = 5.0f;
    for (int s = 0; s < batch.sequences(); ++s) kv_.set_length(batch.seq_slot[s], batch.seq_pos[s] + batch.seq_tokens(s));
  }
  void logits(std::vector<float>& out) override { out = logits_; }
  std::vector<Batch> steps;

 private:
  KvCache kv_;
  std::vector<float> logits_;
};

class Digits : public TokenText {
  struct Stream : TokenStream {
    std::string push(int32_t id) override { return std::to_string(id) + ","; }
    std::string finish() override { return ""; }
  };

 public:
  std::unique_ptr<TokenStream> stream() const override { return std::make_unique<Stream>(); }
};

Request greedy_request(std::vector<int32_t> prompt, int n) {
  Request r;
  r.prompt = std::move(prompt);
  r.params.n_predict = n;
  r.params.sampler.greedy = true;
  return r;
}

}  // namespace

TEST_CASE("scheduler: a long prompt is prefilled in chunks while the others keep decoding", "[scheduler]") {
  Counting model(4);
  Digits text;
  SchedulerOptions so;
  so.prefill_chunk = 16;
  so.eot = 999;
  Scheduler scheduler(model, text, so);
  scheduler.submit(greedy_request({1, 2, 3}, 30));
  REQUIRE(scheduler.step());  // the short prompt, then its first token
  const std::vector<int32_t> long_prompt(100, 7);
  scheduler.submit(greedy_request(long_prompt, 3));
  const size_t before = model.steps.size();
  scheduler.run_until_idle();
  // While the 100-token prompt went in 16-token chunks, every step also decoded the short one.
  int chunks = 0;
  for (size_t i = before; i < model.steps.size(); ++i) {
    const Batch& b = model.steps[i];
    CHECK(b.rows() <= model.max_rows());
    if (b.max_seq_tokens > 1) {
      ++chunks;
      CHECK(b.max_seq_tokens <= 16);
      CHECK(b.sequences() == 2);
      CHECK(b.seq_tokens(0) == 1);  // the decode row comes first
    }
  }
  CHECK(chunks == 7);  // ceil(100 / 16)
  CHECK(model.kv().free_slots() == 4);
}

TEST_CASE("scheduler: more requests than slots wait; past the queue bound, submit refuses", "[scheduler]") {
  Counting model(2);
  Digits text;
  SchedulerOptions so;
  so.max_queue = 3;
  so.eot = 999;
  Scheduler scheduler(model, text, so);
  std::vector<Completion> done;
  for (int i = 0; i < 3; ++i) {
    Request r = greedy_request({static_cast<int32_t>(10 * i)}, 4);
    r.on_done = [&done](const Completion& c) { done.push_back(c); };
    scheduler.submit(std::move(r));
  }
  CHECK(scheduler.waiting() == 3);
  CHECK_THROWS_AS(scheduler.submit(greedy_request({5}, 4)), QueueFull);
  scheduler.step();
  CHECK(scheduler.running() == 2);  // two slots: the third waits, it is not lost
  CHECK(scheduler.waiting() == 1);
  scheduler.submit(greedy_request({5}, 4));  // room in the queue again
  scheduler.run_until_idle();
  REQUIRE(done.size() == 3);
  for (const Completion& c : done) CHECK(c.tokens.size() == 4);
  CHECK(done[0].tokens == std::vector<int32_t>{1, 2, 3, 4});

  // Bad requests: clear errors before anything runs.
  CHECK_THROWS_WITH(scheduler.submit(greedy_request(std::vector<int32_t>(512, 1), 4)),
                    Catch::Contains("prompt is 512 tokens") && Catch::Contains("511 tokens or fewer"));
  CHECK_THROWS_AS(scheduler.submit(greedy_request({1}, 0)), UsageError);
  CHECK_THROWS_WITH(scheduler.submit(greedy_request({1000}, 1)), Catch::Contains("outside the model's vocabulary"));
  Request stop = greedy_request({1}, 2);
  stop.params.stop = {""};
  CHECK_THROWS_AS(scheduler.submit(std::move(stop)), UsageError);
  scheduler.cancel(12345);  // unknown: ignored
  CHECK_FALSE(scheduler.step());
}

TEST_CASE("scheduler: a cancelled request frees its slot by the next step", "[scheduler]") {
  Counting model(1);
  Digits text;
  SchedulerOptions so;
  so.eot = 999;
  Scheduler scheduler(model, text, so);
  std::vector<FinishReason> reasons;
  auto track = [&reasons](Request r) {
    r.on_done = [&reasons](const Completion& c) { reasons.push_back(c.finish_reason); };
    return r;
  };
  const uint64_t first = scheduler.submit(track(greedy_request({1}, 100)));
  const uint64_t waiting = scheduler.submit(track(greedy_request({2}, 3)));
  scheduler.submit(track(greedy_request({3}, 3)));
  scheduler.step();
  scheduler.step();
  CHECK(model.kv().free_slots() == 0);
  scheduler.cancel(waiting);  // never gets a slot
  scheduler.cancel(first);    // holds the only slot
  scheduler.step();
  REQUIRE(reasons.size() == 2);
  CHECK(reasons[0] == FinishReason::cancelled);
  CHECK(reasons[1] == FinishReason::cancelled);
  CHECK(scheduler.running() == 1);  // the third took the freed slot in the same step
  scheduler.run_until_idle();
  REQUIRE(reasons.size() == 3);
  CHECK(reasons[2] == FinishReason::length);
  CHECK(model.kv().free_slots() == 1);
}

TEST_CASE("scheduler: prompt and token log-probabilities are score's", "[scheduler]") {
  const Tokenizer tokenizer = Tokenizer::builtin();
  const std::vector<int32_t> prompt = tokenizer.encode("The quick brown fox jumps over the lazy dog.");
  const int P = static_cast<int>(prompt.size());
  auto model = tiny_model(2, 4);  // chunks of 4 rows: the prompt's logits come over several steps
  const int V = model->config().n_vocab;

  // The reference: one forward of prompt + the greedy continuation, every row's logits.
  Gpt2StepModel step_model(*model, 2);
  TokenizerText text(tokenizer);
  SchedulerOptions so;
  so.prefill_chunk = 4;
  Scheduler scheduler(step_model, text, so);
  Completion scored, generated;
  Request echo;
  echo.prompt = prompt;
  echo.params.n_predict = 0;  // the prompt alone
  echo.params.prompt_logprobs = true;
  echo.params.logprobs = 3;
  echo.on_done = [&](const Completion& c) { scored = c; };
  scheduler.submit(std::move(echo));
  Request gen;
  gen.prompt = prompt;
  gen.params.n_predict = 5;
  gen.params.sampler.greedy = true;
  gen.params.ignore_eos = true;
  gen.params.logprobs = 2;
  gen.on_done = [&](const Completion& c) { generated = c; };
  scheduler.submit(std::move(gen));
  scheduler.run_until_idle();
  REQUIRE(scored.prompt_logprobs.size() == static_cast<size_t>(P));
  CHECK(scored.tokens.empty());
  CHECK(scored.finish_reason == FinishReason::length);
  REQUIRE(generated.token_logprobs.size() == 5);

  std::vector<int32_t> all = prompt;
  all.insert(all.end(), generated.tokens.begin(), generated.tokens.end());
  KvCache kv = model->make_kv_cache(1);
  const int slot = kv.acquire();
  std::vector<float> logits;
  for (int start = 0; start < static_cast<int>(all.size()); start += 4) {  // within the model's rows per step
    const int n = std::min(4, static_cast<int>(all.size()) - start);
    Batch b;
    b.add(slot, start, all.data() + start, n, Logits::all);
    Outputs out;
    model->forward(b, kv, out);
    std::vector<float> part(static_cast<size_t>(out.logits.numel()));
    model->backend().read(part.data(), out.logits);
    logits.insert(logits.end(), part.begin(), part.end());
  }
  auto logprob = [&](int row, int32_t id) {
    const float* l = logits.data() + static_cast<size_t>(row) * V;
    const double m = *std::max_element(l, l + V);
    double sum = 0;
    for (int j = 0; j < V; ++j) sum += std::exp(l[j] - m);
    return l[id] - m - std::log(sum);
  };
  CHECK(std::isnan(scored.prompt_logprobs[0].logprob));
  for (int t = 1; t < P; ++t) {
    INFO("prompt token " << t);
    CHECK(scored.prompt_logprobs[static_cast<size_t>(t)].id == prompt[static_cast<size_t>(t)]);
    CHECK(scored.prompt_logprobs[static_cast<size_t>(t)].logprob == Approx(logprob(t - 1, prompt[static_cast<size_t>(t)])).margin(1e-9));
    REQUIRE(scored.prompt_logprobs[static_cast<size_t>(t)].top.size() == 3);
    CHECK(scored.prompt_logprobs[static_cast<size_t>(t)].top[0].second >= scored.prompt_logprobs[static_cast<size_t>(t)].top[2].second);
  }
  for (int i = 0; i < 5; ++i) {
    INFO("generated token " << i);
    const TokenLogprob& lp = generated.token_logprobs[static_cast<size_t>(i)];
    CHECK(lp.id == generated.tokens[static_cast<size_t>(i)]);
    CHECK(lp.logprob == Approx(logprob(P - 1 + i, lp.id)).margin(1e-9));
    REQUIRE(lp.top.size() == 2);
    CHECK(lp.top[0].first == lp.id);  // greedy: the chosen token is the most likely
  }
}
