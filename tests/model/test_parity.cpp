// The CPU forward pass against the independent PyTorch reference (tools/reference/), and the
// invariants of the model: KV-cache decoding equals prefill, causality, batching (in lockstep
// and ragged).
//
// Tolerance: |logit - reference| <= 1e-4 for every dtype. The reference computes in float64
// from the weights as stored in each file (already rounded for F16/BF16), and the CPU backend
// converts those same values exactly to fp32, so only fp32 arithmetic error remains (~1e-5 for
// logits of magnitude ~10 here). Greedy continuations must match token for token: each
// expected.json records the smallest top-1/top-2 logit gap met (>= 0.025), far above 1e-4.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/gpt2.h"
#include "model/source.h"
#include "model/weights.h"
#include "model_test_util.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/lockstep.h"

using namespace gpt2;
using nlohmann::json;

namespace {

const std::string kModels = std::string(GPT2_TEST_DATA) + "/models/";
constexpr double kTol = 1e-4;

json expected(const std::string& variant) { return json::parse(read_bytes(kModels + variant + "/expected.json")); }

// GPT-2 from `spec` on 2 CPU threads in fp32, for lockstep steps of up to max_batch sequences
// of up to max_tokens tokens with every row's logits; slot b of its cache is sequence b.
struct CpuModel {
  Gpt2 m;
  KvCache kv;
  CpuModel(const std::string& spec, int max_batch, int max_tokens)
      : m(load(spec, max_batch, max_tokens)), kv(test::lockstep_cache(m, max_batch)) {}
  const Config& config() const { return m.config(); }
  // B sequences of T tokens, each at its slot's length: logits [B, T, V] or [B, V].
  std::vector<float> forward(const int32_t* tokens, int B, int T, Logits want) {
    return test::lockstep(m, kv, tokens, B, T, want);
  }
  void reset() { test::lockstep_reset(kv); }

 private:
  static Gpt2 load(const std::string& spec, int max_batch, int max_tokens) {
    BackendOptions options;
    options.device = Device::cpu;
    options.auto_dtype = false;
    options.weight_dtype = DType::f32;
    options.threads = 2;
    return Gpt2(load_model(spec), make_cpu_backend(options), test::lockstep_limits(max_batch, max_tokens, Logits::all));
  }
};

// Largest |got - want|; prints the first few mismatches beyond tol (llm.c validate_result style).
double max_abs_diff(const float* got, const std::vector<double>& want, double tol) {
  double worst = 0;
  int shown = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = std::abs(static_cast<double>(got[i]) - want[i]);
    if (!(d <= tol) && shown++ < 5) UNSCOPED_INFO("mismatch at " << i << ": got " << got[i] << ", want " << want[i]);
    if (!(d <= worst)) worst = d;  // NaN propagates as a failure
  }
  return worst;
}

double max_abs_diff(const float* got, const float* want, size_t n, double tol) {
  return max_abs_diff(got, std::vector<double>(want, want + n), tol);
}

int argmax(const float* x, int n) { return static_cast<int>(std::max_element(x, x + n) - x); }

// log softmax(row)[id], in double.
double logprob(const float* row, int n, int id) {
  const double mx = *std::max_element(row, row + n);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(static_cast<double>(row[i]) - mx);
  return static_cast<double>(row[id]) - mx - std::log(sum);
}

std::vector<int32_t> ids(const json& j) { return j.get<std::vector<int32_t>>(); }

// n greedy tokens after `prompt`: one prefill, then one cached decode step per token.
std::vector<int32_t> greedy(CpuModel& m, const std::vector<int32_t>& prompt, int n) {
  const int V = m.config().n_vocab;
  m.reset();
  std::vector<float> logits = m.forward(prompt.data(), 1, static_cast<int>(prompt.size()), Logits::last);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    int32_t next = argmax(logits.data(), V);
    out.push_back(next);
    if (i + 1 < n) logits = m.forward(&next, 1, 1, Logits::last);
  }
  return out;
}

}  // namespace

TEST_CASE("CPU logits match the PyTorch reference for every checkpoint variant") {
  for (const char* variant : {"f32", "prefixed", "untied", "f16", "bf16", "sharded"}) {
    INFO("variant " << variant);
    const json exp = expected(variant);
    CpuModel m(kModels + variant, 1, 64);
    const int V = m.config().n_vocab;
    const std::vector<int32_t> prompt = ids(exp["prompt"]);
    const int T = static_cast<int>(prompt.size());

    std::vector<float> logits = m.forward(prompt.data(), 1, T, Logits::all);
    REQUIRE(logits.size() == static_cast<size_t>(T) * V);
    for (int t = 0; t < T; ++t) {
      INFO("position " << t);
      CHECK(max_abs_diff(&logits[static_cast<size_t>(t) * V], exp["logits"][t].get<std::vector<double>>(), kTol) <= kTol);
    }
    for (int t = 1; t < T; ++t) {
      INFO("logprob of token " << t);
      CHECK(logprob(&logits[static_cast<size_t>(t - 1) * V], V, prompt[t]) ==
            Approx(exp["logprobs"][t].get<double>()).margin(kTol));
    }

    // The whole context: the last position reads wpe's last row and attends over 64 keys.
    m.reset();
    const std::vector<int32_t> full = ids(exp["full_context"]);
    REQUIRE(static_cast<int>(full.size()) == m.config().n_ctx);
    logits = m.forward(full.data(), 1, m.config().n_ctx, Logits::last);
    CHECK(max_abs_diff(logits.data(), exp["full_context_last_logits"].get<std::vector<double>>(), kTol) <= kTol);
    CHECK(m.kv.length(0) == m.config().n_ctx);
    CHECK_THROWS_AS(m.forward(full.data(), 1, 1, Logits::last), Error);  // no position 64
    CHECK(m.kv.length(0) == m.config().n_ctx);

    CHECK(greedy(m, prompt, 20) == ids(exp["greedy"]));
  }
}

TEST_CASE("tiny-gpt2 (full vocabulary): logprobs, next-token top 10 and greedy continuation") {
  const json exp = expected("tiny-gpt2");
  CpuModel m(kModels + "tiny-gpt2", 1, 64);
  REQUIRE(m.config().n_vocab == 50257);
  const int V = m.config().n_vocab;
  const std::vector<int32_t> prompt = ids(exp["prompt"]);
  const int T = static_cast<int>(prompt.size());

  std::vector<float> logits = m.forward(prompt.data(), 1, T, Logits::all);
  for (int t = 1; t < T; ++t)
    CHECK(logprob(&logits[static_cast<size_t>(t - 1) * V], V, prompt[t]) ==
          Approx(exp["logprobs"][t].get<double>()).margin(kTol));
  const float* last = &logits[static_cast<size_t>(T - 1) * V];
  CHECK(max_abs_diff(last, exp["last_logits_head"].get<std::vector<double>>(), kTol) <= kTol);
  std::vector<int> order(static_cast<size_t>(V));
  for (int i = 0; i < V; ++i) order[static_cast<size_t>(i)] = i;
  std::partial_sort(order.begin(), order.begin() + 10, order.end(), [&](int a, int b) { return last[a] > last[b]; });
  for (int k = 0; k < 10; ++k) {
    INFO("top " << k);
    CHECK(order[static_cast<size_t>(k)] == exp["next_top10"][k]["id"].get<int>());
    CHECK(logprob(last, V, order[static_cast<size_t>(k)]) == Approx(exp["next_top10"][k]["logprob"].get<double>()).margin(kTol));
  }

  // With <|endoftext|> prepended every token has a logprob.
  std::vector<int32_t> bos = {50256};
  bos.insert(bos.end(), prompt.begin(), prompt.end());
  m.reset();
  logits = m.forward(bos.data(), 1, T + 1, Logits::all);
  for (int t = 0; t < T; ++t)
    CHECK(logprob(&logits[static_cast<size_t>(t) * V], V, bos[static_cast<size_t>(t) + 1]) ==
          Approx(exp["bos_logprobs"][t].get<double>()).margin(kTol));

  CHECK(greedy(m, prompt, 20) == ids(exp["greedy"]));
}

TEST_CASE("decoding through the KV cache equals prefill; appending never changes earlier logits") {
  const json exp = expected("f32");
  CpuModel m(kModels + "f32", 1, 64);
  const int V = m.config().n_vocab;
  const std::vector<int32_t> prompt = ids(exp["prompt"]);
  const int T = static_cast<int>(prompt.size());
  const std::vector<float> prefill = m.forward(prompt.data(), 1, T, Logits::all);
  std::vector<float> step;

  SECTION("one token at a time") {
    m.reset();
    for (int t = 0; t < T; ++t) {
      INFO("position " << t);
      step = m.forward(&prompt[static_cast<size_t>(t)], 1, 1, Logits::last);
      CHECK(max_abs_diff(step.data(), &prefill[static_cast<size_t>(t) * V], static_cast<size_t>(V), kTol) <= kTol);
    }
    CHECK(m.kv.length(0) == T);
  }
  SECTION("a prefix, then the rest as a second prefill after the cache") {
    m.reset();
    step = m.forward(prompt.data(), 1, 7, Logits::all);
    CHECK(max_abs_diff(step.data(), prefill.data(), static_cast<size_t>(7) * V, kTol) <= kTol);  // causality
    step = m.forward(&prompt[7], 1, T - 7, Logits::all);
    CHECK(max_abs_diff(step.data(), &prefill[static_cast<size_t>(7) * V], static_cast<size_t>(T - 7) * V, kTol) <= kTol);
  }
  SECTION("a longer sequence keeps the logits of its prefix") {
    std::vector<int32_t> longer = prompt;
    for (int32_t t : ids(exp["full_context"])) {
      if (longer.size() == 40) break;
      longer.push_back(t);
    }
    m.reset();
    step = m.forward(longer.data(), 1, 40, Logits::all);
    CHECK(max_abs_diff(step.data(), prefill.data(), prefill.size(), kTol) <= kTol);
  }
  SECTION("changing a later token does not change earlier logits, and does change its own") {
    std::vector<int32_t> other = prompt;
    other[static_cast<size_t>(T - 1)] = (other[static_cast<size_t>(T - 1)] + 1) % V;
    m.reset();
    step = m.forward(other.data(), 1, T, Logits::all);
    CHECK(max_abs_diff(step.data(), prefill.data(), static_cast<size_t>(T - 1) * V, kTol) <= kTol);
    CHECK(max_abs_diff(&step[static_cast<size_t>(T - 1) * V], &prefill[static_cast<size_t>(T - 1) * V],
                       static_cast<size_t>(V), 1e30) > 0.01);
  }
}

TEST_CASE("a batch of 3 sequences equals 3 single runs, in prefill and decode") {
  const json exp = expected("untied");
  const std::vector<int32_t> full = ids(exp["full_context"]);
  const int T = 11;
  std::vector<std::vector<int32_t>> seqs = {ids(exp["prompt"]), {full.begin(), full.begin() + T},
                                            {full.begin() + 30, full.begin() + 30 + T}};
  seqs[0].resize(T);
  const std::vector<int32_t> next = {3, 499, 250};  // one decode step per sequence, different tokens

  CpuModel single(kModels + "untied", 1, 64);
  const int V = single.config().n_vocab;
  std::vector<std::vector<float>> want_prefill(3), want_decode(3);
  for (size_t b = 0; b < 3; ++b) {
    single.reset();
    want_prefill[b] = single.forward(seqs[b].data(), 1, T, Logits::all);
    want_decode[b] = single.forward(&next[b], 1, 1, Logits::last);
  }

  CpuModel batched(kModels + "untied", 3, 64);
  std::vector<int32_t> tokens;
  for (const auto& s : seqs) tokens.insert(tokens.end(), s.begin(), s.end());
  std::vector<float> got = batched.forward(tokens.data(), 3, T, Logits::all);
  REQUIRE(got.size() == static_cast<size_t>(3 * T * V));
  for (size_t b = 0; b < 3; ++b) {
    INFO("sequence " << b);
    CHECK(max_abs_diff(&got[b * T * V], want_prefill[b].data(), static_cast<size_t>(T) * V, kTol) <= kTol);
  }
  got = batched.forward(next.data(), 3, 1, Logits::last);
  REQUIRE(got.size() == static_cast<size_t>(3 * V));
  for (size_t b = 0; b < 3; ++b) {
    INFO("sequence " << b);
    CHECK(max_abs_diff(&got[b * V], want_decode[b].data(), static_cast<size_t>(V), kTol) <= kTol);
  }
  // The sequences really differ, so a backend that mixed them up would fail above.
  CHECK(max_abs_diff(&got[0], &got[V], static_cast<size_t>(V), 1e30) > 0.01);

  // The same sequences out of step: sequence 0's prompt beside sequence 1's first 4 tokens,
  // then sequence 0's decode token, sequence 1's other 7 tokens and sequence 2's whole prompt
  // in one ragged step (slots in another order than the rows).
  test::lockstep_reset(batched.kv);
  Batch first;
  first.add(0, 0, seqs[0].data(), T, Logits::all);
  first.add(1, 0, seqs[1].data(), 4, Logits::all);
  Outputs out;
  batched.m.forward(first, batched.kv, out);
  got = test::read_logits(batched.m, out);
  REQUIRE(got.size() == static_cast<size_t>((T + 4) * V));
  CHECK(max_abs_diff(got.data(), want_prefill[0].data(), static_cast<size_t>(T) * V, kTol) <= kTol);
  CHECK(max_abs_diff(&got[static_cast<size_t>(T) * V], want_prefill[1].data(), static_cast<size_t>(4) * V, kTol) <= kTol);
  Batch mixed;
  mixed.add(2, 0, seqs[2].data(), T, Logits::all);
  mixed.add(0, T, &next[0], 1, Logits::last);
  mixed.add(1, 4, &seqs[1][4], T - 4, Logits::all);
  batched.m.forward(mixed, batched.kv, out);
  got = test::read_logits(batched.m, out);
  REQUIRE(got.size() == static_cast<size_t>((2 * T - 3) * V));
  CHECK(max_abs_diff(got.data(), want_prefill[2].data(), static_cast<size_t>(T) * V, kTol) <= kTol);
  CHECK(max_abs_diff(&got[static_cast<size_t>(T) * V], want_decode[0].data(), static_cast<size_t>(V), kTol) <= kTol);
  CHECK(max_abs_diff(&got[static_cast<size_t>(T + 1) * V], &want_prefill[1][static_cast<size_t>(4) * V],
                     static_cast<size_t>(T - 4) * V, kTol) <= kTol);
}
