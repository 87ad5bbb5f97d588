#pragma once

#include <memory>

#include "runtime/backend.h"

namespace gpt2 {

// The CPU backend: fp32 math, weights in fp32, bf16, int8 or int4; its own thread pool for the ops
// (thread_pool.h says why not OpenMP), OpenMP for packing weights at load.
std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options);

}  // namespace gpt2
