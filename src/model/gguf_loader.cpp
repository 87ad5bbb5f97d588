// GGUF models (architecture gpt2) as llama.cpp's convert_hf_to_gguf.py writes them, quantized or
// not, into HostModel.
//
// Hyper-parameters from the gpt2.* keys: block_count, embedding_length, attention.head_count,
// context_length, feed_forward_length (must be 4 * n_embd), attention.layer_norm_epsilon
// (default 1e-5); n_vocab is the number of rows of token_embd.
// Tensors (GGUF lists ne[0], the contiguous dimension, first; matrices are stored [out][in],
// i.e. already transposed from Hugging Face's Conv1D [in, out] into our [out, in]):
//   token_embd.weight [C, V]      -> wte        position_embd.weight [C, n_ctx] -> wpe
//   blk.N.attn_norm.{weight,bias} -> ln_1       blk.N.attn_qkv.{weight [C, 3C], bias}
//   blk.N.attn_output.{weight, bias}            blk.N.ffn_norm.{weight,bias}  -> ln_2
//   blk.N.ffn_up.{weight [C, 4C], bias}         blk.N.ffn_down.{weight [4C, C], bias}
//   output_norm.{weight,bias}     -> ln_f       output.weight [C, V] (optional: tied otherwise)
// Older converters wrote output.weight as a copy of token_embd; with the same type and bytes it
// is tied (no second copy). llama-quantize makes them differ (a Q4_0 file has a Q6_K output).
//
// Types: matrices and embeddings of the symmetric types keep their integers (Q4_0 as int4,
// Q8_0 / Q5_0 / Q6_K as int8, ggml_blocks.h) for the CPU's integer kernels; every other tensor is
// dequantized to fp32 exactly as ggml does. The notes say which, for -v.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/log.h"
#include "common/thread_pool.h"
#include "model/formats.h"
#include "model/gguf.h"
#include "model/host_model.h"

namespace gpt2 {

namespace {

// GGUF's name for a weight-table entry (Hugging Face name without "transformer.").
std::string gguf_name(const std::string& hf) {
  if (hf == "wte.weight") return "token_embd.weight";
  if (hf == "wpe.weight") return "position_embd.weight";
  if (hf == "lm_head.weight") return "output.weight";
  if (hf.compare(0, 5, "ln_f.") == 0) return "output_norm." + hf.substr(5);
  // h.N.<module>.<weight|bias>
  const size_t dot = hf.find('.', 2);
  const std::string layer = hf.substr(2, dot - 2), rest = hf.substr(dot + 1);
  static const std::pair<const char*, const char*> kModules[] = {
      {"ln_1.", "attn_norm."},        {"attn.c_attn.", "attn_qkv."}, {"attn.c_proj.", "attn_output."},
      {"ln_2.", "ffn_norm."},         {"mlp.c_fc.", "ffn_up."},      {"mlp.c_proj.", "ffn_down."}};
  for (const auto& [from, to] : kModules) {
    const size_t n = std::strlen(from);
    if (rest.compare(0, n, from) == 0) return "blk." + layer + "." + to + rest.substr(n);
  }
  throw Error("internal: no GGUF name for '" + hf + "'");
}

// Layer number of "blk.<n>.<rest>", or -1.
int64_t gguf_layer(const std::string& name) {
  if (name.compare(0, 4, "blk.") != 0) return -1;
  size_t i = 4;
  int64_t n = 0;
  while (i < name.size() && i < 14 && name[i] >= '0' && name[i] <= '9') n = n * 10 + (name[i++] - '0');
  if (i == 4 || i >= name.size() || name[i] != '.') return -1;
  return n;
}

int read_size(const GgufFile& f, const std::string& key) {
  const uint64_t v = f.get_uint(key);
  if (v < 1 || v > (uint64_t{1} << 30))
    throw Error(f.path() + ": key '" + key + "' is " + std::to_string(v) + ", not a size this engine can run");
  return static_cast<int>(v);
}

Config config_of(const GgufFile& f) {
  const std::string arch = f.value("general.architecture") ? f.get_string("general.architecture") : "";
  if (arch != "gpt2")
    throw Error(f.path() + ": architecture '" + (arch.empty() ? "(none: no general.architecture)" : arch) +
                "'; this engine runs GPT-2 ('gpt2') models");
  Config c;
  c.n_layer = read_size(f, "gpt2.block_count");
  c.n_embd = read_size(f, "gpt2.embedding_length");
  c.n_head = read_size(f, "gpt2.attention.head_count");
  c.n_ctx = read_size(f, "gpt2.context_length");
  if (f.value("gpt2.feed_forward_length")) {
    const int ff = read_size(f, "gpt2.feed_forward_length");
    if (ff != int64_t{4} * c.n_embd)
      throw Error(f.path() + ": key 'gpt2.feed_forward_length' is " + std::to_string(ff) + "; only 4 * n_embd (" +
                  std::to_string(int64_t{4} * c.n_embd) + ") is GPT-2");
  }
  if (f.value("gpt2.attention.layer_norm_epsilon")) {
    const double eps = f.get_float("gpt2.attention.layer_norm_epsilon");
    if (!valid_layer_norm_epsilon(eps))
      throw Error(f.path() + ": key 'gpt2.attention.layer_norm_epsilon' must be a small positive number, got " +
                  std::to_string(eps));
    c.layer_norm_epsilon = static_cast<float>(eps);
  }
  if (c.n_embd % c.n_head != 0)
    throw Error(f.path() + ": n_embd " + std::to_string(c.n_embd) + " is not divisible by n_head " +
                std::to_string(c.n_head));
  const GgufTensor* wte = f.find("token_embd.weight");
  if (!wte) throw Error(f.path() + ": tensor 'token_embd.weight' is missing");
  if (wte->ne.size() != 2 || wte->ne[1] > (int64_t{1} << 30))
    throw Error(f.path() + ": tensor 'token_embd.weight' has shape " + wte->shape() + ", not [n_embd, n_vocab]");
  c.n_vocab = static_cast<int>(wte->ne[1]);
  return c;
}

std::string dims(const Config& c) {
  return "n_vocab " + std::to_string(c.n_vocab) + ", context_length " + std::to_string(c.n_ctx) +
         ", embedding_length " + std::to_string(c.n_embd);
}

std::string lower_type(const GgmlTypeInfo& info) {
  const std::string n = info.name;
  if (n == "F32") return "fp32";
  if (n == "F16") return "fp16";
  if (n == "BF16") return "bf16";
  std::string s = n;
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// Rows [row_begin, row_end) of one tensor, converted on one thread.
struct Job {
  const WeightEntry* slot;
  const GgufTensor* src;
  int64_t row_begin, row_end;
};

void convert(const Job& job) {
  const GgufTensor& t = *job.src;
  Tensor& dst = *job.slot->tensor;
  const int64_t cols = dst.cols;
  const size_t row_bytes = static_cast<size_t>(cols / t.info->block_size) * t.info->block_bytes;
  const uint8_t* src = t.data + static_cast<size_t>(job.row_begin) * row_bytes;
  const int64_t n = (job.row_end - job.row_begin) * cols;
  if (dst.dtype == DType::f32) {
    ggml_dequantize(t.type, src, dst.f32() + job.row_begin * cols, n);
  } else {
    int8_t* q = static_cast<int8_t*>(dst.data) + job.row_begin * cols;
    float* s = dst.scales + job.row_begin * (cols / dst.group_size);
    ggml_to_integers(t.type, src, q, s, n);
  }
}

}  // namespace

Config gguf_config(const std::string& path) { return config_of(GgufFile(path)); }
Config gguf_config(const GgufFile& file) { return config_of(file); }

HostModel load_gguf(const std::string& path, ThreadPool& pool) { return load_gguf(GgufFile(path), pool); }

HostModel load_gguf(const GgufFile& f, ThreadPool& pool) {
  const std::string& path = f.path();
  const Config config = config_of(f);

  for (const GgufTensor& t : f.tensors()) {
    const int64_t layer = gguf_layer(t.name);
    if (layer >= config.n_layer)
      throw Error(path + ": tensor '" + t.name + "' belongs to layer " + std::to_string(layer) +
                  " but gpt2.block_count is " + std::to_string(config.n_layer) + " (metadata and tensors disagree)");
  }

  // Every block's tensors present before the per-layer tables are built: a gpt2.block_count of
  // millions over a few tensors would otherwise take minutes and gigabytes to reach the first
  // missing one. The walk stops there, so it is bounded by the file's tensor count.
  const std::vector<std::string> suffixes = block_tensor_suffixes(config);
  if (static_cast<uint64_t>(config.n_layer) * suffixes.size() > f.tensors().size()) {
    for (int64_t l = 0; l < config.n_layer; ++l)
      for (const std::string& suffix : suffixes) {
        const std::string name = gguf_name("h." + std::to_string(l) + "." + suffix);
        if (!f.find(name))
          throw Error(path + ": tensor '" + name + "' is missing (gpt2.block_count is " +
                      std::to_string(config.n_layer) + ")");
      }
  }

  // The head: tied unless output.weight is present and differs from token_embd.
  const GgufTensor* wte = f.find("token_embd.weight");
  const GgufTensor* out = f.find("output.weight");
  const bool tied = !out || (out->type == wte->type && out->ne == wte->ne && std::memcmp(out->data, wte->data, out->nbytes) == 0);

  ModelWeights layout;
  layout.h.resize(static_cast<size_t>(config.n_layer));
  const std::vector<WeightEntry> slots = weight_table(config, layout, tied);
  std::vector<const GgufTensor*> sources(slots.size());
  std::vector<HostForm> forms(slots.size());
  std::set<std::string> used;
  for (size_t i = 0; i < slots.size(); ++i) {
    const WeightEntry& s = slots[i];
    const std::string name = gguf_name(s.name);
    const GgufTensor* t = f.find(name);
    if (!t)
      throw Error(path + ": tensor '" + name + "' is missing" +
                  (gguf_layer(name) >= 0 ? " (gpt2.block_count is " + std::to_string(config.n_layer) + ")" : std::string()));
    const std::vector<int64_t> want = s.layout == HfLayout::vector ? std::vector<int64_t>{s.cols()}
                                                                    : std::vector<int64_t>{s.cols(), s.rows()};
    if (t->ne != want)
      throw Error(path + ": tensor '" + name + "' has shape " + t->shape() + " but the gpt2.* keys (" + dims(config) +
                  ") imply " + shape_string(want) + " (GGUF order, ne[0] first; metadata and tensors disagree)");
    DType dtype = DType::f32;
    int32_t group = 0;
    if ((s.use == WeightUse::matrix || s.use == WeightUse::embedding) && ggml_integer_form(t->type, &dtype, &group))
      forms[i] = HostForm{dtype, group};
    sources[i] = t;
    used.insert(name);
  }
  if (tied && out) used.insert("output.weight");

  std::vector<std::string> unknown;
  for (const GgufTensor& t : f.tensors())
    if (!used.count(t.name)) unknown.push_back(t.name);
  if (!unknown.empty()) {
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 5; ++i) list += (i ? ", '" : "'") + unknown[i] + "'";
    if (unknown.size() > 5) list += ", ...";
    log_warning(path + ": ignoring " + std::to_string(unknown.size()) + " unknown tensor" +
                (unknown.size() == 1 ? "" : "s") + ": " + list);
  }

  HostModel model = allocate_host_model(config, tied, forms);
  const std::vector<WeightEntry> dst = weight_table(config, model.weights, tied);  // same order as `slots`
  std::vector<Job> jobs;
  constexpr int64_t kJobValues = int64_t{1} << 22;
  for (size_t i = 0; i < dst.size(); ++i) {
    const int64_t rows = dst[i].tensor->rows, cols = dst[i].tensor->cols;
    const int64_t step = std::max<int64_t>(1, kJobValues / cols);
    for (int64_t r = 0; r < rows; r += step) jobs.push_back({&dst[i], sources[i], r, std::min(rows, r + step)});
  }
  pool.parallel_for(static_cast<int64_t>(jobs.size()), 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) convert(jobs[static_cast<size_t>(i)]);
  });

  // What was done, per type: for -v, and the file's dtype (its matrices' most common type).
  struct Use {
    int tensors = 0;
    int kept = 0;  // kept as integers
    std::string example;
    const GgufTensor* first = nullptr;
  };
  std::map<std::string, Use> by_type;
  std::map<std::string, int> matrix_types;
  for (size_t i = 0; i < dst.size(); ++i) {
    const GgufTensor& t = *sources[i];
    Use& u = by_type[t.info->name];
    ++u.tensors;
    if (dst[i].tensor->dtype != DType::f32) ++u.kept;
    if (!u.first) u.first = &t, u.example = t.name;
    if (dst[i].use == WeightUse::matrix || dst[i].use == WeightUse::embedding) {
      ++matrix_types[lower_type(*t.info)];
      if (t.info->block_size > 1) model.quantized_source = true;
    }
  }
  model.notes.push_back(path + ": GGUF v" + std::to_string(f.version()) + ", gpt2, " + std::to_string(config.n_layer) +
                        " layers, n_embd " + std::to_string(config.n_embd) + (tied ? ", tied head" : ", own output.weight"));
  for (const auto& [type, u] : by_type) {
    const std::string what = std::to_string(u.tensors) + (u.tensors == 1 ? " tensor" : " tensors") +
                             (u.tensors == 1 ? " (" + u.example + ")" : std::string());
    if (u.first->info->block_size == 1) {
      model.notes.push_back(type + ": " + what + (type == "F32" ? ", as they are" : ", converted to fp32 (exact)"));
      continue;
    }
    DType dtype = DType::f32;
    int32_t group = 0;
    const bool integer = ggml_integer_form(u.first->type, &dtype, &group);
    std::string line = type + ": " + what;
    if (u.kept > 0)
      line += ", " + std::string(u.kept == u.tensors ? "" : std::to_string(u.kept) + " ") + "kept as " +
              dtype_name(dtype) + " integers (groups of " + std::to_string(group) +
              ", exact: the CPU's integer kernels run them as they are)";
    if (u.kept < u.tensors)
      line += std::string(u.kept > 0 ? "; " : ", ") + (u.kept > 0 ? std::to_string(u.tensors - u.kept) + " " : "") +
              "dequantized to fp32 at load (exact" + (integer ? "" : ": no native kernel for this type") + ")";
    model.notes.push_back(line);
  }
  std::string common;
  int most = 0;
  for (const auto& [type, n] : matrix_types)
    if (n > most) most = n, common = type;
  model.source_dtype = common;
  return model;
}

TokenizerVocabulary gguf_vocabulary(const std::string& path) { return gguf_vocabulary(GgufFile(path)); }

TokenizerVocabulary gguf_vocabulary(const GgufFile& f) {
  const std::string& path = f.path();
  TokenizerVocabulary v;
  if (!f.value("tokenizer.ggml.tokens")) return v;  // none: GPT-2's built-in vocabulary
  const std::string model = f.value("tokenizer.ggml.model") ? f.get_string("tokenizer.ggml.model") : "gpt2";
  if (model != "gpt2")
    throw Error(path + ": key 'tokenizer.ggml.model' is '" + model + "'; GPT-2 models use byte-level BPE ('gpt2')");
  v.tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (f.value("tokenizer.ggml.merges")) v.merges = f.get_string_array("tokenizer.ggml.merges");
  v.source = path + " (tokenizer.ggml.tokens/merges)";
  const Config c = config_of(f);
  if (v.tokens.size() > static_cast<size_t>(c.n_vocab))
    throw Error(path + ": tokenizer.ggml.tokens has " + std::to_string(v.tokens.size()) +
                " tokens but token_embd.weight has " + std::to_string(c.n_vocab) + " rows");
  return v;
}

}  // namespace gpt2
