#include "runtime/cuda/cuda_memory.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/error.h"
#include "common/memory.h"

namespace gpt2::cuda_backend {

namespace {

// "src/runtime/cuda/cuda_gemm.cpp" of an absolute __FILE__: the part a reader can look up.
const char* short_path(const char* file) {
  const char* at = std::strstr(file, "src/runtime/");
  return at ? at : file;
}

}  // namespace

void check_cuda(cudaError_t err, const char* call, const char* file, int line) {
  if (err == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  throw Error(std::string("CUDA error: ") + cudaGetErrorString(err) + " (" + call + ", " + short_path(file) + ":" +
              std::to_string(line) + ")");
}

void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  cudaGetLastError();  // a CUDA error behind it would otherwise be blamed on the next launch
  throw Error(std::string("cuBLAS error: ") + cublasLtGetStatusString(status) + " (" + call + ", " +
              short_path(file) + ":" + std::to_string(line) + ")");
}

std::string mib(size_t bytes) { return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB"; }

DeviceBuffer::DeviceBuffer(size_t bytes, const std::string& what, MemoryStats* stats) : bytes_(bytes), stats_(stats) {
  if (bytes == 0) return;
  // Refused before asking: a size past the device's free memory (the KV cache of a huge --batch)
  // gets the same one-line message as the host's (common/memory.h), with both numbers.
  size_t free_before = 0, total_before = 0;
  const cudaError_t info = cudaMemGetInfo(&free_before, &total_before);
  if (info != cudaSuccess) {
    cudaGetLastError();  // not fatal here (cudaMalloc below reports a real failure), and not the next call's
  } else if (bytes > free_before) {
    throw Error("out of device memory: " + what + " needs " + format_bytes(bytes) + " but the device has " +
                format_bytes(free_before) + " free of " + format_bytes(total_before) +
                " (HINT: fewer sequences at once (--batch, --parallel) or a 16-bit --dtype need less)");
  }
  const cudaError_t err = cudaMalloc(&ptr_, bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    ptr_ = nullptr;
    throw Error("CUDA out of memory allocating " + what + ": asked for " + mib(bytes) + ", " + mib(free_bytes) +
                " free of " + mib(total_bytes) +
                " (HINT: fewer sequences at once (--batch, --parallel) or a 16-bit --dtype need less)");
  }
  if (err != cudaSuccess) ptr_ = nullptr;
  check_cuda(err, ("cudaMalloc for " + what).c_str(), __FILE__, __LINE__);
  if (stats_) {
    stats_->current += static_cast<int64_t>(bytes);
    stats_->peak = std::max(stats_->peak, stats_->current);
  }
}

DeviceBuffer::~DeviceBuffer() {
  if (!ptr_) return;
  cudaFree(ptr_);
  if (stats_) stats_->current -= static_cast<int64_t>(bytes_);
}

void DeviceBuffer::swap(DeviceBuffer& other) noexcept {
  std::swap(ptr_, other.ptr_);
  std::swap(bytes_, other.bytes_);
  std::swap(stats_, other.stats_);
}

PinnedBuffer::PinnedBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  const cudaError_t err = cudaMallocHost(&ptr_, bytes);
  if (err != cudaSuccess) ptr_ = nullptr;
  check_cuda(err, "cudaMallocHost", __FILE__, __LINE__);
}

PinnedBuffer::~PinnedBuffer() {
  if (ptr_) cudaFreeHost(ptr_);
}

void PinnedBuffer::swap(PinnedBuffer& other) noexcept {
  std::swap(ptr_, other.ptr_);
  std::swap(bytes_, other.bytes_);
}

}  // namespace gpt2::cuda_backend
