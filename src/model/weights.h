// The parameters of GPT-2, named as in the paper's code and Hugging Face's checkpoints.
// The same struct describes host weights (loader output, fp32) and backend-resident
// weights (fp32/fp16/bf16/int8 views into the backend's single weight allocation).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "runtime/tensor.h"

namespace gpt2 {

struct LayerWeights {
  Tensor ln_1_g, ln_1_b;            // [1, C]
  Tensor attn_qkv_w, attn_qkv_b;    // [3C, C], [1, 3C]   (q | k | v)
  Tensor attn_proj_w, attn_proj_b;  // [C, C],  [1, C]
  Tensor ln_2_g, ln_2_b;            // [1, C]
  Tensor mlp_fc_w, mlp_fc_b;        // [4C, C], [1, 4C]
  Tensor mlp_proj_w, mlp_proj_b;    // [C, 4C], [1, C]
};

struct ModelWeights {
  Tensor wte;                       // [V, C]  token embeddings
  Tensor wpe;                       // [n_ctx, C]  position embeddings
  std::vector<LayerWeights> h;      // n_layer blocks
  Tensor ln_f_g, ln_f_b;            // [1, C]
  Tensor lm_head;                   // [V, C]; the same memory as wte when tied
};

// What a weight tensor is, for a backend choosing how to store it.
enum class WeightRole {
  token_embedding,     // wte [V, C]: the embedding table, and the LM head when tied
  position_embedding,  // wpe [n_ctx, C]
  linear,              // a block's c_attn, attn c_proj, c_fc or mlp c_proj weight [out, in]
  vector,              // a bias, or a LayerNorm gain or bias [1, n]
  lm_head,             // an untied LM head [V, C]
};

struct WeightPair {
  Tensor* dst;
  const Tensor* src;
  WeightRole role;
};

// Every tensor of `dst` with the same field of `src`, in one fixed order: wte, wpe, each
// block's ln_1, c_attn, attn c_proj, ln_2, c_fc, mlp c_proj (gain or weight, then bias), ln_f,
// and lm_head when with_lm_head. dst.h is resized to src.h's length. A backend's load() walks
// it to place the host's tensors in its own memory; dst may be src itself.
inline std::vector<WeightPair> weight_pairs(ModelWeights& dst, const ModelWeights& src, bool with_lm_head) {
  if (&dst != &src) dst.h.resize(src.h.size());
  std::vector<WeightPair> pairs;
  pairs.reserve(5 + 12 * src.h.size());
  pairs.push_back({&dst.wte, &src.wte, WeightRole::token_embedding});
  pairs.push_back({&dst.wpe, &src.wpe, WeightRole::position_embedding});
  for (size_t l = 0; l < src.h.size(); ++l) {
    LayerWeights& d = dst.h[l];
    const LayerWeights& s = src.h[l];
    const WeightRole v = WeightRole::vector, m = WeightRole::linear;
    for (const WeightPair& p : {WeightPair{&d.ln_1_g, &s.ln_1_g, v}, WeightPair{&d.ln_1_b, &s.ln_1_b, v},
                                WeightPair{&d.attn_qkv_w, &s.attn_qkv_w, m}, WeightPair{&d.attn_qkv_b, &s.attn_qkv_b, v},
                                WeightPair{&d.attn_proj_w, &s.attn_proj_w, m}, WeightPair{&d.attn_proj_b, &s.attn_proj_b, v},
                                WeightPair{&d.ln_2_g, &s.ln_2_g, v}, WeightPair{&d.ln_2_b, &s.ln_2_b, v},
                                WeightPair{&d.mlp_fc_w, &s.mlp_fc_w, m}, WeightPair{&d.mlp_fc_b, &s.mlp_fc_b, v},
                                WeightPair{&d.mlp_proj_w, &s.mlp_proj_w, m}, WeightPair{&d.mlp_proj_b, &s.mlp_proj_b, v}})
      pairs.push_back(p);
  }
  pairs.push_back({&dst.ln_f_g, &src.ln_f_g, WeightRole::vector});
  pairs.push_back({&dst.ln_f_b, &src.ln_f_b, WeightRole::vector});
  if (with_lm_head) pairs.push_back({&dst.lm_head, &src.lm_head, WeightRole::lm_head});
  return pairs;
}

// Host-side model: config + fp32 weights in one allocation ([out, in] layout).
struct HostModel {
  Config config;
  ModelWeights weights;
  std::string name;                 // what the user passed to -m
  std::string dir;                  // model directory ("" for random:)
  std::string source_dtype = "fp32";// dtype of the checkpoint file(s): fp32, fp16, bf16
  std::unique_ptr<float[]> storage; // owns every tensor above
  size_t storage_floats = 0;
};

// `-m MODEL`: a Hugging Face model directory, or random:gpt2|gpt2-medium|gpt2-large|
// gpt2-xl|distilgpt2 (seeded random weights with the real shapes). Throws gpt2::Error.
HostModel load_model(const std::string& spec);

// Seeded random weights with GPT-2's shapes and realistic scales (N(0, 0.02) matrices,
// gains near 1, small biases).
HostModel random_model(const Config& config, uint64_t seed);

// Total parameter count (tied head counted once).
size_t parameter_count(const Config& config);

}  // namespace gpt2
