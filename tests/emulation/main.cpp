// The emulation suite's main: says once what the suite is (and is not), then runs Catch2.
//
// tests/emulation runs the CUDA kernels' own source (kernels/*.cu, rewritten by rewrite_cu.cpp)
// on the CPU against float64 or exact references: a check of their logic (indexing, masking,
// barriers, warp collectives, the ragged batch layout), not of their speed or of the device's
// memory model and math library. Knobs, in the environment:
//   GPT2_EMU_ORDER=forward|reverse|shuffle[:SEED]  order of a block's threads between syncs
//   GPT2_EMU_WORKERS=N                             host threads running blocks (default: cores, <= 4)
//   GPT2_EMU_STACK_KB=N                            stack per emulated thread (default 128)
// "[slow]" runs the hidden grid-stride test (16.8 M emulated threads). Sanitizers work:
// -DCMAKE_CXX_FLAGS="-fsanitize=address" or "-fsanitize=undefined -fno-sanitize=null" (GCC's
// null check of a thread_local misfires after the linker's TLS relaxation), with the matching
// -DCMAKE_EXE_LINKER_FLAGS; -DGPT2_EMU_UCONTEXT uses ucontext instead of the x86-64 switch.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>

#include "shim/gpt2emu.h"

int main(int argc, char** argv) {
  std::printf(
      "NOTE: CUDA kernel logic emulated on the CPU (one host thread per CUDA thread, run as fibers); this is a "
      "logic check, not a substitute for running on a GPU.\n");
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  const int failed = Catch::Session().run(argc, argv);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const gpt2emu::Stats s = gpt2emu::stats();
  std::printf("emulation: %llu launches, %llu blocks, %llu CUDA threads, %llu fiber switches in %.1f s\n",
              static_cast<unsigned long long>(s.launches), static_cast<unsigned long long>(s.blocks),
              static_cast<unsigned long long>(s.threads), static_cast<unsigned long long>(s.switches), seconds);
  return failed;
}
