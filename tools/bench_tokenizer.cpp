// Tokenizer throughput: encode (and decode) of a multi-megabyte text, one thread.
//
//   GPT2_BENCH_TEXT=FILE build/bench_tokenizer [--benchmark_repetitions=5]
//
// FILE is any text (the same one given to tools/bench_tokenizer_tiktoken.js, which
// measures tiktoken, to compare). Without GPT2_BENCH_TEXT the text is synthetic: 8 MB of
// GPT-2 tokens (whole UTF-8 characters only) drawn at random with Zipf-like frequencies and
// joined (deterministic), which
// has many more distinct words than real text and so is a pessimistic case for the piece
// cache; GPT2_BENCH_SAVE_TEXT=FILE also writes it to FILE for the tiktoken script. The
// figure to compare is the MB/s counter (1e6 bytes per second of CPU time).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <string>

#include "common/files.h"
#include "tokenizer/tokenizer.h"

namespace {

std::string synthetic_text(const gpt2::Tokenizer& tok, std::size_t bytes) {
  std::mt19937 rng(2019);
  // Zipf-like over ids 256..50255 (later merges are rarer words), plus some newlines.
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::string text;
  text.reserve(bytes + 64);
  while (text.size() < bytes) {
    const double r = std::pow(u(rng), 3.0);
    const std::string& token = tok.token_bytes(static_cast<int32_t>(256 + r * 50000));
    if (gpt2::to_valid_utf8(token) != token) continue;  // keep the text valid UTF-8 for tiktoken
    text += token;
    if (u(rng) < 0.02) text += "\n\n";
  }
  return text;
}

const std::string& bench_text() {
  static const std::string text = [] {
    // The first builtin() of a process parses the embedded vocab.bpe: report what it costs.
    const auto start = std::chrono::steady_clock::now();
    const int n_vocab = gpt2::Tokenizer::builtin().n_vocab();
    std::cerr << "built-in vocabulary (" << n_vocab << " tokens) loaded in "
              << std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count()
              << " ms\n";
    const char* path = std::getenv("GPT2_BENCH_TEXT");
    if (path != nullptr && *path != '\0') {
      std::cerr << "text: " << path << "\n";
      return gpt2::read_file(path);
    }
    std::cerr << "text: synthetic (set GPT2_BENCH_TEXT=FILE to use a file)\n";
    std::string synthetic = synthetic_text(gpt2::Tokenizer::builtin(), std::size_t{8} << 20);
    if (const char* save = std::getenv("GPT2_BENCH_SAVE_TEXT")) {  // for the tiktoken script
      std::ofstream(save, std::ios::binary) << synthetic;
      std::cerr << "synthetic text written to " << save << "\n";
    }
    return synthetic;
  }();
  return text;
}

void BM_encode(benchmark::State& state) {
  const std::string& text = bench_text();  // first: it times the vocabulary's first load
  const gpt2::Tokenizer tok = gpt2::Tokenizer::builtin();
  std::size_t n_tokens = 0;
  for (auto _ : state) {
    const auto ids = tok.encode(text, gpt2::Special::plain);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["MB"] = static_cast<double>(text.size()) / 1e6;
  state.counters["tokens"] = static_cast<double>(n_tokens);
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(text.size()) / 1e6,
                                              benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_encode)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_decode(benchmark::State& state) {
  const std::string& text = bench_text();  // first: it times the vocabulary's first load
  const gpt2::Tokenizer tok = gpt2::Tokenizer::builtin();
  const auto ids = tok.encode(text, gpt2::Special::plain);
  for (auto _ : state) {
    const std::string out = tok.decode(ids);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(text.size()) / 1e6,
                                              benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_decode)->Unit(benchmark::kMillisecond)->MinTime(1.0);

}  // namespace

BENCHMARK_MAIN();
