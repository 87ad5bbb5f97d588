// ModelSource: `-m MODEL` parsed once, the one room every model format plugs into.
//
//   ModelSource src = ModelSource::parse(spec);  // what the spec names; errors for unknown names
//   Config c = src.config();                     // hyper-parameters only: no weights read
//   HostModel host = src.load(n_threads);        // the weights, fp32 [out, in], validated
//   src.tokenizer_dir()                          // where vocab.json / tokenizer.json live, or ""
//   src.tokenizer_vocabulary()                   // a vocabulary stored in the model file (GGUF)
//
// Kinds: a Hugging Face directory (config.json + model.safetensors or a sharded index),
// random:NAME (seeded random weights with the real shapes, for benchmarks), a GGUF file
// (llama.cpp, ollama; model/gguf.h) and an llm.c checkpoint (gpt2_124M.bin). A file is
// recognized by its first bytes, not its name; a PyTorch pickle (pytorch_model.bin, *.pt) is
// refused, since loading one can run code. A new format is a new Kind with its own config() and
// load() (model/formats.h).
#pragma once

#include <string>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace gpt2 {

// A tokenizer vocabulary stored in a model file: GGUF's tokenizer.ggml.tokens (id -> token, in
// GPT-2's byte alphabet, as vocab.json spells them) and tokenizer.ggml.merges ("LEFT RIGHT", in
// rank order). Empty tokens: the file carries none.
struct TokenizerVocabulary {
  std::vector<std::string> tokens;
  std::vector<std::string> merges;
  std::string source;  // names the file, for errors and notes
};

class ModelSource {
 public:
  enum class Kind { hf_directory, random, gguf, llmc };

  // Throws gpt2::Error: an unknown random:NAME (listing the known ones), a path that does not
  // exist, a file that is neither GGUF nor llm.c (a PyTorch pickle is named as such).
  static ModelSource parse(const std::string& spec);

  Kind kind() const { return kind_; }
  const std::string& spec() const { return spec_; }  // as the user wrote it
  // Reads config.json, the preset or the file's header; cheap, so options can be checked before
  // a long load.
  Config config() const;
  // Reads, validates and converts the weights; n_threads: 0 = all cores.
  HostModel load(int n_threads = 0) const;
  // The directory whose tokenizer files (vocab.json + merges.txt, encoder.json + vocab.bpe,
  // tokenizer.json) go with the model, or "" for the built-in GPT-2 vocabulary.
  std::string tokenizer_dir() const { return kind_ == Kind::hf_directory ? spec_ : std::string(); }
  // The vocabulary the model file itself carries (GGUF), else empty tokens.
  TokenizerVocabulary tokenizer_vocabulary() const;

 private:
  Kind kind_ = Kind::random;
  std::string spec_;
  std::string preset_;  // random:NAME: NAME
};

// ModelSource::parse(spec).load(): the whole model in one call.
HostModel load_model(const std::string& spec, int n_threads = 0);

}  // namespace gpt2
