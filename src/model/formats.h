// Internal to src/model: the loaders behind ModelSource's kinds of file (source.h). Each reads
// the hyper-parameters alone (cheap), or validates and converts the whole model into HostModel's
// single allocation; every error names the file.
#pragma once

#include <string>

#include "model/config.h"
#include "model/source.h"
#include "model/weights.h"

namespace gpt2 {

class ThreadPool;

// GGUF, architecture gpt2, as llama.cpp's converter writes it (gguf_loader.cpp).
Config gguf_config(const std::string& path);
HostModel load_gguf(const std::string& path, ThreadPool& pool);
TokenizerVocabulary gguf_vocabulary(const std::string& path);

// llm.c checkpoints (gpt2_124M.bin, gpt2_124M_bf16.bin; llmc.cpp).
constexpr int32_t kLlmcMagic = 20240326;
Config llmc_config(const std::string& path);
HostModel load_llmc(const std::string& path, ThreadPool& pool);

}  // namespace gpt2
