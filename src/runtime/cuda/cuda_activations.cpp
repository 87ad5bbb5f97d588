#include "runtime/cuda/cuda_activations.h"

#include <algorithm>
#include <string>

#include "common/error.h"
#include "kernels/elementwise.cuh"

namespace gpt2::cuda_backend {

Tensor Activations::alloc(int64_t rows, int64_t cols, cudaStream_t stream) {
  auto a = std::make_unique<Buffer>();
  const size_t n = static_cast<size_t>(rows * cols);
  const size_t f32_bytes = align_up(n * 4, kDeviceAlign);
  const size_t shadow_bytes = wdt_ == DType::f32 ? 0 : n * dtype_size(wdt_);
  a->memory = DeviceBuffer(f32_bytes + shadow_bytes,
                           "an activation buffer of " + std::to_string(rows) + " x " + std::to_string(cols), stats_);
  a->data = a->memory.as<float>();
  a->shadow = shadow_bytes ? a->memory.as<char>() + f32_bytes : nullptr;
  a->rows = rows;
  a->cols = cols;
  GPT2_CUDA_CHECK(cudaMemsetAsync(a->memory.get(), 0, a->memory.bytes(), stream));
  // Not taken as current although both copies are zeros: a test may write the fp32 data directly.
  a->shadow_rows = 0;
  Tensor t;
  t.data = a->data;
  t.dtype = DType::f32;
  t.rows = rows;
  t.cols = cols;
  by_address_[reinterpret_cast<const char*>(a->data)] = a.get();
  buffers_.push_back(std::move(a));
  return t;
}

Activations::Buffer* Activations::find(const Tensor& t, int64_t* first_row) {
  const char* p = static_cast<const char*>(t.data);
  auto it = by_address_.upper_bound(p);
  if (it == by_address_.begin()) return nullptr;
  --it;
  Buffer* a = it->second;
  const int64_t offset = (p - it->first) / 4;  // floats from the buffer's start
  if ((p - it->first) % 4 != 0 || offset >= a->rows * a->cols) return nullptr;
  if (t.cols != a->cols || offset % a->cols != 0 || offset / a->cols + t.rows > a->rows) return nullptr;
  *first_row = offset / a->cols;
  return a;
}

void* Activations::shadow_for_write(const Tensor& t) {
  int64_t first = 0;
  Buffer* a = find(t, &first);
  if (!a || !a->shadow) return nullptr;
  return static_cast<char*>(a->shadow) + first * a->cols * static_cast<int64_t>(dtype_size(wdt_));
}

void Activations::wrote(const Tensor& t, bool shadow_written) {
  int64_t first = 0;
  Buffer* a = find(t, &first);
  if (!a) {
    // Memory inside a buffer but not a whole-row view of it: forget that buffer's copy.
    const char* p = static_cast<const char*>(t.data);
    auto it = by_address_.upper_bound(p);
    if (it != by_address_.begin() && (--it)->second->memory.contains(p)) it->second->shadow_rows = 0;
    return;
  }
  const int64_t end = first + t.rows;
  if (shadow_written) {
    if (first <= a->shadow_rows) a->shadow_rows = std::max(a->shadow_rows, end);
  } else {
    a->shadow_rows = std::min(a->shadow_rows, first);
  }
}

const void* Activations::gemm_input(const Tensor& in, cudaStream_t stream) {
  if (wdt_ == DType::f32) return in.data;
  int64_t first = 0;
  Buffer* a = find(in, &first);
  if (!a)
    throw Error("internal: CUDA linear: the input [" + std::to_string(in.rows) + ", " + std::to_string(in.cols) +
                "] is not rows of an activation buffer of this backend");
  void* shadow = static_cast<char*>(a->shadow) + first * a->cols * static_cast<int64_t>(dtype_size(wdt_));
  if (first + in.rows > a->shadow_rows) {
    cuda::convert(shadow, wdt_, in.f32(), in.numel(), stream);
    wrote(in, /*shadow_written=*/true);
  }
  return shadow;
}

void Activations::forget() {
  for (auto& a : buffers_) a->shadow_rows = 0;
}

}  // namespace gpt2::cuda_backend
