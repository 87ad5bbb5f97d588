// The QKV bias add fused with appending K and V to the KV cache (steps that go through the
// prefill attention; the decode attention kernel does the same for its single token itself).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "kernels/batch.cuh"

namespace gpt2::cuda {

// qkv [rows, 3C] fp32 (q | k | v, n_head heads of head_dim inside each), bias [3C] fp32 or null.
// qkv += bias in place (q, k and v: the attention kernel reads q from qkv, and after the op qkv
// holds q | k | v with the bias, as Backend::attention promises); then k and v of row n go to
// k_cache / v_cache at slot batch.row_slots[n], position batch.positions[n]. Cache layout (one
// layer): [n_slots, n_head, n_ctx, head_dim] in `dtype`.
void qkv_bias_kv_append(float* qkv, void* k_cache, void* v_cache, DType dtype, const float* bias, DeviceBatch batch,
                        int rows, int n_head, int head_dim, int n_ctx, cudaStream_t stream);

}  // namespace gpt2::cuda
