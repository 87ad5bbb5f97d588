// Element-wise kernels: fp32 -> fp16/bf16 conversion, the bias (+ GELU) epilogue of the
// prefill GEMMs, and a probe that the kernels can run on the current device.
// Host launchers with plain signatures; pointers are device pointers; stream last.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "common/dtype.h"

namespace gpt2::cuda {

// dst[i] = dtype(src[i]) for i < n (round to nearest even); dtype f32 copies.
void convert(void* dst, DType dtype, const float* src, int64_t n, cudaStream_t stream);

// x [rows, cols] = act(x + bias[cols]) in place (bias may be null; act GELU-tanh when `gelu`),
// and, when x16 is not null, x16 [rows, cols] = x in dtype16 (f16 or bf16): the low-precision
// copy the next GEMM reads.
void bias_act(float* x, void* x16, DType dtype16, const float* bias, int64_t rows, int64_t cols, bool gelu,
              cudaStream_t stream);

// Whether this build's kernels have machine code (or PTX) for the current device; `reason`
// says why not (e.g. built for sm_90 only, running on sm_80).
bool kernels_loadable(std::string* reason);

}  // namespace gpt2::cuda
