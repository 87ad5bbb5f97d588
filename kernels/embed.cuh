// Token + position embedding (the first op of GPT-2's forward pass).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "kernels/batch.cuh"

namespace gpt2::cuda {

// x [rows, n_embd] fp32 = wte[tokens[r]] + wpe[positions[r]], tokens and positions read from the
// device batch (so a captured graph reads the current step's values). wte [n_vocab, n_embd] and
// wpe [n_ctx, n_embd] in `dtype`. Token ids and positions are checked on the host before the
// step (Gpt2::forward). pdl: launch with programmatic dependent launch (kernels/common.cuh).
void embed(float* x, const void* wte, const void* wpe, DType dtype, DeviceBatch batch, int rows, int n_embd, bool pdl,
           cudaStream_t stream);

}  // namespace gpt2::cuda
