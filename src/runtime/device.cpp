// The choice of a backend for --device (runtime/device.h).
#include "runtime/device.h"

#include "common/error.h"
#include "common/log.h"
#include "runtime/cpu/cpu_backend.h"
#if GPT2_WITH_CUDA
#include "runtime/cuda/cuda_backend.h"
#endif

namespace gpt2 {

// ---- choosing a backend ----

bool cuda_available(std::string* reason) {
#if GPT2_WITH_CUDA
  return cuda_device_usable(reason);
#else
  if (reason) *reason = "this gpt2 was built without CUDA";
  return false;
#endif
}

namespace {

#if GPT2_WITH_CUDA
constexpr bool kBuiltWithCuda = true;
#else
constexpr bool kBuiltWithCuda = false;
#endif

// `workload` may be null: the shape is then not checked.
std::unique_ptr<Backend> select_backend(const BackendOptions& options, const Workload* workload) {
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
      // CUDA when it can run this request, else the CPU with a note saying why (in a build
      // without CUDA only with -v: there the CPU is the only choice, not a fallback).
      if (cuda_available(&reason)) {
#if GPT2_WITH_CUDA
        if (!options.auto_dtype && (options.weight_dtype == DType::i8 || options.weight_dtype == DType::i4))
          reason = std::string("--dtype ") + dtype_name(options.weight_dtype) + " runs on the CPU only";
        else if (workload && !cuda_unsupported_shape(*workload).empty())
          reason = cuda_unsupported_shape(*workload);
        else
          return make_cuda_backend(options);
#endif
      }
      if (kBuiltWithCuda || options.verbose) log_note("running on the CPU (" + reason + ")");
      return make_cpu_backend(options);
  }
  throw Error("internal: unknown device");
}

}  // namespace

std::unique_ptr<Backend> make_backend(const BackendOptions& options) { return select_backend(options, nullptr); }

std::unique_ptr<Backend> make_backend(const BackendOptions& options, const Workload& workload) {
  return select_backend(options, &workload);
}

}  // namespace gpt2
