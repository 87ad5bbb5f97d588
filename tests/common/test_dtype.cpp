#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "common/dtype.h"

using namespace gpt2;

TEST_CASE("f16 round trip is exact for every half value", "[dtype]") {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    REQUIRE(f32_to_f16(f) == h);
  }
}

TEST_CASE("f16 conversion of known values and rounding", "[dtype]") {
  CHECK(f16_to_f32(0x3c00) == 1.0f);
  CHECK(f16_to_f32(0xc000) == -2.0f);
  CHECK(f16_to_f32(0x7bff) == 65504.0f);
  CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);            // tie -> even
  CHECK(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);        // tie -> even (up)
  CHECK(f32_to_f16(70000.0f) == 0x7c00);
  CHECK(f32_to_f16(std::ldexp(1.0f, -26)) == 0x0000);
  CHECK(std::isnan(f16_to_f32(f32_to_f16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST_CASE("bf16 conversion rounds to nearest even", "[dtype]") {
  CHECK(bf16_to_f32(0x3f80) == 1.0f);
  CHECK(f32_to_bf16(1.0f) == 0x3f80);
  CHECK(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);       // tie -> even
  CHECK(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);   // tie -> even (up)
  CHECK(f32_to_bf16(-3.140625f) == 0xc049);
}
