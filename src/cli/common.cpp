#include "cli/common.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <sstream>

#include <unistd.h>

#include "common/error.h"
#include "common/files.h"
#include "common/log.h"
#include "common/memory.h"
#include "runtime/device.h"

namespace gpt2::cli {

void add_model_options(CLI::App* cmd, ModelOptions& options, bool model_required) {
  auto* m = cmd->add_option("-m,--model", options.model,
                            "model directory (config.json + model.safetensors), a GGUF file, an llm.c checkpoint "
                            "(.bin), or random:gpt2|gpt2-medium|gpt2-large|gpt2-xl|distilgpt2");
  if (model_required) m->required();
  cmd->add_option("--device", options.device, "auto|cpu|cuda (auto: CUDA when a GPU is usable)")->capture_default_str();
  cmd->add_option("--dtype", options.dtype,
                  "weights: auto|fp32|fp16|bf16|int8|int4 (auto: fp32 on CPU, bf16 on CUDA; a quantized GGUF "
                  "runs its own integers on the CPU)")->capture_default_str();
  cmd->add_option("--threads", options.threads, "CPU threads (0: all cores)")->capture_default_str();
  cmd->add_flag("-v,--verbose", options.verbose, "timings and notes on stderr");
  cmd->add_option("--cpu-isa", options.cpu_isa, "CPU kernels at most: generic|avx2|avx512 (default: the best this CPU runs)")
      ->group("Backend tuning");
  cmd->add_flag("--no-cuda-graphs", options.no_cuda_graphs, "run CUDA decode steps eagerly, not from CUDA graphs")
      ->group("Backend tuning");
  cmd->add_flag("--no-pdl", options.no_pdl, "no programmatic dependent launch on sm_90")->group("Backend tuning");
  cmd->add_option("--cuda-attention", options.cuda_attention, "auto|simt (simt: the fp32 prefill attention kernel)")
      ->group("Backend tuning");
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
  else if (options.dtype == "int4") out.weight_dtype = DType::i4;
  else throw UsageError("--dtype must be auto, fp32, fp16, bf16, int8 or int4 (got '" + options.dtype + "')");

  if (options.threads < 0) throw UsageError("--threads must be 0 (all cores) or more");
  out.threads = options.threads;
  out.verbose = options.verbose;
  if (!options.cpu_isa.empty() && options.cpu_isa != "generic" && options.cpu_isa != "avx2" &&
      options.cpu_isa != "avx512")
    throw UsageError("--cpu-isa must be generic, avx2 or avx512 (got '" + options.cpu_isa + "')");
  out.cpu_isa = options.cpu_isa;
  out.cuda_graphs = !options.no_cuda_graphs;
  out.cuda_pdl = !options.no_pdl;
  if (options.cuda_attention == "auto") out.cuda_attention = CudaAttention::auto_select;
  else if (options.cuda_attention == "simt") out.cuda_attention = CudaAttention::simt;
  else throw UsageError("--cuda-attention must be auto or simt (got '" + options.cuda_attention + "')");
  return out;
}

void add_text_input(CLI::App* cmd, TextInput& input, Files files) {
  auto* p = cmd->add_option("-p,--prompt", input.prompt, "the text ('-' reads stdin)");
  input.prompt_option = p;
  auto* f = cmd->add_option("-f,--file", input.files,
                            files == Files::many ? "read a text from FILE (bytes exactly as they are); give it again for more"
                                                 : "read the text from FILE (bytes exactly as they are)");
  if (files == Files::one) f->expected(1);
  input.file_option = f;
  p->excludes(f);
  f->excludes(p);
}

static std::string read_stream(std::istream& in) {
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<NamedText> read_texts(const TextInput& input) {
  std::vector<NamedText> out;
  for (const std::string& f : input.files) {
    if (f.empty()) throw UsageError("-f needs a file name (got an empty one)");
    out.push_back(NamedText{f, read_file(f)});
  }
  if (out.empty()) out.push_back(NamedText{"", read_text(input)});
  return out;
}

std::string read_text(const TextInput& input) {
  if (input.files.size() > 1) throw UsageError("-f takes one file here");
  if (!input.files.empty()) {
    if (input.files[0].empty()) throw UsageError("-f needs a file name (got an empty one)");
    return read_file(input.files[0]);
  }
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

Tokenizer load_tokenizer(const ModelSource& source, bool verbose) {
  const TokenizerVocabulary vocab = source.tokenizer_vocabulary();
  if (!vocab.tokens.empty()) {
    Tokenizer tokenizer = Tokenizer::from_lists(vocab.tokens, vocab.merges, vocab.source);
    if (verbose) {
      if (tokenizer.same_as(Tokenizer::builtin()))
        log_note("tokenizer: GPT-2's, from " + vocab.source);
      else
        log_note("tokenizer: the file's own (" + std::to_string(vocab.tokens.size()) + " tokens, " +
                 std::to_string(vocab.merges.size()) + " merges), which differs from GPT-2's: used as given");
    }
    return tokenizer;
  }
  if (verbose && source.kind() != ModelSource::Kind::hf_directory) log_note("tokenizer: GPT-2's built-in vocabulary");
  const std::string dir = source.tokenizer_dir();
  return dir.empty() ? Tokenizer::builtin() : Tokenizer::from_dir(dir);
}

int step_size(int64_t n) { return static_cast<int>(std::clamp<int64_t>(n, 0, INT_MAX)); }

void check_run_memory(const BackendOptions& backend, const Config& config, const RunLimits& limits) {
  std::string no_cuda;
  const bool on_host = backend.device == Device::cpu ||
                       (backend.device == Device::auto_select && !cuda_available(&no_cuda));
  const RunBytes b = run_bytes(config, limits);
  // On CUDA the KV cache and activations are device memory, checked where the backend allocates.
  const size_t bytes = on_host ? add_sizes(b.backend(), b.host_logits) : b.host_logits;
  const int S = std::max(limits.max_sequences, 1);
  std::string what = "a run of " + std::to_string(S) + (S == 1 ? " sequence" : " sequences") + " (";
  if (on_host)
    what += "KV cache " + format_bytes(b.kv_cache) + ", activations " + format_bytes(b.activations) + ", ";
  what += "logits " + format_bytes(b.host_logits) + ")";
  check_host_memory(bytes, what);
}

LoadedModel load(const ModelOptions& options, const ModelSource& source, const RunLimits& limits,
                 const std::function<void(const HostModel&)>& host_weights) {
  BackendOptions backend = backend_options(options);
  check_run_memory(backend, source.config(), limits);  // before the weights are read
  const auto start = std::chrono::steady_clock::now();
  HostModel host = source.load(options.threads);
  // A quantized file keeps the CPU on its integer kernels under --dtype auto (CUDA: bf16).
  if (backend.auto_dtype && host.quantized_source) backend.weight_dtype = DType::i8;
  if (options.verbose)
    for (const std::string& line : host.notes) log_note(line);
  if (host_weights) host_weights(host);
  Workload workload;
  workload.head_dim = host.config.head_dim();
  workload.layernorm_cols = host.config.n_embd;
  std::unique_ptr<Backend> device = make_backend(backend, workload);
  auto model = std::make_unique<Gpt2>(std::move(host), std::move(device), limits);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (options.verbose) {
    std::cerr << "loaded " << model->name() << " (" << model->config().n_layer << " layers, n_embd "
              << model->config().n_embd << ") on " << model->backend().describe() << " in " << seconds
              << " s\n";
  }
  return LoadedModel{std::move(model), seconds};
}

}  // namespace gpt2::cli
