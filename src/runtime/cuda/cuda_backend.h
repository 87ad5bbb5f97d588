// The CUDA backend. Only compiled when CMake finds a CUDA toolkit (GPT2_WITH_CUDA).
#pragma once

#include <memory>
#include <string>

#include "runtime/backend.h"

namespace gpt2 {

// Whether a usable CUDA device is present; on false, `reason` says why. Never crashes,
// whatever the driver says (no driver, no device, wrong architecture).
bool cuda_device_usable(std::string* reason);

// Throws gpt2::Error when no device is usable.
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options);

}  // namespace gpt2
