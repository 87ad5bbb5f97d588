// The generation loop (engine/generate.h, on the scheduler) with a scripted model and scripted
// token texts: stop conditions, stop strings across tokens, the end of the context, batches,
// seeded reproducibility and batch invariance. test_generate_gpt2.cpp runs the same loop on the
// real model and tokenizer; test_scheduler.cpp the scheduler itself.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/generate.h"

using namespace gpt2;

namespace {

// A model whose next-token logits are a function of each sequence's tokens so far. It keeps
// every slot's tokens like a KV cache would, and checks that every step continues each slot
// exactly where it left off and never goes past the context.
class ScriptedModel : public StepModel {
 public:
  using Script = std::function<void(const std::vector<int32_t>& sequence, float* logits)>;
  ScriptedModel(int vocab, int ctx, Script script, int slots = 16)
      : vocab_(vocab), ctx_(ctx), script_(std::move(script)), kv_({}, slots, ctx), fed_(slots) {}

  int n_vocab() const override { return vocab_; }
  int n_ctx() const override { return ctx_; }
  int max_rows() const override { return 1024; }
  int max_sequences() const override { return kv_.n_slots(); }
  KvCache& kv() override { return kv_; }
  void forward(const Batch& batch) override {
    steps.push_back(batch.max_seq_tokens);
    logits_.assign(static_cast<size_t>(batch.n_logit_rows()) * vocab_, 0.0f);
    std::vector<int> row_seq(static_cast<size_t>(batch.rows()));
    for (int s = 0; s < batch.sequences(); ++s) {
      const int slot = batch.seq_slot[s], pos = batch.seq_pos[s];
      REQUIRE(kv_.in_use(slot));
      if (pos == 0) {  // a new sequence in this slot
        fed_[slot] = static_cast<int>(rows.size());
        rows.emplace_back();
      }
      std::vector<int32_t>& seq = rows[static_cast<size_t>(fed_[slot])];
      REQUIRE(static_cast<int>(seq.size()) == pos);  // continues where the slot left off
      for (int r = batch.seq_first_row[s]; r < batch.seq_first_row[s + 1]; ++r) {
        seq.push_back(batch.tokens[r]);
        row_seq[static_cast<size_t>(r)] = fed_[slot];
      }
      REQUIRE(static_cast<int>(seq.size()) <= ctx_);  // never past the context
      kv_.set_length(slot, static_cast<int>(seq.size()));
    }
    for (int i = 0; i < batch.n_logit_rows(); ++i) {
      const int r = batch.logit_rows[i];
      script_(rows[static_cast<size_t>(row_seq[static_cast<size_t>(r)])], logits_.data() + static_cast<size_t>(i) * vocab_);
    }
  }
  void logits(std::vector<float>& out) override { out = logits_; }

  std::vector<std::vector<int32_t>> rows;  // what each sequence was fed, in order of its start
  std::vector<int> steps;                  // new tokens of the longest sequence per forward call

 private:
  int vocab_, ctx_;
  Script script_;
  KvCache kv_;
  std::vector<int> fed_;  // slot -> its sequence in rows
  std::vector<float> logits_;
};

// Next token = last + 1 (mod vocab), by a wide margin.
ScriptedModel::Script successor(int vocab) {
  return [vocab](const std::vector<int32_t>& seq, float* logits) { logits[(seq.back() + 1) % vocab] = 10.0f; };
}

// Token i reads as its table entry ("t<i>" beyond the table).
class TableText : public TokenText {
 public:
  explicit TableText(std::vector<std::string> table) : table_(std::move(table)) {}
  std::unique_ptr<TokenStream> stream() const override { return std::make_unique<Stream>(&table_); }

 private:
  struct Stream : TokenStream {
    explicit Stream(const std::vector<std::string>* t) : table(t) {}
    std::string push(int32_t id) override {
      return static_cast<size_t>(id) < table->size() ? (*table)[id] : "t" + std::to_string(id);
    }
    std::string finish() override { return ""; }
    const std::vector<std::string>* table;
  };
  std::vector<std::string> table_;
};

GenerateOptions greedy_options(int n_predict, int32_t eot) {
  GenerateOptions o;
  o.n_predict = n_predict;
  o.eot = eot;
  o.sampler.greedy = true;
  return o;
}

const std::vector<std::string> kDigits = {"0", "1", "2", "3", "4", "5", "6", "7",
                                          "8", "9", "a", "b", "c", "d", "e", "f"};

}  // namespace

TEST_CASE("generate: greedy follows the model and stops after -n tokens", "[generate]") {
  ScriptedModel model(16, 64, successor(16));
  TableText text(kDigits);
  std::string streamed;
  const GenerateResult r = generate(model, text, {3}, greedy_options(4, 15),
                                    [&](int sample, const std::string& piece) {
                                      CHECK(sample == 0);
                                      streamed += piece;
                                    });
  REQUIRE(r.samples.size() == 1);
  CHECK(r.samples[0].tokens == std::vector<int32_t>{4, 5, 6, 7});
  CHECK(r.samples[0].text == "4567");
  CHECK(streamed == "4567");
  CHECK(r.samples[0].finish_reason == FinishReason::length);
  CHECK_FALSE(r.context_full);
  // Prefill of the prompt, then one step per token except the last (its logits are not needed).
  CHECK(model.steps == std::vector<int>{1, 1, 1, 1});
  CHECK(model.rows[0] == std::vector<int32_t>{3, 4, 5, 6});
  CHECK(r.stats.decode_tokens == 3);
  CHECK(r.prompt_tokens == std::vector<int32_t>{3});
}

TEST_CASE("generate: <|endoftext|> ends a sample unless eos is ignored", "[generate]") {
  ScriptedModel model(16, 64, successor(16));
  TableText text(kDigits);
  const GenerateResult r = generate(model, text, {3}, greedy_options(10, 6));
  CHECK(r.samples[0].tokens == std::vector<int32_t>{4, 5});  // the 6 that ended it is not a token of the text
  CHECK(r.samples[0].text == "45");
  CHECK(r.samples[0].finish_reason == FinishReason::eos);

  GenerateOptions ignore = greedy_options(10, 6);
  ignore.ignore_eos = true;
  const GenerateResult all = generate(model, text, {3}, ignore);
  // 6 is never chosen: after 5 every other logit is 0 and the argmax is the smallest id.
  CHECK(all.samples[0].tokens == std::vector<int32_t>{4, 5, 0, 1, 2, 3, 4, 5, 0, 1});
  CHECK(all.samples[0].finish_reason == FinishReason::length);
}

TEST_CASE("generate: a stop string spanning tokens ends the sample and is never printed", "[generate]") {
  // Tokens 4.. read "Hel", "lo Wo", "rld", "!": the text grows "Hel", "Hello Wo", "Hello World".
  const std::vector<std::string> table = {"",  "",  "",  "",  "Hel", "lo Wo", "rld", "!",
                                          "?", "?", "?", "?", "?",   "?",     "?",   "?"};
  ScriptedModel model(16, 64, successor(16));
  TableText text(table);
  GenerateOptions o = greedy_options(10, 15);
  o.stop = {"o World"};
  std::vector<std::string> pieces;
  const GenerateResult r = generate(model, text, {3}, o, [&](int, const std::string& p) { pieces.push_back(p); });
  CHECK(r.samples[0].finish_reason == FinishReason::stop);
  CHECK(r.samples[0].text == "Hell");
  CHECK(r.samples[0].tokens == std::vector<int32_t>{4, 5, 6});
  // "o Wo" was held back as a possible start of the stop string, then dropped with it.
  CHECK(pieces == std::vector<std::string>{"Hel", "l"});

  SECTION("a false start is released once it cannot match") {
    o.stop = {"o Wx"};
    std::string streamed;
    const GenerateResult f = generate(model, text, {3}, o, [&](int, const std::string& p) { streamed += p; });
    CHECK(f.samples[0].finish_reason == FinishReason::length);
    CHECK(f.samples[0].text == "Hello World!??????");
    CHECK(streamed == f.samples[0].text);
  }
  SECTION("the earliest of several stop strings wins") {
    o.stop = {"World", "lo"};
    const GenerateResult s = generate(model, text, {3}, o);
    CHECK(s.samples[0].text == "Hel");
    CHECK(s.samples[0].tokens == std::vector<int32_t>{4, 5});
  }
  SECTION("a stop string inside one token") {
    o.stop = {"rl"};
    const GenerateResult s = generate(model, text, {3}, o);
    CHECK(s.samples[0].text == "Hello Wo");
    CHECK(s.samples[0].finish_reason == FinishReason::stop);
  }
}

TEST_CASE("generate: stop matcher holds back only possible beginnings of a stop string", "[generate]") {
  StopMatcher m({"\n\n", "END"});
  CHECK(m.push("a\n") == "a");      // "\n" may begin "\n\n"
  CHECK(m.push("b E") == "\nb ");   // "E" may begin "END"
  CHECK(m.push("N") == "");         // "EN" still may
  CHECK(m.push("D!") == "");        // complete: nothing after it
  CHECK(m.stopped());
  CHECK(m.push("more") == "");
  StopMatcher unfinished({"END"});
  CHECK(unfinished.push("the EN") == "the ");
  CHECK(unfinished.finish() == "EN");  // the sample ended for another reason: released
  CHECK_THROWS_AS(StopMatcher({""}), UsageError);
}

TEST_CASE("generate: the context end stops generation without reading past it", "[generate]") {
  // n_ctx 8, prompt 5: three new tokens fill positions 5, 6, 7. The model REQUIREs that no
  // step goes past its context.
  ScriptedModel model(16, 8, successor(16));
  TableText text(kDigits);
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5};
  const GenerateResult r = generate(model, text, prompt, greedy_options(10, 15));
  CHECK(r.samples[0].tokens == std::vector<int32_t>{6, 7, 8});
  CHECK(r.samples[0].finish_reason == FinishReason::length);
  CHECK(r.context_full);
  CHECK(model.rows[0].size() == 7);  // the last token (position 7) is never fed

  const GenerateResult exact = generate(model, text, prompt, greedy_options(3, 15));
  CHECK(exact.samples[0].tokens.size() == 3);
  CHECK_FALSE(exact.context_full);  // -n reached exactly at the end: not cut by the context

  const GenerateResult one = generate(model, text, {1, 2, 3, 4, 5, 6, 7}, greedy_options(10, 15));
  CHECK(one.samples[0].tokens == std::vector<int32_t>{8});
  CHECK(one.context_full);

  // An eos before the end is not a context stop.
  const GenerateResult eos = generate(model, text, prompt, greedy_options(10, 7));
  CHECK(eos.samples[0].finish_reason == FinishReason::eos);
  CHECK_FALSE(eos.context_full);
}

TEST_CASE("generate: a prompt that fills the context is a clear error", "[generate]") {
  ScriptedModel model(16, 8, successor(16));
  TableText text(kDigits);
  const std::vector<int32_t> prompt(8, 1);
  CHECK_THROWS_WITH(generate(model, text, prompt, greedy_options(4, 15)),
                    Catch::Contains("prompt is 8 tokens") && Catch::Contains("context is 8 tokens") &&
                        Catch::Contains("7 tokens or fewer"));
  CHECK(model.steps.empty());  // nothing was run
}

TEST_CASE("generate: an empty prompt starts from <|endoftext|>", "[generate]") {
  ScriptedModel model(16, 64, successor(16));
  TableText text(kDigits);
  const GenerateResult r = generate(model, text, {}, greedy_options(2, 9));
  CHECK(r.prompt_tokens == std::vector<int32_t>{9});
  CHECK(model.rows[0].front() == 9);
  CHECK(r.samples[0].tokens == std::vector<int32_t>{10, 11});
}

TEST_CASE("generate: penalties look at the prompt too", "[generate]") {
  // Token 2 leads token 3 by 0.1; the prompt contains 2.
  auto script = [](const std::vector<int32_t>&, float* logits) {
    logits[2] = 1.0f;
    logits[3] = 0.9f;
  };
  ScriptedModel model(8, 64, script);
  TableText text(kDigits);
  GenerateOptions o = greedy_options(1, 7);
  CHECK(generate(model, text, {2}, o).samples[0].tokens == std::vector<int32_t>{2});
  o.sampler.presence_penalty = 0.5f;
  CHECK(generate(model, text, {2}, o).samples[0].tokens == std::vector<int32_t>{3});
  o.sampler.repeat_last_n = 0;
  CHECK(generate(model, text, {2}, o).samples[0].tokens == std::vector<int32_t>{2});
}

namespace {

// A flat-ish distribution over 8 tokens where token 7 (eot in these tests) is likely
// enough that some samples end early.
void noisy(const std::vector<int32_t>& seq, float* logits) {
  for (int i = 0; i < 8; ++i) logits[i] = 0.1f * static_cast<float>((seq.back() * 3 + i * 5) % 7);
  logits[7] = 0.2f;
}

GenerateOptions sampled_options(int n_samples, uint64_t seed) {
  GenerateOptions o;
  o.n_predict = 12;
  o.num_samples = n_samples;
  o.eot = 7;
  o.seed = seed;
  o.sampler.temperature = 1.0f;
  o.sampler.top_k = 0;
  o.sampler.top_p = 1.0f;
  o.sampler.min_p = 0.0f;
  return o;
}

}  // namespace

TEST_CASE("generate: several samples run together, each in its own slot", "[generate]") {
  ScriptedModel model(8, 64, noisy);
  TableText text(kDigits);
  std::vector<std::string> streamed(4);
  const GenerateResult r = generate(model, text, {1, 2}, sampled_options(4, 5),
                                    [&](int b, const std::string& p) { streamed.at(b) += p; });
  REQUIRE(r.samples.size() == 4);
  REQUIRE(model.rows.size() == 4);
  CHECK(model.steps.front() == 2);  // every sample's prompt in the first step
  for (const auto& row : model.rows) {
    CHECK(std::vector<int32_t>(row.begin(), row.begin() + 2) == std::vector<int32_t>{1, 2});
  }
  bool some_differ = false, some_eos = false;
  for (int b = 0; b < 4; ++b) {
    const GeneratedSample& s = r.samples[b];
    CHECK(streamed[b] == s.text);
    for (int32_t id : s.tokens) CHECK(id != 7);
    if (s.finish_reason == FinishReason::length) CHECK(s.tokens.size() == 12);
    some_eos = some_eos || s.finish_reason == FinishReason::eos;
    some_differ = some_differ || s.tokens != r.samples[0].tokens;
    // Each row was fed its own tokens while it ran.
    const std::vector<int32_t>& row = model.rows[b];
    for (size_t i = 0; i + 1 < s.tokens.size(); ++i) CHECK(row[2 + i] == s.tokens[i]);
  }
  CHECK(some_differ);
  CHECK(some_eos);
}

TEST_CASE("generate: a seed gives the same samples on every run and at any batch size", "[generate]") {
  TableText text(kDigits);
  auto run = [&](int n_samples, uint64_t seed) {
    ScriptedModel model(8, 64, noisy);
    return generate(model, text, {1, 2}, sampled_options(n_samples, seed));
  };
  const GenerateResult four = run(4, 42);
  const GenerateResult again = run(4, 42);
  const GenerateResult one = run(1, 42);
  const GenerateResult two = run(2, 42);
  const GenerateResult other_seed = run(4, 43);
  bool seed_matters = false;
  for (int b = 0; b < 4; ++b) {
    CHECK(again.samples[b].tokens == four.samples[b].tokens);
    CHECK(again.samples[b].finish_reason == four.samples[b].finish_reason);
    seed_matters = seed_matters || other_seed.samples[b].tokens != four.samples[b].tokens;
  }
  CHECK(seed_matters);
  CHECK(one.samples[0].tokens == four.samples[0].tokens);
  CHECK(two.samples[0].tokens == four.samples[0].tokens);
  CHECK(two.samples[1].tokens == four.samples[1].tokens);
}

TEST_CASE("generate: bad loop options are usage errors", "[generate]") {
  ScriptedModel model(16, 64, successor(16));
  TableText text(kDigits);
  CHECK_THROWS_AS(generate(model, text, {1}, greedy_options(0, 15)), UsageError);
  GenerateOptions o = greedy_options(4, 15);
  o.num_samples = 0;
  CHECK_THROWS_AS(generate(model, text, {1}, o), UsageError);
  o = greedy_options(4, 15);
  o.sampler.top_p = 0.0f;
  CHECK_THROWS_AS(generate(model, text, {1}, o), UsageError);
}
