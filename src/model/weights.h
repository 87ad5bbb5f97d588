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
