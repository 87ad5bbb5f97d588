// Internal to src/model: the loaders behind ModelSource's kinds of file (source.h). Each reads
// the hyper-parameters alone (cheap), or validates and converts the whole model into HostModel's
// single allocation; every error names the file.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"
#include "model/source.h"
#include "model/weights.h"

namespace gpt2 {

class GgufFile;
class MappedFile;
class ThreadPool;

// A sharded checkpoint's model.safetensors.index.json: its "weight_map" (tensor name -> shard
// file name, each a plain file name beside the index), validated (loader.cpp). `path` names the
// index in errors.
std::map<std::string, std::string> parse_safetensors_index(std::string_view text, const std::string& path);

// One block's tensors, by their Hugging Face names after "h.<l>.", in the weight table's order
// (loader.cpp): what each loader checks is present before it builds per-layer tables.
std::vector<std::string> block_tensor_suffixes(const Config& config);

// GGUF, architecture gpt2, as llama.cpp's converter writes it (gguf_loader.cpp). The GgufFile
// forms read a file already opened (or bytes held in memory: MappedFile::from_bytes).
Config gguf_config(const std::string& path);
HostModel load_gguf(const std::string& path, ThreadPool& pool);
TokenizerVocabulary gguf_vocabulary(const std::string& path);
Config gguf_config(const GgufFile& file);
HostModel load_gguf(const GgufFile& file, ThreadPool& pool);
TokenizerVocabulary gguf_vocabulary(const GgufFile& file);

// llm.c checkpoints (gpt2_124M.bin, gpt2_124M_bf16.bin; llmc.cpp). The MappedFile forms read
// bytes already opened or held; errors name them as `path`.
constexpr int32_t kLlmcMagic = 20240326;
Config llmc_config(const std::string& path);
HostModel load_llmc(const std::string& path, ThreadPool& pool);
Config llmc_config(const std::string& path, const MappedFile& file);
HostModel load_llmc(const std::string& path, const MappedFile& file, ThreadPool& pool);

}  // namespace gpt2
