// kernels/top_k.cu emulated: argmax against a left-to-right host scan, top_k against a host sort
// by sampler.cpp's more_likely order (NaN last): exact ids and value bits, the invalid flag.
// The cases are tests/cuda/test_top_k.cpp's (tests/top_k_cases.h, shared by both suites). The
// first cases also run under the reverse and shuffled schedules.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "emu_test_util.h"
#include "kernels/top_k.cuh"
#include "top_k_cases.h"

using namespace gpt2;
using namespace gpt2::top_k_test;
using gpt2::emu_test::DeviceArray;

namespace {

struct TopKResult {
  std::vector<int32_t> ids, invalid;
  std::vector<float> values;
};

TopKResult run_top_k(const TopKCase& c) {
  const size_t n_out = static_cast<size_t>(c.rows) * c.k;
  DeviceArray<float> logits(c.logits), values(n_out);  // outputs poisoned: ids -1, values NaN
  DeviceArray<int32_t> ids(n_out), invalid(static_cast<size_t>(c.rows));
  cuda::top_k(ids.data(), values.data(), invalid.data(), logits.data(), c.rows, c.cols, c.ld, c.k, nullptr);
  return TopKResult{ids.to_vector(), invalid.to_vector(), values.to_vector()};
}

}  // namespace

TEST_CASE("emulated argmax equals the host scan (ties to the lowest index)", "[emulation][top_k]") {
  for (int cols : {1, 7, 1023, 1024, 1025, 50257}) {
    const int rows = 3;
    std::vector<float> logits = emu_test::random_floats(static_cast<size_t>(rows) * cols, 900 + cols);
    if (cols > 10) {
      logits[static_cast<size_t>(cols) + 5] = 50.0f;  // row 1: a tie between 5 and cols - 1
      logits[static_cast<size_t>(cols) + cols - 1] = 50.0f;
      logits[2 * static_cast<size_t>(cols) + 3] = std::numeric_limits<float>::quiet_NaN();
    }
    DeviceArray<float> d_logits(logits);
    DeviceArray<int32_t> out(static_cast<size_t>(rows));
    cuda::argmax(out.data(), d_logits.data(), rows, cols, nullptr);
    for (int r = 0; r < rows; ++r) {
      INFO("cols " << cols << " row " << r);
      CHECK(out[static_cast<size_t>(r)] == host_argmax(logits.data() + static_cast<size_t>(r) * cols, cols));
    }
    if (cols > 10) CHECK(out[1] == 5);
  }
  std::vector<float> nans(100, std::numeric_limits<float>::quiet_NaN());
  DeviceArray<float> d_nans(nans);
  DeviceArray<int32_t> out(1);
  cuda::argmax(out.data(), d_nans.data(), 1, 100, nullptr);
  CHECK(out[0] == 0);
}

TEST_CASE("emulated top_k equals the host sort by more_likely (ids and value bits)", "[emulation][top_k]") {
  int index = 0;
  for (const TopKCase& c : top_k_cases()) {
    INFO(c.name << ": rows " << c.rows << " cols " << c.cols << " ld " << c.ld << " k " << c.k);
    TopKResult r;
    if (index++ % 8 == 0) {  // every eighth case: the results must not depend on the thread order
      const std::vector<uint8_t> bytes = emu_test::run_every_schedule("top_k", [&] {
        r = run_top_k(c);
        std::vector<uint8_t> b;
        emu_test::append_bytes(b, r.ids.data(), r.ids.size());
        emu_test::append_bytes(b, r.values.data(), r.values.size());
        emu_test::append_bytes(b, r.invalid.data(), r.invalid.size());
        return b;
      });
      r = run_top_k(c);
    } else {
      r = run_top_k(c);
    }
    const std::string mismatches = compare_top_k(c, r.ids, r.values, r.invalid);
    INFO("mismatches:" << mismatches);
    CHECK(mismatches.empty());
  }
}

TEST_CASE("emulated top_k refuses k outside [1, min(256, cols)] and ld < cols", "[emulation][top_k]") {
  int32_t* ids = nullptr;
  CHECK_THROWS_AS(cuda::top_k(ids, nullptr, nullptr, nullptr, 1, 100, 100, 0, nullptr), Error);
  CHECK_THROWS_AS(cuda::top_k(ids, nullptr, nullptr, nullptr, 1, 100, 100, 101, nullptr), Error);
  CHECK_THROWS_AS(cuda::top_k(ids, nullptr, nullptr, nullptr, 1, 50257, 50257, 257, nullptr), Error);
  CHECK_THROWS_AS(cuda::top_k(ids, nullptr, nullptr, nullptr, 1, 100, 99, 1, nullptr), Error);
}
