// The single-allocation layout of HostModel (see host_model.h), and parameter_count.
#include "model/host_model.h"

#include <cstdint>
#include <string>

#include "common/error.h"

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

std::vector<WeightSlot> weight_slots(const Config& config, ModelWeights& w, bool tied_head) {
  const int64_t C = config.n_embd;
  std::vector<WeightSlot> slots;
  slots.reserve(4 + 12 * static_cast<size_t>(config.n_layer) + 1);
  slots.push_back({"wte.weight", &w.wte, WeightKind::as_stored, {config.n_vocab, C}});
  slots.push_back({"wpe.weight", &w.wpe, WeightKind::as_stored, {config.n_ctx, C}});
  for (int l = 0; l < config.n_layer; ++l) {
    LayerWeights& b = w.h[static_cast<size_t>(l)];
    const std::string p = "h." + std::to_string(l) + ".";
    slots.push_back({p + "ln_1.weight", &b.ln_1_g, WeightKind::vector, {C}});
    slots.push_back({p + "ln_1.bias", &b.ln_1_b, WeightKind::vector, {C}});
    slots.push_back({p + "attn.c_attn.weight", &b.attn_qkv_w, WeightKind::conv1d, {C, 3 * C}});
    slots.push_back({p + "attn.c_attn.bias", &b.attn_qkv_b, WeightKind::vector, {3 * C}});
    slots.push_back({p + "attn.c_proj.weight", &b.attn_proj_w, WeightKind::conv1d, {C, C}});
    slots.push_back({p + "attn.c_proj.bias", &b.attn_proj_b, WeightKind::vector, {C}});
    slots.push_back({p + "ln_2.weight", &b.ln_2_g, WeightKind::vector, {C}});
    slots.push_back({p + "ln_2.bias", &b.ln_2_b, WeightKind::vector, {C}});
    slots.push_back({p + "mlp.c_fc.weight", &b.mlp_fc_w, WeightKind::conv1d, {C, 4 * C}});
    slots.push_back({p + "mlp.c_fc.bias", &b.mlp_fc_b, WeightKind::vector, {4 * C}});
    slots.push_back({p + "mlp.c_proj.weight", &b.mlp_proj_w, WeightKind::conv1d, {4 * C, C}});
    slots.push_back({p + "mlp.c_proj.bias", &b.mlp_proj_b, WeightKind::vector, {C}});
  }
  slots.push_back({"ln_f.weight", &w.ln_f_g, WeightKind::vector, {C}});
  slots.push_back({"ln_f.bias", &w.ln_f_b, WeightKind::vector, {C}});
  if (!tied_head) slots.push_back({"lm_head.weight", &w.lm_head, WeightKind::as_stored, {config.n_vocab, C}});
  return slots;
}

HostModel allocate_host_model(const Config& config, bool tied_head) {
  if (config.n_vocab <= 0 || config.n_ctx <= 0 || config.n_embd <= 0 || config.n_head <= 0 ||
      config.n_layer <= 0 || config.n_embd % config.n_head != 0)
    throw Error("internal: invalid model config");
  HostModel m;
  m.config = config;
  m.weights.h.resize(static_cast<size_t>(config.n_layer));
  std::vector<WeightSlot> slots = weight_slots(config, m.weights, tied_head);

  size_t total = 0;
  for (WeightSlot& s : slots) {
    int64_t rows = 1, cols = 1;
    switch (s.kind) {
      case WeightKind::conv1d: rows = s.hf_shape[1], cols = s.hf_shape[0]; break;  // [out, in]
      case WeightKind::as_stored: rows = s.hf_shape[0], cols = s.hf_shape[1]; break;
      case WeightKind::vector: rows = 1, cols = s.hf_shape[0]; break;
    }
    shape(*s.dst, rows, cols);
    total += round_up(static_cast<size_t>(rows * cols));
  }

  // Over-allocate by one alignment unit so the first tensor can start on a 64-byte boundary
  // (new[] only guarantees alignof(max_align_t)).
  try {
    m.storage.reset(new float[total + kAlignFloats]);
  } catch (const std::bad_alloc&) {
    throw Error("out of memory allocating " + std::to_string((total * 4) >> 20) + " MiB for the model weights");
  }
  m.storage_floats = total + kAlignFloats;
  const uintptr_t base = reinterpret_cast<uintptr_t>(m.storage.get());
  const size_t skew = (64 - base % 64) % 64 / sizeof(float);
  float* next = m.storage.get() + skew;
  for (WeightSlot& s : slots) {
    s.dst->data = next;
    next += round_up(static_cast<size_t>(s.dst->numel()));
  }
  if (tied_head) m.weights.lm_head = m.weights.wte;
  return m;
}

size_t parameter_count(const Config& config) {
  const size_t V = static_cast<size_t>(config.n_vocab), C = static_cast<size_t>(config.n_embd);
  const size_t per_layer = 2 * C                  // ln_1
                           + C * 3 * C + 3 * C    // c_attn
                           + C * C + C            // attn.c_proj
                           + 2 * C                // ln_2
                           + C * 4 * C + 4 * C    // c_fc
                           + 4 * C * C + C;       // mlp.c_proj
  return V * C + static_cast<size_t>(config.n_ctx) * C + static_cast<size_t>(config.n_layer) * per_layer + 2 * C;
}

}  // namespace gpt2
