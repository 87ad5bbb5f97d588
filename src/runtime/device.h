// Choosing a backend: --device auto|cpu|cuda, and whether CUDA can run a model's ops.
#pragma once

#include <memory>
#include <string>

#include "runtime/backend.h"

namespace gpt2 {

// The shape a model's ops will have, for --device auto to pick a backend that runs them.
struct Workload {
  int head_dim = 0;             // attention head size
  int64_t layernorm_cols = 0;   // width of the rows LayerNorm normalizes
};

// Creates the backend options.device asks for, for ops of shape `workload`. auto_select: CUDA
// when a usable device is present and can run the request (the shape; the dtype: int8 is
// CPU-only), else the CPU with a one-line note through the log sink (in a build without CUDA
// only with verbose). cuda without a usable device: gpt2::Error naming the reason.
std::unique_ptr<Backend> make_backend(const BackendOptions& options, const Workload& workload);
// The same without a workload: auto_select does not check the shape.
std::unique_ptr<Backend> make_backend(const BackendOptions& options);

// Whether a usable CUDA device is present; `reason` says why not. Never crashes.
bool cuda_available(std::string* reason);

}  // namespace gpt2
