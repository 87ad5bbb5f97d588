// `gpt2 generate`: continues a prompt, streaming each token's text as it is produced.
// The loop itself (prefill, decode, stop conditions) is gpt2::generate in
// src/sampling/generate.cpp; this file is options, output and timings.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstdint>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "common/error.h"
#include "common/files.h"
#include "common/memory.h"
#include "engine/scheduler.h"
#include "engine/step_model.h"

namespace gpt2::cli {
namespace {

struct GenerateArgs {
  ModelOptions model;
  TextInput input;
  int n_predict = 128;
  SamplerParams sampler;
  std::string seed = "-1";  // -1: a random seed (llama.cpp's convention)
  std::vector<std::string> stop;
  int num_samples = 1;
  int parallel = 0;  // KV slots; 0: every sequence at once (up to 16)
  std::string prompts_file;
  bool ignore_eos = false;
  bool no_echo = false;
  bool no_special = false;
  bool json = false;
};

// Prompt tokens per sequence per step: activation buffers stay small for long prompts and many
// sequences (longer prompts are prefilled in chunks of this many tokens).
constexpr int kMaxPrefillChunk = 512;
// KV slots when --parallel is not given: every sequence at once, up to this many.
constexpr int kDefaultSlots = 16;

void check_options(const GenerateArgs& args) {
  if (args.n_predict < 1) throw UsageError("-n must be 1 or more (got " + std::to_string(args.n_predict) + ")");
  if (args.num_samples < 1)
    throw UsageError("--num-samples must be 1 or more (got " + std::to_string(args.num_samples) + ")");
  if (args.parallel < 0) throw UsageError("--parallel must be 1 or more (got " + std::to_string(args.parallel) + ")");
  args.sampler.validate();
  for (const std::string& s : args.stop) {
    if (s.empty()) throw UsageError("--stop must not be empty");
  }
  backend_options(args.model);  // --device, --dtype, --threads
  if (!args.prompts_file.empty() && (args.input.prompt_option->count() > 0 || args.input.file_option->count() > 0))
    throw UsageError("--prompts takes the prompts from a file; it does not go with -p or -f");
}

// --seed N: 0 .. 2^64-1, or -1 for a random one.
uint64_t parse_seed(const std::string& text) {
  if (text == "-1") return random_seed();
  const bool digits = !text.empty() && text.size() <= 20 &&
                      text.find_first_not_of("0123456789") == std::string::npos;
  errno = 0;
  const unsigned long long value = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
  if (!digits || errno == ERANGE)
    throw UsageError("--seed must be a whole number from 0 to 18446744073709551615, or -1 for a random seed (got '" +
                     text + "')");
  return value;
}

double per_second(double count, double seconds) { return seconds > 0 ? count / seconds : 0.0; }

// One prompt of --prompts FILE (or the -p/-f prompt), with what its line may override.
struct PromptJob {
  std::string text;
  std::vector<int32_t> tokens;  // as run: [<|endoftext|>] for an empty prompt
  uint64_t seed = 0;
  int n_predict = 0;
};

// --prompts FILE: one JSON value per non-empty line, a string or {"prompt": string, "seed": int,
// "n_predict": int}; errors name the line.
std::vector<PromptJob> read_prompts(const std::string& path, uint64_t seed, int n_predict) {
  const std::string bytes = read_file(path);
  std::vector<PromptJob> jobs;
  size_t at = 0;
  for (int line_no = 1; at < bytes.size(); ++line_no) {
    const size_t end = std::min(bytes.find('\n', at), bytes.size());
    const std::string line = bytes.substr(at, end - at);
    at = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no) + ": ";
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      throw Error(where + "not a JSON string or object (one prompt per line)");
    }
    PromptJob job;
    job.seed = seed;
    job.n_predict = n_predict;
    if (j.is_string()) {
      job.text = j.get<std::string>();
    } else if (j.is_object() && j.contains("prompt") && j["prompt"].is_string()) {
      job.text = j["prompt"].get<std::string>();
      for (const auto& [key, value] : j.items()) {
        if (key == "prompt") continue;
        if (key == "seed" && value.is_number_unsigned()) job.seed = value.get<uint64_t>();
        else if (key == "n_predict" && value.is_number_integer() && value.get<int64_t>() >= 1 &&
                 value.get<int64_t>() <= 1 << 20)
          job.n_predict = value.get<int>();
        else throw Error(where + "unknown or invalid field '" + key + "' (fields: prompt, seed, n_predict)");
      }
    } else {
      throw Error(where + "expected a string or an object with a \"prompt\" string");
    }
    jobs.push_back(std::move(job));
  }
  if (jobs.empty()) throw Error(path + ": no prompts (one JSON string or object per line)");
  return jobs;
}

nlohmann::ordered_json sample_json(const Completion& c) {
  nlohmann::ordered_json sample;
  sample["tokens"] = c.tokens;
  sample["text"] = to_valid_utf8(c.text);
  sample["finish_reason"] = finish_reason_name(c.finish_reason);
  return sample;
}

std::string dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void write_or_fail(const std::string& text) {
  std::cout << text << std::flush;
  if (!std::cout) throw Error("cannot write to stdout");  // stop generating for nobody
}

void run(const GenerateArgs& args) {
  // Every option is checked before anything is read or loaded.
  check_options(args);
  const uint64_t seed = parse_seed(args.seed);
  const ModelSource source = ModelSource::parse(args.model.model);
  const Tokenizer tokenizer = load_tokenizer(source, args.model.verbose);
  const Special special = args.no_special ? Special::plain : Special::allow;
  const bool many = !args.prompts_file.empty();
  std::vector<PromptJob> jobs;
  if (many) {
    jobs = read_prompts(args.prompts_file, seed, args.n_predict);
  } else {
    jobs.push_back(PromptJob{read_text(args.input), {}, seed, args.n_predict});
  }
  if (args.model.verbose) std::cerr << "seed: " << seed << "\n";

  // Checked against config.json before the weights are loaded (a long wait for a large model).
  const int n_ctx = source.config().n_ctx;
  int longest = 1;
  for (size_t i = 0; i < jobs.size(); ++i) {
    PromptJob& job = jobs[i];
    job.tokens = tokenizer.encode(job.text, special);
    if (job.tokens.empty()) job.tokens.push_back(tokenizer.eot());  // a new document, as GPT-2's samples
    try {
      check_prompt_fits(static_cast<int>(job.tokens.size()), n_ctx);
    } catch (const Error& e) {
      throw Error(many ? args.prompts_file + ": prompt " + std::to_string(i + 1) + ": " + e.what() : e.what());
    }
    longest = std::max(longest, static_cast<int>(job.tokens.size()));
  }

  // The run's shape: one KV slot per sequence (all of them at once, up to --parallel), each
  // step its decode rows plus one prefill chunk.
  const int64_t n_sequences = static_cast<int64_t>(jobs.size()) * args.num_samples;
  const int slots = static_cast<int>(std::min<int64_t>(n_sequences, args.parallel > 0 ? args.parallel : kDefaultSlots));
  const int chunk = std::min(longest, kMaxPrefillChunk);
  // Every sequence's request and result (its prompt, and up to -n new tokens within the context,
  // with their times and text) live until the end: counted before the weights are loaded.
  int most_new = 1;
  for (const PromptJob& job : jobs) most_new = std::max(most_new, std::min(job.n_predict, n_ctx));
  const size_t tokens_per_sequence = static_cast<size_t>(longest) + static_cast<size_t>(most_new);
  const HostMemory sequences_counted(
      mul_sizes({static_cast<size_t>(n_sequences),
                 sizeof(Request) + sizeof(Completion) +
                     mul_sizes({tokens_per_sequence, sizeof(int32_t) + sizeof(double) + 16})}),
      std::to_string(n_sequences) + " sequences (prompts x --num-samples)");
  RunLimits limits;
  limits.max_sequences = slots;
  limits.max_logit_rows = slots;
  limits.max_rows = step_size(int64_t{slots} + chunk);
  LoadedModel loaded = load(args.model, source, limits);
  Gpt2StepModel model(*loaded.model, slots);
  TokenizerText text(tokenizer);
  if (args.model.verbose && !many) std::cerr << "prompt: " << jobs[0].tokens.size() << " tokens\n";

  SchedulerOptions so;
  so.max_queue = static_cast<int>(std::min<int64_t>(n_sequences, 1 << 30));
  so.prefill_chunk = chunk;
  so.eot = tokenizer.eot();
  so.n_vocab = tokenizer.n_vocab();
  Scheduler scheduler(model, text, so);

  // Output. One sequence streams as it is generated; several samples of one prompt print each
  // as soon as it ends; --prompts prints each prompt's result in input order as soon as it and
  // every one before it are done.
  const int K = args.num_samples;
  const bool stream = !args.json && !many && K == 1;
  std::vector<std::vector<Completion>> results(jobs.size(), std::vector<Completion>(static_cast<size_t>(K)));
  std::vector<int> remaining(jobs.size(), K);
  size_t next_to_print = 0;
  auto print_prompt = [&](size_t p) {
    if (args.json) {
      nlohmann::ordered_json out;
      if (many) out["index"] = p;
      out["prompt_tokens"] = jobs[p].tokens;
      nlohmann::ordered_json samples = nlohmann::ordered_json::array();
      for (const Completion& c : results[p]) samples.push_back(sample_json(c));
      out["samples"] = std::move(samples);
      out["seed"] = jobs[p].seed;
      write_or_fail(dump(out) + "\n");
    } else if (many) {
      std::string block = "--- prompt " + std::to_string(p + 1) + "/" + std::to_string(jobs.size()) + " ---\n";
      for (int k = 0; k < K; ++k) {
        if (K > 1) block += "--- sample " + std::to_string(k + 1) + "/" + std::to_string(K) + " ---\n";
        if (!args.no_echo) block += to_valid_utf8(jobs[p].text);
        block += to_valid_utf8(results[p][static_cast<size_t>(k)].text) + "\n";
      }
      write_or_fail(block);
    }
  };
  if (stream && !args.no_echo) write_or_fail(to_valid_utf8(jobs[0].text));
  for (size_t p = 0; p < jobs.size(); ++p) {
    for (int k = 0; k < K; ++k) {
      Request r;
      r.prompt = jobs[p].tokens;
      r.params.n_predict = jobs[p].n_predict;
      r.params.stop = args.stop;
      r.params.ignore_eos = args.ignore_eos;
      r.params.sampler = args.sampler;
      r.params.seed = jobs[p].seed;
      r.params.sample_index = k;
      if (stream) r.on_text = [](const std::string& piece) { write_or_fail(to_valid_utf8(piece)); };
      r.on_done = [&, p, k](const Completion& c) {
        results[p][static_cast<size_t>(k)] = c;
        if (!many && !args.json && K > 1) {
          write_or_fail("--- sample " + std::to_string(k + 1) + "/" + std::to_string(K) + " ---\n" +
                        (args.no_echo ? std::string() : to_valid_utf8(jobs[p].text)) + to_valid_utf8(c.text) + "\n");
        }
        if (--remaining[p] > 0) return;
        while (next_to_print < jobs.size() && remaining[next_to_print] == 0) print_prompt(next_to_print++);
      };
      scheduler.submit(std::move(r));
    }
  }
  const auto start = std::chrono::steady_clock::now();
  scheduler.run_until_idle();
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (stream) write_or_fail("\n");

  bool context_full = false;
  double first = total;
  int64_t tokens = 0;
  for (const auto& per_prompt : results) {
    for (const Completion& c : per_prompt) {
      context_full = context_full || c.context_full;
      if (!c.token_s.empty()) first = std::min(first, c.token_s.front());
      tokens += static_cast<int64_t>(c.tokens.size());
    }
  }
  if (context_full) {
    std::cerr << "note: stopped at the end of the model's context (" << n_ctx << " tokens";
    if (!many) std::cerr << ", the prompt took " << jobs[0].tokens.size();
    std::cerr << "); finish_reason \"length\"\n";
  }
  if (args.model.verbose) {
    std::cerr << "time to first token: " << first * 1e3 << " ms\n"
              << "generated: " << tokens << " tokens in " << n_sequences << " sequence"
              << (n_sequences == 1 ? "" : "s") << " through " << slots << " slot" << (slots == 1 ? "" : "s")
              << " in " << total << " s (" << per_second(static_cast<double>(tokens), total) << " tokens/s)\n";
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "continue a prompt (streams the text as it is generated)");
  add_model_options(cmd, args->model);
  add_text_input(cmd, args->input);
  SamplerParams& s = args->sampler;
  cmd->add_option("-n,--n-predict", args->n_predict, "new tokens per sample at most")->capture_default_str();
  cmd->add_option("--temperature,--temp", s.temperature, "divides the logits; 0 is greedy")->capture_default_str();
  cmd->add_option("--top-k", s.top_k, "keep the K most likely tokens (0: off)")->capture_default_str();
  cmd->add_option("--top-p", s.top_p, "keep the most likely tokens up to this probability mass, in (0, 1] (1: off)")
      ->capture_default_str();
  cmd->add_option("--min-p", s.min_p, "keep tokens at least this fraction as likely as the best (0: off)")
      ->capture_default_str();
  cmd->add_option("--repeat-penalty", s.repeat_penalty, "penalize repeated tokens (1: off)")->capture_default_str();
  cmd->add_option("--repeat-last-n", s.repeat_last_n, "tokens the penalties look back over (0: off, -1: all)")
      ->capture_default_str();
  cmd->add_option("--presence-penalty", s.presence_penalty, "subtracted once from each token seen (0: off)")
      ->capture_default_str();
  cmd->add_option("--frequency-penalty", s.frequency_penalty, "subtracted per occurrence of each token seen (0: off)")
      ->capture_default_str();
  cmd->add_flag("--greedy", s.greedy, "always take the most likely token (same as --temperature 0)");
  cmd->add_option("--seed", args->seed, "random seed; -1: a random one, shown by -v and --json")->capture_default_str();
  cmd->add_option("--stop", args->stop, "end the text before this string (not printed; give it again for more)")
      ->expected(1)
      ->take_all();
  cmd->add_flag("--ignore-eos", args->ignore_eos, "never end at <|endoftext|>");
  cmd->add_option("--num-samples", args->num_samples,
                  "continuations of each prompt, generated together (each printed as soon as it ends)")
      ->capture_default_str();
  cmd->add_option("--prompts", args->prompts_file,
                  "generate for every prompt of FILE at once: one JSON string or {\"prompt\", \"seed\", \"n_predict\"} "
                  "object per line; results in input order (--json: one object per line)");
  cmd->add_option("--parallel", args->parallel, "sequences generated at once (KV slots; default: all, up to 16)");
  cmd->add_flag("--no-echo", args->no_echo, "do not print the prompt before the generated text");
  cmd->add_flag("--no-special", args->no_special, "'<|endoftext|>' in the prompt is plain text");
  cmd->add_flag("--json", args->json,
                "print {\"prompt_tokens\", \"samples\": [{\"tokens\", \"text\", \"finish_reason\"}], \"seed\"} "
                "(with --prompts one per line, with \"index\")");
  cmd->callback([args] { run(*args); });
}

}  // namespace gpt2::cli
