#include "cli/common.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <sstream>

#include <unistd.h>

#include "common/error.h"
#include "common/files.h"

namespace gpt2::cli {

void add_model_options(CLI::App* cmd, ModelOptions& options, bool model_required) {
  auto* m = cmd->add_option("-m,--model", options.model,
                            "model directory (config.json + model.safetensors) or random:gpt2|gpt2-medium|"
                            "gpt2-large|gpt2-xl|distilgpt2");
  if (model_required) m->required();
  cmd->add_option("--device", options.device, "auto|cpu|cuda (auto: CUDA when a GPU is usable)")->capture_default_str();
  cmd->add_option("--dtype", options.dtype,
                  "weights: auto|fp32|fp16|bf16|int8 (auto: fp32 on CPU, bf16 on CUDA)")->capture_default_str();
  cmd->add_option("--threads", options.threads, "CPU threads (0: all cores)")->capture_default_str();
  cmd->add_flag("-v,--verbose", options.verbose, "timings and notes on stderr");
}

BackendOptions backend_options(const ModelOptions& options) {
  BackendOptions out;
  if (options.device == "auto") out.device = Device::auto_select;
  else if (options.device == "cpu") out.device = Device::cpu;
  else if (options.device == "cuda") out.device = Device::cuda;
  else throw UsageError("--device must be auto, cpu or cuda (got '" + options.device + "')");

  out.auto_dtype = options.dtype == "auto";
  if (options.dtype == "auto" || options.dtype == "fp32") out.weight_dtype = DType::f32;
  else if (options.dtype == "fp16") out.weight_dtype = DType::f16;
  else if (options.dtype == "bf16") out.weight_dtype = DType::bf16;
  else if (options.dtype == "int8") out.weight_dtype = DType::i8;
  else throw UsageError("--dtype must be auto, fp32, fp16, bf16 or int8 (got '" + options.dtype + "')");

  if (options.threads < 0) throw UsageError("--threads must be 0 (all cores) or more");
  out.threads = options.threads;
  out.verbose = options.verbose;
  return out;
}

void add_text_input(CLI::App* cmd, TextInput& input) {
  auto* p = cmd->add_option("-p,--prompt", input.prompt, "the text ('-' reads stdin)");
  input.prompt_option = p;
  auto* f = cmd->add_option("-f,--file", input.file, "read the text from FILE (bytes exactly as they are)");
  input.file_option = f;
  p->excludes(f);
  f->excludes(p);
}

static std::string read_stream(std::istream& in) {
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string read_text(const TextInput& input) {
  if (input.file_option != nullptr && input.file_option->count() > 0 && input.file.empty())
    throw UsageError("-f needs a file name (got an empty one)");
  if (!input.file.empty()) return read_file(input.file);
  const bool prompt_given = input.prompt_option != nullptr && input.prompt_option->count() > 0;
  if (prompt_given && input.prompt != "-") return input.prompt;
  if (!prompt_given && isatty(STDIN_FILENO))
    throw UsageError("no input: give -p TEXT, -f FILE, or pipe the text on stdin");
  errno = 0;
  std::string text = read_stream(std::cin);
  // A read error (stdin redirected from a directory, a broken device) is not an empty text.
  if (std::cin.bad() || std::ferror(stdin))
    throw Error(std::string("cannot read stdin") + (errno != 0 ? std::string(": ") + std::strerror(errno) : ""));
  return text;
}

Tokenizer load_tokenizer(const std::string& model_spec) {
  if (model_spec.empty()) return Tokenizer::builtin();
  if (model_spec.rfind("random:", 0) == 0) {
    peek_config(model_spec);  // an unknown random:NAME is an error here too, not the built-in vocabulary
    return Tokenizer::builtin();
  }
  return Tokenizer::from_dir(model_spec);
}

// Without loading the weights, so that bad option values (score's --window, bench's token
// counts, generate's prompt length) are rejected before a multi-gigabyte load. A directory
// without config.json goes to the loader, whose error says what the directory lacks.
Config peek_config(const std::string& spec) {
  const std::string random_prefix = "random:";
  if (spec.rfind(random_prefix, 0) == 0) {
    try {
      return Config::preset(spec.substr(random_prefix.size()));
    } catch (const Error&) {
      return load_model(spec).config;  // throws the loader's message, which lists the random: models
    }
  }
  const std::string config_path = spec + "/config.json";
  if (file_exists(config_path)) return Config::from_json_file(config_path);
  return load_model(spec).config;
}

LoadedModel load(const ModelOptions& options, const RunLimits& limits) {
  return load(options, limits, load_tokenizer(options.model));
}

LoadedModel load(const ModelOptions& options, const RunLimits& limits, Tokenizer tokenizer) {
  const BackendOptions backend = backend_options(options);
  const auto start = std::chrono::steady_clock::now();
  HostModel host = load_model(options.model);
  std::unique_ptr<Backend> device = make_backend(backend, host.config);
  auto model = std::make_unique<Gpt2>(std::move(host), std::move(device), limits);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (options.verbose) {
    std::cerr << "loaded " << model->name() << " (" << model->config().n_layer << " layers, n_embd "
              << model->config().n_embd << ") on " << model->backend().describe() << " in " << seconds
              << " s\n";
  }
  return LoadedModel{std::move(model), std::move(tokenizer), seconds};
}

}  // namespace gpt2::cli
