// Device helpers shared by the kernel files (included by .cu files only, never by C++ code):
// element conversions, 16-byte packs, warp reductions, GELU, and the launch check that turns a
// launch error into a gpt2::Error.
//
// Numerics: every kernel accumulates in fp32. 16-bit values (fp16, bf16) are converted to fp32
// on load and rounded to nearest even on store (__float2half_rn / __float2bfloat16_rn, the same
// rounding as gpt2::f32_to_f16 / f32_to_bf16 on the host).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "common/dtype.h"
#include "common/error.h"

namespace gpt2::cuda {

// Called after every launch: a bad configuration (grid, shared memory) or an earlier
// asynchronous fault surfaces here as a one-line error naming the kernel.
inline void check_launch(const char* kernel) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw Error(std::string("CUDA kernel ") + kernel + " failed: " + cudaGetErrorString(err));
}

// ---- scalar conversions ----------------------------------------------------------------------
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// ---- 16-byte packs: 4 floats or 8 halves per uint4 -------------------------------------------
template <typename T>
struct Pack {
  static constexpr int n = 16 / sizeof(T);  // elements per 16-byte load
};

__device__ __forceinline__ void unpack(const uint4& raw, float* out, const float*) {
  out[0] = __uint_as_float(raw.x);
  out[1] = __uint_as_float(raw.y);
  out[2] = __uint_as_float(raw.z);
  out[3] = __uint_as_float(raw.w);
}
__device__ __forceinline__ void unpack(const uint4& raw, float* out, const __half*) {
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void unpack(const uint4& raw, float* out, const __nv_bfloat16*) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}
// Unpacks the Pack<T>::n elements of a 16-byte load of T into fp32.
template <typename T>
__device__ __forceinline__ void unpack16(const uint4& raw, float* out) {
  unpack(raw, out, static_cast<const T*>(nullptr));
}

// ---- reductions --------------------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// ---- activations -------------------------------------------------------------------------------
// gelu_new (GPT-2, Hendrycks & Gimpel 2016, tanh approximation):
//   0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
// tanhf (not the fast intrinsic) so the CUDA and CPU backends agree to fp32 rounding.
__device__ __forceinline__ float gelu_tanh(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

// ---- programmatic dependent launch (Hopper) ---------------------------------------------------
// The kernels of a decode step are launched with the programmatic-stream-serialization
// attribute, so the next kernel is scheduled while the current one finishes instead of after
// it (the launch gap is a large share of a GPT-2 decode step: ~90 short kernels per token).
// Correctness never depends on the overlap: every such kernel calls pdl_wait() before any
// write to global memory and before any read of memory a kernel or a copy of the step writes
// (griddepcontrol.wait returns once the preceding grid has completed and its writes are
// visible; only reads of the weights, which nothing in a step writes, may come earlier), and
// only then lets its own dependent launch (griddepcontrol.launch_dependents). Without the
// attribute, or below sm_90, both instructions are no-ops. Whether the attribute is set is the
// caller's choice (the `pdl` argument of each launcher): the CUDA backend passes
// BackendOptions::cuda_pdl on sm_90 and newer, false elsewhere.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// Launches `kernel` (which must call pdl_wait() first) with programmatic dependent launch when
// `pdl`; a launch error becomes a gpt2::Error naming the kernel.
template <typename... KernelArgs, typename... Args>
void launch_pdl(const char* name, void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem, bool pdl,
                cudaStream_t stream, Args... args) {
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = attribute;
  config.numAttrs = pdl ? 1 : 0;
  const cudaError_t err = cudaLaunchKernelEx(&config, kernel, static_cast<KernelArgs>(args)...);
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw Error(std::string("CUDA kernel ") + name + " failed to launch: " + cudaGetErrorString(err));
  }
}

}  // namespace gpt2::cuda

// Runs `body` with `T` bound to the device type of a DType (f32, f16, bf16); other dtypes throw.
#define GPT2_DISPATCH_FLOAT_TYPES(dtype, what, ...)                                        \
  switch (dtype) {                                                                         \
    case ::gpt2::DType::f32: {                                                             \
      using T = float;                                                                     \
      __VA_ARGS__;                                                                         \
      break;                                                                               \
    }                                                                                      \
    case ::gpt2::DType::f16: {                                                             \
      using T = __half;                                                                    \
      __VA_ARGS__;                                                                         \
      break;                                                                               \
    }                                                                                      \
    case ::gpt2::DType::bf16: {                                                            \
      using T = __nv_bfloat16;                                                             \
      __VA_ARGS__;                                                                         \
      break;                                                                               \
    }                                                                                      \
    default:                                                                               \
      throw ::gpt2::Error(std::string(what) + ": unsupported dtype " + dtype_name(dtype)); \
  }
