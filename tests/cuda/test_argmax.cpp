// kernels/argmax.cu through its host launcher, against a left-to-right host scan.
#include <catch2/catch.hpp>

#include <cuda_runtime.h>

#include <cmath>
#include <limits>
#include <vector>

#include "cuda_test_util.h"
#include "kernels/argmax.cuh"

using namespace gpt2;

namespace {

int host_argmax(const float* row, int n) {
  int best = 0;
  for (int j = 1; j < n; ++j)
    if (row[j] > row[best] || std::isnan(row[best])) best = std::isnan(row[j]) ? best : j;
  return best;
}

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
