// The whole forward pass (src/model/gpt2.cpp) on the CUDA backend against the CPU backend:
// every preset shape, batch 1 and 3, a 7-token prompt (all logits) then greedy decode steps
// (the second decode step of a batch size replays the CUDA graph captured by the first);
// decode at batch 8 and 9 (the GEMV's last batch, then cuBLAS inside the captured graph).
// Greedy tokens must agree wherever the CPU's top-2 margin exceeds the logit tolerance.
// Then CUDA against itself: graph replays equal eager decode steps (GPT2_CUDA_GRAPHS=0).
//
// Depth: gpt2 and distilgpt2 run with all their layers; gpt2-medium, -large and -xl keep their
// real widths, heads and vocabulary but 4 layers, so the check stays within the GPU script's
// time budget (every layer runs the same kernels).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "model/gpt2.h"

using namespace gpt2;
using namespace gpt2::test;

namespace {

struct Top2 {
  int best = 0;
  float margin = 0;
};

Top2 top2(const float* logits, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  float second = -1e30f;
  for (int i = 0; i < n; ++i)
    if (i != best) second = std::max(second, logits[i]);
  return {best, logits[best] - second};
}

// The largest logit error the model tolerance allows, as an absolute margin for greedy checks.
float margin_needed(const std::vector<float>& ref, DType dtype) {
  double ss = 0;
  for (float v : ref) ss += static_cast<double>(v) * v;
  const double rms = std::sqrt(ss / std::max<size_t>(1, ref.size()));
  return static_cast<float>(2 * model_tolerance(dtype).elem * rms);
}

struct Models {
  std::unique_ptr<Gpt2> cpu, gpu;
};

Models make_models(const HostModel& base, DType dtype, const RunLimits& limits) {
  HostModel m = copy_model(base);
  round_matrices(m, dtype);
  Models out;
  out.cpu = std::make_unique<Gpt2>(copy_model(m), cpu_backend(), limits);
  out.gpu = std::make_unique<Gpt2>(std::move(m), cuda_backend(dtype), limits);
  return out;
}

// Prompt of n_prompt tokens per sequence, then n_decode greedy steps (the CPU's choice feeds both).
void compare_generation(Models& ms, int batch, int n_prompt, int n_decode, DType dtype, const std::string& name,
                        uint64_t seed) {
  const Config& config = ms.cpu->config();
  const int V = config.n_vocab;
  ms.cpu->reset();
  ms.gpu->reset();
  std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(batch) * n_prompt, V, seed);
  std::vector<float> lc, lg;
  const Logits which = ms.cpu->limits().all_logits ? Logits::all : Logits::last;
  ms.cpu->forward(tokens.data(), batch, n_prompt, which, lc);
  lg.assign(lc.size(), std::numeric_limits<float>::quiet_NaN());
  ms.gpu->forward(tokens.data(), batch, n_prompt, which, lg);
  const std::string base = name + " " + dtype_name(dtype) + " B=" + std::to_string(batch);
  CHECK(close(lg, lc, model_tolerance(dtype), base + " prefill T=" + std::to_string(n_prompt)));

  for (int step = 0; step <= n_decode; ++step) {
    // Rows of logits per sequence: T after an all-logits prefill, 1 after a decode step.
    const size_t rows_per_seq = lc.size() / (static_cast<size_t>(batch) * V);
    REQUIRE(rows_per_seq * batch * V == lc.size());
    const float needed = margin_needed(lc, dtype);
    std::vector<int32_t> next(static_cast<size_t>(batch));
    for (int b = 0; b < batch; ++b) {
      const size_t last = (static_cast<size_t>(b) * rows_per_seq + rows_per_seq - 1) * static_cast<size_t>(V);
      const Top2 c = top2(lc.data() + last, V);
      const Top2 g = top2(lg.data() + last, V);
      if (c.margin > needed) {
        INFO(base << " step " << step << " sequence " << b << ": CPU margin " << c.margin << " > " << needed);
        CHECK(g.best == c.best);
      }
      next[static_cast<size_t>(b)] = c.best;
    }
    if (step == n_decode || ms.cpu->pos() + 1 > config.n_ctx) break;
    ms.cpu->forward(next.data(), batch, 1, Logits::last, lc);
    lg.assign(lc.size(), std::numeric_limits<float>::quiet_NaN());
    ms.gpu->forward(next.data(), batch, 1, Logits::last, lg);
    CHECK(close(lg, lc, model_tolerance(dtype), base + " decode pos=" + std::to_string(ms.cpu->pos() - 1)));
  }
}

// A CUDA model whose decode steps run eagerly: the backend reads GPT2_CUDA_GRAPHS when it is made.
std::unique_ptr<Gpt2> eager_cuda_model(HostModel m, DType dtype, const RunLimits& limits) {
  const char* old = std::getenv("GPT2_CUDA_GRAPHS");
  const std::string saved = old ? old : "";
  const bool was_set = old != nullptr;
  auto restore = [&] {
    if (was_set)
      setenv("GPT2_CUDA_GRAPHS", saved.c_str(), 1);
    else
      unsetenv("GPT2_CUDA_GRAPHS");
  };
  setenv("GPT2_CUDA_GRAPHS", "0", 1);
  std::unique_ptr<Backend> be;
  try {
    be = cuda_backend(dtype);
  } catch (...) {
    restore();
    throw;
  }
  restore();
  return std::make_unique<Gpt2>(std::move(m), std::move(be), limits);
}

}  // namespace

TEST_CASE("every preset shape matches the CPU backend (prefill + greedy decode)", "[cuda][model]") {
  for (const char* preset : {"distilgpt2", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}) {
    Config config = Config::preset(preset);
    if (config.n_layer > 12) config.n_layer = 4;
    const HostModel base = random_model(config, 1234);
    RunLimits limits;
    limits.max_batch = 3;
    limits.max_tokens = 64;
    limits.all_logits = true;
    for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
      Models ms = make_models(base, dtype, limits);
      for (int batch : {1, 3}) compare_generation(ms, batch, 7, 4, dtype, preset, 99 + batch);
    }
  }
}

TEST_CASE("gpt2 at full context matches the CPU backend", "[cuda][model]") {
  const HostModel base = random_model(Config::preset("gpt2"), 4321);
  RunLimits limits;
  limits.max_batch = 1;
  limits.max_tokens = 1024;
  for (DType dtype : {DType::f32, DType::bf16}) {
    Models ms = make_models(base, dtype, limits);
    compare_generation(ms, 1, 1023, 1, dtype, "gpt2", 7);  // the last position decoded through the cache
    compare_generation(ms, 1, 1024, 0, dtype, "gpt2", 8);
  }
}

// The same tokens as one prefill or one token at a time give the same last logits (CUDA only:
// the prefill kernel and the decode kernel agree through the KV cache). fp16 is the sharper
// check (8x less rounding than bf16).
TEST_CASE("CUDA prefill equals token-by-token decoding", "[cuda][model][attention]") {
  Config config = Config::preset("gpt2");
  config.n_layer = 4;
  const HostModel base = random_model(config, 77);
  RunLimits limits;
  limits.max_batch = 3;
  limits.max_tokens = 64;
  for (DType dtype : {DType::bf16, DType::f16}) {
    Gpt2 model(copy_model(base), cuda_backend(dtype), limits);
    const int batch = 3, T = 40;
    const auto tokens = random_tokens(static_cast<size_t>(batch) * T, config.n_vocab, 5);
    std::vector<float> whole, stepwise;
    model.forward(tokens.data(), batch, T, Logits::last, whole);
    model.reset();
    for (int t = 0; t < T; ++t) {
      std::vector<int32_t> column(static_cast<size_t>(batch));
      for (int b = 0; b < batch; ++b) column[static_cast<size_t>(b)] = tokens[static_cast<size_t>(b) * T + t];
      model.forward(column.data(), batch, 1, Logits::last, stepwise);
    }
    CHECK(close(stepwise, whole, model_tolerance(dtype), std::string(dtype_name(dtype)) + " prefill vs decode"));
  }
}

// Tiny model, every path, few launches: the case compute-sanitizer (memcheck, racecheck) runs.
TEST_CASE("tiny model under the sanitizer matches the CPU backend", "[cuda][sanitize]") {
  Config config;
  config.n_vocab = 500;
  config.n_ctx = 128;
  config.n_embd = 128;
  config.n_head = 2;
  config.n_layer = 2;
  const HostModel base = random_model(config, 55);
  RunLimits limits;
  limits.max_batch = 3;
  limits.max_tokens = 128;
  limits.all_logits = true;
  for (DType dtype : {DType::f32, DType::bf16}) {
    Models ms = make_models(base, dtype, limits);
    for (int batch : {1, 3})
      for (int T : {1, 7, 65}) compare_generation(ms, batch, T, 3, dtype, "tiny", 200 + T);
    compare_generation(ms, 1, 127, 1, dtype, "tiny", 300);  // up to the last position
  }
}

// Decode batches on both sides of the GEMV's 8 rows: batch 8 stages 8 rows in the GEMV inside
// the captured graph; batch 9 runs its GEMMs through cuBLASLt inside the capture (and classic
// cuBLAS where cuBLASLt has no algorithm, e.g. the LM head's 50257 outputs), with the 16-bit
// input conversions captured too.
TEST_CASE("decode at batch 8 and 9 matches the CPU backend (GEMV and cuBLAS in the graph)", "[cuda][model]") {
  Config config = Config::preset("gpt2");
  config.n_layer = 2;
  const HostModel base = random_model(config, 909);
  RunLimits limits;
  limits.max_batch = 9;
  limits.max_tokens = 16;
  for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    Models ms = make_models(base, dtype, limits);
    for (int batch : {8, 9}) compare_generation(ms, batch, 7, 3, dtype, "gpt2 (2 layers)", 600 + batch);
  }
}

// The same steps with and without CUDA graphs give the same logits (the same kernels on the same
// data: equal up to fp32 rounding at most, far inside the model tolerance). A capture that
// depended on the backend's host-side record state (a deferred c_attn bias, a 16-bit GEMM input
// taken as current) would show here at a later replay. The runs interleave batch sizes and
// eager prefills between replays of each graph; batch 3's replays cross the decode attention's
// 32-position split boundary (positions 62 to 65); batch 9 captures cuBLAS; a 1-token "prompt"
// is itself a decode step (a replay of batch 1's graph at position 0).
TEST_CASE("CUDA graph replays equal eager decode steps", "[cuda][model]") {
  Config config = Config::preset("gpt2");
  config.n_layer = 2;
  const HostModel base = random_model(config, 505);
  const int V = config.n_vocab;
  RunLimits limits;
  limits.max_batch = 9;
  limits.max_tokens = 64;
  limits.all_logits = true;
  for (DType dtype : {DType::f32, DType::bf16}) {
    HostModel m = copy_model(base);
    round_matrices(m, dtype);
    Gpt2 graphs(copy_model(m), cuda_backend(dtype), limits);
    std::unique_ptr<Gpt2> eager = eager_cuda_model(std::move(m), dtype, limits);
    struct Run {
      int batch, n_prompt, n_decode;
    };
    uint64_t seed = 700;
    for (const Run r : {Run{3, 7, 3}, Run{1, 5, 2}, Run{3, 62, 4}, Run{9, 7, 3}, Run{1, 1, 2}, Run{3, 7, 1}}) {
      graphs.reset();
      eager->reset();
      const std::string what = std::string(dtype_name(dtype)) + " B=" + std::to_string(r.batch);
      std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(r.batch) * r.n_prompt, V, ++seed);
      std::vector<float> lg, le;
      graphs.forward(tokens.data(), r.batch, r.n_prompt, Logits::all, lg);
      eager->forward(tokens.data(), r.batch, r.n_prompt, Logits::all, le);
      CHECK(close(lg, le, op_tolerance(DType::f32), what + " prefill T=" + std::to_string(r.n_prompt)));
      for (int step = 0; step < r.n_decode; ++step) {
        tokens = random_tokens(static_cast<size_t>(r.batch), V, ++seed);
        lg.assign(lg.size(), std::numeric_limits<float>::quiet_NaN());
        graphs.forward(tokens.data(), r.batch, 1, Logits::last, lg);
        eager->forward(tokens.data(), r.batch, 1, Logits::last, le);
        CHECK(close(lg, le, op_tolerance(DType::f32), what + " decode pos=" + std::to_string(graphs.pos() - 1)));
      }
    }
    if (graphs.backend().name() == "cuda") {
      CHECK(eager->backend().describe().find("no graphs") != std::string::npos);
      CHECK(graphs.backend().describe().find("no graphs") == std::string::npos);
    }
  }
}

// Determinism as a race detector: two CUDA models on the same weights, fed the same tokens in
// lockstep, must give bit-identical logits (compared with ==, no tolerance). Every reduction in
// these steps has a fixed order: the decode attention's last block combines the splits in split
// order, the GEMV, LayerNorm and prefill attention reduce in fixed trees, and no step here goes
// through cuBLAS (every GEMM has <= 8 rows, so the GEMV runs). The same inputs can then only give
// different bits through a race: a PDL kernel reading before its predecessor's writes are visible,
// a split combined before its partial is published, a graph replay reading stale state. Such a
// race may stay inside the CPU comparison's tolerance; here any difference fails.
// Runs: batch 1 with a 7-token prompt (GEMV prefill, prefill attention) then decode to position
// 103 (1 to 4 attention splits of 32); batch 8 with a 1-token prompt (itself a captured decode
// step) then decode to position 71 (the 8-row GEMV in the graph, 3 splits).
TEST_CASE("decode steps are bit-identical from run to run (race detector)", "[cuda][model]") {
  Config config = Config::preset("gpt2");
  config.n_layer = 2;
  const HostModel base = random_model(config, 808);
  const int V = config.n_vocab;
  RunLimits limits;
  limits.max_batch = 8;
  limits.max_tokens = 7;  // the longest forward call (the prompt); positions go to n_ctx
  for (DType dtype : {DType::f32, DType::bf16}) {
    Gpt2 first(copy_model(base), cuda_backend(dtype), limits);
    Gpt2 second(copy_model(base), cuda_backend(dtype), limits);
    struct Run {
      int batch, n_prompt, n_decode;
    };
    uint64_t seed = 800;
    for (const Run r : {Run{1, 7, 97}, Run{8, 1, 71}}) {
      first.reset();
      second.reset();
      std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(r.batch) * r.n_prompt, V, ++seed);
      std::vector<float> l1, l2;
      for (int step = 0; step <= r.n_decode; ++step) {
        const int T = step == 0 ? r.n_prompt : 1;
        first.forward(tokens.data(), r.batch, T, Logits::last, l1);
        second.forward(tokens.data(), r.batch, T, Logits::last, l2);
        REQUIRE(l1.size() == l2.size());
        size_t differ = 0, first_diff = 0;
        for (size_t i = 0; i < l1.size(); ++i)
          if (!(l1[i] == l2[i]) && differ++ == 0) first_diff = i;
        INFO(dtype_name(dtype) << " B=" << r.batch << " pos=" << first.pos() - T << ": " << differ << " of "
                               << l1.size() << " logits differ; first [" << first_diff << "] "
                               << (differ ? l1[first_diff] : 0.0f) << " vs " << (differ ? l2[first_diff] : 0.0f));
        CHECK(differ == 0);
        if (differ) break;  // later steps inherit the difference through the KV cache
        tokens = random_tokens(static_cast<size_t>(r.batch), V, ++seed);
      }
    }
  }
}
