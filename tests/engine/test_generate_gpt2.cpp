// The generation loop on the real model and tokenizer (engine/step_model.h): greedy
// output of the tiny synthetic model equals the independent reference's greedy
// continuation (tests/data/models/tiny-gpt2/expected.json), chunked prefill, the context
// end, seeded batch invariance, and UTF-8 characters split across tokens.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/gpt2.h"
#include "runtime/backend.h"
#include "engine/generate.h"
#include "engine/step_model.h"
#include "model/source.h"
#include "runtime/device.h"
#include "tokenizer/tokenizer.h"

using namespace gpt2;

namespace {

const std::string kTinyDir = std::string(GPT2_TEST_DATA) + "/models/tiny-gpt2";

nlohmann::json tiny_expected() {
  std::ifstream in(kTinyDir + "/expected.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

// A model for n_slots sequences, each step their decode rows plus a prefill chunk of max_tokens.
std::unique_ptr<Gpt2> cpu_model(const std::string& spec, int n_slots, int max_tokens) {
  BackendOptions options;
  options.device = Device::cpu;
  options.threads = 2;
  RunLimits limits;
  limits.max_sequences = n_slots;
  limits.max_logit_rows = n_slots;
  limits.max_rows = n_slots + max_tokens;
  return std::make_unique<Gpt2>(load_model(spec), make_backend(options), limits);
}

// Passes every call on, remembering the furthest position fed to the model; with TopK::hidden it
// hides the model's top-k, so every step copies all logits.
enum class TopK { offered, hidden };
class Recording : public StepModel {
 public:
  explicit Recording(StepModel& inner, TopK top_k = TopK::offered) : inner_(&inner), top_k_(top_k == TopK::offered) {}
  int n_vocab() const override { return inner_->n_vocab(); }
  int n_ctx() const override { return inner_->n_ctx(); }
  int max_rows() const override { return inner_->max_rows(); }
  int max_sequences() const override { return inner_->max_sequences(); }
  KvCache& kv() override { return inner_->kv(); }
  void forward(const Batch& batch) override {
    for (int32_t p : batch.positions) furthest = std::max(furthest, p + 1);
    inner_->forward(batch);
  }
  void logits(std::vector<float>& out) override { inner_->logits(out); }
  int max_top_k() const override { return top_k_ ? inner_->max_top_k() : 0; }
  void top_k(int n_cols, int k, TopTokens& top) override { inner_->top_k(n_cols, k, top); }

  int furthest = 0;  // positions fed: [0, furthest)

 private:
  StepModel* inner_;
  bool top_k_;
};

GenerateOptions greedy(int n_predict) {
  GenerateOptions o;
  o.n_predict = n_predict;
  o.sampler.greedy = true;
  return o;
}

// Plays back a fixed token sequence (then <|endoftext|>), whatever it is fed.
class Playback : public StepModel {
 public:
  explicit Playback(std::vector<int32_t> script) : script_(std::move(script)), kv_({}, 1, 1024) {}
  int n_vocab() const override { return 50257; }
  int n_ctx() const override { return 1024; }
  int max_rows() const override { return 1024; }
  int max_sequences() const override { return 1; }
  KvCache& kv() override { return kv_; }
  void forward(const Batch& batch) override {
    const int32_t next = step_ < script_.size() ? script_[step_] : 50256;
    ++step_;
    logits_.assign(static_cast<size_t>(batch.n_logit_rows()) * 50257, 0.0f);
    for (int b = 0; b < batch.n_logit_rows(); ++b) logits_[static_cast<size_t>(b) * 50257 + next] = 10.0f;
  }
  void logits(std::vector<float>& out) override { out = logits_; }

 private:
  std::vector<int32_t> script_;
  size_t step_ = 0;
  KvCache kv_;
  std::vector<float> logits_;
};

bool valid_utf8(const std::string& s) { return to_valid_utf8(s) == s; }

}  // namespace

TEST_CASE("generate gpt2: greedy output equals the reference's greedy continuation", "[generate][gpt2]") {
  const nlohmann::json expected = tiny_expected();
  const std::vector<int32_t> prompt = expected.at("prompt").get<std::vector<int32_t>>();
  const std::vector<int32_t> reference = expected.at("greedy").get<std::vector<int32_t>>();
  const Tokenizer tokenizer = Tokenizer::from_dir(kTinyDir);
  REQUIRE(tokenizer.encode(expected.at("prompt_text").get<std::string>()) == prompt);

  // One prefill step, and the same prompt prefilled in chunks of 3 tokens.
  for (int max_tokens : {static_cast<int>(prompt.size()), 3}) {
    auto model = cpu_model(kTinyDir, 1, max_tokens);
    Gpt2StepModel gpt2(*model, 1);
    Recording source(gpt2);
    TokenizerText text(tokenizer);
    std::string streamed;
    GenerateOptions o = greedy(static_cast<int>(reference.size()));
    o.prefill_chunk = max_tokens;
    const GenerateResult r = generate(source, text, prompt, o, [&](int, const std::string& piece) { streamed += piece; });
    INFO("prefill chunk " << max_tokens);
    CHECK(r.samples[0].tokens == reference);
    CHECK(r.samples[0].finish_reason == FinishReason::length);
    CHECK(r.samples[0].text == to_valid_utf8(tokenizer.decode(reference)));
    CHECK(streamed == r.samples[0].text);
    CHECK(source.furthest == static_cast<int>(prompt.size() + reference.size()) - 1);
  }
}

TEST_CASE("generate gpt2: seeded samples are the same alone and in a batch", "[generate][gpt2]") {
  const std::vector<int32_t> prompt = tiny_expected().at("prompt").get<std::vector<int32_t>>();
  const Tokenizer tokenizer = Tokenizer::builtin();
  GenerateOptions o;
  o.n_predict = 12;
  o.seed = 2024;
  o.sampler.temperature = 1.5f;  // the tiny model is nearly uniform: keep many candidates
  o.sampler.top_k = 100;
  o.sampler.min_p = 0.0f;
  auto run = [&](int n_samples) {
    auto model = cpu_model(kTinyDir, n_samples, static_cast<int>(prompt.size()));
    Gpt2StepModel source(*model, n_samples);
    TokenizerText text(tokenizer);
    GenerateOptions batch = o;
    batch.num_samples = n_samples;
    return generate(source, text, prompt, batch);
  };
  const GenerateResult one = run(1);
  const GenerateResult three = run(3);
  const GenerateResult again = run(3);
  REQUIRE(three.samples.size() == 3);
  CHECK(three.samples[0].tokens == one.samples[0].tokens);
  for (int b = 0; b < 3; ++b) CHECK(again.samples[b].tokens == three.samples[b].tokens);
  CHECK(three.samples[1].tokens != three.samples[0].tokens);
  CHECK(three.samples[0].tokens.size() == 12);
}

TEST_CASE("generate gpt2: generation stops at the end of the context", "[generate][gpt2]") {
  auto model = cpu_model(kTinyDir, 1, 64);
  const int n_ctx = model->config().n_ctx;  // 256
  const Tokenizer tokenizer = Tokenizer::builtin();
  std::vector<int32_t> prompt;
  for (int i = 0; i < n_ctx - 5; ++i) prompt.push_back(static_cast<int32_t>(1000 + i));
  Gpt2StepModel gpt2(*model, 1);
  Recording source(gpt2);
  TokenizerText text(tokenizer);
  GenerateOptions o = greedy(20);
  o.prefill_chunk = 64;
  const GenerateResult r = generate(source, text, prompt, o);
  CHECK(r.samples[0].tokens.size() == 5);
  CHECK(r.samples[0].finish_reason == FinishReason::length);
  CHECK(r.context_full);
  CHECK(source.furthest == n_ctx - 1);  // the token at position n_ctx - 1 was sampled, never fed

  prompt.resize(static_cast<size_t>(n_ctx), 1000);
  CHECK_THROWS_WITH(generate(source, text, prompt, greedy(20)),
                    Catch::Contains("prompt is 256 tokens") && Catch::Contains("255 tokens or fewer"));
}

TEST_CASE("generate gpt2: an emoji split across tokens streams intact", "[generate][gpt2]") {
  const Tokenizer tokenizer = Tokenizer::builtin();
  const std::string emoji = "\xF0\x9F\x98\x80";  // U+1F600, four bytes
  const std::vector<int32_t> ids = tokenizer.encode(" " + emoji + " ok");
  // GPT-2's vocabulary has no token for the whole character: it arrives in pieces.
  int pieces_with_partial_bytes = 0;
  for (int32_t id : ids) pieces_with_partial_bytes += valid_utf8(tokenizer.token_bytes(id)) ? 0 : 1;
  REQUIRE(pieces_with_partial_bytes >= 2);

  Playback model(ids);
  TokenizerText text(tokenizer);
  std::vector<std::string> streamed;
  const GenerateResult r = generate(model, text, {464}, greedy(20),
                                    [&](int, const std::string& p) { streamed.push_back(p); });
  CHECK(r.samples[0].finish_reason == FinishReason::eos);
  CHECK(r.samples[0].tokens == ids);
  CHECK(r.samples[0].text == " " + emoji + " ok");
  std::string joined;
  for (const std::string& p : streamed) {
    CHECK(valid_utf8(p));  // never half a character
    joined += p;
  }
  CHECK(joined == r.samples[0].text);

  SECTION("a stop string made of a split character") {
    GenerateOptions o = greedy(20);
    o.stop = {emoji};
    Playback again(ids);
    const GenerateResult s = generate(again, text, {464}, o);
    CHECK(s.samples[0].finish_reason == FinishReason::stop);
    CHECK(s.samples[0].text == " ");
  }
  SECTION("a character cut off by the end of the sample becomes U+FFFD") {
    std::vector<int32_t> cut;
    for (int32_t id : ids) {
      if (!valid_utf8(tokenizer.token_bytes(id))) {
        cut.push_back(id);
        break;
      }
      cut.push_back(id);
    }
    Playback partial(cut);
    const GenerateResult s = generate(partial, text, {464}, greedy(20));
    CHECK(s.samples[0].finish_reason == FinishReason::eos);
    CHECK(valid_utf8(s.samples[0].text));
    CHECK(s.samples[0].text.find("\xEF\xBF\xBD") != std::string::npos);
  }
}

TEST_CASE("generate gpt2: sampling from the backend's top-k equals sampling from all logits", "[generate][gpt2]") {
  const std::vector<int32_t> prompt = tiny_expected().at("prompt").get<std::vector<int32_t>>();
  const Tokenizer tokenizer = Tokenizer::builtin();
  auto model = cpu_model(kTinyDir, 3, static_cast<int>(prompt.size()));
  Gpt2StepModel fast(*model, 3);
  Recording slow(fast, TopK::hidden);
  REQUIRE(fast.max_top_k() == Backend::kMaxTopK);
  std::vector<GenerateOptions> cases(5);
  cases[1].sampler.greedy = true;  // greedy: the top 2
  cases[2].sampler.temperature = 1.5f;  // a flat distribution, penalties and a banned eos
  cases[2].sampler.repeat_penalty = 1.3f;
  cases[2].sampler.frequency_penalty = 0.5f;
  cases[2].ignore_eos = true;
  cases[3].sampler.top_k = 200;
  cases[3].sampler.min_p = 0.0f;
  cases[3].n_vocab = 400;  // fewer ids than the model's
  cases[4].sampler.top_k = 0;  // needs every logit: the top-k path is not taken
  for (size_t c = 0; c < cases.size(); ++c) {
    GenerateOptions o = cases[c];
    o.n_predict = 10;
    o.num_samples = 3;
    o.seed = 77 + c;
    TokenizerText text_fast(tokenizer), text_slow(tokenizer);
    const GenerateResult a = generate(fast, text_fast, prompt, o);
    const GenerateResult b = generate(slow, text_slow, prompt, o);
    for (int s = 0; s < 3; ++s) {
      INFO("case " << c << " sample " << s);
      CHECK(a.samples[s].tokens == b.samples[s].tokens);
      CHECK(a.samples[s].tokens.size() >= (o.ignore_eos ? 10u : 1u));
    }
  }
}

TEST_CASE("generate gpt2: random:gpt2 runs end to end", "[generate][gpt2]") {
  // Real GPT-2 shapes (12 layers, n_embd 768, 50257 tokens) with seeded random weights.
  auto model = cpu_model("random:gpt2", 1, 8);
  const Tokenizer tokenizer = Tokenizer::builtin();
  Gpt2StepModel gpt2(*model, 1);
  Recording source(gpt2);
  TokenizerText text(tokenizer);
  const std::vector<int32_t> prompt = tokenizer.encode("Hello, my name is");
  GenerateOptions o = greedy(2);
  o.ignore_eos = true;
  const GenerateResult r = generate(source, text, prompt, o);
  CHECK(r.samples[0].tokens.size() == 2);
  CHECK(r.samples[0].text == to_valid_utf8(tokenizer.decode(r.samples[0].tokens)));
  CHECK(source.furthest == static_cast<int>(prompt.size()) + 1);
  CHECK(r.stats.decode_tokens == 1);
}
