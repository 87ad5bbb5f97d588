// Selection over the vocabulary on the device: each row's argmax, or its k most likely logits,
// so that a decode step copies B ints (greedy) or B * k candidates instead of B * n_vocab floats.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace gpt2::cuda {

// Largest k of top_k: the k survivors are sorted in one block's shared memory (256 slots).
constexpr int kTopKMax = 256;

// out [rows] = argmax_j logits[r, j] over j < cols (fp32 [rows, cols]); ties go to the lowest
// index; NaN logits are never chosen (a row of only NaN gives 0).
void argmax(int32_t* out, const float* logits, int64_t rows, int64_t cols, cudaStream_t stream);

// For each row r < rows of logits (fp32, row stride ld >= cols): the k largest of
// logits[r, 0..cols), most likely first, ordered by value descending and, for equal values, by
// smaller index: exactly the total order of src/sampling/sampler.cpp more_likely (+0.0 and -0.0
// are equal, so they tie and the smaller index goes first; -inf is an ordinary value).
// 1 <= k <= min(kTopKMax, cols). Outputs (device memory): ids [rows, k] int32, values [rows, k]
// fp32 (the logits' exact bits), invalid [rows] int32: 1 when the row's first cols entries hold
// a NaN or +inf, else 0. NaN ranks below every number, -inf included, so a NaN is selected only
// when the row has fewer than k other entries (such a row is invalid; its ids stay in bounds).
void top_k(int32_t* ids, float* values, int32_t* invalid, const float* logits, int64_t rows,
           int64_t cols, int64_t ld, int k, cudaStream_t stream);

}  // namespace gpt2::cuda
