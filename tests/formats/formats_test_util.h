// Helpers of the format tests: a GGUF writer for crafted files (valid ones to edit, and the
// hostile ones of the published loader bugs), running a model on the CPU, and comparing weights.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "common/dtype.h"
#include "model/gpt2.h"
#include "model/source.h"
#include "runtime/batch.h"
#include "runtime/cpu/cpu_backend.h"

namespace gpt2::test {

// GGUF bytes built field by field, so that tests can write any value into any field.
struct GgufBuilder {
  uint32_t version = 3;
  uint32_t alignment = 32;              // of the data section (general.alignment when not 32)
  std::string kv;                       // the encoded key-value pairs
  uint64_t n_kv = 0;
  struct Info {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::string data;
    int64_t offset = -1;                // -1: the next aligned place
  };
  std::vector<Info> tensors;
  int64_t n_kv_override = -1, n_tensors_override = -1;

  static void put_u32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
  static void put_u64(std::string& s, uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }
  static void put_str(std::string& s, const std::string& v) {
    put_u64(s, v.size());
    s += v;
  }
  void key(const std::string& k, uint32_t type) {
    put_str(kv, k);
    put_u32(kv, type);
    ++n_kv;
  }
  void add_u32(const std::string& k, uint32_t v) { key(k, 4), put_u32(kv, v); }
  void add_f32(const std::string& k, float v) {
    key(k, 6);
    kv.append(reinterpret_cast<const char*>(&v), 4);
  }
  void add_f64(const std::string& k, double v) {
    key(k, 12);
    kv.append(reinterpret_cast<const char*>(&v), 8);
  }
  void add_str(const std::string& k, const std::string& v) { key(k, 8), put_str(kv, v); }
  void add_strs(const std::string& k, const std::vector<std::string>& v) {
    key(k, 9);
    put_u32(kv, 8);
    put_u64(kv, v.size());
    for (const std::string& s : v) put_str(kv, s);
  }
  void add_tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, std::string data) {
    tensors.push_back(Info{name, std::move(ne), type, std::move(data)});
  }
  // A GPT-2 of the given sizes: the gpt2.* keys only (tensors are added by the caller).
  // (f32_epsilon false: the caller adds gpt2.attention.layer_norm_epsilon.)
  void gpt2_keys(int n_layer, int n_embd, int n_head, int n_ctx, bool f32_epsilon = true) {
    add_str("general.architecture", "gpt2");
    add_u32("gpt2.block_count", static_cast<uint32_t>(n_layer));
    add_u32("gpt2.context_length", static_cast<uint32_t>(n_ctx));
    add_u32("gpt2.embedding_length", static_cast<uint32_t>(n_embd));
    add_u32("gpt2.feed_forward_length", static_cast<uint32_t>(4 * n_embd));
    add_u32("gpt2.attention.head_count", static_cast<uint32_t>(n_head));
    if (f32_epsilon) add_f32("gpt2.attention.layer_norm_epsilon", 1e-5f);
  }

  std::string bytes() const {
    std::string s = "GGUF";
    put_u32(s, version);
    put_u64(s, n_tensors_override >= 0 ? static_cast<uint64_t>(n_tensors_override) : tensors.size());
    put_u64(s, n_kv_override >= 0 ? static_cast<uint64_t>(n_kv_override) : n_kv);
    s += kv;
    uint64_t next = 0;
    std::vector<uint64_t> offsets;
    for (const Info& t : tensors) {
      const uint64_t off = t.offset >= 0 ? static_cast<uint64_t>(t.offset) : next;
      offsets.push_back(off);
      next = std::max(next, (off + t.data.size() + alignment - 1) / alignment * alignment);
      put_str(s, t.name);
      put_u32(s, static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) put_u64(s, d);
      put_u32(s, t.type);
      put_u64(s, off);
    }
    s.resize((s.size() + alignment - 1) / alignment * alignment, '\0');
    const size_t base = s.size();
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (tensors[i].data.empty()) continue;
      if (s.size() < base + offsets[i] + tensors[i].data.size()) s.resize(base + offsets[i] + tensors[i].data.size(), '\0');
      std::memcpy(&s[base + offsets[i]], tensors[i].data.data(), tensors[i].data.size());
    }
    return s;
  }
};

inline std::string f32_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

// The model at `spec` on 2 CPU threads in `dtype` (auto_dtype: the file's choice).
inline Gpt2 cpu_model(const std::string& spec, DType dtype, bool auto_dtype = false, int max_rows = 64) {
  BackendOptions options;
  options.device = Device::cpu;
  options.auto_dtype = auto_dtype;
  options.weight_dtype = dtype;
  options.threads = 2;
  HostModel host = load_model(spec);
  if (auto_dtype && host.quantized_source) options.weight_dtype = DType::i8;
  RunLimits limits;
  limits.max_rows = max_rows;
  limits.max_sequences = 1;
  limits.max_logit_rows = max_rows;
  return Gpt2(std::move(host), make_cpu_backend(options), limits);
}

// Logits of every position of `tokens` [T, V], one prefill step.
inline std::vector<float> all_logits(Gpt2& model, const std::vector<int32_t>& tokens) {
  KvCache kv = model.make_kv_cache(1);
  const int slot = kv.acquire();
  Batch batch;
  batch.add(slot, 0, tokens.data(), static_cast<int>(tokens.size()), Logits::all);
  Outputs out;
  model.forward(batch, kv, out);
  std::vector<float> logits(static_cast<size_t>(out.logits.numel()));
  model.backend().read(logits.data(), out.logits);
  return logits;
}

// The same logits from one token at a time through the KV cache.
inline std::vector<float> decoded_logits(Gpt2& model, const std::vector<int32_t>& tokens) {
  KvCache kv = model.make_kv_cache(1);
  const int slot = kv.acquire();
  std::vector<float> all;
  for (size_t t = 0; t < tokens.size(); ++t) {
    Batch batch;
    batch.add(slot, static_cast<int>(t), &tokens[t], 1, Logits::last);
    Outputs out;
    model.forward(batch, kv, out);
    std::vector<float> row(static_cast<size_t>(out.logits.numel()));
    model.backend().read(row.data(), out.logits);
    all.insert(all.end(), row.begin(), row.end());
  }
  return all;
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace gpt2::test
