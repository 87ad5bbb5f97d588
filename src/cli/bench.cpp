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
#include "common/memory.h"
#include "engine/scheduler.h"
#include "engine/step_model.h"
#include "model/source.h"
#include "tokenizer/tokenizer.h"
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
  // --mixed: requests of mixed lengths through the scheduler, once per --parallel entry.
  bool mixed = false;
  int requests = 32;
  std::string mixed_prompt = "16:512";  // prompt lengths, uniform in [lo, hi]
  std::string mixed_gen = "64";         // new tokens per request, uniform in [lo, hi]
  std::string parallel = "1,8";
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

// The candidates the default sampler (top-k 40, no penalty) asks for per sequence and step.
const int kDecodeCandidates = Sampler(SamplerParams{}, 0).top_needed(0, false);

// One prefill of `prompt` ([B, P]: B sequences in slots 0..B-1) followed by `gen_tokens` decode
// steps of `decode_ids` ([G, B]); the slots start empty.
RunTimes run_once(Gpt2& model, KvCache& kv, int batch, int prompt_tokens, int gen_tokens,
                  const std::vector<int32_t>& prompt, const std::vector<int32_t>& decode_ids, TopTokens& top) {
  const int n_vocab = model.config().n_vocab;
  RunTimes t;
  for (int b = 0; b < batch; ++b) kv.clear(b);
  Batch step;
  Outputs out;
  auto take_top = [&](int k) {  // what generate takes from each sequence's logits
    top.ids.resize(static_cast<size_t>(batch) * k);
    top.logits.resize(top.ids.size());
    top.invalid.resize(static_cast<size_t>(batch));
    model.backend().top_k(out.logits, n_vocab, k, top.ids.data(), top.logits.data(), top.invalid.data());
  };
  const auto prefill_start = Clock::now();
  for (int b = 0; b < batch; ++b)
    step.add(b, 0, prompt.data() + static_cast<size_t>(b) * prompt_tokens, prompt_tokens, Logits::last);
  model.forward(step, kv, out);
  take_top(1);  // the first generated token (greedy)
  t.prefill_s = seconds_since(prefill_start);

  const auto decode_start = Clock::now();
  for (int g = 0; g < gen_tokens; ++g) {
    step.clear();
    for (int b = 0; b < batch; ++b)
      step.add(b, prompt_tokens + g, decode_ids.data() + static_cast<size_t>(g) * batch + b, 1, Logits::last);
    model.forward(step, kv, out);
    take_top(kDecodeCandidates);  // [B, 42]
  }
  t.decode_s = seconds_since(decode_start);
  return t;
}

BenchResult bench_batch(Gpt2& model, KvCache& kv, int batch, const BenchOptions& opt) {
  const int n_vocab = model.config().n_vocab;
  // Ids below n_vocab - 1: random text, never <|endoftext|>.
  std::mt19937 rng(1234u + static_cast<unsigned>(batch));
  std::uniform_int_distribution<int32_t> random_id(0, n_vocab - 2);
  std::vector<int32_t> prompt(static_cast<size_t>(batch) * opt.prompt_tokens);
  for (int32_t& id : prompt) id = random_id(rng);
  std::vector<int32_t> decode_ids(static_cast<size_t>(batch) * opt.gen_tokens);
  for (int32_t& id : decode_ids) id = random_id(rng);
  TopTokens top;

  if (opt.model.verbose) std::cerr << "bench: batch " << batch << ": warm-up\n";
  run_once(model, kv, batch, opt.prompt_tokens, std::min(opt.gen_tokens, 2), prompt, decode_ids, top);

  std::vector<double> prefill, decode, ttft;
  for (int r = 0; r < opt.reps; ++r) {
    const RunTimes t = run_once(model, kv, batch, opt.prompt_tokens, opt.gen_tokens, prompt, decode_ids, top);
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

// ---- --mixed: a workload through the scheduler ----------------------------------------------

// "A" or "A:B" -> [A, B] (A <= B, A >= lo).
std::pair<int, int> parse_range(const std::string& text, const char* option, int lo) {
  const size_t colon = text.find(':');
  const std::string a = text.substr(0, colon), b = colon == std::string::npos ? a : text.substr(colon + 1);
  auto number = [&](const std::string& s) {
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
      throw UsageError(std::string(option) + " takes N or LO:HI (got '" + text + "')");
    return std::stoi(s);
  };
  const int x = number(a), y = number(b);
  if (x < lo || y < x)
    throw UsageError(std::string(option) + " takes N or LO:HI with " + std::to_string(lo) + " <= LO <= HI (got '" +
                     text + "')");
  return {x, y};
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

struct MixedResult {
  int parallel = 0;
  double seconds = 0;
  int64_t prompt_tokens = 0, gen_tokens = 0;
  double ttft_p50 = 0, ttft_p99 = 0, itl_p50 = 0, itl_p99 = 0;  // ms
};

struct MixedRequest {
  std::vector<int32_t> prompt;
  int gen = 0;
};

MixedResult run_mixed(Gpt2& model, const std::vector<MixedRequest>& requests, int parallel) {
  Gpt2StepModel step_model(model, parallel);
  const Tokenizer tokenizer = Tokenizer::builtin();
  TokenizerText text(tokenizer);
  SchedulerOptions so;
  so.max_queue = static_cast<int>(requests.size());
  so.prefill_chunk = std::min(256, model.limits().max_rows - parallel);
  Scheduler scheduler(step_model, text, so);
  std::vector<Completion> done;
  MixedResult r;
  r.parallel = parallel;
  const auto start = Clock::now();
  for (const MixedRequest& m : requests) {
    Request q;
    q.prompt = m.prompt;
    q.params.n_predict = m.gen;
    q.params.ignore_eos = true;  // every request generates its full length
    q.params.seed = 42;
    q.on_done = [&done](const Completion& c) { done.push_back(c); };
    scheduler.submit(std::move(q));
    r.prompt_tokens += static_cast<int64_t>(m.prompt.size());
  }
  scheduler.run_until_idle();
  r.seconds = seconds_since(start);
  std::vector<double> ttft, itl;
  for (const Completion& c : done) {
    r.gen_tokens += static_cast<int64_t>(c.tokens.size());
    if (c.token_s.empty()) continue;
    ttft.push_back(c.token_s.front() * 1e3);
    for (size_t i = 1; i < c.token_s.size(); ++i) itl.push_back((c.token_s[i] - c.token_s[i - 1]) * 1e3);
  }
  r.ttft_p50 = percentile(ttft, 0.5);
  r.ttft_p99 = percentile(ttft, 0.99);
  r.itl_p50 = percentile(itl, 0.5);
  r.itl_p99 = percentile(itl, 0.99);
  return r;
}

void run_mixed_bench(const BenchOptions& opt, const ModelSource& source) {
  if (opt.requests < 1) throw UsageError("--requests must be at least 1 (got " + std::to_string(opt.requests) + ")");
  const auto [p_lo, p_hi] = parse_range(opt.mixed_prompt, "--mixed-prompt", 1);
  const auto [g_lo, g_hi] = parse_range(opt.mixed_gen, "--mixed-gen", 1);
  std::vector<int> parallels;
  try {
    parallels = parse_batch_list(opt.parallel);
  } catch (const UsageError&) {
    throw UsageError("--parallel takes positive integers separated by commas (got '" + opt.parallel + "')");
  }
  const Config config = source.config();
  if (static_cast<int64_t>(p_hi) + g_hi > config.n_ctx)
    throw UsageError("--mixed-prompt + --mixed-gen can reach " + std::to_string(p_hi + g_hi) +
                     " tokens, past the model's context of " + std::to_string(config.n_ctx));
  const int max_parallel = *std::max_element(parallels.begin(), parallels.end());
  RunLimits limits;
  limits.max_sequences = max_parallel;
  limits.max_logit_rows = max_parallel;
  limits.max_rows = step_size(int64_t{max_parallel} + std::min(256, p_hi));
  // The workload itself (prompts, and each request's results) before the weights are loaded.
  const HostMemory workload_counted(
      mul_sizes({static_cast<size_t>(opt.requests),
                 sizeof(MixedRequest) + sizeof(Completion) + static_cast<size_t>(p_hi) * sizeof(int32_t) +
                     static_cast<size_t>(g_hi) * (sizeof(int32_t) + sizeof(double) + 16)}),
      std::to_string(opt.requests) + " requests (--requests)");
  LoadedModel loaded = load(opt.model, source, limits);
  Gpt2& model = *loaded.model;

  std::mt19937 rng(4321u);
  std::uniform_int_distribution<int32_t> random_id(0, model.config().n_vocab - 2);
  std::uniform_int_distribution<int> prompt_len(p_lo, p_hi), gen_len(g_lo, g_hi);
  std::vector<MixedRequest> requests(static_cast<size_t>(opt.requests));
  for (MixedRequest& m : requests) {
    m.prompt.resize(static_cast<size_t>(prompt_len(rng)));
    for (int32_t& id : m.prompt) id = random_id(rng);
    m.gen = gen_len(rng);
  }
  {  // warm-up: two short requests (first-touch page faults, thread start-up, graph capture)
    std::vector<MixedRequest> warm(requests.begin(), requests.begin() + std::min<size_t>(2, requests.size()));
    for (MixedRequest& m : warm) m.gen = std::min(m.gen, 2);
    run_mixed(model, warm, std::min(max_parallel, 2));
  }
  std::vector<MixedResult> results;
  for (int p : parallels) {
    if (opt.model.verbose) std::cerr << "bench --mixed: " << opt.requests << " requests through " << p << " slots\n";
    results.push_back(run_mixed(model, requests, p));
  }

  const double base = results.front().seconds;
  if (opt.json) {
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (const MixedResult& r : results) {
      rows.push_back({{"parallel", r.parallel},
                      {"seconds", r.seconds},
                      {"requests_per_s", opt.requests / r.seconds},
                      {"prompt_tokens", r.prompt_tokens},
                      {"gen_tokens", r.gen_tokens},
                      {"tokens_per_s", static_cast<double>(r.prompt_tokens + r.gen_tokens) / r.seconds},
                      {"gen_tokens_per_s", static_cast<double>(r.gen_tokens) / r.seconds},
                      {"ttft_ms", {{"p50", r.ttft_p50}, {"p99", r.ttft_p99}}},
                      {"itl_ms", {{"p50", r.itl_p50}, {"p99", r.itl_p99}}}});
    }
    nlohmann::ordered_json out = {{"model", model.name()},
                                  {"device", model.backend().name()},
                                  {"dtype", dtype_name(model.backend().weight_dtype())},
                                  {"requests", opt.requests},
                                  {"prompt_lengths", opt.mixed_prompt},
                                  {"gen_lengths", opt.mixed_gen},
                                  {"results", rows}};
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::cout << "model: " << model.name() << "   device: " << model.backend().describe()
            << "   dtype: " << dtype_name(model.backend().weight_dtype()) << "\n"
            << "workload: " << opt.requests << " requests, prompts of " << opt.mixed_prompt << " tokens, "
            << opt.mixed_gen << " new tokens each, all submitted at once\n\n"
            << "| slots | total s | speed-up | requests/s | tokens/s | gen tokens/s | ttft p50 ms | ttft p99 ms | itl p50 ms | itl p99 ms |\n"
            << "| ----: | ------: | -------: | ---------: | -------: | -----------: | ----------: | ----------: | ---------: | ---------: |\n";
  for (const MixedResult& r : results) {
    std::cout << "| " << std::setw(5) << r.parallel << " | " << std::setw(7) << fixed(r.seconds, 2) << " | "
              << std::setw(7) << fixed(base / r.seconds, 2) << "x | " << std::setw(10)
              << fixed(opt.requests / r.seconds, 2) << " | " << std::setw(8)
              << fixed(static_cast<double>(r.prompt_tokens + r.gen_tokens) / r.seconds, 1) << " | " << std::setw(12)
              << fixed(static_cast<double>(r.gen_tokens) / r.seconds, 1) << " | " << std::setw(11)
              << fixed(r.ttft_p50, 1) << " | " << std::setw(11) << fixed(r.ttft_p99, 1) << " | " << std::setw(10)
              << fixed(r.itl_p50, 1) << " | " << std::setw(10) << fixed(r.itl_p99, 1) << " |\n";
  }
}

void run_bench(const BenchOptions& opt) {
  if (opt.mixed) {
    run_mixed_bench(opt, ModelSource::parse(opt.model.model));
    return;
  }
  if (opt.prompt_tokens < 1)
    throw UsageError("--prompt-tokens must be at least 1 (got " + std::to_string(opt.prompt_tokens) + ")");
  if (opt.gen_tokens < 0) throw UsageError("--gen-tokens must be 0 or more (got " + std::to_string(opt.gen_tokens) + ")");
  if (opt.reps < 1) throw UsageError("--reps must be at least 1 (got " + std::to_string(opt.reps) + ")");
  const std::vector<int> batches = parse_batch_list(opt.batch);
  // Against the model's context before its weights are loaded; in 64 bits, so that two huge
  // counts cannot wrap around to a small sum.
  const ModelSource source = ModelSource::parse(opt.model.model);
  const int n_ctx = source.config().n_ctx;
  const int64_t total_tokens = static_cast<int64_t>(opt.prompt_tokens) + opt.gen_tokens;
  if (total_tokens > n_ctx)
    throw UsageError("--prompt-tokens + --gen-tokens = " + std::to_string(total_tokens) +
                     " exceeds the model's context of " + std::to_string(n_ctx) + " tokens");

  const int max_batch = *std::max_element(batches.begin(), batches.end());
  RunLimits limits;
  limits.max_sequences = max_batch;
  limits.max_logit_rows = max_batch;
  limits.max_rows = step_size(int64_t{max_batch} * opt.prompt_tokens);  // 100000 x 128 passes 2^31
  LoadedModel loaded = load(opt.model, source, limits);
  Gpt2& model = *loaded.model;
  KvCache kv = model.make_kv_cache(max_batch);
  for (int b = 0; b < max_batch; ++b) kv.acquire();

  BenchReport rep;
  rep.model = model.name();
  rep.device = model.backend().name();
  rep.description = model.backend().describe();
  rep.dtype = dtype_name(model.backend().weight_dtype());
  rep.threads = opt.model.threads > 0 ? opt.model.threads : static_cast<int>(std::thread::hardware_concurrency());
  rep.load_seconds = loaded.load_seconds;
  for (int batch : batches) rep.results.push_back(bench_batch(model, kv, batch, opt));
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
  cmd->add_flag("--mixed", opt->mixed,
                "requests of mixed prompt and output lengths through the scheduler (continuous batching), once per "
                "--parallel entry: requests/s, tokens/s, time to first token and inter-token latency p50/p99");
  cmd->add_option("--requests", opt->requests, "--mixed: requests, all submitted at once")->capture_default_str();
  cmd->add_option("--mixed-prompt", opt->mixed_prompt, "--mixed: prompt lengths N or LO:HI (uniform)")
      ->capture_default_str();
  cmd->add_option("--mixed-gen", opt->mixed_gen, "--mixed: new tokens per request, N or LO:HI (uniform)")
      ->capture_default_str();
  cmd->add_option("--parallel", opt->parallel, "--mixed: KV slots (sequences decoded together), comma-separated")
      ->capture_default_str();
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
