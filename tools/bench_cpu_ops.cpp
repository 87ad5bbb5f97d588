// Google Benchmark of the CPU backend on random:gpt2 (GPT-2 124M shapes):
//   model/prefill128/<dtype>: one forward of 128 prompt tokens (logits of the last token)
//   model/decode128/<dtype>:  128 single-token steps from an empty cache (as llama-bench tg128)
//   linear/<N>x<I>-><O>/<dtype>: one linear op (GEMV at N = 1, GEMM at N = 128)
// counters: tok/s (model) or GFLOP/s and weight GB/s (linear: packed bytes, int scales included).
// Threads: GPT2_BENCH_THREADS (default 2). Kernel ISA: GPT2_BENCH_ISA=generic|avx2|avx512 (a limit,
// as --cpu-isa; default: the best this CPU runs).
// Example: build-cpu/bench_cpu_ops --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "model/gpt2.h"
#include "model/source.h"
#include "model/weights.h"
#include "runtime/cpu/cpu_backend.h"

using namespace gpt2;

namespace {

int bench_threads() {
  const char* s = std::getenv("GPT2_BENCH_THREADS");
  return s ? std::atoi(s) : 2;
}

BackendOptions options(DType dtype) {
  BackendOptions opt;
  opt.device = Device::cpu;
  opt.threads = bench_threads();
  if (const char* isa = std::getenv("GPT2_BENCH_ISA")) opt.cpu_isa = isa;
  opt.auto_dtype = false;
  opt.weight_dtype = dtype;
  return opt;
}

// One loaded model per dtype with a one-slot KV cache, built on first use (loading 124M random
// weights takes a while).
struct Loaded {
  std::unique_ptr<Gpt2> model;
  KvCache kv;
  int slot = -1;
};
Loaded& model_for(DType dtype) {
  static std::map<DType, Loaded> models;
  Loaded& m = models[dtype];
  if (!m.model) {
    RunLimits limits;
    limits.max_rows = 1024;
    limits.max_sequences = 1;
    limits.max_logit_rows = 1;
    m.model = std::make_unique<Gpt2>(load_model("random:gpt2"), make_cpu_backend(options(dtype)), limits);
    m.kv = m.model->make_kv_cache(1);
    m.slot = m.kv.acquire();
  }
  return m;
}

// n tokens of the slot from its current length, logits of the last one (left in the backend,
// as a sampler on the device would take them).
void step(Loaded& m, const int32_t* tokens, int n) {
  Batch batch;
  batch.add(m.slot, m.kv.length(m.slot), tokens, n, Logits::last);
  Outputs out;
  m.model->forward(batch, m.kv, out);
  benchmark::DoNotOptimize(out.logits.data);
}

std::vector<int32_t> prompt(int n) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = (i * 7919 + 13) % 50257;
  return t;
}

void prefill(benchmark::State& state, DType dtype) {
  Loaded& m = model_for(dtype);
  const auto tokens = prompt(128);
  for (auto _ : state) {
    m.kv.clear(m.slot);
    step(m, tokens.data(), 128);
  }
  state.counters["tok/s"] = benchmark::Counter(128.0 * state.iterations(), benchmark::Counter::kIsRate);
  state.SetLabel(m.model->backend().describe());
}

void decode(benchmark::State& state, DType dtype) {
  Loaded& m = model_for(dtype);
  const auto tokens = prompt(128);
  for (auto _ : state) {
    m.kv.clear(m.slot);
    for (int t = 0; t < 128; ++t) step(m, &tokens[t], 1);
  }
  state.counters["tok/s"] = benchmark::Counter(128.0 * state.iterations(), benchmark::Counter::kIsRate);
  state.SetLabel(m.model->backend().describe());
}

// A linear op on the backend's own (packed) weights: the [O, I] wte of a one-layer random model
// is uploaded as a matrix so that w is backend-resident, then the op is called directly.
void linear(benchmark::State& state, DType dtype, int64_t N, int64_t I, int64_t O) {
  Config cfg;
  cfg.n_vocab = static_cast<int>(O);
  cfg.n_embd = static_cast<int>(I);
  cfg.n_head = 1;
  cfg.n_layer = 1;
  cfg.n_ctx = 8;
  ThreadPool pool(std::max(1, bench_threads()));
  HostModel host = random_model(cfg, 1, pool);
  auto be = make_cpu_backend(options(dtype));
  const size_t weight_bytes = be->upload_bytes(O, I, WeightUse::matrix);  // packed, with int scales
  be->reserve_weights(weight_bytes);
  Tensor w = be->upload(host.weights.wte, WeightUse::matrix);  // [O, I]
  Tensor in = be->alloc(N, I), out = be->alloc(N, O);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  for (int64_t i = 0; i < N * I; ++i) in.f32()[i] = normal(rng);
  for (auto _ : state) be->linear(out, in, w, Tensor{}, Epilogue::none);
  const double per = static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(2e-9 * N * I * O * per, benchmark::Counter::kIsRate);
  state.counters["wGB/s"] =
      benchmark::Counter(1e-9 * static_cast<double>(weight_bytes) * per, benchmark::Counter::kIsRate);
  state.SetLabel(be->describe());
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const std::pair<DType, const char*> dtypes[] = {{DType::f32, "fp32"}, {DType::bf16, "bf16"}, {DType::i8, "int8"},
                                                   {DType::i4, "int4"}};
  for (auto [dt, name] : dtypes) {
    benchmark::RegisterBenchmark((std::string("model/prefill128/") + name).c_str(), prefill, dt)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Iterations(2);
    benchmark::RegisterBenchmark((std::string("model/decode128/") + name).c_str(), decode, dt)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Iterations(1);
  }
  struct Shape {
    int64_t I, O;
  };
  for (auto [dt, name] : dtypes)
    for (int64_t N : {1, 128})
      for (Shape s : {Shape{768, 2304}, Shape{768, 3072}, Shape{3072, 768}, Shape{768, 50257}}) {
        if (N == 128 && s.O == 50257) continue;
        const std::string label = "linear/" + std::to_string(N) + "x" + std::to_string(s.I) + "->" +
                                  std::to_string(s.O) + "/" + name;
        benchmark::RegisterBenchmark(label.c_str(), linear, dt, N, s.I, s.O)->UseRealTime()->Unit(benchmark::kMicrosecond);
      }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
