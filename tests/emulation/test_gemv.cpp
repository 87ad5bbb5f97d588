// kernels/gemv.cu emulated: the decode GEMV for fp32/fp16/bf16 weights, 1 to 8 input rows
// (9 refused), widths below one lane chunk and not multiples of it, odd output counts (the
// past-the-end row of a warp's pair), bias and GELU; a grid smaller than the rows (few SMs)
// so the grid-stride loop and the prefetched first chunk meet; small integers for an exact
// answer whatever the summation order.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "emu_test_util.h"
#include "kernels/gemv.cuh"

using namespace gpt2;
using namespace gpt2::emu_test;

namespace {

double ref_gelu(double x) { return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }

struct GemvCase {
  int rows, in, out;
  DType dtype;
  bool bias, gelu;
};

// Runs one case with weights `w` (already representable in the dtype) and inputs `x`; returns
// the output and the reference with its error scale (sum |w x| + |bias| per output).
void run_gemv(const GemvCase& c, const std::vector<float>& w, const std::vector<float>& x,
              const std::vector<float>& bias, std::vector<float>& got, std::vector<double>& ref,
              std::vector<double>& scale) {
  DeviceArray<uint8_t> dw = encode(w, c.dtype);
  DeviceArray<float> dx(x), db(bias), out(static_cast<size_t>(c.rows) * c.out);
  cuda::linear_gemv(out.data(), dx.data(), dw.data(), c.dtype, c.bias ? db.data() : nullptr, c.rows, c.in, c.out,
                    c.gelu, /*pdl=*/true, nullptr);
  got = out.to_vector();
  ref.assign(got.size(), 0.0);
  scale.assign(got.size(), 0.0);
  for (int r = 0; r < c.rows; ++r)
    for (int o = 0; o < c.out; ++o) {
      double s = c.bias ? bias[static_cast<size_t>(o)] : 0.0, a = std::fabs(s);
      for (int i = 0; i < c.in; ++i) {
        const double p = static_cast<double>(w[static_cast<size_t>(o) * c.in + i]) * x[static_cast<size_t>(r) * c.in + i];
        s += p;
        a += std::fabs(p);
      }
      ref[static_cast<size_t>(r) * c.out + o] = c.gelu ? ref_gelu(s) : s;
      scale[static_cast<size_t>(r) * c.out + o] = a;
    }
}

std::string describe(const GemvCase& c) {
  return std::to_string(c.rows) + " x " + std::to_string(c.in) + " -> " + std::to_string(c.out) + " " +
         dtype_name(c.dtype) + (c.bias ? " bias" : "") + (c.gelu ? " gelu" : "");
}

void check_random(const GemvCase& c) {
  std::vector<float> w = random_floats(static_cast<size_t>(c.out) * c.in, 300 + c.in + c.out, 0.05f);
  for (float& v : w) v = round_to(v, c.dtype);
  const std::vector<float> x = random_floats(static_cast<size_t>(c.rows) * c.in, 301 + c.rows);
  const std::vector<float> bias = random_floats(static_cast<size_t>(c.out), 302, 0.1f);
  std::vector<float> got;
  std::vector<double> ref, scale;
  run_gemv(c, w, x, bias, got, ref, scale);
  INFO(describe(c));
  // fp32 products and sums: within ~I * 2^-24 of sum |w x| (a bound, not the typical error).
  std::string bad;
  for (size_t i = 0; i < got.size() && bad.empty(); ++i) {
    const double tol = 1e-7 * (c.in + 8) * scale[i] + 1e-7;
    if (!(std::fabs(got[i] - ref[i]) <= tol))
      bad = "[" + std::to_string(i) + "] got " + std::to_string(got[i]) + " want " + std::to_string(ref[i]);
  }
  CHECK(bad == "");
}

}  // namespace

TEST_CASE("emulated linear_gemv matches a float64 reference", "[emulation][gemv]") {
  REQUIRE(cuda::gemv_prepare(200 * 1024) >= 48 * 1024);
  for (DType dtype : {DType::f32, DType::f16, DType::bf16})
    for (int rows : {1, 2, 3, 5, 8})
      for (int in : {8, 264, 776})
        for (int out : {1, 17, 100}) check_random(GemvCase{rows, in, out, dtype, (out + rows) % 2 == 0, out == 17});
  // every row count once at gpt2's width
  for (int rows = 1; rows <= 8; ++rows) check_random(GemvCase{rows, 768, 40, DType::bf16, true, rows == 4});
}

TEST_CASE("emulated linear_gemv refuses what it cannot stage", "[emulation][gemv]") {
  REQUIRE(cuda::gemv_prepare(200 * 1024) >= 48 * 1024);
  CHECK_FALSE(cuda::gemv_fits(9, 768));
  CHECK_FALSE(cuda::gemv_fits(1, 100));
  CHECK(cuda::gemv_fits(8, 768));
  DeviceArray<float> buf(9 * 768);
  CHECK_THROWS_AS(cuda::linear_gemv(buf.data(), buf.data(), buf.data(), DType::f32, nullptr, 9, 768, 4, false, false,
                                    nullptr),
                  Error);
}

TEST_CASE("emulated linear_gemv is exact on small integers, with a grid smaller than the rows",
          "[emulation][gemv]") {
  gpt2emu::DeviceProps& props = gpt2emu::device_props();
  const int saved = props.sm_count;
  for (int sm_count : {132, 1}) {
    props.sm_count = sm_count;  // one SM: at most 8 blocks of 16 rows, so 300 rows loop
    REQUIRE(cuda::gemv_prepare(200 * 1024) >= 48 * 1024);
    for (DType dtype : {DType::f32, DType::f16, DType::bf16})
      for (int rows : {1, 6}) {
        const GemvCase c{rows, 520, 300, dtype, true, false};
        std::mt19937 rng(static_cast<unsigned>(rows + sm_count));
        std::vector<float> w(static_cast<size_t>(c.out) * c.in), x(static_cast<size_t>(rows) * c.in),
            bias(static_cast<size_t>(c.out));
        for (float& v : w) v = static_cast<float>(static_cast<int>(rng() % 5) - 2);
        for (float& v : x) v = static_cast<float>(static_cast<int>(rng() % 7) - 3);
        for (float& v : bias) v = static_cast<float>(static_cast<int>(rng() % 9) - 4);
        std::vector<float> got;
        std::vector<double> ref, scale;
        run_gemv(c, w, x, bias, got, ref, scale);
        INFO(describe(c) << ", " << sm_count << " SMs");
        CHECK(compare(got, ref, 0.0, 0.0) == "");
      }
  }
  props.sm_count = saved;
  REQUIRE(cuda::gemv_prepare(200 * 1024) >= 48 * 1024);
}
