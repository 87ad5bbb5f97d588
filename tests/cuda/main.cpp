// The CUDA test program's entry point. Catch2 v2 has no "skip": without a usable device the
// program prints the line CTest maps to "skipped" (SKIP_REGULAR_EXPRESSION in CMakeLists.txt)
// and exits 0 before any test runs. Built with GPT2_TEST_CUDA_AS_CPU (cuda_test_util.h: the
// "CUDA" side is a second CPU backend, a dry run of the harness) it runs without a device.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <string>

#include "cuda_test_util.h"
#include "runtime/cuda/cuda_backend.h"

int main(int argc, char** argv) {
#ifndef GPT2_TEST_CUDA_AS_CPU
  std::string reason;
  if (!gpt2::cuda_device_usable(&reason)) {
    std::printf("SKIPPED: no usable CUDA device (%s)\n", reason.c_str());
    return 0;
  }
#endif
  const int failed = Catch::Session().run(argc, argv);
  gpt2::test::tolerance_report();
  return failed;
}
