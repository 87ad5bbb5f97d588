// `-m MODEL` (model/source.h): a Hugging Face GPT-2 directory, random:<size>, or a file: GGUF
// (gguf_loader.cpp) or an llm.c checkpoint (llmc.cpp), told apart by their first bytes.
//
// A directory holds config.json and model.safetensors, or model.safetensors.index.json naming
// shards. Everything is validated before the weights are allocated or converted:
//   - names with or without the "transformer." prefix (both at once is an error);
//   - the mask buffers h.N.attn.bias / h.N.attn.masked_bias are skipped by exact name
//     (h.N.attn.c_attn.bias is a weight, so never by substring);
//   - every tensor the config implies is present with its shape, dtype F32/F16/BF16;
//   - a layer past n_layer, or a shape that contradicts n_embd/n_vocab/n_positions, is an error
//     saying the config and the weights disagree; unknown tensors get one warning line.
// Then the weights are converted to fp32 into HostModel's single allocation, Conv1D matrices
// transposed from [in, out] to [out, in], over all cores. lm_head.weight is tied to wte when
// absent, or when its bytes equal wte's (then it costs no memory).
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "common/dtype.h"
#include "common/error.h"
#include "common/files.h"
#include "common/log.h"
#include "common/thread_pool.h"
#include "model/formats.h"
#include "model/host_model.h"
#include "model/source.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace gpt2 {

namespace {

constexpr uint64_t kRandomSeed = 1234;  // random:<size> is the same model on every run

bool is_directory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

// Layer number of "h.<n>.<rest>", or -1 when the name is not inside a block.
int64_t layer_of(const std::string& name, std::string* rest) {
  if (name.compare(0, 2, "h.") != 0) return -1;
  size_t i = 2;
  int64_t n = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && i < 12) n = n * 10 + (name[i++] - '0');
  if (i == 2 || i >= name.size() || name[i] != '.') return -1;
  if (rest) *rest = name.substr(i + 1);
  return n;
}

// One tensor of the checkpoint, under its name without "transformer.".
struct Found {
  const SafetensorsTensor* tensor;
  const SafetensorsFile* file;
};

// ---- conversion to fp32 -----------------------------------------------------------

template <typename Load>
void convert_rows(float* dst, const uint8_t* src, size_t elem, int64_t n, Load load) {
  for (int64_t i = 0; i < n; ++i) dst[i] = load(src + static_cast<size_t>(i) * elem);
}

// src [in, out] (row-major, file layout) -> dst rows [o_begin, o_end) of [out, in]; 32x32 tiles
// keep both sides in cache.
template <typename Load>
void convert_transposed(float* dst, const uint8_t* src, size_t elem, int64_t in, int64_t out, int64_t o_begin,
                        int64_t o_end, Load load) {
  constexpr int64_t kTile = 32;
  for (int64_t i0 = 0; i0 < in; i0 += kTile)
    for (int64_t o0 = o_begin; o0 < o_end; o0 += kTile)
      for (int64_t i = i0; i < std::min(in, i0 + kTile); ++i)
        for (int64_t o = o0; o < std::min(o_end, o0 + kTile); ++o)
          dst[o * in + i] = load(src + static_cast<size_t>(i * out + o) * elem);
}

float load_f32(const uint8_t* p) {
  float f;
  std::memcpy(&f, p, 4);  // file data is not 4-byte aligned in general
  return f;
}
float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}
float load_bf16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return bf16_to_f32(h);
}

// One piece of conversion work: rows [row_begin, row_end) of a destination tensor ([out, in]
// for Conv1D weights, as stored otherwise), so that large tensors (wte is 80M values in
// gpt2-xl) are shared between threads too.
struct ConvertJob {
  const WeightEntry* slot;
  const SafetensorsTensor* src;
  int64_t row_begin, row_end;
};

void convert(const ConvertJob& job) {
  const SafetensorsTensor& t = *job.src;
  float* dst = job.slot->tensor->f32();
  if (job.slot->layout == HfLayout::conv1d) {
    const int64_t in = t.shape[0], out = t.shape[1];
    if (t.dtype == "F32") convert_transposed(dst, t.data, 4, in, out, job.row_begin, job.row_end, load_f32);
    else if (t.dtype == "F16") convert_transposed(dst, t.data, 2, in, out, job.row_begin, job.row_end, load_f16);
    else convert_transposed(dst, t.data, 2, in, out, job.row_begin, job.row_end, load_bf16);
    return;
  }
  const int64_t cols = job.slot->tensor->cols;
  const int64_t begin = job.row_begin * cols, n = (job.row_end - job.row_begin) * cols;
  if (t.dtype == "F32") std::memcpy(dst + begin, t.data + begin * 4, static_cast<size_t>(n) * 4);
  else if (t.dtype == "F16") convert_rows(dst + begin, t.data + begin * 2, 2, n, load_f16);
  else convert_rows(dst + begin, t.data + begin * 2, 2, n, load_bf16);
}

// ---- the directory ----------------------------------------------------------------

// The safetensors files of a model directory: model.safetensors, or the shards an index names.
// `index_path` is set for sharded checkpoints; `weight_map` maps each indexed name to its shard.
struct Checkpoint {
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::string index_path;
  std::map<std::string, std::string> weight_map;
};

}  // namespace

std::vector<std::string> block_tensor_suffixes(const Config& config) {
  Config one = config;
  one.n_layer = 1;
  ModelWeights layout;
  layout.h.resize(1);
  std::vector<std::string> out;
  for (const WeightEntry& e : weight_table(one, layout, /*tied_head=*/true))
    if (e.name.compare(0, 4, "h.0.") == 0) out.push_back(e.name.substr(4));
  return out;
}

std::map<std::string, std::string> parse_safetensors_index(std::string_view text, const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON (" + e.what() + ")");
  }
  auto wm = j.is_object() ? j.find("weight_map") : j.end();
  if (wm == j.end() || !wm->is_object() || wm->empty())
    throw Error(path + ": missing \"weight_map\" object of tensor name -> shard file");
  std::map<std::string, std::string> weight_map;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string()) throw Error(path + ": tensor '" + it.key() + "': shard name is not a string");
    const std::string shard = it.value().get<std::string>();
    // Shards live beside the index: no paths, so an index cannot point at arbitrary files.
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
      throw Error(path + ": tensor '" + it.key() + "': shard name '" + shard + "' is not a file name");
    weight_map[it.key()] = shard;
  }
  return weight_map;
}

namespace {

Checkpoint open_checkpoint(const std::string& dir) {
  Checkpoint ck;
  const std::string single = join(dir, "model.safetensors");
  const std::string index = join(dir, "model.safetensors.index.json");
  if (file_exists(single)) {
    ck.files.push_back(std::make_unique<SafetensorsFile>(single));
    return ck;
  }
  if (!file_exists(index)) {
    std::string hint;
    if (file_exists(join(dir, "pytorch_model.bin")))
      hint = "; its pytorch_model.bin is a pickle, which can run code when loaded, so it is refused: use the "
             "repository's model.safetensors";
    throw Error(dir + ": no model.safetensors or model.safetensors.index.json" + hint);
  }
  ck.index_path = index;
  ck.weight_map = parse_safetensors_index(read_file(index), index);
  std::vector<std::string> shards;
  for (const auto& [name, shard] : ck.weight_map)
    if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
  std::sort(shards.begin(), shards.end());
  for (const std::string& shard : shards) {
    const std::string path = join(dir, shard);
    if (!file_exists(path)) throw Error(index + ": shard '" + shard + "' is missing from " + dir);
    ck.files.push_back(std::make_unique<SafetensorsFile>(path));
  }
  return ck;
}

std::string dims(const Config& c) {
  return "n_vocab " + std::to_string(c.n_vocab) + ", n_positions " + std::to_string(c.n_ctx) + ", n_embd " +
         std::to_string(c.n_embd);
}

Config directory_config(const std::string& spec) {
  const std::string config_path = join(spec, "config.json");
  if (!file_exists(config_path))
    throw Error(spec + ": config.json not found (a Hugging Face GPT-2 directory has config.json and model.safetensors)");
  return Config::from_json_file(config_path);
}

HostModel load_directory(const std::string& spec, ThreadPool& pool) {
  const Config config = directory_config(spec);
  Checkpoint ck = open_checkpoint(spec);

  // Every tensor under its name without "transformer.".
  std::map<std::string, Found> found;
  std::vector<std::string> unknown;
  for (const auto& file : ck.files) {
    for (const SafetensorsTensor& t : file->tensors()) {
      if (!ck.index_path.empty()) {
        auto it = ck.weight_map.find(t.name);
        if (it != ck.weight_map.end() && join(spec, it->second) != file->path())
          throw Error(file->path() + ": tensor '" + t.name + "' is also here, but " + ck.index_path + " puts it in " +
                      it->second);
      }
      std::string name = t.name;
      if (name.compare(0, 12, "transformer.") == 0) name = name.substr(12);
      auto [it, inserted] = found.insert({name, Found{&t, file.get()}});
      if (!inserted)
        throw Error(file->path() + ": tensor '" + t.name + "' duplicates '" + it->second.tensor->name + "' in " +
                    it->second.file->path());
    }
  }
  // Every tensor the index lists must be in the shard it names (a shard from another save
  // would otherwise pass unnoticed).
  for (const auto& [name, shard] : ck.weight_map) {
    auto it = found.find(name.compare(0, 12, "transformer.") == 0 ? name.substr(12) : name);
    if (it == found.end() || it->second.tensor->name != name || it->second.file->path() != join(spec, shard))
      throw Error(ck.index_path + ": tensor '" + name + "' is listed in shard " + shard + " but is not in it");
  }

  // Blocks past n_layer mean the config describes another model than the weights.
  for (const auto& [name, f] : found) {
    std::string rest;
    const int64_t layer = layer_of(name, &rest);
    if (layer >= config.n_layer)
      throw Error(f.file->path() + ": tensor '" + f.tensor->name + "' belongs to layer " + std::to_string(layer) +
                  " but config.json says n_layer " + std::to_string(config.n_layer) + " (config and weights disagree)");
  }

  // Blocks missing at the end: found before the per-layer tables below are built, which for a
  // config.json claiming millions of layers would take minutes and gigabytes.
  int64_t n_layers_found = 0;
  for (const auto& [name, f] : found) n_layers_found = std::max(n_layers_found, layer_of(name, nullptr) + 1);
  if (config.n_layer > n_layers_found) {
    const std::string missing = "h." + std::to_string(n_layers_found) + ".ln_1.weight";
    throw Error((ck.index_path.empty() ? ck.files[0]->path() : ck.index_path) + ": tensor '" + missing +
                "' is missing (config.json says n_layer " + std::to_string(config.n_layer) + ")");
  }
  // A stray "h.9999999.x" passes that check: when the tensors are too few for n_layer blocks, the
  // first missing one is named. The walk stops there, so it is bounded by the tensors found.
  const std::vector<std::string> suffixes = block_tensor_suffixes(config);
  if (static_cast<uint64_t>(config.n_layer) * suffixes.size() > found.size()) {
    for (int64_t l = 0; l < config.n_layer; ++l)
      for (const std::string& suffix : suffixes) {
        const std::string name = "h." + std::to_string(l) + "." + suffix;
        if (!found.count(name))
          throw Error((ck.index_path.empty() ? ck.files[0]->path() : ck.index_path) + ": tensor '" + name +
                      "' is missing (config.json says n_layer " + std::to_string(config.n_layer) + ")");
      }
  }

  // The head: tied unless lm_head.weight is present and differs from wte.
  bool tied = true;
  auto head = found.find("lm_head.weight");
  auto wte = found.find("wte.weight");
  if (head != found.end()) {
    const SafetensorsTensor& h = *head->second.tensor;
    tied = wte != found.end() && h.dtype == wte->second.tensor->dtype && h.shape == wte->second.tensor->shape &&
           std::memcmp(h.data, wte->second.tensor->data, h.nbytes) == 0;
  }

  // Validate every tensor against a shape-only layout before allocating anything.
  ModelWeights layout;
  layout.h.resize(static_cast<size_t>(config.n_layer));
  const std::vector<WeightEntry> slots = weight_table(config, layout, tied);
  std::vector<const SafetensorsTensor*> sources(slots.size());
  std::set<std::string> used;
  const std::string where = ck.index_path.empty() ? ck.files[0]->path() : ck.index_path;
  std::string source_dtype;
  for (size_t i = 0; i < slots.size(); ++i) {
    const WeightEntry& s = slots[i];
    auto it = found.find(s.name);
    if (it == found.end()) {
      const bool in_block = layer_of(s.name, nullptr) >= 0;
      throw Error(where + ": tensor '" + s.name + "' is missing" +
                  (in_block ? " (config.json says n_layer " + std::to_string(config.n_layer) + ")" : std::string()));
    }
    const SafetensorsTensor& t = *it->second.tensor;
    const std::string& file = it->second.file->path();
    if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16")
      throw Error(file + ": tensor '" + t.name + "' has dtype " + t.dtype + "; GPT-2 weights must be F32, F16 or BF16");
    if (t.shape != s.hf_shape)
      throw Error(file + ": tensor '" + t.name + "' has shape " + shape_string(t.shape) + " but config.json (" +
                  dims(config) + ") implies " + shape_string(s.hf_shape) + " (config and weights disagree)");
    const std::string dt = t.dtype == "F32" ? "fp32" : t.dtype == "F16" ? "fp16" : "bf16";
    source_dtype = source_dtype.empty() || source_dtype == dt ? dt : "mixed";
    sources[i] = &t;
    used.insert(s.name);
  }
  if (tied && head != found.end()) used.insert("lm_head.weight");

  for (const auto& [name, f] : found) {
    if (used.count(name)) continue;
    std::string rest;
    if (layer_of(name, &rest) >= 0 && (rest == "attn.bias" || rest == "attn.masked_bias")) continue;  // mask buffers
    unknown.push_back(f.tensor->name);
  }
  if (!unknown.empty()) {
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 5; ++i) list += (i ? ", '" : "'") + unknown[i] + "'";
    if (unknown.size() > 5) list += ", ...";
    log_warning(where + ": ignoring " + std::to_string(unknown.size()) + " unknown tensor" +
                (unknown.size() == 1 ? "" : "s") + ": " + list);
  }

  HostModel model = allocate_host_model(config, tied);
  const std::vector<WeightEntry> dst = weight_table(config, model.weights, tied);  // same order as `slots`
  std::vector<ConvertJob> jobs;
  constexpr int64_t kJobValues = int64_t{1} << 22;  // 16 MiB of fp32 per job
  for (size_t i = 0; i < dst.size(); ++i) {
    const int64_t rows = dst[i].tensor->rows, cols = dst[i].tensor->cols;
    const int64_t step = std::max<int64_t>(32, kJobValues / cols / 32 * 32);  // whole transpose tiles
    for (int64_t r = 0; r < rows; r += step) jobs.push_back({&dst[i], sources[i], r, std::min(rows, r + step)});
  }
  pool.parallel_for(static_cast<int64_t>(jobs.size()), 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) convert(jobs[static_cast<size_t>(i)]);
  });
  model.name = spec;
  model.source_dtype = source_dtype;
  return model;
}

}  // namespace

namespace {

// What a file is, from its first bytes (names can lie; a pickle must never reach a parser).
enum class FileKind { gguf, llmc, pickle, safetensors, unknown };

FileKind sniff(const std::string& path) {
  const MappedFile file(path);
  const uint8_t* p = file.data();
  const size_t n = file.size();
  auto ends_with = [&](const char* suffix) {
    const size_t k = std::strlen(suffix);
    return path.size() >= k && path.compare(path.size() - k, k, suffix) == 0;
  };
  if (n >= 4 && std::memcmp(p, "GGUF", 4) == 0) return FileKind::gguf;
  if (n >= 4) {
    int32_t magic;
    std::memcpy(&magic, p, 4);
    if (magic == kLlmcMagic) return FileKind::llmc;
  }
  // torch.save: a zip archive (PyTorch >= 1.6) or a bare pickle (protocol 2 to 5).
  if (n >= 4 && std::memcmp(p, "PK\x03\x04", 4) == 0) return FileKind::pickle;
  if (n >= 2 && p[0] == 0x80 && p[1] >= 2 && p[1] <= 5) return FileKind::pickle;
  if (ends_with("pytorch_model.bin") || ends_with(".pt") || ends_with(".pth") || ends_with(".ckpt"))
    return FileKind::pickle;
  if (n >= 9 && p[8] == '{') return FileKind::safetensors;
  return FileKind::unknown;
}

}  // namespace

ModelSource ModelSource::parse(const std::string& spec) {
  ModelSource src;
  src.spec_ = spec;
  const std::string prefix = "random:";
  if (spec.compare(0, prefix.size(), prefix) == 0) {
    src.kind_ = Kind::random;
    src.preset_ = spec.substr(prefix.size());
    try {
      Config::preset(src.preset_);
    } catch (const Error&) {
      throw Error("unknown model '" + spec +
                  "' (random models: random:gpt2, random:gpt2-medium, random:gpt2-large, random:gpt2-xl, "
                  "random:distilgpt2)");
    }
    return src;
  }
  if (is_directory(spec)) {
    src.kind_ = Kind::hf_directory;
    return src;
  }
  if (!file_exists(spec))
    throw Error("model '" + spec + "' not found: pass a directory with config.json and model.safetensors, a .gguf "
                "file, an llm.c .bin checkpoint, or random:gpt2");
  switch (sniff(spec)) {
    case FileKind::gguf: src.kind_ = Kind::gguf; return src;
    case FileKind::llmc: src.kind_ = Kind::llmc; return src;
    case FileKind::pickle:
      throw Error("'" + spec + "' is a PyTorch pickle checkpoint, which can run code when it is loaded, so it is "
                  "refused: use the model's model.safetensors (a Hugging Face directory) or a GGUF file instead");
    case FileKind::safetensors:
      throw Error("-m '" + spec + "' is a safetensors file; pass the model directory (config.json + model.safetensors)");
    case FileKind::unknown: break;
  }
  throw Error("-m '" + spec + "' is a file that is neither GGUF nor an llm.c checkpoint; pass one of those, or the "
              "model directory (config.json + model.safetensors)");
}

Config ModelSource::config() const {
  switch (kind_) {
    case Kind::random: return Config::preset(preset_);
    case Kind::hf_directory: return directory_config(spec_);
    case Kind::gguf: return gguf_config(spec_);
    case Kind::llmc: return llmc_config(spec_);
  }
  throw Error("internal: unknown model kind");
}

HostModel ModelSource::load(int n_threads) const {
  ThreadPool pool(n_threads > 0 ? n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  HostModel model;
  switch (kind_) {
    case Kind::random: model = random_model(Config::preset(preset_), kRandomSeed, pool); break;
    case Kind::hf_directory: model = load_directory(spec_, pool); break;
    case Kind::gguf: model = load_gguf(spec_, pool); break;
    case Kind::llmc: model = load_llmc(spec_, pool); break;
  }
  model.name = spec_;
  return model;
}

TokenizerVocabulary ModelSource::tokenizer_vocabulary() const {
  return kind_ == Kind::gguf ? gguf_vocabulary(spec_) : TokenizerVocabulary{};
}

HostModel load_model(const std::string& spec, int n_threads) { return ModelSource::parse(spec).load(n_threads); }

}  // namespace gpt2
