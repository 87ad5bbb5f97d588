// Owners of CUDA resources for the CUDA backend, and the checks that turn CUDA and cuBLAS
// status codes into gpt2::Error.
//
// Every owner is move-only and its destructor never throws (tiny-cuda-nn's GPUMemory): a
// failure to free is moot at that point, and a destructor that threw while an exception
// unwinds would end the program. DeviceBuffer counts its bytes into a MemoryStats, so the
// backend can report its peak device memory (gpt2 bench).
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace gpt2::cuda_backend {

// A failed CUDA call: gpt2::Error "CUDA error: <what the runtime says> (<call>, <file>:<line>)".
// The runtime's non-sticky error is cleared first, so the next call starts clean.
void check_cuda(cudaError_t err, const char* call, const char* file, int line);
// The same for cuBLAS / cuBLASLt status codes.
void check_cublas(cublasStatus_t status, const char* call, const char* file, int line);

#define GPT2_CUDA_CHECK(call) ::gpt2::cuda_backend::check_cuda((call), #call, __FILE__, __LINE__)
#define GPT2_CUBLAS_CHECK(call) ::gpt2::cuda_backend::check_cublas((call), #call, __FILE__, __LINE__)

// "12 MiB", rounded up.
std::string mib(size_t bytes);

inline size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

// Alignment of every view into a device allocation (weights, KV layers, batch sections):
// cuBLASLt and the 16-byte vector loads of the kernels want at least 16; 256 matches cudaMalloc.
constexpr size_t kDeviceAlign = 256;

struct MemoryStats {
  int64_t current = 0;
  int64_t peak = 0;
};

// A device allocation. Out of memory is a gpt2::Error saying what was being allocated, how much
// was asked and how much is free, with a hint.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t bytes, const std::string& what, MemoryStats* stats);
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept { swap(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    DeviceBuffer(static_cast<DeviceBuffer&&>(other)).swap(*this);
    return *this;
  }
  ~DeviceBuffer();

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }
  bool contains(const void* p) const {
    const char* base = static_cast<const char*>(ptr_);
    return ptr_ && p >= ptr_ && static_cast<const char*>(p) < base + bytes_;
  }

 private:
  void swap(DeviceBuffer& other) noexcept;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  MemoryStats* stats_ = nullptr;
};

// Page-locked host memory (the batch upload and the top-k download), so that copies to and
// from it are truly asynchronous.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t bytes);
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  PinnedBuffer(PinnedBuffer&& other) noexcept { swap(other); }
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept {
    PinnedBuffer(static_cast<PinnedBuffer&&>(other)).swap(*this);
    return *this;
  }
  ~PinnedBuffer();

  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void swap(PinnedBuffer& other) noexcept;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// An owned CUDA stream, event or cuBLAS(Lt) handle: destroyed once by its destructor.
// Converts to the raw handle for calls.
template <typename Handle, typename Destroy>
class Owned {
 public:
  Owned() = default;
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() {
    if (handle_) Destroy{}(handle_);
  }
  void reset(Handle handle) {  // takes ownership, destroying what was held before
    if (handle_) Destroy{}(handle_);
    handle_ = handle;
  }
  operator Handle() const { return handle_; }

 private:
  Handle handle_ = nullptr;
};
struct DestroyStream {
  void operator()(cudaStream_t s) const { cudaStreamDestroy(s); }
};
struct DestroyEvent {
  void operator()(cudaEvent_t e) const { cudaEventDestroy(e); }
};
struct DestroyLtHandle {
  void operator()(cublasLtHandle_t h) const { cublasLtDestroy(h); }
};
struct DestroyBlasHandle {
  void operator()(cublasHandle_t h) const { cublasDestroy(h); }
};
struct DestroyGraphExec {
  void operator()(cudaGraphExec_t g) const { cudaGraphExecDestroy(g); }
};
using OwnedStream = Owned<cudaStream_t, DestroyStream>;
using OwnedEvent = Owned<cudaEvent_t, DestroyEvent>;
using OwnedLtHandle = Owned<cublasLtHandle_t, DestroyLtHandle>;
using OwnedBlasHandle = Owned<cublasHandle_t, DestroyBlasHandle>;
using OwnedGraphExec = Owned<cudaGraphExec_t, DestroyGraphExec>;

}  // namespace gpt2::cuda_backend
