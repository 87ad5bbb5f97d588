// gpt2 bench: prefill and decode throughput, time to first token, and peak memory, in the
// spirit of llama-bench. Inputs are random token ids from a fixed seed, so a benchmark needs no
// text and no tokenizer, and two runs feed the model the same ids.
//
// For each batch size B: one warm-up run (first-touch page faults, thread start-up,
// CUDA graph capture), then --reps runs of
//   prefill: B sequences of P prompt tokens in one step (logits of the last token only),
//            then the argmax of each sequence's logits (the first generated token);
//   decode:  G steps of one token per sequence through the KV cache (random ids again: which
//            token is fed does not change the work, and it keeps decode independent of sampling),
//            each followed by what `gpt2 generate` takes from the logits with the default sampler:
//            each sequence's 42 most likely tokens (Backend::top_k; on CUDA the selection runs on
//            the device and 42 candidates per sequence cross to the host, not 50257 logits).
// Each run yields prefill tokens/s = B*P / t_prefill, decode tokens/s = B*G / t_decode and
// time to first token = t_prefill; the table reports their median, min and max over runs.
#include <unistd.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "common/error.h"
#include "sampling/generate.h"
#include "sampling/sampler.h"

namespace gpt2::cli {
namespace {

struct BenchOptions {
  ModelOptions model;
  int prompt_tokens = 128;
  int gen_tokens = 128;
  std::string batch = "1,8";
  int reps = 5;
  bool json = false;
};

struct Stats {
  bool valid = false;
  double median = 0, min = 0, max = 0;
};

struct BenchResult {
  int batch = 1;
  Stats prefill_tokens_per_s;
  Stats decode_tokens_per_s;
  Stats ttft_ms;
};

Stats summarize(std::vector<double> values) {
  Stats s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  s.valid = true;
  s.median = n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
  s.min = values.front();
  s.max = values.back();
  return s;
}

// "1,8" -> {1, 8}; every entry a positive integer.
std::vector<int> parse_batch_list(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  const std::string usage = "--batch takes positive integers separated by commas (got '" + text + "')";
  while (std::getline(ss, item, ',')) {
    // Digits only: std::stoi alone would also take " 1" and "+1".
    size_t used = 0;
    int value = 0;
    if (!item.empty() && item.find_first_not_of("0123456789") == std::string::npos) {
      try {
        value = std::stoi(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
    }
    if (item.empty() || used != item.size() || value < 1) throw UsageError(usage);
    out.push_back(value);
  }
  // getline drops a trailing empty item: "1," would pass as "1".
  if (out.empty() || text.back() == ',') throw UsageError(usage);
  return out;
}

// Peak resident set size of this process: VmHWM from /proc/self/status, else getrusage.
int64_t peak_host_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      int64_t kib = 0;
      if (fields >> kib) return kib * 1024;
    }
  }
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // KiB on Linux
  return 0;
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct RunTimes {
  double prefill_s = 0;
  double decode_s = 0;
};

// One prefill of `prompt` ([B, P]) followed by `gen_tokens` decode steps of `decode_ids`
// ([G, B]); the cache is reset first.
// The candidates the default sampler (top-k 40, no penalty) asks for per sequence and step.
const int kDecodeCandidates = Sampler(SamplerParams{}, 0).top_needed(0, false);

RunTimes run_once(Gpt2& model, int batch, int prompt_tokens, int gen_tokens, const std::vector<int32_t>& prompt,
                  const std::vector<int32_t>& decode_ids, TopTokens& top, std::vector<int32_t>& first_tokens) {
  const int n_vocab = model.config().n_vocab;
  RunTimes t;
  model.reset();
  const auto prefill_start = Clock::now();
  model.forward_last(prompt.data(), batch, prompt_tokens);
  model.top_k(n_vocab, 1, first_tokens, top.logits, top.invalid);  // the first generated token (greedy)
  t.prefill_s = seconds_since(prefill_start);

  const auto decode_start = Clock::now();
  for (int g = 0; g < gen_tokens; ++g) {
    model.forward_last(decode_ids.data() + static_cast<size_t>(g) * batch, batch, 1);
    model.top_k(n_vocab, kDecodeCandidates, top.ids, top.logits, top.invalid);  // [B, 42]
  }
  t.decode_s = seconds_since(decode_start);
  return t;
}

BenchResult bench_batch(Gpt2& model, int batch, const BenchOptions& opt) {
  const int n_vocab = model.config().n_vocab;
  // Ids below n_vocab - 1: random text, never <|endoftext|>.
  std::mt19937 rng(1234u + static_cast<unsigned>(batch));
  std::uniform_int_distribution<int32_t> random_id(0, n_vocab - 2);
  std::vector<int32_t> prompt(static_cast<size_t>(batch) * opt.prompt_tokens);
  for (int32_t& id : prompt) id = random_id(rng);
  std::vector<int32_t> decode_ids(static_cast<size_t>(batch) * opt.gen_tokens);
  for (int32_t& id : decode_ids) id = random_id(rng);
  TopTokens top;
  std::vector<int32_t> first_tokens(static_cast<size_t>(batch));

  if (opt.model.verbose) std::cerr << "bench: batch " << batch << ": warm-up\n";
  run_once(model, batch, opt.prompt_tokens, std::min(opt.gen_tokens, 2), prompt, decode_ids, top, first_tokens);

  std::vector<double> prefill, decode, ttft;
  for (int r = 0; r < opt.reps; ++r) {
    const RunTimes t = run_once(model, batch, opt.prompt_tokens, opt.gen_tokens, prompt, decode_ids, top,
                                first_tokens);
    prefill.push_back(static_cast<double>(batch) * opt.prompt_tokens / t.prefill_s);
    ttft.push_back(t.prefill_s * 1e3);
    if (opt.gen_tokens > 0) decode.push_back(static_cast<double>(batch) * opt.gen_tokens / t.decode_s);
    if (opt.model.verbose)
      std::cerr << "bench: batch " << batch << " run " << r + 1 << "/" << opt.reps << ": prefill " << t.prefill_s
                << " s, decode " << t.decode_s << " s\n";
  }
  BenchResult result;
  result.batch = batch;
  result.prefill_tokens_per_s = summarize(prefill);
  result.decode_tokens_per_s = summarize(decode);
  result.ttft_ms = summarize(ttft);
  return result;
}

nlohmann::ordered_json stats_json(const Stats& s) {
  if (!s.valid) return nullptr;
  return {{"median", s.median}, {"min", s.min}, {"max", s.max}};
}

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

std::string mib(int64_t bytes) { return fixed(static_cast<double>(bytes) / (1024.0 * 1024.0), 1) + " MiB"; }

struct BenchReport {
  std::string model;
  std::string device;       // "cpu" / "cuda"
  std::string description;  // backend's own description (threads, GPU name)
  std::string dtype;
  int threads = 0;
  double load_seconds = 0;
  int64_t peak_host = 0;
  int64_t peak_device = -1;  // -1: the backend has no device memory
  std::vector<BenchResult> results;
};

// A markdown table, one row per (batch, test), like llama-bench: pp = prompt processing
// (prefill), tg = text generation (decode).
void print_table(std::ostream& out, const BenchReport& rep, const BenchOptions& opt) {
  auto stats_cells = [](const Stats& s, int digits) {
    if (!s.valid) return std::string("|            - |            - |            - ");
    std::ostringstream os;
    os << "| " << std::setw(12) << fixed(s.median, digits) << " | " << std::setw(12) << fixed(s.min, digits) << " | "
       << std::setw(12) << fixed(s.max, digits) << " ";
    return os.str();
  };
  out << "model: " << rep.model << "   device: " << rep.description << "   dtype: " << rep.dtype
      << "   threads: " << rep.threads << "   reps: " << opt.reps << "\n\n";
  out << "| batch | test   |   t/s median |      t/s min |      t/s max | ttft ms median |\n";
  out << "| ----: | :----- | -----------: | -----------: | -----------: | -------------: |\n";
  for (const BenchResult& r : rep.results) {
    out << "| " << std::setw(5) << r.batch << " | " << std::left << std::setw(6)
        << ("pp" + std::to_string(opt.prompt_tokens)) << std::right << " " << stats_cells(r.prefill_tokens_per_s, 2)
        << "| " << std::setw(14) << fixed(r.ttft_ms.median, 1) << " |\n";
    out << "| " << std::setw(5) << r.batch << " | " << std::left << std::setw(6)
        << ("tg" + std::to_string(opt.gen_tokens)) << std::right << " " << stats_cells(r.decode_tokens_per_s, 2)
        << "| " << std::setw(14) << "" << " |\n";
  }
  out << "\nload: " << fixed(rep.load_seconds, 2) << " s   peak host memory: " << mib(rep.peak_host)
      << "   peak device memory: " << (rep.peak_device >= 0 ? mib(rep.peak_device) : std::string("-")) << "\n";
}

nlohmann::ordered_json to_json(const BenchReport& rep, const BenchOptions& opt) {
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (const BenchResult& r : rep.results) {
    results.push_back({{"batch", r.batch},
                       {"prompt_tokens", opt.prompt_tokens},
                       {"gen_tokens", opt.gen_tokens},
                       {"prefill_tokens_per_s", stats_json(r.prefill_tokens_per_s)},
                       {"decode_tokens_per_s", stats_json(r.decode_tokens_per_s)},
                       {"ttft_ms", stats_json(r.ttft_ms)}});
  }
  return {{"model", rep.model},
          {"device", rep.device},
          {"dtype", rep.dtype},
          {"threads", rep.threads},
          {"load_seconds", rep.load_seconds},
          {"peak_host_bytes", rep.peak_host},
          {"peak_device_bytes", rep.peak_device >= 0 ? nlohmann::ordered_json(rep.peak_device) : nlohmann::ordered_json(nullptr)},
          {"results", results}};
}

void run_bench(const BenchOptions& opt) {
  if (opt.prompt_tokens < 1)
    throw UsageError("--prompt-tokens must be at least 1 (got " + std::to_string(opt.prompt_tokens) + ")");
  if (opt.gen_tokens < 0) throw UsageError("--gen-tokens must be 0 or more (got " + std::to_string(opt.gen_tokens) + ")");
  if (opt.reps < 1) throw UsageError("--reps must be at least 1 (got " + std::to_string(opt.reps) + ")");
  const std::vector<int> batches = parse_batch_list(opt.batch);
  // Against the model's context before its weights are loaded; in 64 bits, so that two huge
  // counts cannot wrap around to a small sum.
  const int n_ctx = peek_config(opt.model.model).n_ctx;
  const int64_t total_tokens = static_cast<int64_t>(opt.prompt_tokens) + opt.gen_tokens;
  if (total_tokens > n_ctx)
    throw UsageError("--prompt-tokens + --gen-tokens = " + std::to_string(total_tokens) +
                     " exceeds the model's context of " + std::to_string(n_ctx) + " tokens");

  RunLimits limits;
  limits.max_batch = *std::max_element(batches.begin(), batches.end());
  limits.max_tokens = opt.prompt_tokens;
  limits.all_logits = false;
  LoadedModel loaded = load(opt.model, limits);
  Gpt2& model = *loaded.model;

  BenchReport rep;
  rep.model = model.name();
  rep.device = model.backend().name();
  rep.description = model.backend().describe();
  rep.dtype = dtype_name(model.backend().weight_dtype());
  rep.threads = opt.model.threads > 0 ? opt.model.threads : static_cast<int>(std::thread::hardware_concurrency());
  rep.load_seconds = loaded.load_seconds;
  for (int batch : batches) rep.results.push_back(bench_batch(model, batch, opt));
  rep.peak_host = peak_host_bytes();
  rep.peak_device = model.backend().peak_device_bytes();

  if (opt.json) std::cout << to_json(rep, opt).dump(2) << "\n";
  else print_table(std::cout, rep, opt);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto opt = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "prefill and decode throughput (tokens/s), time to first token, memory");
  add_model_options(cmd, opt->model);
  cmd->add_option("--prompt-tokens", opt->prompt_tokens, "prompt length per sequence (prefill)")->capture_default_str();
  cmd->add_option("--gen-tokens", opt->gen_tokens, "decode steps after the prompt (0: prefill only)")
      ->capture_default_str();
  cmd->add_option("--batch", opt->batch, "batch sizes to measure, comma-separated")->capture_default_str();
  cmd->add_option("--reps", opt->reps, "measured runs per batch size (after one warm-up run)")->capture_default_str();
  cmd->add_flag("--json", opt->json, "print one JSON object instead of the table");
  cmd->footer(
      "Inputs are random token ids (fixed seed). Prefill tokens/s counts batch * prompt tokens of one\n"
      "step; decode tokens/s counts batch tokens per step; time to first token (ttft) is the prefill\n"
      "step plus picking the first token. Median, min and max are over --reps runs, after one warm-up.\n"
      "--json prints {\"model\", \"device\", \"dtype\", \"threads\", \"load_seconds\", \"peak_host_bytes\",\n"
      "\"peak_device_bytes\", \"results\": [{\"batch\", \"prompt_tokens\", \"gen_tokens\",\n"
      "\"prefill_tokens_per_s\": {\"median\", \"min\", \"max\"}, \"decode_tokens_per_s\": {...}, \"ttft_ms\": {...}}]}.");
  cmd->callback([opt] { run_bench(*opt); });
}

}  // namespace gpt2::cli
