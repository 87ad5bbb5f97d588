// Internal to src/model: the single-allocation layout of HostModel's fp32 weights, shared by
// the safetensors loader and the random-weight generator.
//
// Every tensor of ModelWeights is a view into HostModel::storage (one allocation, each tensor
// starting on a 64-byte boundary so SIMD loads of a row start aligned). Linear weights are
// [out, in]; Hugging Face's Conv1D files store them [in, out], which `hf_shape` records so the
// loader can check the file's shape and transpose while converting.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/weights.h"

namespace gpt2 {

enum class WeightKind {
  conv1d,     // HF Conv1D weight [in, out] in the file; stored transposed, [out, in]
  as_stored,  // embeddings (wte, wpe) and lm_head ([V, C], nn.Linear layout): copied as they are
  vector,     // biases and LayerNorm gains [n]: stored as [1, n]
};

struct WeightSlot {
  std::string name;              // Hugging Face name without the "transformer." prefix
  Tensor* dst;                   // the view in HostModel::weights
  WeightKind kind;
  std::vector<int64_t> hf_shape; // shape of the tensor in a Hugging Face file
};

// A HostModel with every tensor shaped from `config` and backed by one allocation
// (contents uninitialized). With a tied head, lm_head views wte; otherwise it has its own rows.
HostModel allocate_host_model(const Config& config, bool tied_head);

// Every tensor the model owns (lm_head only when untied), in storage order.
std::vector<WeightSlot> weight_slots(const Config& config, ModelWeights& weights, bool tied_head);

}  // namespace gpt2
