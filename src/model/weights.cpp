// The one table of GPT-2's tensors (weights.h), the single-allocation layout of HostModel
// (host_model.h), and parameter_count.
#include "model/host_model.h"

#include <cstdint>
#include <string>

#include "common/error.h"
#include "common/memory.h"

namespace gpt2 {

namespace {

constexpr size_t kAlignFloats = 16;  // 64 bytes: a cache line, and one AVX-512 register

size_t round_up(size_t n) { return (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats; }

void shape(Tensor& t, int64_t rows, int64_t cols) {
  t = Tensor{};
  t.dtype = DType::f32;
  t.rows = rows;
  t.cols = cols;
}

}  // namespace

std::vector<WeightEntry> weight_table(const Config& config, ModelWeights& w, bool tied_head) {
  if (static_cast<int>(w.h.size()) != config.n_layer) throw Error("internal: weights with the wrong number of blocks");
  const int64_t C = config.n_embd;
  const WeightUse matrix = WeightUse::matrix, vector = WeightUse::vector;
  const HfLayout conv1d = HfLayout::conv1d, vec = HfLayout::vector;
  std::vector<WeightEntry> t;
  t.reserve(4 + 12 * static_cast<size_t>(config.n_layer) + 1);
  t.push_back({"wte.weight", &w.wte, HfLayout::as_stored, {config.n_vocab, C}, WeightUse::embedding});
  t.push_back({"wpe.weight", &w.wpe, HfLayout::as_stored, {config.n_ctx, C}, WeightUse::table});
  for (int l = 0; l < config.n_layer; ++l) {
    LayerWeights& b = w.h[static_cast<size_t>(l)];
    const std::string p = "h." + std::to_string(l) + ".";
    t.push_back({p + "ln_1.weight", &b.ln_1_g, vec, {C}, vector});
    t.push_back({p + "ln_1.bias", &b.ln_1_b, vec, {C}, vector});
    t.push_back({p + "attn.c_attn.weight", &b.attn_qkv_w, conv1d, {C, 3 * C}, matrix});
    t.push_back({p + "attn.c_attn.bias", &b.attn_qkv_b, vec, {3 * C}, vector});
    t.push_back({p + "attn.c_proj.weight", &b.attn_proj_w, conv1d, {C, C}, matrix});
    t.push_back({p + "attn.c_proj.bias", &b.attn_proj_b, vec, {C}, vector});
    t.push_back({p + "ln_2.weight", &b.ln_2_g, vec, {C}, vector});
    t.push_back({p + "ln_2.bias", &b.ln_2_b, vec, {C}, vector});
    t.push_back({p + "mlp.c_fc.weight", &b.mlp_fc_w, conv1d, {C, 4 * C}, matrix});
    t.push_back({p + "mlp.c_fc.bias", &b.mlp_fc_b, vec, {4 * C}, vector});
    t.push_back({p + "mlp.c_proj.weight", &b.mlp_proj_w, conv1d, {4 * C, C}, matrix});
    t.push_back({p + "mlp.c_proj.bias", &b.mlp_proj_b, vec, {C}, vector});
  }
  t.push_back({"ln_f.weight", &w.ln_f_g, vec, {C}, vector});
  t.push_back({"ln_f.bias", &w.ln_f_b, vec, {C}, vector});
  if (!tied_head) t.push_back({"lm_head.weight", &w.lm_head, HfLayout::as_stored, {config.n_vocab, C}, matrix});
  return t;
}

HostModel allocate_host_model(const Config& config, bool tied_head, const std::vector<HostForm>& forms) {
  if (config.n_vocab <= 0 || config.n_ctx <= 0 || config.n_embd <= 0 || config.n_head <= 0 ||
      config.n_layer <= 0 || config.n_embd % config.n_head != 0)
    throw Error("internal: invalid model config");
  // A lower bound first (integer forms take a byte per value, fp32 four), before the table
  // itself, which a header claiming 2^30 layers would make huge.
  const std::string what = "the model's weights (" + std::to_string(parameter_count(config)) + " parameters)";
  check_host_memory(mul_sizes({parameter_count(config), forms.empty() ? sizeof(float) : 1}), what);
  HostModel m;
  m.config = config;
  m.weights.h.resize(static_cast<size_t>(config.n_layer));
  std::vector<WeightEntry> table = weight_table(config, m.weights, tied_head);
  if (!forms.empty() && forms.size() != table.size()) throw Error("internal: host forms do not match the table");

  // Floats of each tensor's data and (integer forms) its scales, each on a 64-byte boundary.
  auto form = [&](size_t i) { return forms.empty() ? HostForm{} : forms[i]; };
  auto data_floats = [&](size_t i) {
    const size_t n = static_cast<size_t>(table[i].rows() * table[i].cols());
    return form(i).dtype == DType::f32 ? round_up(n) : round_up((n + 3) / 4);
  };
  auto scale_floats = [&](size_t i) -> size_t {
    const HostForm f = form(i);
    if (f.dtype == DType::f32) return 0;
    if (f.group_size < 1 || table[i].cols() % f.group_size != 0) throw Error("internal: bad host group size");
    return round_up(static_cast<size_t>(table[i].rows() * (table[i].cols() / f.group_size)));
  };
  size_t total = 0;
  for (size_t i = 0; i < table.size(); ++i) {
    shape(*table[i].tensor, table[i].rows(), table[i].cols());
    table[i].tensor->dtype = form(i).dtype;
    table[i].tensor->group_size = form(i).group_size;
    total = add_sizes(total, add_sizes(data_floats(i), scale_floats(i)));
  }

  // Over-allocate by one alignment unit so the first tensor can start on a 64-byte boundary
  // (new[] only guarantees alignof(max_align_t)).
  m.storage_counted = HostMemory(mul_sizes({add_sizes(total, kAlignFloats), sizeof(float)}), what);
  try {
    m.storage.reset(new float[total + kAlignFloats]);
  } catch (const std::bad_alloc&) {
    throw Error("out of memory allocating " + std::to_string((total * 4) >> 20) + " MiB for the model weights");
  }
  m.storage_floats = total + kAlignFloats;
  const uintptr_t base = reinterpret_cast<uintptr_t>(m.storage.get());
  const size_t skew = (64 - base % 64) % 64 / sizeof(float);
  float* next = m.storage.get() + skew;
  for (size_t i = 0; i < table.size(); ++i) {
    table[i].tensor->data = next;
    next += data_floats(i);
    if (form(i).dtype != DType::f32) {
      table[i].tensor->scales = next;
      next += scale_floats(i);
    }
  }
  if (tied_head) m.weights.lm_head = m.weights.wte;
  return m;
}

size_t parameter_count(const Config& config) {
  // Saturating (common/memory.h): a header's dimensions up to 2^30 each can pass 2^64 here.
  const size_t V = static_cast<size_t>(config.n_vocab), C = static_cast<size_t>(config.n_embd);
  const size_t C2 = mul_sizes({C, C});
  size_t per_layer = add_sizes(mul_sizes({12, C2}), 13 * C);  // c_attn, c_proj, c_fc, mlp c_proj; biases, LayerNorms
  size_t total = add_sizes(mul_sizes({V, C}), mul_sizes({static_cast<size_t>(config.n_ctx), C}));
  total = add_sizes(total, mul_sizes({static_cast<size_t>(config.n_layer), per_layer}));
  return add_sizes(total, 2 * C);
}

}  // namespace gpt2
