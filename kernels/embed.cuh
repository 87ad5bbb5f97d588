// Token + position embedding (the first op of GPT-2's forward pass).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"

namespace gpt2::cuda {

// x [rows, n_embd] fp32 = wte[tokens[r]] + wpe[*pos + r % n_tokens]   (rows = B * n_tokens)
// wte [n_vocab, n_embd], wpe [n_ctx, n_embd] in `dtype`; tokens [rows] and pos [1] are device
// memory written by set_step, so a captured graph reads the current step's values.
void embed(float* x, const void* wte, const void* wpe, DType dtype, const int32_t* tokens, const int32_t* pos,
           int rows, int n_tokens, int n_embd, cudaStream_t stream);

}  // namespace gpt2::cuda
