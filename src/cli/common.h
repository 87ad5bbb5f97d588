// What the subcommands share: model/device options, reading the input text.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "model/gpt2.h"
#include "model/source.h"
#include "runtime/backend.h"
#include "tokenizer/tokenizer.h"

namespace gpt2::cli {

// -m MODEL --device --dtype --threads -v, and the backends' knobs (--cpu-isa, --no-cuda-graphs,
// --no-pdl, --cuda-attention) for testing and benchmarking the fallbacks.
struct ModelOptions {
  std::string model;
  std::string device = "auto";
  std::string dtype = "auto";
  int threads = 0;
  bool verbose = false;
  std::string cpu_isa;
  bool no_cuda_graphs = false;
  bool no_pdl = false;
  std::string cuda_attention = "auto";
};
void add_model_options(CLI::App* cmd, ModelOptions& options, bool model_required = true);
// Validates --device/--dtype/--threads (gpt2::UsageError on bad values).
BackendOptions backend_options(const ModelOptions& options);

// -p TEXT | -f FILE | stdin ("-p -", or neither given and stdin is not a terminal); with
// Files::many, -f may be given several times (score).
struct TextInput {
  std::string prompt;
  std::vector<std::string> files;
  CLI::Option* prompt_option = nullptr;  // tells an empty -p "" from no -p
  CLI::Option* file_option = nullptr;    // tells an empty -f "" from no -f
};
enum class Files { one, many };
void add_text_input(CLI::App* cmd, TextInput& input, Files files = Files::one);
// The input's bytes, exactly as given (no newline stripping). Throws gpt2::Error.
std::string read_text(const TextInput& input);
// Every input: each -f FILE (named by its path), or the one -p / stdin text (named "").
struct NamedText {
  std::string name;
  std::string bytes;
};
std::vector<NamedText> read_texts(const TextInput& input);

// The tokenizer that goes with a model: the model file's own (GGUF), the directory's files, or the
// built-in GPT-2 vocabulary (random:, llm.c, no -m); with `verbose` a note says which, and whether
// a GGUF's vocabulary is GPT-2's.
Tokenizer load_tokenizer(const ModelSource& source, bool verbose = false);

// A step's rows or sequences from a sum or product computed in 64 bits, saturated at INT_MAX (a
// run that large is refused by check_run_memory), so that nothing wraps around to a small size.
int step_size(int64_t n);

// Refuses (gpt2::Error, common/memory.h's message) a run whose KV cache (limits.max_sequences
// slots), activations and logits cannot fit in host memory, from the config alone; on CUDA only
// the host's logits are checked here (the device's memory is checked where the backend allocates).
void check_run_memory(const BackendOptions& backend, const Config& config, const RunLimits& limits);

// Loads model + backend with the given limits, after check_run_memory; notes the load time when verbose. `host_weights`,
// when given, sees the fp32 host weights before they are uploaded (and released): drift copies
// the word's token embedding rows there.
struct LoadedModel {
  std::unique_ptr<Gpt2> model;
  double load_seconds = 0;
};
LoadedModel load(const ModelOptions& options, const ModelSource& source, const RunLimits& limits,
                 const std::function<void(const HostModel&)>& host_weights = nullptr);

}  // namespace gpt2::cli
