// Internal to src/model: the single-allocation layout of HostModel's fp32 weights, shared by
// the safetensors loader and the random-weight generator.
//
// Every tensor of ModelWeights is a view into HostModel::storage (one allocation, each tensor
// starting on a 64-byte boundary so SIMD loads of a row start aligned). Linear weights are
// [out, in]; Hugging Face's Conv1D files store them [in, out], which `hf_shape` records so the
// loader can check the file's shape and transpose while converting (weight_table in weights.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/weights.h"

namespace gpt2 {

// How one tensor of the table is held on the host: fp32, or (a matrix or embedding of a
// quantized GGUF file, kept as it is) integers i8 / i4 (one byte per value) with one fp32 scale
// per group of `group_size` values of a row, scales row-major [rows, cols / group_size].
struct HostForm {
  DType dtype = DType::f32;
  int32_t group_size = 0;
};

// A HostModel with every tensor shaped from `config` and backed by one allocation
// (contents uninitialized). With a tied head, lm_head views wte; otherwise it has its own rows.
// `forms`: one per entry of weight_table(config, ..., tied_head), or empty for all fp32.
HostModel allocate_host_model(const Config& config, bool tied_head, const std::vector<HostForm>& forms = {});

}  // namespace gpt2
