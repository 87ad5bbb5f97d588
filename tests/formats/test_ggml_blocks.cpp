// ggml's block formats decode exactly as the format defines: hand-made blocks whose values are
// worked out by hand from the layouts in model/ggml_blocks.h (the ggml reference), and the
// integer form of the symmetric types equals their dequantization bit for bit.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "model/ggml_blocks.h"

using namespace gpt2;

namespace {

void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) { std::memcpy(&b[at], &v, 2); }
void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(&b[at], &v, 4); }

constexpr uint16_t kHalf = 0x3800, kOne = 0x3C00, kTwo = 0x4000, kMinusOne = 0xBC00, kQuarter = 0x3400;

std::vector<float> decode(GgmlType type, const std::vector<uint8_t>& block) {
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
  REQUIRE(info != nullptr);
  REQUIRE(block.size() == info->block_bytes);
  std::vector<float> y(static_cast<size_t>(info->block_size));
  ggml_dequantize(type, block.data(), y.data(), info->block_size);
  return y;
}

}  // namespace

TEST_CASE("the type table names every ggml type and sizes the supported ones") {
  struct Want {
    uint32_t id;
    const char* name;
    int64_t block;
    size_t bytes;
  };
  for (const Want& w : {Want{0, "F32", 1, 4}, {1, "F16", 1, 2}, {2, "Q4_0", 32, 18}, {3, "Q4_1", 32, 20},
                        {6, "Q5_0", 32, 22}, {7, "Q5_1", 32, 24}, {8, "Q8_0", 32, 34}, {12, "Q4_K", 256, 144},
                        {13, "Q5_K", 256, 176}, {14, "Q6_K", 256, 210}, {30, "BF16", 1, 2}}) {
    const GgmlTypeInfo* t = ggml_type_info(w.id);
    REQUIRE(t != nullptr);
    CHECK(std::string(t->name) == w.name);
    CHECK(t->supported);
    CHECK(t->block_size == w.block);
    CHECK(t->block_bytes == w.bytes);
  }
  CHECK(std::string(ggml_type_info(16)->name) == "IQ2_XXS");
  CHECK_FALSE(ggml_type_info(16)->supported);
  CHECK_FALSE(ggml_type_info(10)->supported);  // Q2_K
  CHECK(ggml_type_info(40) == nullptr);
}

TEST_CASE("Q8_0: x = d * q") {
  std::vector<uint8_t> b(34, 0);
  put16(b, 0, kHalf);
  b[2] = 1, b[3] = static_cast<uint8_t>(-2), b[4] = 127, b[5] = 0x80;  // -128
  const std::vector<float> y = decode(GgmlType::q8_0, b);
  CHECK(y[0] == 0.5f);
  CHECK(y[1] == -1.0f);
  CHECK(y[2] == 63.5f);
  CHECK(y[3] == -64.0f);
  CHECK(y[4] == 0.0f);
}

TEST_CASE("Q4_0: x = d * (nibble - 8); value j in the low nibble of byte j, j + 16 in its high nibble") {
  std::vector<uint8_t> b(18, 0x88);
  put16(b, 0, kTwo);
  b[2] = 0x9F;  // x[0] = (15 - 8) * 2, x[16] = (9 - 8) * 2
  b[3] = 0x08;  // x[1] = 0, x[17] = (0 - 8) * 2
  const std::vector<float> y = decode(GgmlType::q4_0, b);
  CHECK(y[0] == 14.0f);
  CHECK(y[16] == 2.0f);
  CHECK(y[1] == 0.0f);
  CHECK(y[17] == -16.0f);
  CHECK(y[5] == 0.0f);
}

TEST_CASE("Q4_1: x = d * nibble + m") {
  std::vector<uint8_t> b(20, 0);
  put16(b, 0, kHalf);
  put16(b, 2, kMinusOne);
  b[4] = 0x3A;  // x[0] = 10 * 0.5 - 1, x[16] = 3 * 0.5 - 1
  const std::vector<float> y = decode(GgmlType::q4_1, b);
  CHECK(y[0] == 4.0f);
  CHECK(y[16] == 0.5f);
  CHECK(y[1] == -1.0f);
}

TEST_CASE("Q5_0: x = d * ((nibble | fifth bit << 4) - 16), fifth bits in a u32 (j and j + 16)") {
  std::vector<uint8_t> b(22, 0);
  put16(b, 0, kOne);
  put32(b, 2, (1u << 0) | (1u << 16) | (1u << 17));
  b[6] = 0x21;  // x[0] = (1 | 16) - 16 = 1, x[16] = (2 | 16) - 16 = 2
  b[7] = 0x00;  // x[1] = 0 - 16, x[17] = (0 | 16) - 16 = 0
  const std::vector<float> y = decode(GgmlType::q5_0, b);
  CHECK(y[0] == 1.0f);
  CHECK(y[16] == 2.0f);
  CHECK(y[1] == -16.0f);
  CHECK(y[17] == 0.0f);
}

TEST_CASE("Q5_1: x = d * (nibble | fifth bit << 4) + m") {
  std::vector<uint8_t> b(24, 0);
  put16(b, 0, kQuarter);
  put16(b, 2, kOne);
  put32(b, 4, 1u << 3);
  b[8 + 3] = 0x05;  // x[3] = (5 | 16) * 0.25 + 1, x[19] = 0 * 0.25 + 1
  const std::vector<float> y = decode(GgmlType::q5_1, b);
  CHECK(y[3] == 6.25f);
  CHECK(y[19] == 1.0f);
  CHECK(y[0] == 1.0f);
}

TEST_CASE("Q6_K: x = d * sc * ((4 low bits | 2 high bits << 4) - 32) per sub-block of 16") {
  std::vector<uint8_t> b(210, 0);
  // ql[0]: low nibble -> y[0], high nibble -> y[64]; ql[32] -> y[32], y[96]; qh[0] bits 0-1,
  // 2-3, 4-5, 6-7 -> y[0], y[32], y[64], y[96].
  b[0] = 0x21;
  b[128] = 0xE4;  // 11 10 01 00
  const int8_t sc[16] = {2, 0, -3, 0, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 5};
  std::memcpy(&b[192], sc, 16);
  put16(b, 208, kHalf);
  const std::vector<float> y = decode(GgmlType::q6_k, b);
  CHECK(y[0] == 0.5f * 2 * (1 - 32));           // -31
  CHECK(y[32] == 0.5f * -3 * ((0 | 16) - 32));  // 24
  CHECK(y[64] == 0.5f * 1 * ((2 | 32) - 32));   // 1
  CHECK(y[96] == 0.5f * 4 * ((0 | 48) - 32));   // 32
  CHECK(y[1] == 0.5f * 2 * -32);                // q = 0 - 32 in sub-block 0
  CHECK(y[16] == 0.0f);                         // sub-block 1: sc 0
  CHECK(y[255] == 0.5f * 5 * -32);              // the last sub-block of the second half
}

TEST_CASE("Q4_K: x = d * sc * nibble - dmin * m, 6-bit scales and mins packed in 12 bytes") {
  std::vector<uint8_t> b(144, 0);
  put16(b, 0, kOne);   // d
  put16(b, 2, kHalf);  // dmin
  uint8_t* s = &b[4];
  s[0] = 3 | 0x40;  // sc0 = 3; bits 6-7 are sc4's high bits (16)
  s[4] = 2;         // m0 = 2
  s[1] = 5;         // sc1 = 5
  s[5] = 4;         // m1 = 4
  s[8] = 0x21;      // sc4 low 4 bits = 1, m4 low 4 bits = 2
  uint8_t* qs = &b[16];
  qs[0] = 0x72;   // y[0] = 1 * 3 * 2 - 0.5 * 2; y[32] = 1 * 5 * 7 - 0.5 * 4
  qs[64] = 0x01;  // sub-block 4 is the low nibbles of qs[64..95]: y[128] = 1 * 17 * 1 - 0.5 * 2
  const std::vector<float> y = decode(GgmlType::q4_k, b);
  CHECK(y[0] == 5.0f);
  CHECK(y[32] == 33.0f);
  CHECK(y[128] == 16.0f);
  CHECK(y[1] == -1.0f);  // nibble 0: -dmin * m0
}

TEST_CASE("Q5_K: as Q4_K with a fifth bit per value from qh (two bits per 64 values)") {
  std::vector<uint8_t> b(176, 0);
  put16(b, 0, kOne);
  put16(b, 2, 0);  // dmin 0
  uint8_t* s = &b[4];
  s[0] = 1, s[1] = 2, s[2] = 3;
  uint8_t* qh = &b[16];
  uint8_t* ql = &b[48];
  qh[0] = 0x07;  // bit 0: y[0] + 16; bit 1: y[32] + 16; bit 2: y[64] + 16
  ql[0] = 0x03;  // y[0] = 1 * (3 + 16), y[32] = 2 * (0 + 16)
  ql[32] = 0x01;  // y[64] = 3 * (1 + 16)
  const std::vector<float> y = decode(GgmlType::q5_k, b);
  CHECK(y[0] == 19.0f);
  CHECK(y[32] == 32.0f);
  CHECK(y[64] == 51.0f);
  CHECK(y[1] == 0.0f);
}

TEST_CASE("the integer form of Q8_0, Q4_0, Q5_0 and Q6_K is exactly their dequantization") {
  std::mt19937 rng(7);
  for (GgmlType type : {GgmlType::q8_0, GgmlType::q4_0, GgmlType::q5_0, GgmlType::q6_k}) {
    DType dtype;
    int32_t group = 0;
    REQUIRE(ggml_integer_form(type, &dtype, &group));
    CHECK(dtype == (type == GgmlType::q4_0 ? DType::i4 : DType::i8));
    CHECK(group == (type == GgmlType::q6_k ? 16 : 32));
    const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
    const int64_t n = info->block_size * 8;
    std::vector<uint8_t> bytes(info->block_bytes * 8);
    for (uint8_t& x : bytes) x = static_cast<uint8_t>(rng());
    for (int blk = 0; blk < 8; ++blk) {  // finite scales: f16 with a small exponent
      const size_t at = blk * info->block_bytes + (type == GgmlType::q6_k ? 208 : 0);
      put16(bytes, at, static_cast<uint16_t>(0x2000 + rng() % 0x1800));
    }
    std::vector<float> y(static_cast<size_t>(n)), s(static_cast<size_t>(n / group));
    std::vector<int8_t> q(static_cast<size_t>(n));
    ggml_dequantize(type, bytes.data(), y.data(), n);
    ggml_to_integers(type, bytes.data(), q.data(), s.data(), n);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float v = static_cast<float>(q[i]) * s[i / group];
      wrong += std::memcmp(&v, &y[i], 4) != 0;
      if (type == GgmlType::q4_0) wrong += q[i] < -8 || q[i] > 7;
    }
    INFO(info->name);
    CHECK(wrong == 0);
  }
}
