// The parameters of GPT-2, named as in the paper's code and Hugging Face's checkpoints, and the
// one table of GPT-2's tensors that the loader, the random-weight generator and the model's
// upload to a backend all walk.
//
// The same struct describes host weights (loader output, fp32, one allocation: HostModel) and
// backend-resident weights (views into the backend's single weight allocation, in whatever
// form the backend chose for each tensor's WeightUse).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/memory.h"
#include "model/config.h"
#include "runtime/backend.h"
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

// How a tensor is laid out in a Hugging Face file, against our [out, in] / [1, n] layout.
enum class HfLayout {
  conv1d,     // Conv1D weight [in, out] in the file; stored transposed, [out, in]
  as_stored,  // embeddings (wte, wpe) and lm_head ([V, C], nn.Linear layout): as they are
  vector,     // biases and LayerNorm gains [n]: stored as [1, n]
};

struct WeightEntry {
  std::string name;               // Hugging Face name without the "transformer." prefix
  Tensor* tensor;                 // the field of ModelWeights
  HfLayout layout;
  std::vector<int64_t> hf_shape;  // shape of the tensor in a Hugging Face file
  WeightUse use;                  // what the forward pass does with it (for the backend)
  int64_t rows() const { return layout == HfLayout::conv1d ? hf_shape[1] : layout == HfLayout::vector ? 1 : hf_shape[0]; }
  int64_t cols() const { return layout == HfLayout::conv1d ? hf_shape[0] : hf_shape.back(); }
};

// Every tensor of `weights` (whose h must have config.n_layer blocks) in one fixed order: wte,
// wpe, each block's ln_1, c_attn, attn c_proj, ln_2, c_fc, mlp c_proj (weight or gain, then
// bias), ln_f, and lm_head only when untied (a tied head is wte itself).
std::vector<WeightEntry> weight_table(const Config& config, ModelWeights& weights, bool tied_head);

// Host-side model: config + weights in one allocation ([out, in] layout). Every tensor is fp32,
// except that matrices and embeddings of a quantized GGUF file may keep their own integers
// (dtype i8 or i4, Tensor::scales and group_size; model/ggml_blocks.h), which the backend
// runs as they are or dequantizes (Backend::upload).
struct HostModel {
  Config config;
  ModelWeights weights;
  std::string name;                 // what the user passed to -m
  std::string source_dtype = "fp32";// dtype of the checkpoint file(s): fp32, fp16, bf16, mixed, or a
                                    //   GGUF type (q4_0, q8_0, ...) for a quantized file
  bool quantized_source = false;    // the file's matrices are quantized: --dtype auto keeps the CPU on
                                    //   integer kernels (int8 for those dequantized at load)
  std::vector<std::string> notes;   // what the loader did (types, conversions, the tokenizer), for -v
  std::unique_ptr<float[]> storage; // owns every tensor above
  size_t storage_floats = 0;
  HostMemory storage_counted;       // storage's bytes, counted against the machine's memory
  bool tied_head() const { return weights.lm_head.data == weights.wte.data; }
};

// Seeded random weights with GPT-2's shapes and realistic scales (N(0, 0.02) matrices,
// gains near 1, small biases), generated on `pool` (the same values for any thread count).
class ThreadPool;
HostModel random_model(const Config& config, uint64_t seed, ThreadPool& pool);

// Total parameter count (tied head counted once).
size_t parameter_count(const Config& config);

}  // namespace gpt2
