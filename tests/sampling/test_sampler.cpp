// The sampler chain on 4-5 token distributions with hand-computed answers, one step at a
// time and chained; seeded reproducibility; batch invariance of seeded draws.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include "common/error.h"
#include "sampling/sampler.h"

using gpt2::Candidate;
using gpt2::SamplerParams;

namespace {

std::vector<int32_t> ids_of(const std::vector<Candidate>& candidates) {
  std::vector<int32_t> ids;
  for (const Candidate& c : candidates) ids.push_back(c.id);
  return ids;
}

// Candidates sorted most likely first with p = {0.4, 0.3, 0.2, 0.1} (ids 3, 2, 1, 0).
std::vector<Candidate> four_tokens() {
  const std::vector<float> logits = {std::log(1.0f), std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  std::vector<Candidate> c = gpt2::make_candidates(logits.data(), 4);
  gpt2::top_k(c, 0);
  gpt2::softmax(c);
  return c;
}

// Sampling without truncation: every step off, temperature 1.
SamplerParams plain_params() {
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  return p;
}

}  // namespace

TEST_CASE("sampler: repetition penalty divides positive and multiplies negative logits", "[sampler]") {
  std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f, 0.0f};
  // Token 0 twice, 1 and 4 once; -1 and 7 are outside the vocabulary and ignored.
  gpt2::penalize(logits.data(), 5, {0, 1, 0, 4, -1, 7}, 2.0f, 0.0f, 0.0f);
  CHECK(logits == std::vector<float>{1.0f, -2.0f, 0.5f, 3.0f, 0.0f});
}

TEST_CASE("sampler: presence and frequency penalties subtract once and per occurrence", "[sampler]") {
  std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f, 0.0f};
  gpt2::penalize(logits.data(), 5, {0, 1, 0, 4}, 1.0f, 0.25f, 0.5f);
  // 2 - 2*0.5 - 0.25, -1 - 0.5 - 0.25, unchanged, unchanged, 0 - 0.5 - 0.25
  CHECK(logits == std::vector<float>{0.75f, -1.75f, 0.5f, 3.0f, -0.75f});

  std::vector<float> both = {2.0f, -1.0f, 0.5f, 3.0f, 0.0f};
  gpt2::penalize(both.data(), 5, {0, 1, 0, 4}, 2.0f, 0.25f, 0.5f);
  // The repetition penalty first (1, -2, ., ., 0), then the subtractions.
  CHECK(both == std::vector<float>{-0.25f, -2.75f, 0.5f, 3.0f, -0.75f});

  std::vector<float> untouched = {2.0f, -1.0f};
  gpt2::penalize(untouched.data(), 2, {}, 2.0f, 1.0f, 1.0f);  // empty window: nothing to penalize
  CHECK(untouched == std::vector<float>{2.0f, -1.0f});
}

TEST_CASE("sampler: temperature divides the logits", "[sampler]") {
  const std::vector<float> logits = {1.0f, -2.0f, 0.5f};
  std::vector<Candidate> c = gpt2::make_candidates(logits.data(), 3);
  gpt2::apply_temperature(c, 0.5f);
  CHECK(c[0].logit == 2.0f);
  CHECK(c[1].logit == -4.0f);
  CHECK(c[2].logit == 1.0f);
}

TEST_CASE("sampler: top-k keeps the k largest, most likely first, ties by smaller id", "[sampler]") {
  const std::vector<float> logits = {0.1f, 0.7f, 0.3f, 0.7f, -1.0f};
  std::vector<Candidate> c = gpt2::make_candidates(logits.data(), 5);
  gpt2::top_k(c, 3);
  CHECK(ids_of(c) == std::vector<int32_t>{1, 3, 2});

  c = gpt2::make_candidates(logits.data(), 5);
  gpt2::top_k(c, 0);  // off: all of them, sorted
  CHECK(ids_of(c) == std::vector<int32_t>{1, 3, 2, 0, 4});

  c = gpt2::make_candidates(logits.data(), 5);
  gpt2::top_k(c, 10);  // more than there are
  CHECK(ids_of(c) == std::vector<int32_t>{1, 3, 2, 0, 4});

  c = gpt2::make_candidates(logits.data(), 5);
  gpt2::top_k(c, 1);
  CHECK(ids_of(c) == std::vector<int32_t>{1});
}

TEST_CASE("sampler: softmax of log(1..4) is 0.1..0.4 and ignores a constant shift", "[sampler]") {
  const std::vector<float> logits = {std::log(1.0f), std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  std::vector<Candidate> c = gpt2::make_candidates(logits.data(), 4);
  gpt2::softmax(c);
  for (int i = 0; i < 4; ++i) CHECK(c[i].p == Approx(0.1 * (i + 1)).epsilon(1e-6));

  std::vector<float> shifted = logits;
  for (float& l : shifted) l += 1000.0f;  // would overflow exp() without the max subtracted
  std::vector<Candidate> s = gpt2::make_candidates(shifted.data(), 4);
  gpt2::softmax(s);
  for (int i = 0; i < 4; ++i) CHECK(s[i].p == Approx(0.1 * (i + 1)).epsilon(1e-3));

  const std::vector<float> banned = {0.0f, -INFINITY, 0.0f};
  std::vector<Candidate> b = gpt2::make_candidates(banned.data(), 3);
  gpt2::softmax(b);
  CHECK(b[0].p == Approx(0.5));
  CHECK(b[1].p == 0.0f);
  CHECK(b[2].p == Approx(0.5));
}

TEST_CASE("sampler: top-p keeps the smallest prefix reaching p", "[sampler]") {
  const std::vector<Candidate> base = four_tokens();  // p 0.4, 0.3, 0.2, 0.1
  REQUIRE(ids_of(base) == std::vector<int32_t>{3, 2, 1, 0});
  const std::vector<std::pair<float, size_t>> cases = {{0.3f, 1}, {0.6f, 2}, {0.75f, 3}, {0.95f, 4}, {1.0f, 4}};
  for (const auto& [p, kept] : cases) {
    std::vector<Candidate> c = base;
    gpt2::top_p(c, p);
    INFO("top_p " << p);
    CHECK(c.size() == kept);
  }
}

TEST_CASE("sampler: min-p keeps tokens at least min_p times as likely as the best", "[sampler]") {
  const std::vector<Candidate> base = four_tokens();  // p 0.4, 0.3, 0.2, 0.1
  // thresholds 0.36, 0.24, 0.12, 0.08, 0
  const std::vector<std::pair<float, size_t>> cases = {{0.9f, 1}, {0.6f, 2}, {0.3f, 3}, {0.2f, 4}, {0.0f, 4}};
  for (const auto& [p, kept] : cases) {
    std::vector<Candidate> c = base;
    gpt2::min_p(c, p);
    INFO("min_p " << p);
    CHECK(c.size() == kept);
  }
}

TEST_CASE("sampler: draw picks by cumulative probability, renormalized over the survivors", "[sampler]") {
  std::vector<Candidate> c = four_tokens();  // p 0.4, 0.3, 0.2, 0.1
  CHECK(gpt2::draw(c, 0.0) == 0);
  CHECK(gpt2::draw(c, 0.39) == 0);
  CHECK(gpt2::draw(c, 0.45) == 1);
  CHECK(gpt2::draw(c, 0.69) == 1);
  CHECK(gpt2::draw(c, 0.75) == 2);
  CHECK(gpt2::draw(c, 0.95) == 3);
  CHECK(gpt2::draw(c, 0.9999999) == 3);
  c.resize(2);  // p 0.4, 0.3 -> 4/7, 3/7: the boundary moves from 0.4 to 0.5714
  CHECK(gpt2::draw(c, 0.5) == 0);
  CHECK(gpt2::draw(c, 0.56) == 0);
  CHECK(gpt2::draw(c, 0.58) == 1);
}

TEST_CASE("sampler: the whole chain on five tokens, by hand", "[sampler]") {
  // logits log(1, 10, 2, 3, 4); token 1 was seen once, presence penalty log 2:
  //   penalties    -> log(1, 5, 2, 3, 4)
  //   temperature 0.5 squares the weights -> 1, 25, 4, 9, 16
  //   top-k 4 drops token 0               -> ids 1, 4, 3, 2 with p 25, 16, 9, 4 (/54)
  //   top-p 0.9: cumulative .463 .759 .926 -> drops token 2
  //   min-p 0.4: threshold 0.4 * 25/54 = 10/54 -> drops token 3 (9/54)
  //   draw over 25/41, 16/41
  const std::vector<float> logits = {std::log(1.0f), std::log(10.0f), std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  SamplerParams params;
  params.temperature = 0.5f;
  params.top_k = 4;
  params.top_p = 0.9f;
  params.min_p = 0.4f;
  params.presence_penalty = std::log(2.0f);
  const std::vector<int32_t> recent = {1};

  const std::vector<Candidate> c = gpt2::sampling_candidates(logits.data(), 5, params, recent);
  REQUIRE(ids_of(c) == std::vector<int32_t>{1, 4});
  CHECK(c[0].p == Approx(25.0 / 54.0).epsilon(1e-5));
  CHECK(c[1].p == Approx(16.0 / 54.0).epsilon(1e-5));
  CHECK(gpt2::sample_token(logits.data(), 5, params, recent, 0.0) == 1);
  CHECK(gpt2::sample_token(logits.data(), 5, params, recent, 0.60) == 1);  // < 25/41 = 0.6098
  CHECK(gpt2::sample_token(logits.data(), 5, params, recent, 0.62) == 4);
  CHECK(gpt2::sample_token(logits.data(), 5, params, recent, 0.99) == 4);

  // Without the penalty token 1 weighs 100 of 129 after top-k; top-p 0.9 keeps 1, 4, 3
  // (cumulative 116/129 = 0.899 < 0.9), and min-p (threshold 40/129) keeps token 1 alone.
  const std::vector<Candidate> unpenalized = gpt2::sampling_candidates(logits.data(), 5, params, {});
  REQUIRE(ids_of(unpenalized) == std::vector<int32_t>{1});
  CHECK(unpenalized[0].p == Approx(100.0 / 129.0).epsilon(1e-5));
}

TEST_CASE("sampler: greedy is the argmax of the penalized logits", "[sampler]") {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f};
  SamplerParams greedy;
  greedy.greedy = true;
  CHECK(gpt2::sample_token(logits.data(), 4, greedy, {}, 0.99) == 1);  // first of two maxima
  greedy.repeat_penalty = 2.0f;
  // 3 -> 1.5 for tokens 1 and 3: token 2 (2.0) is now the best.
  CHECK(gpt2::sample_token(logits.data(), 4, greedy, {1, 3}, 0.99) == 2);

  SamplerParams zero_temperature;
  zero_temperature.temperature = 0.0f;
  CHECK(zero_temperature.is_greedy());
  for (double u : {0.0, 0.5, 0.99}) CHECK(gpt2::sample_token(logits.data(), 4, zero_temperature, {}, u) == 1);
}

TEST_CASE("sampler: the penalty window is the end of the history", "[sampler]") {
  // Token 0 leads by 0.5 but was seen: with presence penalty 1 it falls behind token 1,
  // unless it is older than the window.
  const std::vector<float> logits = {1.5f, 1.0f, 0.0f};
  SamplerParams p;
  p.greedy = true;
  p.presence_penalty = 1.0f;
  p.repeat_last_n = 2;
  gpt2::Sampler sampler(p, 1);
  CHECK(sampler.sample(logits.data(), 3, {2, 0, 2}, 0, 0) == 1);  // 0 is in the last two
  CHECK(sampler.sample(logits.data(), 3, {0, 2, 2}, 0, 1) == 0);  // 0 fell out of the window
  p.repeat_last_n = -1;  // whole history
  gpt2::Sampler whole(p, 1);
  CHECK(whole.sample(logits.data(), 3, {0, 2, 2}, 0, 1) == 1);
  p.repeat_last_n = 0;  // off
  gpt2::Sampler off(p, 1);
  CHECK(off.sample(logits.data(), 3, {2, 0, 2}, 0, 0) == 0);
}

TEST_CASE("sampler: the default parameters are llama.cpp's", "[sampler]") {
  const SamplerParams p;
  CHECK(p.temperature == 0.8f);
  CHECK(p.top_k == 40);
  CHECK(p.top_p == 0.95f);
  CHECK(p.min_p == 0.05f);
  CHECK(p.repeat_penalty == 1.0f);
  CHECK(p.repeat_last_n == 64);
  CHECK(p.presence_penalty == 0.0f);
  CHECK(p.frequency_penalty == 0.0f);
  CHECK_FALSE(p.is_greedy());
  CHECK_NOTHROW(p.validate());
}

TEST_CASE("sampler: out-of-range parameters are usage errors", "[sampler]") {
  auto bad = [](auto change) {
    SamplerParams p;
    change(p);
    return p;
  };
  CHECK_THROWS_AS(bad([](SamplerParams& p) { p.temperature = -0.1f; }).validate(), gpt2::UsageError);
  CHECK_THROWS_AS(bad([](SamplerParams& p) { p.temperature = NAN; }).validate(), gpt2::UsageError);
  CHECK_THROWS_AS(bad([](SamplerParams& p) { p.top_k = -1; }).validate(), gpt2::UsageError);
  CHECK_THROWS_AS(bad([](SamplerParams& p) { p.top_p = 0.0f; }).validate(), gpt2::UsageError);
  CHECK_THROWS_AS(bad([](SamplerParams& p) { p.top_p = 1.5f; }).validate(), gpt2::UsageError);
  CHECK_THROWS_AS(bad([](SamplerParams& p) { p.min_p = -0.5f; }).validate(), gpt2::UsageError);
  CHECK_THROWS_AS(bad([](SamplerParams& p) { p.repeat_penalty = 0.0f; }).validate(), gpt2::UsageError);
  CHECK_THROWS_AS(bad([](SamplerParams& p) { p.repeat_last_n = -2; }).validate(), gpt2::UsageError);
  CHECK_NOTHROW(bad([](SamplerParams& p) { p.top_p = 1.0f; }).validate());
  CHECK_NOTHROW(bad([](SamplerParams& p) { p.temperature = 0.0f; }).validate());
  CHECK_THROWS_WITH(bad([](SamplerParams& p) { p.temperature = -1.5f; }).validate(),
                    Catch::Contains("--temperature") && Catch::Contains("-1.5"));
}

TEST_CASE("sampler: the uniform draws are in [0, 1), keyed by seed, sample and step", "[sampler]") {
  double sum = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const double u = gpt2::uniform(7, 0, static_cast<uint64_t>(i));
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    sum += u;
  }
  CHECK(sum / n == Approx(0.5).margin(0.01));
  CHECK(gpt2::uniform(7, 0, 3) == gpt2::uniform(7, 0, 3));
  CHECK(gpt2::uniform(7, 0, 3) != gpt2::uniform(8, 0, 3));
  CHECK(gpt2::uniform(7, 0, 3) != gpt2::uniform(7, 1, 3));
  CHECK(gpt2::uniform(7, 0, 3) != gpt2::uniform(7, 0, 4));
}

TEST_CASE("sampler: seeded draws follow the distribution and repeat exactly", "[sampler]") {
  // p = 0.1, 0.2, 0.3, 0.4
  const std::vector<float> logits = {std::log(1.0f), std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  gpt2::Sampler a(plain_params(), 1234);
  gpt2::Sampler again(plain_params(), 1234);
  gpt2::Sampler other(plain_params(), 1235);
  std::vector<int32_t> seq_a, seq_again, seq_other;
  std::map<int32_t, int> counts;
  const int n = 20000;
  for (int step = 0; step < n; ++step) {
    seq_a.push_back(a.sample(logits.data(), 4, {}, 0, step));
    seq_again.push_back(again.sample(logits.data(), 4, {}, 0, step));
    seq_other.push_back(other.sample(logits.data(), 4, {}, 0, step));
    ++counts[seq_a.back()];
  }
  CHECK(seq_a == seq_again);
  CHECK(seq_a != seq_other);
  for (int id = 0; id < 4; ++id) CHECK(counts[id] / double(n) == Approx(0.1 * (id + 1)).margin(0.015));
}

TEST_CASE("sampler: seeded sampling is batch-invariant", "[sampler]") {
  // Four rows of logits sampled as a batch (rows interleaved, as the generation loop does),
  // each against the same row sampled alone by a fresh sampler: same tokens.
  const std::vector<std::vector<float>> rows = {
      {0.0f, 0.5f, 1.0f, 1.5f, 2.0f},
      {2.0f, 1.0f, 0.0f, 1.0f, 2.0f},
      {0.1f, 0.2f, 0.3f, 0.2f, 0.1f},
      {1.0f, 1.0f, 1.0f, 1.0f, 1.0f}};
  const int steps = 50;
  gpt2::Sampler batch(plain_params(), 99);
  std::vector<std::vector<int32_t>> batched(rows.size());
  for (int step = 0; step < steps; ++step) {
    for (size_t b = 0; b < rows.size(); ++b) {
      batched[b].push_back(batch.sample(rows[b].data(), 5, {}, static_cast<int>(b), step));
    }
  }
  for (size_t b = 0; b < rows.size(); ++b) {
    gpt2::Sampler alone(plain_params(), 99);
    std::vector<int32_t> single;
    for (int step = 0; step < steps; ++step) {
      single.push_back(alone.sample(rows[b].data(), 5, {}, static_cast<int>(b), step));
    }
    INFO("row " << b);
    CHECK(single == batched[b]);
  }
  // Different samples of the same logits draw different numbers.
  CHECK(batched[3] != std::vector<int32_t>(batched[3].size(), batched[3][0]));
  std::vector<int32_t> row3_as_sample0;
  gpt2::Sampler s(plain_params(), 99);
  for (int step = 0; step < steps; ++step) row3_as_sample0.push_back(s.sample(rows[3].data(), 5, {}, 0, step));
  CHECK(row3_as_sample0 != batched[3]);
}

TEST_CASE("sampler: the chain's fast paths agree with the steps applied one by one", "[sampler]") {
  // sampling_candidates selects top-k with a heap and, without top-k, sorts only the head
  // that top-p/min-p keep. Against make_candidates -> temperature -> top_k -> softmax ->
  // top_p -> min_p on a GPT-2-sized vocabulary of random logits.
  const int n_vocab = 50257;
  std::vector<float> logits(n_vocab);
  uint64_t state = 12345;
  for (float& l : logits) {
    // Sum of uniforms: roughly normal, with a long enough tail for a peaked distribution.
    double sum = 0;
    for (int i = 0; i < 4; ++i) sum += gpt2::uniform(state++, 0, 0);
    l = static_cast<float>((sum - 2.0) * 6.0);
  }
  for (int k : {0, 1, 40, 1000, n_vocab}) {
    for (float p : {1.0f, 0.95f, 0.5f}) {
      for (float m : {0.0f, 0.05f}) {
        for (float t : {0.7f, 1.3f}) {
          SamplerParams params;
          params.top_k = k;
          params.top_p = p;
          params.min_p = m;
          params.temperature = t;
          std::vector<Candidate> steps = gpt2::make_candidates(logits.data(), n_vocab);
          gpt2::apply_temperature(steps, t);
          gpt2::top_k(steps, k);
          gpt2::softmax(steps);
          gpt2::top_p(steps, p);
          gpt2::min_p(steps, m);
          const std::vector<Candidate> chain = gpt2::sampling_candidates(logits.data(), n_vocab, params, {});
          INFO("top_k " << k << " top_p " << p << " min_p " << m << " temperature " << t);
          REQUIRE(ids_of(chain) == ids_of(steps));
          for (size_t i = 0; i < chain.size(); ++i) REQUIRE(chain[i].p == Approx(steps[i].p).epsilon(1e-6));
          CHECK(chain.size() > 0);
        }
      }
    }
  }
}

// Regression: a tiny temperature overflowed logit / T to +infinity, softmax computed
// inf - inf = NaN, and the draw returned the last candidate (the least likely of the top k):
// --temperature 1e-38 printed garbage instead of (in the limit) the greedy text.
TEST_CASE("sampler: a temperature so small that logit / T overflows draws the argmax", "[sampler]") {
  const std::vector<float> logits = {1.0f, 3.5f, 3.0f, -2.0f, 0.5f};
  for (float t : {1e-38f, 1e-40f, 1e-45f}) {
    SamplerParams p;  // defaults: top-k 40, top-p 0.95, min-p 0.05
    p.temperature = t;
    INFO("temperature " << t);
    for (double u : {0.0, 0.5, 0.999999}) CHECK(gpt2::sample_token(logits.data(), 5, p, {}, u) == 1);
    SamplerParams q = plain_params();
    q.temperature = t;
    for (double u : {0.0, 0.5, 0.999999}) CHECK(gpt2::sample_token(logits.data(), 5, q, {}, u) == 1);
  }
}

// Regression: a huge negative frequency penalty pushed repeated tokens' logits to +infinity,
// with the same NaN draw as above.
TEST_CASE("sampler: penalties that push a logit to +infinity pick it, never NaN garbage", "[sampler]") {
  const std::vector<float> logits = {1.0f, 3.5f, 3.0f, -2.0f, 0.5f};
  SamplerParams p = plain_params();
  p.frequency_penalty = -3e38f;
  const std::vector<int32_t> recent = {4, 4, 4};  // 0.5 + 9e38 = +inf
  for (double u : {0.0, 0.5, 0.999999}) CHECK(gpt2::sample_token(logits.data(), 5, p, recent, u) == 4);
}

// Regression: NaN logits (a model with corrupt weights) were sampled from silently: greedy
// returned token 0 every step ("!!!!!"), sampling returned arbitrary tokens.
TEST_CASE("sampler: NaN or +infinite logits from the model are an error", "[sampler]") {
  for (float bad : {NAN, INFINITY}) {
    std::vector<float> logits = {1.0f, 3.5f, bad, -2.0f, 0.5f};
    SamplerParams greedy;
    greedy.greedy = true;
    CHECK_THROWS_WITH(gpt2::sample_token(logits.data(), 5, greedy, {}, 0.5), Catch::Contains("logits"));
    CHECK_THROWS_AS(gpt2::sample_token(logits.data(), 5, plain_params(), {}, 0.5), gpt2::Error);
    gpt2::Sampler sampler(plain_params(), 1);
    CHECK_THROWS_AS(sampler.sample(logits.data(), 5, {}, 0, 0), gpt2::Error);
  }
  // -infinity is a banned token (--ignore-eos), not an error.
  const std::vector<float> banned = {1.0f, -INFINITY, 0.5f};
  CHECK(gpt2::sample_token(banned.data(), 3, plain_params(), {}, 0.5) != 1);
}

namespace {

// The m most likely of logits [n] (value descending, equal values by smaller id): what a
// backend's top_k hands the sampler.
void reference_top(const std::vector<float>& logits, int m, std::vector<int32_t>& ids, std::vector<float>& values) {
  std::vector<int32_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  ids.assign(order.begin(), order.begin() + m);
  values.clear();
  for (int32_t id : ids) values.push_back(logits[id]);
}

}  // namespace

TEST_CASE("sampler: sampling from the top candidates equals sampling from all logits", "[sampler]") {
  // Random rows (continuous, or rounded to a coarse grid so that ties are common), random
  // parameters, histories and a banned id; whenever sample_top decides, it must choose what
  // sample() chooses from the whole row; on continuous rows it must decide nearly always.
  const int n_vocab = 2000;
  uint64_t state = 99;
  auto next_uniform = [&] { return gpt2::uniform(state++, 7, 0); };
  int decided_continuous = 0, cases_continuous = 0, decided_tied = 0;
  for (int trial = 0; trial < 600; ++trial) {
    const bool tied = trial % 3 == 2;
    std::vector<float> logits(n_vocab);
    for (float& l : logits) {
      double sum = 0;
      for (int i = 0; i < 4; ++i) sum += next_uniform();
      l = static_cast<float>((sum - 2.0) * 8.0);
      if (tied) l = std::round(l);
    }
    SamplerParams params;
    params.greedy = trial % 5 == 0;
    params.top_k = std::vector<int>{1, 2, 5, 40, 100}[trial % 5];
    params.temperature = std::vector<float>{0.8f, 1.0f, 0.3f, 2.5f}[trial % 4];
    params.top_p = trial % 2 ? 0.95f : 1.0f;
    params.min_p = trial % 7 < 3 ? 0.05f : 0.0f;
    params.repeat_penalty = trial % 4 == 1 ? 1.3f : 1.0f;
    params.presence_penalty = trial % 6 == 2 ? 0.7f : 0.0f;
    params.frequency_penalty = trial % 8 == 3 ? 0.4f : 0.0f;
    params.repeat_last_n = trial % 9 == 4 ? 8 : 64;
    std::vector<int32_t> history;
    for (int i = 0; i < 40; ++i) history.push_back(static_cast<int32_t>(next_uniform() * 60));  // repeats
    const int32_t banned = trial % 4 == 0 ? static_cast<int32_t>(next_uniform() * 30) : -1;
    gpt2::Sampler full(params, 5 + trial), fast(params, 5 + trial);
    const int m = fast.top_needed(history.size(), banned >= 0);
    REQUIRE(m > 0);
    REQUIRE(m < n_vocab);
    std::vector<int32_t> ids;
    std::vector<float> values;
    reference_top(logits, m, ids, values);
    const int32_t got = fast.sample_top(ids.data(), values.data(), m, n_vocab, history, banned, trial % 3, trial);
    std::vector<float> row = logits;
    if (banned >= 0) row[banned] = -std::numeric_limits<float>::infinity();
    const int32_t want = full.sample(row.data(), n_vocab, history, trial % 3, trial);
    INFO("trial " << trial << (tied ? " (ties)" : "") << " m " << m << " got " << got << " want " << want);
    if (got >= 0) CHECK(got == want);
    if (tied) {
      decided_tied += got >= 0;
    } else {
      ++cases_continuous;
      decided_continuous += got >= 0;
    }
  }
  CHECK(decided_continuous == cases_continuous);  // no ties: the boundary always separates
  CHECK(decided_tied > 0);
}

TEST_CASE("sampler: sample_top defers to all logits when the candidates cannot decide", "[sampler]") {
  SamplerParams greedy;
  greedy.greedy = true;
  gpt2::Sampler s(greedy, 1);
  // A tie between the best candidate and the boundary: an outsider could equal it with a smaller id.
  const std::vector<int32_t> ids = {7, 3};
  const std::vector<float> tie = {2.0f, 2.0f}, clear = {3.0f, 2.0f};
  CHECK(s.sample_top(ids.data(), tie.data(), 2, 10, {}, -1, 0, 0) == -1);
  CHECK(s.sample_top(ids.data(), clear.data(), 2, 10, {}, -1, 0, 0) == 7);
  CHECK(s.sample_top(ids.data(), clear.data(), 2, 10, {}, 7, 0, 0) == -1);  // the best is banned
  // A penalty that can raise a logit, or a draw without top-k, needs every logit.
  SamplerParams raise = greedy;
  raise.frequency_penalty = -1.0f;
  CHECK(gpt2::Sampler(raise, 1).top_needed(5, false) == 0);
  CHECK(gpt2::Sampler(raise, 1).top_needed(0, false) == 2);  // no window: nothing is penalized
  SamplerParams all;
  all.top_k = 0;
  CHECK(gpt2::Sampler(all, 1).top_needed(5, false) == 0);
  SamplerParams usual;  // llama.cpp's defaults: top-k 40, no penalty
  CHECK(gpt2::Sampler(usual, 1).top_needed(100, true) == 42);
  usual.repeat_penalty = 1.1f;
  CHECK(gpt2::Sampler(usual, 1).top_needed(100, false) == 40 + 64 + 1);
  // A temperature so small that a candidate overflows: run_chain's argmax rule, on all logits.
  SamplerParams cold;
  cold.temperature = 1e-38f;
  const std::vector<int32_t> many = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
                                     20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41};
  std::vector<float> falling(many.size());
  for (size_t i = 0; i < falling.size(); ++i) falling[i] = 50.0f - static_cast<float>(i);
  CHECK(gpt2::Sampler(cold, 1).sample_top(many.data(), falling.data(), 42, 100, {}, -1, 0, 0) == -1);
}
