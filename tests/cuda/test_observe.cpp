// Observing a forward step on the CUDA backend (model/observer.h, src/inspect/): the observers
// read device tensors with Backend::read and run the lens (layernorm + linear) with the backend's
// own ops, on a step that is never graph-captured (StepKey::observed). Checked: an observed step's
// logits are bit-identical to an unobserved one's, prefill and decode (the unobserved decode step
// replays its CUDA graph); and what the observers record agrees with the CPU backend's. The model:
// seeded random weights of 2 layers, 2 heads of 64 (the one head size the CUDA kernels serve; the
// synthetic models of tests/data have heads of 12) and a vocabulary of 500.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "inspect/heads.h"
#include "inspect/lens.h"
#include "inspect/observers.h"
#include "model/gpt2.h"
#include "model/source.h"

using namespace gpt2;

namespace {

HostModel small_model() { return test::random_host(test::head64_config(), 2024); }

const std::vector<int32_t> kIds = {115, 392, 221, 286, 283, 347, 287, 279, 488, 261, 115, 392, 221};

std::unique_ptr<Gpt2> model_on(std::unique_ptr<Backend> backend) {
  RunLimits limits;
  limits.max_rows = 16;
  limits.max_logit_rows = 16;
  return std::make_unique<Gpt2>(small_model(), std::move(backend), limits);
}

std::vector<float> run(Gpt2& m, KvCache& kv, int slot, int pos, const std::vector<int32_t>& ids, StepObserver* observer) {
  Batch batch;
  batch.add(slot, pos, ids.data(), static_cast<int>(ids.size()), Logits::all);
  Outputs out;
  out.observer = observer;
  m.forward(batch, kv, out);
  std::vector<float> host(static_cast<size_t>(out.logits.numel()));
  m.backend().read(host.data(), out.logits);
  return host;
}

struct Observed {
  std::vector<std::vector<float>> weights;  // per head, packed lower triangle
  std::vector<std::vector<inspect::LensRow>> lens;
  std::vector<std::vector<float>> residual;  // per layer, the last row
};

Observed observe(Gpt2& m) {
  const Config& c = m.config();
  const int T = static_cast<int>(kIds.size());
  std::vector<inspect::HeadRef> heads;
  for (int l = 0; l < c.n_layer; ++l)
    for (int h = 0; h < c.n_head; ++h) heads.push_back({l, h});
  inspect::QkRecorder qk(c, heads, 0, T);
  std::vector<int32_t> targets(kIds.begin() + 1, kIds.end());
  targets.push_back(-1);
  inspect::LogitLens lens(c, m.weights(), m.backend(), 0, T, targets, 5, c.n_vocab, nullptr);
  inspect::ResidualRows residual(c.n_layer, c.n_embd, {T - 1});
  inspect::ObserverList all({&qk, &lens, &residual});
  KvCache kv = m.make_kv_cache(1);
  run(m, kv, kv.acquire(), 0, kIds, &all);
  Observed o;
  for (size_t i = 0; i < heads.size(); ++i) {
    o.weights.emplace_back(inspect::tri_size(T));
    inspect::attention_weights(qk.q(i), qk.k_t(i), T, qk.head_dim(), o.weights.back().data(), nullptr);
  }
  o.lens = lens.layers();
  for (int l = 0; l <= c.n_layer; ++l) o.residual.emplace_back(residual.row(l, 0), residual.row(l, 0) + c.n_embd);
  return o;
}

}  // namespace

TEST_CASE("CUDA observe: an observed step's logits are bit-identical, prefill and decode", "[cuda][observe]") {
  for (DType dtype : {DType::f32, DType::bf16}) {
    INFO("dtype " << dtype_name(dtype));
    auto m = model_on(test::cuda_backend(dtype));
    const Config& c = m->config();
    const std::vector<int32_t> prompt(kIds.begin(), kIds.end() - 1);
    KvCache kv = m->make_kv_cache(1);
    const int slot = kv.acquire();
    const std::vector<float> plain = run(*m, kv, slot, 0, prompt, nullptr);
    const std::vector<float> plain_decode = run(*m, kv, slot, static_cast<int>(prompt.size()), {kIds.back()}, nullptr);
    const std::vector<float> plain_decode2 = run(*m, kv, slot, static_cast<int>(prompt.size()), {kIds.back()}, nullptr);
    CHECK(std::memcmp(plain_decode.data(), plain_decode2.data(), plain_decode.size() * sizeof(float)) == 0);

    inspect::QkRecorder qk(c, {{0, 1}, {c.n_layer - 1, 0}}, 0, static_cast<int>(prompt.size()));
    std::vector<int32_t> none(prompt.size(), -1);
    inspect::LogitLens lens(c, m->weights(), m->backend(), 0, static_cast<int>(prompt.size()), none, 3, c.n_vocab, nullptr);
    inspect::ObserverList all({&qk, &lens});
    kv.clear(slot);
    const std::vector<float> seen = run(*m, kv, slot, 0, prompt, &all);
    REQUIRE(qk.complete());
    CHECK(std::memcmp(plain.data(), seen.data(), plain.size() * sizeof(float)) == 0);
    // A decode step observed: run eagerly instead of from the graph, the same bits.
    inspect::ResidualRows residual(c.n_layer, c.n_embd, {0});
    const std::vector<float> seen_decode = run(*m, kv, slot, static_cast<int>(prompt.size()), {kIds.back()}, &residual);
    CHECK(std::memcmp(plain_decode.data(), seen_decode.data(), plain_decode.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("CUDA observe: q/k, the lens and residual rows agree with the CPU backend", "[cuda][observe]") {
  auto cpu = model_on(test::cpu_backend());
  auto gpu = model_on(test::cuda_backend(DType::f32));
  const Observed a = observe(*cpu), b = observe(*gpu);
  double w_err = 0, row_err = 0, lp_err = 0, cos_min = 1;
  for (size_t h = 0; h < a.weights.size(); ++h)
    for (size_t i = 0; i < a.weights[h].size(); ++i)
      w_err = std::max(w_err, static_cast<double>(std::abs(a.weights[h][i] - b.weights[h][i])));
  const int T = static_cast<int>(kIds.size());
  for (const auto& w : b.weights)
    for (int t = 0; t < T; ++t) {
      double s = 0;
      for (int j = 0; j <= t; ++j) s += w[inspect::tri_row(t) + j];
      row_err = std::max(row_err, std::abs(s - 1));
    }
  for (size_t l = 0; l < a.lens.size(); ++l)
    for (int t = 0; t + 1 < T; ++t)
      lp_err = std::max(lp_err, std::abs(a.lens[l][static_cast<size_t>(t)].target_logprob -
                                         b.lens[l][static_cast<size_t>(t)].target_logprob));
  for (size_t l = 0; l < a.residual.size(); ++l)
    cos_min = std::min(cos_min, inspect::cosine(a.residual[l].data(), b.residual[l].data(),
                                                static_cast<int>(a.residual[l].size())));
  INFO("CUDA vs CPU: weights " << w_err << ", row sums " << row_err << ", lens logprob " << lp_err << ", residual cosine "
                               << cos_min);
  CHECK(w_err <= 1e-4);
  CHECK(row_err <= 1e-5);
  CHECK(lp_err <= 1e-3);
  CHECK(cos_min >= 1 - 1e-6);
}
