// The CUDA backend. Only compiled when CMake finds a CUDA toolkit (GPT2_WITH_CUDA).
#pragma once

#include <memory>
#include <string>

#include "runtime/backend.h"
#include "runtime/device.h"

namespace gpt2 {

// Whether a usable CUDA device is present; on false, `reason` says why. Never crashes,
// whatever the driver says (no driver, no device, wrong architecture).
bool cuda_device_usable(std::string* reason);

// Why the CUDA backend cannot run ops of this shape (its kernels need head_dim 64 and
// LayerNorm rows of a multiple of 8 up to 2048 columns: every GPT-2 size), or "" when it can.
std::string cuda_unsupported_shape(const Workload& workload);

// Throws gpt2::Error when no device is usable, gpt2::UsageError for a dtype CUDA does not run.
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options);

}  // namespace gpt2
