// PLACEHOLDER: replaced by the CPU backend implementation.
#include "runtime/cpu/cpu_backend.h"

#include "common/error.h"

namespace gpt2 {

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions&) {
  throw Error("the CPU backend is not built yet");
}

}  // namespace gpt2
