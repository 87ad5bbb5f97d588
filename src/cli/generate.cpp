// `gpt2 generate`: continues a prompt, streaming each token's text as it is produced.
// The loop itself (prefill, decode, stop conditions) is gpt2::generate in
// src/sampling/generate.cpp; this file is options, output and timings.
#include <algorithm>
#include <cerrno>
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
#include "sampling/generate_gpt2.h"

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
  bool ignore_eos = false;
  bool no_echo = false;
  bool no_special = false;
  bool json = false;
};

// Prefill steps are capped so that activation buffers stay small for long prompts and
// many samples (longer prompts are prefilled in chunks of this many tokens).
constexpr int kMaxPrefillChunk = 512;

void check_options(const GenerateArgs& args) {
  if (args.n_predict < 1) throw UsageError("-n must be 1 or more (got " + std::to_string(args.n_predict) + ")");
  if (args.num_samples < 1)
    throw UsageError("--num-samples must be 1 or more (got " + std::to_string(args.num_samples) + ")");
  args.sampler.validate();
  for (const std::string& s : args.stop) {
    if (s.empty()) throw UsageError("--stop must not be empty");
  }
  backend_options(args.model);  // --device, --dtype, --threads
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

void print_stats(const GenerateResult& result, int n_samples) {
  const GenerateStats& s = result.stats;
  const double prefill_tokens = static_cast<double>(s.prompt_tokens) * n_samples;
  const double decode_tokens = static_cast<double>(s.decode_steps) * n_samples;
  std::cerr << "prefill: " << s.prompt_tokens << " tokens x " << n_samples << " in " << s.prefill_seconds * 1e3
            << " ms (" << per_second(prefill_tokens, s.prefill_seconds) << " tokens/s)\n"
            << "time to first token: " << s.first_token_seconds * 1e3 << " ms\n"
            << "decode: " << s.decode_steps << " steps x " << n_samples << " in " << s.decode_seconds
            << " s (" << per_second(decode_tokens, s.decode_seconds) << " tokens/s)\n";
}

void run(const GenerateArgs& args) {
  // Every option is checked before anything is read or loaded.
  check_options(args);
  const uint64_t seed = parse_seed(args.seed);
  const std::string prompt_text = read_text(args.input);
  if (args.model.verbose) std::cerr << "seed: " << seed << "\n";

  // The prompt's length sizes the run (activation buffers for batch x prefill tokens).
  const Special special = args.no_special ? Special::plain : Special::allow;
  Tokenizer tokenizer = load_tokenizer(args.model.model);
  const std::vector<int32_t> prompt = tokenizer.encode(prompt_text, special);
  // Checked against config.json before the weights are loaded (a long wait for a large model).
  check_prompt_fits(std::max<int>(static_cast<int>(prompt.size()), 1), peek_config(args.model.model).n_ctx);
  RunLimits limits;
  limits.max_batch = args.num_samples;
  limits.max_tokens = std::clamp(static_cast<int>(prompt.size()), 1, kMaxPrefillChunk);
  LoadedModel loaded = load(args.model, limits, std::move(tokenizer));
  if (args.model.verbose) std::cerr << "prompt: " << prompt.size() << " tokens\n";
  // Before the echo: a prompt that does not fit prints nothing but the error.
  check_prompt_fits(std::max<int>(static_cast<int>(prompt.size()), 1), loaded.model->config().n_ctx);

  GenerateOptions options;
  options.n_predict = args.n_predict;
  options.num_samples = args.num_samples;
  options.stop = args.stop;
  options.ignore_eos = args.ignore_eos;
  options.eot = loaded.tokenizer.eot();
  options.n_vocab = loaded.tokenizer.n_vocab();
  options.sampler = args.sampler;
  options.seed = seed;

  // One sample streams as it is generated; several are printed one after another at the end.
  const bool stream = !args.json && args.num_samples == 1;
  if (stream && !args.no_echo) std::cout << to_valid_utf8(prompt_text) << std::flush;
  OnText on_text;
  if (stream) {
    on_text = [](int, const std::string& piece) {
      std::cout << to_valid_utf8(piece) << std::flush;
      if (!std::cout) throw Error("cannot write to stdout");  // stop generating for nobody
    };
  }

  Gpt2TokenModel model(*loaded.model);
  TokenizerText text(loaded.tokenizer);
  const GenerateResult result = generate(model, text, prompt, options, on_text);

  if (args.json) {
    nlohmann::ordered_json samples = nlohmann::ordered_json::array();
    for (const GeneratedSample& s : result.samples) {
      nlohmann::ordered_json sample;
      sample["tokens"] = s.tokens;
      sample["text"] = to_valid_utf8(s.text);
      sample["finish_reason"] = finish_reason_name(s.finish_reason);
      samples.push_back(std::move(sample));
    }
    nlohmann::ordered_json out;
    out["prompt_tokens"] = result.prompt_tokens;
    out["samples"] = std::move(samples);
    out["seed"] = seed;
    std::cout << out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  } else if (stream) {
    std::cout << "\n";
  } else {
    for (size_t i = 0; i < result.samples.size(); ++i) {
      std::cout << "--- sample " << i + 1 << "/" << result.samples.size() << " ---\n";
      if (!args.no_echo) std::cout << to_valid_utf8(prompt_text);
      std::cout << to_valid_utf8(result.samples[i].text) << "\n";
    }
  }
  std::cout << std::flush;

  if (result.context_full) {
    std::cerr << "note: stopped at the end of the model's context (" << loaded.model->config().n_ctx
              << " tokens, the prompt took " << result.prompt_tokens.size()
              << "); finish_reason \"length\"\n";
  }
  if (args.model.verbose) print_stats(result, args.num_samples);
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
                  "continuations of the prompt, generated as one batch (printed one after another when all are done)")
      ->capture_default_str();
  cmd->add_flag("--no-echo", args->no_echo, "do not print the prompt before the generated text");
  cmd->add_flag("--no-special", args->no_special, "'<|endoftext|>' in the prompt is plain text");
  cmd->add_flag("--json", args->json,
                "print {\"prompt_tokens\", \"samples\": [{\"tokens\", \"text\", \"finish_reason\"}], \"seed\"}");
  cmd->callback([args] { run(*args); });
}

}  // namespace gpt2::cli
