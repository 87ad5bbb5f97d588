// kernels/top_k.cu through its host launchers: argmax against a left-to-right host scan, top_k
// against a host sort by sampler.cpp's more_likely order (NaN last), exact ids and value bits.
#include <catch2/catch.hpp>

#include <cuda_runtime.h>

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

#include "common/error.h"
#include "cuda_test_util.h"
#include "kernels/top_k.cuh"
#include "top_k_cases.h"

using namespace gpt2;
using namespace gpt2::top_k_test;

namespace {


}  // namespace

TEST_CASE("device argmax equals the host scan (ties to the lowest index)", "[cuda][kernel]") {
  for (int cols : {1, 7, 1023, 1024, 1025, 50257}) {
    const int rows = 3;
    std::vector<float> logits = test::random_vector(static_cast<size_t>(rows) * cols, 900 + cols);
    if (cols > 10) {
      logits[static_cast<size_t>(cols) + 5] = 50.0f;  // row 1: a tie between 5 and cols - 1
      logits[static_cast<size_t>(cols) + cols - 1] = 50.0f;
      logits[2 * static_cast<size_t>(cols) + 3] = std::numeric_limits<float>::quiet_NaN();
    }
    float* d_logits = nullptr;
    int32_t* d_out = nullptr;
    REQUIRE(cudaMalloc(&d_logits, logits.size() * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMalloc(&d_out, rows * sizeof(int32_t)) == cudaSuccess);
    REQUIRE(cudaMemcpy(d_logits, logits.data(), logits.size() * sizeof(float), cudaMemcpyHostToDevice) ==
            cudaSuccess);
    REQUIRE(cudaMemset(d_out, 0xff, rows * sizeof(int32_t)) == cudaSuccess);  // poison: -1
    cuda::argmax(d_out, d_logits, rows, cols, nullptr);
    std::vector<int32_t> got(rows);
    REQUIRE(cudaMemcpy(got.data(), d_out, rows * sizeof(int32_t), cudaMemcpyDeviceToHost) == cudaSuccess);
    cudaFree(d_logits);
    cudaFree(d_out);
    for (int r = 0; r < rows; ++r) {
      INFO("cols " << cols << " row " << r);
      CHECK(got[r] == host_argmax(logits.data() + static_cast<size_t>(r) * cols, cols));
    }
    if (cols > 10) CHECK(got[1] == 5);
  }
}

TEST_CASE("device top_k equals the host sort by more_likely (ids and value bits)", "[cuda][kernel]") {
  for (const TopKCase& c : top_k_cases()) {
    INFO(c.name << ": rows " << c.rows << " cols " << c.cols << " ld " << c.ld << " k " << c.k);
    const size_t n_out = static_cast<size_t>(c.rows) * c.k;
    float *d_logits = nullptr, *d_values = nullptr;
    int32_t *d_ids = nullptr, *d_invalid = nullptr;
    REQUIRE(cudaMalloc(&d_logits, c.logits.size() * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMalloc(&d_values, n_out * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMalloc(&d_ids, n_out * sizeof(int32_t)) == cudaSuccess);
    REQUIRE(cudaMalloc(&d_invalid, c.rows * sizeof(int32_t)) == cudaSuccess);
    REQUIRE(cudaMemcpy(d_logits, c.logits.data(), c.logits.size() * sizeof(float), cudaMemcpyHostToDevice) ==
            cudaSuccess);
    // Poison: ids and invalid -1, values NaN (0xffffffff).
    REQUIRE(cudaMemset(d_values, 0xff, n_out * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMemset(d_ids, 0xff, n_out * sizeof(int32_t)) == cudaSuccess);
    REQUIRE(cudaMemset(d_invalid, 0xff, c.rows * sizeof(int32_t)) == cudaSuccess);
    cuda::top_k(d_ids, d_values, d_invalid, d_logits, c.rows, c.cols, c.ld, c.k, nullptr);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    std::vector<int32_t> ids(n_out), invalid(static_cast<size_t>(c.rows));
    std::vector<float> values(n_out);
    REQUIRE(cudaMemcpy(ids.data(), d_ids, n_out * sizeof(int32_t), cudaMemcpyDeviceToHost) == cudaSuccess);
    REQUIRE(cudaMemcpy(values.data(), d_values, n_out * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    REQUIRE(cudaMemcpy(invalid.data(), d_invalid, c.rows * sizeof(int32_t), cudaMemcpyDeviceToHost) ==
            cudaSuccess);
    cudaFree(d_logits);
    cudaFree(d_values);
    cudaFree(d_ids);
    cudaFree(d_invalid);
    const std::string mismatches = compare_top_k(c, ids, values, invalid);
    INFO("mismatches:" << mismatches);
    CHECK(mismatches.empty());
  }
}

TEST_CASE("device top_k refuses k outside [1, min(256, cols)] and ld < cols", "[cuda][kernel]") {
  int32_t* ids = nullptr;
  CHECK_THROWS_AS(cuda::top_k(ids, nullptr, nullptr, nullptr, 1, 100, 100, 0, nullptr), Error);
  CHECK_THROWS_AS(cuda::top_k(ids, nullptr, nullptr, nullptr, 1, 100, 100, 101, nullptr), Error);
  CHECK_THROWS_AS(cuda::top_k(ids, nullptr, nullptr, nullptr, 1, 50257, 50257, 257, nullptr), Error);
  CHECK_THROWS_AS(cuda::top_k(ids, nullptr, nullptr, nullptr, 1, 100, 99, 1, nullptr), Error);
}
