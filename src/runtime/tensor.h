// Tensor: a non-owning, row-major 2-D view of memory that a backend (or the host loader) owns.
// Vectors (biases, LayerNorm gains) have rows == 1. Weights of linear layers are stored
// [out, in] (PyTorch nn.Linear layout; the loader transposes Hugging Face's Conv1D [in, out]),
// so every output is a dot product with one contiguous weight row.
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace gpt2 {

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::f32;
  int64_t rows = 0;
  int64_t cols = 0;
  // Quantized weights (dtype i8) only: one fp32 scale per group of `group_size`
  // consecutive elements of a row, [rows, cols / group_size].
  float* scales = nullptr;
  int32_t group_size = 0;

  int64_t numel() const { return rows * cols; }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool empty() const { return data == nullptr; }

  // The first n rows (activation buffers are sized for the largest step).
  Tensor first_rows(int64_t n) const {
    Tensor t = *this;
    t.rows = n;
    return t;
  }

  float* f32() const { return static_cast<float*>(data); }
};

}  // namespace gpt2
