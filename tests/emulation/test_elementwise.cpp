// kernels/elementwise.cu emulated: convert (bit-exact against src/common/dtype.h, specials
// included, nothing written past n) and bias_act (bias, GELU, the 16-bit copy).
#include <catch2/catch.hpp>

#include <limits>
#include <string>
#include <vector>

#include "emu_test_util.h"
#include "kernels/elementwise.cuh"

using namespace gpt2;
using namespace gpt2::emu_test;

namespace {

double ref_gelu(double x) { return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }

}  // namespace

TEST_CASE("emulated convert rounds like src/common/dtype.h and writes only n elements", "[emulation][elementwise]") {
  const float inf = std::numeric_limits<float>::infinity();
  for (int n : {1, 7, 256, 257, 3000}) {
    std::vector<float> src = random_floats(static_cast<size_t>(n), 100 + n, 300.0f);
    const float specials[] = {0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::quiet_NaN(), 65504.0f, 65520.0f,
                              -65536.0f, 1e-8f, 5.96e-8f, std::numeric_limits<float>::denorm_min(), 1.00390625f};
    for (size_t i = 0; i < std::size(specials) && i < src.size(); ++i) src[i * 3 % src.size()] = specials[i];
    DeviceArray<float> d_src(src);
    for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
      const size_t es = dtype_size(dtype);
      DeviceArray<uint8_t> dst((static_cast<size_t>(n) + 8) * es);
      cuda::convert(dst.data(), dtype, d_src.data(), n, nullptr);
      INFO("n " << n << " " << dtype_name(dtype));
      const DeviceArray<uint8_t> want = encode(src, dtype);
      CHECK(compare_bits(dst.data(), want.data(), static_cast<size_t>(n) * es) == "");
      for (size_t i = static_cast<size_t>(n) * es; i < dst.size(); ++i)
        if (dst[i] != 0xff) FAIL_CHECK("byte " << i << " past n written");
    }
  }
  CHECK_THROWS_AS(cuda::convert(nullptr, DType::i8, nullptr, 4, nullptr), Error);
}

TEST_CASE("emulated bias_act adds the bias, applies GELU and writes the 16-bit copy", "[emulation][elementwise]") {
  struct Shape {
    int rows, cols;
  };
  for (Shape s : {Shape{1, 1}, Shape{3, 5}, Shape{7, 300}, Shape{2, 1030}})
    for (bool with_bias : {false, true})
      for (bool gelu : {false, true})
        for (int copy = 0; copy < 3; ++copy) {
          const size_t n = static_cast<size_t>(s.rows) * s.cols;
          const std::vector<float> x0 = random_floats(n, 200 + n, 3.0f);
          const std::vector<float> bias = random_floats(static_cast<size_t>(s.cols), 201, 0.5f);
          DeviceArray<float> x(x0), d_bias(bias);
          DeviceArray<uint16_t> x16(n);
          const DType dtype16 = copy == 2 ? DType::f16 : DType::bf16;
          cuda::bias_act(x.data(), copy ? x16.data() : nullptr, dtype16, with_bias ? d_bias.data() : nullptr, s.rows,
                         s.cols, gelu, nullptr);
          std::vector<float> pre(n);
          std::vector<double> ref(n);
          for (size_t i = 0; i < n; ++i) {
            pre[i] = x0[i] + (with_bias ? bias[i % static_cast<size_t>(s.cols)] : 0.0f);
            ref[i] = gelu ? ref_gelu(pre[i]) : pre[i];
          }
          INFO(s.rows << "x" << s.cols << (with_bias ? " bias" : "") << (gelu ? " gelu" : "") << " copy " << copy);
          if (gelu)
            CHECK(compare(x.to_vector(), ref, 1e-6, 1e-6) == "");  // tanhf vs tanh: a few ulp
          else
            CHECK(compare_bits(x.data(), pre.data(), n) == "");  // one fp32 add: exact
          if (copy)
            for (size_t i = 0; i < n; ++i) {
              const uint16_t want = copy == 2 ? f32_to_f16(x[i]) : f32_to_bf16(x[i]);
              if (x16[i] != want) FAIL_CHECK("x16[" << i << "] is not x rounded");
            }
        }
}

TEST_CASE("emulated kernels_loadable answers true", "[emulation][elementwise]") {
  std::string reason;
  CHECK(cuda::kernels_loadable(&reason));
}

// convert and bias_act cap their grid at 65536 blocks of 256 threads; only a larger n runs the
// grid-stride loop. 16.8 M emulated threads take a few seconds: hidden, run with "[slow]".
TEST_CASE("emulated convert and bias_act past the grid cap (grid-stride loop)", "[.][slow][emulation][elementwise]") {
  const int64_t n = 65536LL * 256 + 1001;
  std::vector<float> src = random_floats(static_cast<size_t>(n), 5, 10.0f);
  DeviceArray<float> d_src(src);
  DeviceArray<uint16_t> dst(static_cast<size_t>(n));
  cuda::convert(dst.data(), DType::bf16, d_src.data(), n, nullptr);
  size_t bad = 0;
  for (size_t i = 0; i < src.size(); ++i) bad += dst[i] != f32_to_bf16(src[i]);
  CHECK(bad == 0);
  cuda::bias_act(d_src.data(), nullptr, DType::bf16, nullptr, 1001, n / 1001, false, nullptr);
  CHECK(compare_bits(d_src.data(), src.data(), static_cast<size_t>(n / 1001) * 1001) == "");
}
