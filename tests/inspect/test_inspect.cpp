// src/inspect/: the observers of a forward step and the analyses over them, on the CPU backend.
//   - by construction: attention rows of hand-made q/k, head-pattern scores of hand-made weights,
//     the lens reduction of a hand-made row;
//   - against the float64 reference (tools/reference/gpt2_reference.py forward_inside, written to
//     tests/data/models/*/inside.json by make_fixtures.py): attention weights of every head, the
//     logit lens of every layer, drift cosines, on the f32 synthetic model; the hand-built heads-2l
//     model's heads classified as they were built;
//   - invariants: every row of weights sums to 1, the lens of the last layer is the model's own
//     output, and an observed step's logits are bit-identical to an unobserved one's.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/thread_pool.h"
#include "inspect/heads.h"
#include "inspect/lens.h"
#include "inspect/observers.h"
#include "model/gpt2.h"
#include "model/source.h"
#include "runtime/device.h"

using namespace gpt2;
using inspect::HeadRef;

namespace {

const std::string kModels = std::string(GPT2_TEST_DATA) + "/models";

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

std::unique_ptr<Gpt2> cpu_model(const std::string& dir, int rows, int sequences, int logit_rows) {
  BackendOptions options;
  options.device = Device::cpu;
  options.threads = 2;
  RunLimits limits;
  limits.max_rows = rows;
  limits.max_sequences = sequences;
  limits.max_logit_rows = logit_rows;
  return std::make_unique<Gpt2>(load_model(dir), make_backend(options), limits);
}

// One step: each sequence from position 0 of its own slot; the logits of every row when `logits`.
std::vector<float> step(Gpt2& model, const std::vector<std::vector<int32_t>>& seqs, StepObserver* observer,
                        Logits logits) {
  KvCache kv = model.make_kv_cache(static_cast<int>(seqs.size()));
  Batch batch;
  for (const auto& ids : seqs) batch.add(kv.acquire(), 0, ids.data(), static_cast<int>(ids.size()), logits);
  Outputs out;
  out.observer = observer;
  model.forward(batch, kv, out);
  std::vector<float> host(static_cast<size_t>(out.logits.numel()));
  if (!host.empty()) model.backend().read(host.data(), out.logits);
  return host;
}

std::vector<HeadRef> all_heads(const Config& c) {
  std::vector<HeadRef> heads;
  for (int l = 0; l < c.n_layer; ++l)
    for (int h = 0; h < c.n_head; ++h) heads.push_back(HeadRef{l, h});
  return heads;
}

}  // namespace

// ---------------------------------------------------------------- by construction

TEST_CASE("attention row: q = 0 attends uniformly, and the mask is causal", "[inspect]") {
  const int T = 5, D = 4;
  std::vector<float> q(T * D, 0.0f), kt(D * T);
  for (size_t i = 0; i < kt.size(); ++i) kt[i] = static_cast<float>(i % 7) - 3.0f;
  std::vector<float> w(inspect::tri_size(T));
  inspect::attention_weights(q.data(), kt.data(), T, D, w.data(), nullptr);
  for (int t = 0; t < T; ++t)
    for (int j = 0; j <= t; ++j) CHECK(w[inspect::tri_row(t) + j] == Approx(1.0 / (t + 1)).epsilon(1e-6));
}

TEST_CASE("attention row: softmax(q.k / sqrt(D)) computed by hand", "[inspect]") {
  // D = 4 (scale 1/2); query 2 = (2, 0, 0, 0); keys k_j = (j, 0, 0, 0): scores 0, 1, 2.
  const int T = 3, D = 4;
  std::vector<float> q(T * D, 0.0f), kt(D * T, 0.0f);
  q[2 * D + 0] = 2.0f;
  for (int j = 0; j < T; ++j) kt[0 * T + j] = static_cast<float>(j);
  std::vector<float> w(3);
  inspect::attention_row(q.data(), kt.data(), T, D, 2, w.data());
  const double z = 1 + std::exp(1.0) + std::exp(2.0);
  CHECK(w[0] == Approx(1 / z).epsilon(1e-6));
  CHECK(w[1] == Approx(std::exp(1.0) / z).epsilon(1e-6));
  CHECK(w[2] == Approx(std::exp(2.0) / z).epsilon(1e-6));
  // Adding a constant to every score changes nothing: a key component that every key shares.
  for (int j = 0; j < T; ++j) kt[1 * T + j] = 5.0f;
  q[2 * D + 1] = 3.0f;
  std::vector<float> w2(3);
  inspect::attention_row(q.data(), kt.data(), T, D, 2, w2.data());
  for (int j = 0; j < 3; ++j) CHECK(w2[j] == Approx(w[j]).epsilon(1e-6));
}

TEST_CASE("head scores: exact patterns give exactly their share of the mass", "[inspect]") {
  const std::vector<int32_t> ids = {7, 8, 9, 7, 8, 9};  // a repeated sequence
  const int T = static_cast<int>(ids.size());
  auto pattern = [&](auto key_of) {
    std::vector<float> w(inspect::tri_size(T), 0.0f);
    for (int t = 0; t < T; ++t) w[inspect::tri_row(t) + key_of(t)] = 1.0f;
    return inspect::head_scores(w.data(), ids);
  };
  // Previous token (row 0 can only see itself).
  inspect::HeadScores s = pattern([](int t) { return t > 0 ? t - 1 : 0; });
  CHECK(s.previous_token == Approx(5.0 / 6));
  CHECK(inspect::classify(s).kind == inspect::HeadKind::previous_token);
  // Induction: the token after the earlier copy (rows 3..5 -> keys 1..3); rows 0..2 on key 0.
  s = pattern([](int t) { return t >= 3 ? t - 2 : 0; });
  CHECK(s.induction == Approx(3.0 / 6));
  CHECK(s.first_token == Approx(3.0 / 6));
  CHECK(inspect::classify(s).kind == inspect::HeadKind::induction);  // ties go to the earlier kind
  // Duplicate token: the earlier copy itself (rows 3..5 -> keys 0..2); rows 0..2 on themselves.
  s = pattern([](int t) { return t >= 3 ? t - 3 : t; });
  CHECK(s.duplicate_token == Approx(3.0 / 6));
  CHECK(s.previous_token == Approx(0.0));
  CHECK(inspect::classify(s).kind == inspect::HeadKind::duplicate_token);
  // Every row on itself: no pattern reaches the threshold.
  s = pattern([](int t) { return t; });
  CHECK(s.first_token == Approx(1.0 / 6));
  CHECK(inspect::classify(s).kind == inspect::HeadKind::unclear);
  CHECK_FALSE(inspect::has_repeats({1, 2, 3}));
  CHECK(inspect::has_repeats(ids));
}

TEST_CASE("lens row: log-softmax, top-k and rank of a hand-made row", "[inspect]") {
  // logits log(1), log(2), log(3), log(2), log(0.5): probabilities 1/8.5, 2/8.5, 3/8.5, 2/8.5, 0.5/8.5
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(2.0f), std::log(0.5f)};
  const inspect::LensRow row = inspect::lens_row(logits.data(), 5, 5, 3, 3);
  REQUIRE(row.finite);
  REQUIRE(row.top.size() == 3);
  CHECK(row.top[0].id == 2);
  CHECK(row.top[1].id == 1);  // equal logits: the smaller id first
  CHECK(row.top[2].id == 3);
  CHECK(row.top[0].logprob == Approx(std::log(3 / 8.5)).epsilon(1e-6));
  REQUIRE(row.has_target);
  CHECK(row.target_rank == 3);  // after 2, and after 1 (equal, smaller id)
  CHECK(row.target_logprob == Approx(std::log(2 / 8.5)).epsilon(1e-6));
  // Only the first n_listable ids are ranked and listed (a padded vocabulary's extra rows).
  const inspect::LensRow short_row = inspect::lens_row(logits.data(), 5, 2, 3, 0);
  CHECK(short_row.top.size() == 2);
  CHECK(short_row.target_rank == 2);
  std::vector<float> bad = logits;
  bad[4] = NAN;
  CHECK_FALSE(inspect::lens_row(bad.data(), 5, 5, 3, -1).finite);
}

// ---------------------------------------------------------------- against the float64 reference

TEST_CASE("inside the f32 model: attention weights, pattern scores and the lens match the reference", "[inspect]") {
  const std::string dir = kModels + "/f32";
  const nlohmann::json ref = read_json(dir + "/inside.json");
  const std::vector<int32_t> ids = ref["ids"].get<std::vector<int32_t>>();
  const int T = static_cast<int>(ids.size());
  auto model = cpu_model(dir, T, 1, T);
  const Config& c = model->config();

  inspect::QkRecorder qk(c, all_heads(c), 0, T);
  std::vector<int32_t> targets(ids.begin() + 1, ids.end());
  targets.push_back(-1);
  ThreadPool pool(2);
  inspect::LogitLens lens(c, model->weights(), model->backend(), 0, T, targets, 5, c.n_vocab, &pool);
  inspect::ObserverList both({&qk, &lens});
  const std::vector<float> logits = step(*model, {ids}, &both, Logits::all);
  REQUIRE(qk.complete());

  double max_weight_err = 0, max_row_err = 0, max_score_err = 0;
  std::vector<float> w(inspect::tri_size(T));
  const nlohmann::json& heads = ref["attention"];
  REQUIRE(heads.size() == qk.heads().size());
  for (size_t i = 0; i < heads.size(); ++i) {
    REQUIRE(heads[i]["layer"] == qk.heads()[i].layer);
    REQUIRE(heads[i]["head"] == qk.heads()[i].head);
    inspect::attention_weights(qk.q(i), qk.k_t(i), T, qk.head_dim(), w.data(), &pool);
    for (int t = 0; t < T; ++t) {
      double sum = 0;
      for (int j = 0; j <= t; ++j) {
        const float v = w[inspect::tri_row(t) + j];
        sum += v;
        max_weight_err = std::max(max_weight_err, std::abs(v - heads[i]["weights"][t][j].get<double>()));
      }
      max_row_err = std::max(max_row_err, std::abs(sum - 1));
    }
    const inspect::HeadScores s = inspect::head_scores(w.data(), ids);
    const nlohmann::json& rs = heads[i]["scores"];
    for (const auto& [got, name] : {std::pair{s.previous_token, "previous_token"}, std::pair{s.duplicate_token, "duplicate_token"},
                                    std::pair{s.induction, "induction"}, std::pair{s.first_token, "first_token"}})
      max_score_err = std::max(max_score_err, std::abs(got - rs[name].get<double>()));
  }
  INFO("attention: max |w - ref| " << max_weight_err << ", max |row sum - 1| " << max_row_err
                                   << ", max |score - ref| " << max_score_err);
  CHECK(max_weight_err <= 1e-5);
  CHECK(max_row_err <= 1e-5);
  CHECK(max_score_err <= 1e-5);
  WARN("f32 attention vs float64 reference: max weight error " << max_weight_err << ", max score error "
                                                                << max_score_err);

  double max_lp_err = 0;
  int rank_mismatch = 0;
  const auto& layers = lens.layers();
  REQUIRE(layers.size() == static_cast<size_t>(c.n_layer + 1));
  for (int l = 0; l <= c.n_layer; ++l) {
    for (int t = 0; t < T; ++t) {
      const inspect::LensRow& got = layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
      const nlohmann::json& want = ref["lens"][l]["positions"][t];
      for (size_t k = 0; k < got.top.size(); ++k) {
        // The same ids, unless two reference log-probs are too close to order in fp32.
        const double gap = k + 1 < want["top"].size()
                               ? want["top"][k]["logprob"].get<double>() - want["top"][k + 1]["logprob"].get<double>()
                               : 1.0;
        if (gap > 1e-3) CHECK(got.top[k].id == want["top"][k]["id"].get<int32_t>());
        max_lp_err = std::max(max_lp_err, std::abs(got.top[k].logprob - want["top"][k]["logprob"].get<double>()));
      }
      REQUIRE(got.has_target == (t + 1 < T));
      if (!got.has_target) continue;
      max_lp_err = std::max(max_lp_err, std::abs(got.target_logprob - want["target_logprob"].get<double>()));
      rank_mismatch += got.target_rank != want["target_rank"].get<int64_t>();
    }
  }
  INFO("lens: max |logprob - ref| " << max_lp_err);
  CHECK(max_lp_err <= 2e-4);
  CHECK(rank_mismatch == 0);
  WARN("f32 lens vs float64 reference: max logprob error " << max_lp_err);

  // The last layer's lens is the model's output: the same reduction of the step's own logits.
  for (int t = 0; t < T; ++t) {
    const inspect::LensRow own = inspect::lens_row(logits.data() + static_cast<size_t>(t) * c.n_vocab, c.n_vocab,
                                                   c.n_vocab, 5, targets[static_cast<size_t>(t)]);
    const inspect::LensRow& last = layers[static_cast<size_t>(c.n_layer)][static_cast<size_t>(t)];
    CHECK(last.target_logprob == own.target_logprob);
    CHECK(last.target_rank == own.target_rank);
    for (size_t k = 0; k < own.top.size(); ++k) {
      CHECK(last.top[k].id == own.top[k].id);
      CHECK(last.top[k].logprob == own.top[k].logprob);
    }
  }
}

TEST_CASE("inside the f32 model: drift cosines match the reference", "[inspect]") {
  const std::string dir = kModels + "/f32";
  const nlohmann::json ref = read_json(dir + "/inside.json")["drift"];
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int> rows;
  int first = 0;
  for (const auto& t : ref["texts"]) {
    seqs.push_back(t["ids"].get<std::vector<int32_t>>());
    rows.push_back(first + t["position"].get<int>());
    first += static_cast<int>(seqs.back().size());
  }
  auto model = cpu_model(dir, first, static_cast<int>(seqs.size()), 1);
  const Config& c = model->config();
  inspect::ResidualRows residual(c.n_layer, c.n_embd, rows);
  step(*model, seqs, &residual, Logits::none);
  double max_err = 0;
  for (int l = 0; l <= c.n_layer; ++l)
    for (size_t a = 0; a < seqs.size(); ++a)
      for (size_t b = 0; b < seqs.size(); ++b) {
        const double got = inspect::cosine(residual.row(l, a), residual.row(l, b), c.n_embd);
        max_err = std::max(max_err, std::abs(got - ref["layers"][l]["cosine"][a][b].get<double>()));
      }
  INFO("drift: max |cosine - ref| " << max_err);
  CHECK(max_err <= 1e-5);
  WARN("f32 drift vs float64 reference: max cosine error " << max_err);
}

TEST_CASE("observing a step leaves its logits bit-identical", "[inspect]") {
  const std::string dir = kModels + "/f32";
  const std::vector<int32_t> ids = read_json(dir + "/inside.json")["ids"].get<std::vector<int32_t>>();
  const int T = static_cast<int>(ids.size());
  auto model = cpu_model(dir, T, 1, T);
  const Config& c = model->config();
  const std::vector<float> plain = step(*model, {ids}, nullptr, Logits::all);
  inspect::QkRecorder qk(c, all_heads(c), 0, T);
  std::vector<int32_t> targets(static_cast<size_t>(T), -1);
  inspect::LogitLens lens(c, model->weights(), model->backend(), 0, T, targets, 3, c.n_vocab, nullptr);
  inspect::ResidualRows residual(c.n_layer, c.n_embd, {0, T - 1});
  inspect::ObserverList all({&qk, &lens, &residual});
  const std::vector<float> observed = step(*model, {ids}, &all, Logits::all);
  REQUIRE(plain.size() == observed.size());
  CHECK(std::memcmp(plain.data(), observed.data(), plain.size() * sizeof(float)) == 0);
  // And again without: the observed step left nothing behind.
  const std::vector<float> again = step(*model, {ids}, nullptr, Logits::all);
  CHECK(std::memcmp(plain.data(), again.data(), plain.size() * sizeof(float)) == 0);
}

TEST_CASE("QkRecorder reads only the layers of the heads asked for", "[inspect]") {
  const std::string dir = kModels + "/f32";
  auto model = cpu_model(dir, 4, 1, 1);
  const Config& c = model->config();
  inspect::QkRecorder qk(c, {HeadRef{1, 2}}, 0, 4);
  CHECK_FALSE(qk.wants_qkv(0));
  CHECK(qk.wants_qkv(1));
  CHECK_FALSE(qk.wants_qkv(2));
  CHECK_FALSE(qk.wants_residual());
  CHECK_FALSE(qk.complete());
  step(*model, {{1, 2, 3, 4}}, &qk, Logits::none);
  CHECK(qk.complete());
  CHECK_THROWS(inspect::QkRecorder(c, {HeadRef{c.n_layer, 0}}, 0, 4));
  CHECK_THROWS(inspect::QkRecorder(c, {HeadRef{0, c.n_head}}, 0, 4));
}

// ---------------------------------------------------------------- a model built by hand

TEST_CASE("heads-2l: the hand-built heads are found as built, and match the reference", "[inspect]") {
  const std::string dir = kModels + "/heads-2l";
  const nlohmann::json ref = read_json(dir + "/inside.json");
  const std::vector<int32_t> ids = ref["ids"].get<std::vector<int32_t>>();
  const int T = static_cast<int>(ids.size());
  auto model = cpu_model(dir, T, 1, 1);
  const Config& c = model->config();
  inspect::QkRecorder qk(c, all_heads(c), 0, T);
  step(*model, {ids}, &qk, Logits::none);
  std::vector<float> w(inspect::tri_size(T));
  double max_err = 0;
  for (size_t i = 0; i < qk.heads().size(); ++i) {
    inspect::attention_weights(qk.q(i), qk.k_t(i), T, qk.head_dim(), w.data(), nullptr);
    for (int t = 0; t < T; ++t)
      for (int j = 0; j <= t; ++j)
        max_err = std::max(max_err, std::abs(w[inspect::tri_row(t) + j] - ref["attention"][i]["weights"][t][j].get<double>()));
    const HeadRef h = qk.heads()[i];
    const std::string name = std::to_string(h.layer) + "." + std::to_string(h.head);
    const inspect::HeadClass cls = inspect::classify(inspect::head_scores(w.data(), ids));
    std::string want = ref["kinds"][name].get<std::string>();
    std::replace(want.begin(), want.end(), '_', '-');
    INFO("head " << name);
    CHECK(inspect::head_kind_name(cls.kind) == want);
  }
  CHECK(max_err <= 1e-5);
  // The pattern a previous-token head must have: the sub-diagonal.
  inspect::attention_weights(qk.q(0), qk.k_t(0), T, qk.head_dim(), w.data(), nullptr);
  for (int t = 1; t < T; ++t) CHECK(w[inspect::tri_row(t) + t - 1] > 0.999f);
  // And an induction head on a repeated random sequence: in the repeat, the token after the copy.
  inspect::attention_weights(qk.q(2), qk.k_t(2), T, qk.head_dim(), w.data(), nullptr);
  for (int t = T / 2; t < T; ++t) CHECK(w[inspect::tri_row(t) + t - T / 2 + 1] > 0.99f);
}
