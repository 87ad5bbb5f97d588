// Row gather: the rows of a step whose logits are wanted (before the LM head).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/batch.cuh"

namespace gpt2::cuda {

// out [n_out, cols] fp32 = in [N, cols] rows batch.logit_rows[0 .. n_out), the row list read from
// the device batch (so a captured graph gathers the current step's rows). pdl: programmatic
// dependent launch (kernels/common.cuh).
void gather_rows(float* out, const float* in, DeviceBatch batch, int n_out, int64_t cols, bool pdl,
                 cudaStream_t stream);

}  // namespace gpt2::cuda
