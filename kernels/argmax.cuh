// Greedy sampling on the device: the index of each row's largest logit. Not yet used by the
// Backend interface (the sampler runs on the host); kept as a tested kernel for a future
// device-side greedy path that would copy B ints instead of B * n_vocab floats per step.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace gpt2::cuda {

// out [rows] = argmax_j logits[r, j] over j < cols (fp32 [rows, cols]); ties go to the lowest
// index; NaN logits are never chosen (a row of only NaN gives 0).
void argmax(int32_t* out, const float* logits, int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace gpt2::cuda
