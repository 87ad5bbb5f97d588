#include "runtime/backend.h"

#include <iostream>

#include "common/error.h"
#include "runtime/cpu/cpu_backend.h"
#if GPT2_WITH_CUDA
#include "runtime/cuda/cuda_backend.h"
#endif

namespace gpt2 {

bool cuda_available(std::string* reason) {
#if GPT2_WITH_CUDA
  return cuda_device_usable(reason);
#else
  if (reason) *reason = "this gpt2 was built without CUDA";
  return false;
#endif
}

std::unique_ptr<Backend> make_backend(const BackendOptions& options) {
  std::string reason;
  switch (options.device) {
    case Device::cpu:
      return make_cpu_backend(options);
    case Device::cuda:
      if (!cuda_available(&reason))
        throw Error("--device cuda: no usable CUDA device (" + reason + "); use --device cpu");
#if GPT2_WITH_CUDA
      return make_cuda_backend(options);
#endif
      break;
    case Device::auto_select:
      if (cuda_available(&reason)) {
#if GPT2_WITH_CUDA
        return make_cuda_backend(options);
#endif
      }
      if (options.verbose) std::cerr << "note: using the CPU (" << reason << ")\n";
      return make_cpu_backend(options);
  }
  throw Error("internal: unknown device");
}

}  // namespace gpt2
