#pragma once

#include <memory>

#include "runtime/backend.h"

namespace gpt2 {

// The CPU backend: fp32 math, weights in fp32, bf16 or int8; OpenMP threads.
std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options);

}  // namespace gpt2
