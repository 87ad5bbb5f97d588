// The whole forward pass (src/model/gpt2.cpp) on the CUDA backend against the CPU backend:
// every preset shape, 1 and 3 sequences, a 7-token prompt (all logits) then greedy decode steps
// (the second decode step of a batch size replays the CUDA graph captured by the first);
// decode of 8 and 9 sequences (the GEMV's last row count, then cuBLAS inside the captured
// graph); a scheduler's ragged steps (prompt chunks beside decode tokens, sequences leaving and
// joining, slots reused). Greedy tokens must agree wherever the CPU's top-2 margin exceeds the
// logit tolerance. Then CUDA against itself: graph replays equal eager steps, and two runs are
// bit-identical.
//
// Depth: gpt2 and distilgpt2 run with all their layers; gpt2-medium, -large and -xl keep their
// real widths, heads and vocabulary but 4 layers, so the check stays within the GPU script's
// time budget (every layer runs the same kernels).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
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

// A model with its KV cache and the slots its sequences use.
struct Run {
  std::unique_ptr<Gpt2> model;
  KvCache kv;
  std::vector<int32_t> slots;  // slots[s] for sequence s of uniform_step

  Run(HostModel host, std::unique_ptr<Backend> be, const RunLimits& limits, int n_slots)
      : model(std::make_unique<Gpt2>(std::move(host), std::move(be), limits)), kv(model->make_kv_cache(n_slots)) {
    for (int s = 0; s < n_slots; ++s) slots.push_back(kv.acquire());
  }
  void clear() {
    for (int32_t s : slots) kv.clear(s);
  }
  Backend& backend() { return model->backend(); }
};

// Runs one step; returns its logits [R, V] (host copy).
std::vector<float> forward(Run& r, const Batch& batch) {
  Outputs out;
  r.model->forward(batch, r.kv, out);
  std::vector<float> logits(static_cast<size_t>(out.logits.numel()));
  if (!logits.empty()) r.backend().read(logits.data(), out.logits);
  return logits;
}

// A step of `batch` sequences (slots 0 .. batch - 1 of the run) of n tokens each, appended
// after what each slot holds.
Batch uniform_step(Run& r, int batch, int n, const std::vector<int32_t>& tokens, Logits want) {
  std::vector<int32_t> slots(r.slots.begin(), r.slots.begin() + batch), positions;
  for (int32_t s : slots) positions.push_back(r.kv.length(s));
  return uniform_batch(slots, positions, n, tokens, want);
}

// Index (in the step's logits) of sequence s's last logit row.
size_t last_logit_of(const Batch& b, int s) {
  const int32_t last_row = b.seq_first_row[static_cast<size_t>(s) + 1] - 1;
  const auto it = std::find(b.logit_rows.begin(), b.logit_rows.end(), last_row);
  REQUIRE(it != b.logit_rows.end());
  return static_cast<size_t>(it - b.logit_rows.begin());
}

struct Models {
  std::unique_ptr<Run> cpu, gpu;
};

Models make_models(const HostModel& base, DType dtype, const RunLimits& limits, int n_slots) {
  HostModel m = copy_model(base);
  round_matrices(m, dtype);
  Models out;
  out.cpu = std::make_unique<Run>(copy_model(m), cpu_backend(), limits, n_slots);
  out.gpu = std::make_unique<Run>(std::move(m), cuda_backend(dtype), limits, n_slots);
  return out;
}

// A prompt of n_prompt tokens per sequence (logits of `prompt_logits` rows), then n_decode
// greedy steps (the CPU's choice feeds both).
void compare_generation(Models& ms, int batch, int n_prompt, int n_decode, Logits prompt_logits, DType dtype,
                        const std::string& name, uint64_t seed) {
  const Config& config = ms.cpu->model->config();
  const int V = config.n_vocab;
  ms.cpu->clear();
  ms.gpu->clear();
  const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(batch) * n_prompt, V, seed);
  Batch b = uniform_step(*ms.cpu, batch, n_prompt, tokens, prompt_logits);
  std::vector<float> lc = forward(*ms.cpu, b), lg = forward(*ms.gpu, b);
  const std::string base = name + " " + dtype_name(dtype) + " B=" + std::to_string(batch);
  CHECK(close(lg, lc, model_tolerance(dtype), base + " prefill T=" + std::to_string(n_prompt)));

  for (int step = 0; step <= n_decode; ++step) {
    const float needed = margin_needed(lc, dtype);
    std::vector<int32_t> next(static_cast<size_t>(batch));
    for (int s = 0; s < batch; ++s) {
      const size_t last = last_logit_of(b, s) * static_cast<size_t>(V);
      const Top2 c = top2(lc.data() + last, V);
      const Top2 g = top2(lg.data() + last, V);
      if (c.margin > needed) {
        INFO(base << " step " << step << " sequence " << s << ": CPU margin " << c.margin << " > " << needed);
        CHECK(g.best == c.best);
      }
      next[static_cast<size_t>(s)] = c.best;
    }
    const int pos = ms.cpu->kv.length(ms.cpu->slots[0]);
    if (step == n_decode || pos + 1 > config.n_ctx) break;
    b = uniform_step(*ms.cpu, batch, 1, next, Logits::last);
    lc = forward(*ms.cpu, b);
    lg = forward(*ms.gpu, b);
    CHECK(close(lg, lc, model_tolerance(dtype), base + " decode pos=" + std::to_string(pos)));
  }
}

// ---- a scheduler's steps ---------------------------------------------------------------------

// One sequence's part of a step: its new tokens and which logits it wants. Sequences are named
// by an id; a sequence's first part acquires a slot, a part with n = 0 releases it.
struct Part {
  int id;
  int n;
  Logits want = Logits::last;
};
using Schedule = std::vector<std::vector<Part>>;

// The steps of a small serving session: a long prompt beside a 1-token one; the ragged step of
// the issue (a 130-token chunk at position 1, a decode token at position 700, a new 7-token
// prompt at position 0); decode steps of the three (one key: captured, then replayed); one
// sequence leaves and a new one takes its slot with a 5-token prompt beside two decode tokens;
// decode steps of the same three-row key in another slot order at other positions (replays of
// the graph captured before); two-sequence steps with one logit row, first of one then of the
// other (one key, other logit rows); a 1-token prompt alone (a decode step).
Schedule serving_schedule() {
  const Logits last = Logits::last, all = Logits::all, none = Logits::none;
  return {
      {{0, 700, last}, {1, 1, last}},
      {{1, 130, last}, {0, 1, last}, {2, 7, all}},
      {{1, 1}, {0, 1}, {2, 1}},
      {{1, 1}, {0, 1}, {2, 1}},
      {{1, 1}, {0, 1}, {2, 1}},
      {{0, 0}, {3, 5, last}, {1, 1}, {2, 1}},
      {{2, 1}, {3, 1}, {1, 1}},
      {{2, 1}, {3, 1}, {1, 1}},
      {{2, 1}, {3, 1}, {1, 1}},
      {{1, 1, last}, {3, 1, none}},
      {{1, 1, none}, {3, 1, last}},
      {{1, 1, last}, {3, 1, none}},
      {{4, 1, last}},
  };
}
constexpr int kScheduleSlots = 4;
const RunLimits kScheduleLimits{1024, 3, 16};

// Runs the schedule on each model in lockstep (the same tokens); returns each model's logits of
// every step, and checks that every model gave each sequence the same slot.
std::vector<std::vector<std::vector<float>>> run_schedule(const std::vector<Run*>& runs, const Schedule& schedule,
                                                          int n_vocab, uint64_t seed) {
  std::vector<std::vector<std::vector<float>>> logits(runs.size());
  std::vector<std::map<int, int>> slot_of(runs.size());
  for (Run* r : runs) {  // start from an empty cache: every slot free
    for (int32_t s : r->slots) r->kv.release(s);
    r->slots.clear();
  }
  for (size_t step = 0; step < schedule.size(); ++step) {
    std::vector<Batch> batches(runs.size());
    for (const Part& part : schedule[step]) {
      const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(std::max(part.n, 1)), n_vocab, ++seed);
      for (size_t m = 0; m < runs.size(); ++m) {
        KvCache& kv = runs[m]->kv;
        auto it = slot_of[m].find(part.id);
        if (part.n == 0) {  // the sequence leaves
          REQUIRE(it != slot_of[m].end());
          kv.release(it->second);
          slot_of[m].erase(it);
          continue;
        }
        if (it == slot_of[m].end()) it = slot_of[m].emplace(part.id, kv.acquire()).first;
        REQUIRE(it->second >= 0);
        REQUIRE(it->second == slot_of[0][part.id]);
        batches[m].add(it->second, kv.length(it->second), tokens.data(), part.n, part.want);
      }
    }
    for (size_t m = 0; m < runs.size(); ++m) logits[m].push_back(forward(*runs[m], batches[m]));
  }
  return logits;
}

}  // namespace

TEST_CASE("every preset shape matches the CPU backend (prefill + greedy decode)", "[cuda][model]") {
  for (const char* preset : {"distilgpt2", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}) {
    Config config = Config::preset(preset);
    if (config.n_layer > 12) config.n_layer = 4;
    const HostModel base = random_host(config, 1234);
    const RunLimits limits{21, 3, 21};
    for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
      Models ms = make_models(base, dtype, limits, 3);
      for (int batch : {1, 3}) compare_generation(ms, batch, 7, 4, Logits::all, dtype, preset, 99 + batch);
    }
  }
}

TEST_CASE("gpt2 at full context matches the CPU backend", "[cuda][model]") {
  const HostModel base = random_host(Config::preset("gpt2"), 4321);
  const RunLimits limits{1024, 1, 1};
  for (DType dtype : {DType::f32, DType::bf16}) {
    Models ms = make_models(base, dtype, limits, 1);
    compare_generation(ms, 1, 1023, 1, Logits::last, dtype, "gpt2", 7);  // the last position decoded through the cache
    compare_generation(ms, 1, 1024, 0, Logits::last, dtype, "gpt2", 8);
  }
}

// The same tokens as one prefill or one token at a time give the same last logits (CUDA only:
// the prefill kernel and the decode kernel agree through the KV cache). fp16 is the sharper
// check (8x less rounding than bf16).
TEST_CASE("CUDA prefill equals token-by-token decoding", "[cuda][model][attention]") {
  Config config = Config::preset("gpt2");
  config.n_layer = 4;
  const HostModel base = random_host(config, 77);
  const int batch = 3, T = 40;
  const RunLimits limits{batch * T, batch, batch};
  for (DType dtype : {DType::bf16, DType::f16}) {
    Run run(copy_model(base), cuda_backend(dtype), limits, batch);
    const auto tokens = random_tokens(static_cast<size_t>(batch) * T, config.n_vocab, 5);
    const std::vector<float> whole = forward(run, uniform_step(run, batch, T, tokens, Logits::last));
    run.clear();
    std::vector<float> stepwise;
    for (int t = 0; t < T; ++t) {
      std::vector<int32_t> column(static_cast<size_t>(batch));
      for (int b = 0; b < batch; ++b) column[static_cast<size_t>(b)] = tokens[static_cast<size_t>(b) * T + t];
      stepwise = forward(run, uniform_step(run, batch, 1, column, Logits::last));
    }
    CHECK(close(stepwise, whole, model_tolerance(dtype), std::string(dtype_name(dtype)) + " prefill vs decode"));
  }
}

// Tiny model, every path, few launches: the case compute-sanitizer (memcheck, racecheck) runs.
TEST_CASE("tiny model under the sanitizer matches the CPU backend", "[cuda][sanitize]") {
  const HostModel base = random_host(head64_config(), 55);
  const RunLimits limits{3 * 65, 3, 3 * 65};
  for (DType dtype : {DType::f32, DType::bf16}) {
    Models ms = make_models(base, dtype, limits, 3);
    for (int batch : {1, 3})
      for (int T : {1, 7, 65}) compare_generation(ms, batch, T, 3, Logits::all, dtype, "tiny", 200 + T);
    compare_generation(ms, 1, 127, 1, Logits::last, dtype, "tiny", 300);  // up to the last position
  }
}

// Decode of 8 and 9 sequences: 8 stages 8 rows in the GEMV inside the captured graph; 9 runs its
// GEMMs through cuBLASLt inside the capture (and classic cuBLAS where cuBLASLt has no algorithm,
// e.g. the LM head's 50257 outputs), with the 16-bit input conversions captured too.
TEST_CASE("decode of 8 and 9 sequences matches the CPU backend (GEMV and cuBLAS in the graph)", "[cuda][model]") {
  Config config = Config::preset("gpt2");
  config.n_layer = 2;
  const HostModel base = random_host(config, 909);
  const RunLimits limits{9 * 7, 9, 9};
  for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    Models ms = make_models(base, dtype, limits, 9);
    for (int batch : {8, 9}) compare_generation(ms, batch, 7, 3, Logits::last, dtype, "gpt2 (2 layers)", 600 + batch);
  }
}

// The serving schedule above (ragged steps, sequences leaving and joining, slots reused, decode
// steps replayed from graphs with other slots, positions and logit rows) against the CPU.
TEST_CASE("a scheduler's ragged steps match the CPU backend", "[cuda][model][attention]") {
  Config config = Config::preset("gpt2");
  config.n_layer = 4;
  const HostModel base = random_host(config, 1001);
  for (DType dtype : {DType::f32, DType::bf16}) {
    Models ms = make_models(base, dtype, kScheduleLimits, kScheduleSlots);
    const Schedule schedule = serving_schedule();
    const auto logits = run_schedule({ms.cpu.get(), ms.gpu.get()}, schedule, config.n_vocab, 1100);
    for (size_t step = 0; step < schedule.size(); ++step)
      CHECK(close(logits[1][step], logits[0][step], model_tolerance(dtype),
                  std::string(dtype_name(dtype)) + " schedule step " + std::to_string(step)));
  }
}

// The same steps with and without CUDA graphs give the same logits (the same kernels on the same
// data: equal up to fp32 rounding at most, far inside the model tolerance). A capture that
// depended on host-side state of the step it was captured in (a position, a slot, a logit row, a
// 16-bit GEMM input taken as current) would show here at a later replay. The serving schedule
// replays its three-row decode graph in other slots at other positions, and its two-row graph
// with the other sequence's logit row; then uniform runs: decode of 3 sequences across the
// decode attention's 32-position split boundary (positions 62 to 65), 9 sequences (cuBLAS in the
// capture), and a 1-token prompt (a replay of the one-row graph at position 0).
TEST_CASE("CUDA graph replays equal eager decode steps", "[cuda][model]") {
  Config config = Config::preset("gpt2");
  config.n_layer = 2;
  const HostModel base = random_host(config, 505);
  const int V = config.n_vocab;
  for (DType dtype : {DType::f32, DType::bf16}) {
    HostModel m = copy_model(base);
    round_matrices(m, dtype);
    {
      Run graphs(copy_model(m), cuda_backend(dtype), kScheduleLimits, kScheduleSlots);
      Run eager(copy_model(m), cuda_backend(dtype, Graphs::off), kScheduleLimits, kScheduleSlots);
      const Schedule schedule = serving_schedule();
      const auto logits = run_schedule({&graphs, &eager}, schedule, V, 1200);
      for (size_t step = 0; step < schedule.size(); ++step)
        CHECK(close(logits[0][step], logits[1][step], op_tolerance(DType::f32),
                    std::string(dtype_name(dtype)) + " schedule step " + std::to_string(step)));
    }
    const RunLimits limits{9 * 62, 9, 9 * 62};
    Run graphs(copy_model(m), cuda_backend(dtype), limits, 9);
    Run eager(std::move(m), cuda_backend(dtype, Graphs::off), limits, 9);
    struct Case {
      int batch, n_prompt, n_decode;
    };
    uint64_t seed = 700;
    for (const Case r : {Case{3, 7, 3}, Case{1, 5, 2}, Case{3, 62, 4}, Case{9, 7, 3}, Case{1, 1, 2}, Case{3, 7, 1}}) {
      graphs.clear();
      eager.clear();
      const std::string what = std::string(dtype_name(dtype)) + " B=" + std::to_string(r.batch);
      std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(r.batch) * r.n_prompt, V, ++seed);
      Batch b = uniform_step(graphs, r.batch, r.n_prompt, tokens, Logits::all);
      CHECK(close(forward(graphs, b), forward(eager, b), op_tolerance(DType::f32),
                  what + " prefill T=" + std::to_string(r.n_prompt)));
      for (int step = 0; step < r.n_decode; ++step) {
        tokens = random_tokens(static_cast<size_t>(r.batch), V, ++seed);
        b = uniform_step(graphs, r.batch, 1, tokens, Logits::last);
        const int pos = b.seq_pos[0];
        CHECK(close(forward(graphs, b), forward(eager, b), op_tolerance(DType::f32),
                    what + " decode pos=" + std::to_string(pos)));
      }
    }
    if (graphs.backend().name() == "cuda") {
      CHECK(eager.backend().describe().find("no graphs") != std::string::npos);
      if (env_on("GPT2_CUDA_GRAPHS")) CHECK(graphs.backend().describe().find("no graphs") == std::string::npos);
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
// Runs: 1 sequence with a 7-token prompt (GEMV prefill, prefill attention) then decode to
// position 103 (1 to 4 attention splits of 32); 8 sequences with a 1-token prompt (itself a
// captured decode step) then decode to position 71 (the 8-row GEMV in the graph, 3 splits).
TEST_CASE("decode steps are bit-identical from run to run (race detector)", "[cuda][model]") {
  Config config = Config::preset("gpt2");
  config.n_layer = 2;
  const HostModel base = random_host(config, 808);
  const int V = config.n_vocab;
  const RunLimits limits{8, 8, 8};
  for (DType dtype : {DType::f32, DType::bf16}) {
    Run first(copy_model(base), cuda_backend(dtype), limits, 8);
    Run second(copy_model(base), cuda_backend(dtype), limits, 8);
    struct Case {
      int batch, n_prompt, n_decode;
    };
    uint64_t seed = 800;
    for (const Case r : {Case{1, 7, 97}, Case{8, 1, 71}}) {
      first.clear();
      second.clear();
      std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(r.batch) * r.n_prompt, V, ++seed);
      for (int step = 0; step <= r.n_decode; ++step) {
        const int T = step == 0 ? r.n_prompt : 1;
        const Batch b = uniform_step(first, r.batch, T, tokens, Logits::last);
        const std::vector<float> l1 = forward(first, b), l2 = forward(second, b);
        REQUIRE(l1.size() == l2.size());
        size_t differ = 0, first_diff = 0;
        for (size_t i = 0; i < l1.size(); ++i)
          if (!(l1[i] == l2[i]) && differ++ == 0) first_diff = i;
        INFO(dtype_name(dtype) << " B=" << r.batch << " pos=" << b.seq_pos[0] << ": " << differ << " of "
                               << l1.size() << " logits differ; first [" << first_diff << "] "
                               << (differ ? l1[first_diff] : 0.0f) << " vs " << (differ ? l2[first_diff] : 0.0f));
        CHECK(differ == 0);
        if (differ) break;  // later steps inherit the difference through the KV cache
        tokens = random_tokens(static_cast<size_t>(r.batch), V, ++seed);
      }
    }
  }
}
