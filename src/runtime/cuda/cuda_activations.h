// The CUDA backend's activation buffers: fp32 as backend.h requires, each with a 16-bit copy
// (a "shadow") when the weights are 16-bit.
//
// Why the copy: cuBLASLt multiplies A and B of one type, so a prefill GEMM with bf16 weights
// needs its input in bf16. The ops that produce a GEMM's input (LayerNorm, prefill attention,
// the bias+GELU epilogue) write the 16-bit copy in the same pass as the fp32 result, for free;
// the GEMM then reads it. This table records, at record time, which leading rows of each
// buffer have a current copy; a GEMM whose input copy is stale converts it first (one extra
// pass, never wrong). The record is host state about device memory, so it is reset whenever
// device memory changes behind the host's back: before a CUDA graph capture, after a replay
// (see cuda_graph.h).
//
// Layout of one buffer: fp32 [rows, cols] (256-byte aligned), then the copy [rows, cols] in the
// weight dtype, in one allocation. Views (Tensor::first_rows, or any row range of a buffer)
// are found by address.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "common/dtype.h"
#include "runtime/cuda/cuda_memory.h"
#include "runtime/tensor.h"

namespace gpt2::cuda_backend {

class Activations {
 public:
  Activations(DType weight_dtype, MemoryStats* stats) : wdt_(weight_dtype), stats_(stats) {}

  // A zeroed fp32 buffer [rows, cols] (the zeroing is queued on `stream`).
  Tensor alloc(int64_t rows, int64_t cols, cudaStream_t stream);

  // Where an op writing the rows of `t` may write their 16-bit copy too, or null (fp32 weights,
  // or memory that is not a whole-row view of an activation).
  void* shadow_for_write(const Tensor& t);
  // Records that the rows of `t` were written, and whether their 16-bit copy was too.
  void wrote(const Tensor& t, bool shadow_written);
  // The operand a GEMM reads for `in`: its fp32 data with fp32 weights, else its 16-bit copy,
  // converted on `stream` first where it is not current.
  const void* gemm_input(const Tensor& in, cudaStream_t stream);
  // No 16-bit copy is known current (conservative: the next GEMMs convert their inputs).
  void forget();

 private:
  struct Buffer {
    DeviceBuffer memory;
    float* data = nullptr;
    void* shadow = nullptr;  // [rows, cols] in the weight dtype, or null (fp32 weights)
    int64_t rows = 0, cols = 0;
    int64_t shadow_rows = 0;  // rows [0, shadow_rows) have a 16-bit copy equal to their data
  };
  // The buffer whose fp32 data holds t's rows (t a whole-row view of it: same cols, starting at
  // a row boundary), with the view's first row; null when there is none.
  Buffer* find(const Tensor& t, int64_t* first_row);

  DType wdt_;
  MemoryStats* stats_;
  std::vector<std::unique_ptr<Buffer>> buffers_;
  std::map<const char*, Buffer*> by_address_;  // fp32 data start -> buffer
};

}  // namespace gpt2::cuda_backend
