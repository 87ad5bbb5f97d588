// `-m MODEL`: a Hugging Face GPT-2 directory, or random:<size>.
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
#include <atomic>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "common/dtype.h"
#include "common/error.h"
#include "common/files.h"
#include "model/host_model.h"
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
  const WeightSlot* slot;
  const SafetensorsTensor* src;
  int64_t row_begin, row_end;
};

void convert(const ConvertJob& job) {
  const SafetensorsTensor& t = *job.src;
  float* dst = job.slot->dst->f32();
  if (job.slot->kind == WeightKind::conv1d) {
    const int64_t in = t.shape[0], out = t.shape[1];
    if (t.dtype == "F32") convert_transposed(dst, t.data, 4, in, out, job.row_begin, job.row_end, load_f32);
    else if (t.dtype == "F16") convert_transposed(dst, t.data, 2, in, out, job.row_begin, job.row_end, load_f16);
    else convert_transposed(dst, t.data, 2, in, out, job.row_begin, job.row_end, load_bf16);
    return;
  }
  const int64_t cols = job.slot->dst->cols;
  const int64_t begin = job.row_begin * cols, n = (job.row_end - job.row_begin) * cols;
  if (t.dtype == "F32") std::memcpy(dst + begin, t.data + begin * 4, static_cast<size_t>(n) * 4);
  else if (t.dtype == "F16") convert_rows(dst + begin, t.data + begin * 2, 2, n, load_f16);
  else convert_rows(dst + begin, t.data + begin * 2, 2, n, load_bf16);
}

// Runs work(i) for i in [0, n) over the machine's cores.
template <typename Work>
void parallel_for(size_t n, Work work) {
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < n; i = next++) work(i);
  };
  const size_t n_threads = std::max<size_t>(1, std::min<size_t>(std::thread::hardware_concurrency(), n));
  std::vector<std::thread> threads;
  for (size_t t = 1; t < n_threads; ++t) {
    try {
      threads.emplace_back(worker);
    } catch (const std::system_error&) {
      break;
    }
  }
  worker();
  for (std::thread& t : threads) t.join();
}

// ---- the directory ----------------------------------------------------------------

// The safetensors files of a model directory: model.safetensors, or the shards an index names.
// `index_path` is set for sharded checkpoints; `weight_map` maps each indexed name to its shard.
struct Checkpoint {
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::string index_path;
  std::map<std::string, std::string> weight_map;
};

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
      hint = "; it has pytorch_model.bin, which is not supported: convert it to safetensors";
    throw Error(dir + ": no model.safetensors or model.safetensors.index.json" + hint);
  }
  ck.index_path = index;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(index));
  } catch (const nlohmann::json::exception& e) {
    throw Error(index + ": not valid JSON (" + e.what() + ")");
  }
  auto wm = j.is_object() ? j.find("weight_map") : j.end();
  if (wm == j.end() || !wm->is_object() || wm->empty())
    throw Error(index + ": missing \"weight_map\" object of tensor name -> shard file");
  std::vector<std::string> shards;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string()) throw Error(index + ": tensor '" + it.key() + "': shard name is not a string");
    const std::string shard = it.value().get<std::string>();
    // Shards live beside the index: no paths, so an index cannot point at arbitrary files.
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
      throw Error(index + ": tensor '" + it.key() + "': shard name '" + shard + "' is not a file name");
    ck.weight_map[it.key()] = shard;
    if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
  }
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

HostModel load_directory(const std::string& spec) {
  if (!is_directory(spec)) {
    if (file_exists(spec))
      throw Error("-m '" + spec + "' is a file; pass the model directory (config.json + model.safetensors)");
    throw Error("model '" + spec +
                "' not found: pass a directory with config.json and model.safetensors, or random:gpt2");
  }
  const std::string config_path = join(spec, "config.json");
  if (!file_exists(config_path))
    throw Error(spec + ": config.json not found (a Hugging Face GPT-2 directory has config.json and model.safetensors)");
  const Config config = Config::from_json_file(config_path);
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
  const std::vector<WeightSlot> slots = weight_slots(config, layout, tied);
  std::vector<const SafetensorsTensor*> sources(slots.size());
  std::set<std::string> used;
  const std::string where = ck.index_path.empty() ? ck.files[0]->path() : ck.index_path;
  std::string source_dtype;
  for (size_t i = 0; i < slots.size(); ++i) {
    const WeightSlot& s = slots[i];
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
    std::cerr << "warning: " << where << ": ignoring " << unknown.size() << " unknown tensor"
              << (unknown.size() == 1 ? "" : "s") << ": " << list << "\n";
  }

  HostModel model = allocate_host_model(config, tied);
  const std::vector<WeightSlot> dst = weight_slots(config, model.weights, tied);  // same order as `slots`
  std::vector<ConvertJob> jobs;
  constexpr int64_t kJobValues = int64_t{1} << 22;  // 16 MiB of fp32 per job
  for (size_t i = 0; i < dst.size(); ++i) {
    const int64_t rows = dst[i].dst->rows, cols = dst[i].dst->cols;
    const int64_t step = std::max<int64_t>(32, kJobValues / cols / 32 * 32);  // whole transpose tiles
    for (int64_t r = 0; r < rows; r += step) jobs.push_back({&dst[i], sources[i], r, std::min(rows, r + step)});
  }
  parallel_for(jobs.size(), [&](size_t i) { convert(jobs[i]); });
  model.name = spec;
  model.dir = spec;
  model.source_dtype = source_dtype;
  return model;
}

}  // namespace

HostModel load_model(const std::string& spec) {
  const std::string prefix = "random:";
  if (spec.compare(0, prefix.size(), prefix) == 0) {
    const std::string size = spec.substr(prefix.size());
    Config config;
    try {
      config = Config::preset(size);
    } catch (const Error&) {
      throw Error("unknown model '" + spec +
                  "' (random models: random:gpt2, random:gpt2-medium, random:gpt2-large, random:gpt2-xl, "
                  "random:distilgpt2)");
    }
    HostModel model = random_model(config, kRandomSeed);
    model.name = spec;
    model.dir.clear();
    model.source_dtype = "fp32";
    return model;
  }
  return load_directory(spec);
}

}  // namespace gpt2
