// What the subcommands share: model/device options, reading the input text.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "model/gpt2.h"
#include "runtime/backend.h"
#include "tokenizer/tokenizer.h"

namespace gpt2::cli {

// -m MODEL --device --dtype --threads -v
struct ModelOptions {
  std::string model;
  std::string device = "auto";
  std::string dtype = "auto";
  int threads = 0;
  bool verbose = false;
};
void add_model_options(CLI::App* cmd, ModelOptions& options, bool model_required = true);
// Validates --device/--dtype/--threads (gpt2::UsageError on bad values).
BackendOptions backend_options(const ModelOptions& options);

// -p TEXT | -f FILE | stdin ("-p -", or neither given and stdin is not a terminal).
struct TextInput {
  std::string prompt;
  std::string file;
  CLI::Option* prompt_option = nullptr;  // tells an empty -p "" from no -p
  CLI::Option* file_option = nullptr;    // tells an empty -f "" from no -f
};
void add_text_input(CLI::App* cmd, TextInput& input);
// The input's bytes, exactly as given (no newline stripping). Throws gpt2::Error.
std::string read_text(const TextInput& input);

// Tokenizer of a model directory (or the built-in one for random: and no -m).
Tokenizer load_tokenizer(const std::string& model_spec);

// The hyper-parameters of -m MODEL from its config.json (or the preset of random:NAME), without
// loading the weights, so that options can be checked against n_ctx before a long load.
Config peek_config(const std::string& spec);

// Loads model + backend with the given limits; prints load time when verbose.
struct LoadedModel {
  std::unique_ptr<Gpt2> model;
  Tokenizer tokenizer;
  double load_seconds = 0;
};
LoadedModel load(const ModelOptions& options, const RunLimits& limits);
// The same with a tokenizer the caller already has (it sized the run from the prompt).
LoadedModel load(const ModelOptions& options, const RunLimits& limits, Tokenizer tokenizer);

}  // namespace gpt2::cli
