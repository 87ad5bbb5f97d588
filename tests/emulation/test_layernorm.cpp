// kernels/layernorm.cu emulated: LayerNorm and residual add + LayerNorm against a float64
// reference, at widths that are not multiples of the block's 128 float4 lanes and up to the
// 2048 maximum, with GPT-2-like outliers in the residual stream.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "emu_test_util.h"
#include "kernels/layernorm.cuh"

using namespace gpt2;
using namespace gpt2::emu_test;

namespace {

// out = (x - mean) / sqrt(var + eps) * g + b per row, in float64.
std::vector<double> ref_layernorm(const std::vector<float>& x, int rows, int cols, const std::vector<float>& g,
                                  const std::vector<float>& b, double eps) {
  std::vector<double> out(x.size());
  for (int r = 0; r < rows; ++r) {
    const float* row = x.data() + static_cast<size_t>(r) * cols;
    double mean = 0, var = 0;
    for (int c = 0; c < cols; ++c) mean += row[c];
    mean /= cols;
    for (int c = 0; c < cols; ++c) var += (row[c] - mean) * (row[c] - mean);
    var /= cols;
    for (int c = 0; c < cols; ++c)
      out[static_cast<size_t>(r) * cols + c] = (row[c] - mean) / std::sqrt(var + eps) * g[static_cast<size_t>(c)] +
                                               b[static_cast<size_t>(c)];
  }
  return out;
}

enum class Copy { none, bf16, f16 };

void check_layernorm(int rows, int cols, bool with_delta, Copy copy) {
  const float eps = 1e-5f;
  const size_t n = static_cast<size_t>(rows) * cols;
  std::vector<float> x0 = random_floats(n, 11 + cols + rows, 2.0f, 0.3f);
  x0[0] *= 150.0f;  // an outlier dimension, as in GPT-2's residual stream
  if (n > 7) x0[7] = -400.0f;
  const std::vector<float> delta0 = random_floats(n, 12 + cols, 0.5f);
  const std::vector<float> g = random_floats(static_cast<size_t>(cols), 13, 0.2f, 1.0f);
  const std::vector<float> b = random_floats(static_cast<size_t>(cols), 14, 0.1f);
  DeviceArray<float> x(x0), delta(delta0), dg(g), db(b), out(n);
  DeviceArray<uint16_t> out16(n);
  const DType dtype16 = copy == Copy::f16 ? DType::f16 : DType::bf16;
  cuda::layernorm(out.data(), copy == Copy::none ? nullptr : out16.data(), dtype16, x.data(),
                  with_delta ? delta.data() : nullptr, dg.data(), db.data(), rows, cols, eps, /*pdl=*/true, nullptr);

  std::vector<float> sum = x0;
  if (with_delta)
    for (size_t i = 0; i < n; ++i) sum[i] = x0[i] + delta0[i];
  INFO("rows " << rows << " cols " << cols << (with_delta ? " add+layernorm" : " layernorm") << " copy "
               << static_cast<int>(copy));
  CHECK(compare_bits(x.data(), sum.data(), n) == "");  // the residual keeps x + delta, exactly
  // fp32 statistics over <= 2048 values with outliers of 400: ~1e-5 of the output scale.
  CHECK(compare(out.to_vector(), ref_layernorm(sum, rows, cols, g, b, eps), 2e-5, 2e-5) == "");
  if (copy != Copy::none)
    for (size_t i = 0; i < n; ++i) {
      const uint16_t want = copy == Copy::f16 ? f32_to_f16(out[i]) : f32_to_bf16(out[i]);
      if (out16[i] != want) FAIL_CHECK("out16[" << i << "] is not out rounded");
    }
}

}  // namespace

TEST_CASE("emulated layernorm and add+layernorm match a float64 reference", "[emulation][layernorm]") {
  for (int cols : {4, 12, 100, 128, 516, 768, 2048})
    for (int rows : {1, 3})
      for (bool with_delta : {false, true})
        for (Copy copy : {Copy::none, Copy::bf16, Copy::f16}) check_layernorm(rows, cols, with_delta, copy);
}

TEST_CASE("emulated layernorm of a constant row is beta exactly", "[emulation][layernorm]") {
  const int cols = 768;
  std::vector<float> x0(static_cast<size_t>(cols), 0.5f);
  const std::vector<float> g = random_floats(static_cast<size_t>(cols), 1), b = random_floats(static_cast<size_t>(cols), 2);
  DeviceArray<float> x(x0), dg(g), db(b), out(static_cast<size_t>(cols));
  cuda::layernorm(out.data(), nullptr, DType::bf16, x.data(), nullptr, dg.data(), db.data(), 1, cols, 1e-5f, false,
                  nullptr);
  CHECK(compare_bits(out.data(), b.data(), b.size()) == "");
}

TEST_CASE("emulated layernorm refuses widths it cannot hold", "[emulation][layernorm]") {
  DeviceArray<float> buf(4096);
  CHECK_THROWS_AS(cuda::layernorm(buf.data(), nullptr, DType::bf16, buf.data(), nullptr, buf.data(), buf.data(), 1, 6,
                                  1e-5f, false, nullptr),
                  Error);
  CHECK_THROWS_AS(cuda::layernorm(buf.data(), nullptr, DType::bf16, buf.data(), nullptr, buf.data(), buf.data(), 1,
                                  2052, 1e-5f, false, nullptr),
                  Error);
  CHECK_NOTHROW(cuda::layernorm(buf.data(), nullptr, DType::bf16, buf.data(), nullptr, buf.data(), buf.data(), 0, 768,
                                1e-5f, false, nullptr));
}
