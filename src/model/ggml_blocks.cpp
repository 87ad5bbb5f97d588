// ggml's block formats (ggml_blocks.h): the type table, dequantization in the reference order
// of operations, and the exact integer form of the symmetric types.
#include "model/ggml_blocks.h"

#include <cstring>

#include "common/error.h"

namespace gpt2 {

namespace {

// Every type id ggml has used; the unsupported ones only for their names. (4, 5: Q4_2 and Q4_3,
// removed in 2023; 31-33 and 36-38: the repacked Q4_0/IQ4_NL layouts, removed from files.)
const GgmlTypeInfo kTypes[] = {
    {"F32", 1, 4, true},        {"F16", 1, 2, true},       {"Q4_0", 32, 18, true},    {"Q4_1", 32, 20, true},
    {"Q4_2", 0, 0, false},      {"Q4_3", 0, 0, false},     {"Q5_0", 32, 22, true},    {"Q5_1", 32, 24, true},
    {"Q8_0", 32, 34, true},     {"Q8_1", 0, 0, false},     {"Q2_K", 0, 0, false},     {"Q3_K", 0, 0, false},
    {"Q4_K", 256, 144, true},   {"Q5_K", 256, 176, true},  {"Q6_K", 256, 210, true},  {"Q8_K", 0, 0, false},
    {"IQ2_XXS", 0, 0, false},   {"IQ2_XS", 0, 0, false},   {"IQ3_XXS", 0, 0, false},  {"IQ1_S", 0, 0, false},
    {"IQ4_NL", 0, 0, false},    {"IQ3_S", 0, 0, false},    {"IQ2_S", 0, 0, false},    {"IQ4_XS", 0, 0, false},
    {"I8", 0, 0, false},        {"I16", 0, 0, false},      {"I32", 0, 0, false},      {"I64", 0, 0, false},
    {"F64", 0, 0, false},       {"IQ1_M", 0, 0, false},    {"BF16", 1, 2, true},      {"Q4_0_4_4", 0, 0, false},
    {"Q4_0_4_8", 0, 0, false},  {"Q4_0_8_8", 0, 0, false}, {"TQ1_0", 0, 0, false},    {"TQ2_0", 0, 0, false},
    {"IQ4_NL_4_4", 0, 0, false}, {"IQ4_NL_4_8", 0, 0, false}, {"IQ4_NL_8_8", 0, 0, false}, {"MXFP4", 0, 0, false},
};

float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes
// (ggml-quants.c get_scale_min_k4).
void scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// The integers of one block and its scale(s): Q8_0, Q4_0, Q5_0 (one scale), Q6_K (16 scales).
void block_integers(GgmlType type, const uint8_t* b, int8_t* q, float* scales) {
  switch (type) {
    case GgmlType::q8_0:
      scales[0] = half(b);
      std::memcpy(q, b + 2, 32);
      return;
    case GgmlType::q4_0:
      scales[0] = half(b);
      for (int j = 0; j < 16; ++j) {
        q[j] = static_cast<int8_t>((b[2 + j] & 0x0F) - 8);
        q[j + 16] = static_cast<int8_t>((b[2 + j] >> 4) - 8);
      }
      return;
    case GgmlType::q5_0: {
      scales[0] = half(b);
      uint32_t qh;
      std::memcpy(&qh, b + 2, 4);
      for (int j = 0; j < 16; ++j) {
        const int xh_0 = static_cast<int>(((qh >> (j + 0)) << 4) & 0x10);
        const int xh_1 = static_cast<int>((qh >> (j + 12)) & 0x10);
        q[j] = static_cast<int8_t>(((b[6 + j] & 0x0F) | xh_0) - 16);
        q[j + 16] = static_cast<int8_t>(((b[6 + j] >> 4) | xh_1) - 16);
      }
      return;
    }
    case GgmlType::q6_k: {
      const uint8_t* ql = b;
      const uint8_t* qh = b + 128;
      const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
      const float d = half(b + 208);
      for (int i = 0; i < 16; ++i) scales[i] = d * static_cast<float>(sc[i]);  // exact: 11 x 8 significant bits
      for (int n = 0; n < 256; n += 128) {
        for (int l = 0; l < 32; ++l) {
          q[n + l + 0] = static_cast<int8_t>(((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
          q[n + l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
          q[n + l + 64] = static_cast<int8_t>(((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
          q[n + l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
        ql += 64;
        qh += 32;
      }
      return;
    }
    default:
      throw Error("internal: GGML type without an integer form");
  }
}

// One block of any supported quantized type to fp32, as ggml-quants.c dequantize_row_* does it.
void dequantize_block(GgmlType type, const uint8_t* b, float* y) {
  switch (type) {
    case GgmlType::q8_0: {
      const float d = half(b);
      for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
      return;
    }
    case GgmlType::q4_0: {
      const float d = half(b);
      for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((b[2 + j] & 0x0F) - 8) * d;
        y[j + 16] = static_cast<float>((b[2 + j] >> 4) - 8) * d;
      }
      return;
    }
    case GgmlType::q4_1: {
      const float d = half(b), m = half(b + 2);
      for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(b[4 + j] & 0x0F) * d + m;
        y[j + 16] = static_cast<float>(b[4 + j] >> 4) * d + m;
      }
      return;
    }
    case GgmlType::q5_0: {
      int8_t q[32];
      float d;
      block_integers(type, b, q, &d);
      for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(q[j]) * d;
      return;
    }
    case GgmlType::q5_1: {
      const float d = half(b), m = half(b + 2);
      uint32_t qh;
      std::memcpy(&qh, b + 4, 4);
      for (int j = 0; j < 16; ++j) {
        const int xh_0 = static_cast<int>(((qh >> (j + 0)) << 4) & 0x10);
        const int xh_1 = static_cast<int>((qh >> (j + 12)) & 0x10);
        y[j] = static_cast<float>((b[8 + j] & 0x0F) | xh_0) * d + m;
        y[j + 16] = static_cast<float>((b[8 + j] >> 4) | xh_1) * d + m;
      }
      return;
    }
    case GgmlType::q4_k: {
      const float d = half(b), min = half(b + 2);
      const uint8_t* scales = b + 4;
      const uint8_t* q = b + 16;
      int is = 0;
      uint8_t sc, m;
      for (int j = 0; j < 256; j += 64) {
        scale_min_k4(is + 0, scales, &sc, &m);
        const float d1 = d * sc, m1 = min * m;
        scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = min * m;
        for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
        for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
        q += 32;
        is += 2;
      }
      return;
    }
    case GgmlType::q5_k: {
      const float d = half(b), min = half(b + 2);
      const uint8_t* scales = b + 4;
      const uint8_t* qh = b + 16;
      const uint8_t* ql = b + 48;
      int is = 0;
      uint8_t sc, m;
      uint8_t u1 = 1, u2 = 2;
      for (int j = 0; j < 256; j += 64) {
        scale_min_k4(is + 0, scales, &sc, &m);
        const float d1 = d * sc, m1 = min * m;
        scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = min * m;
        for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        ql += 32;
        is += 2;
        u1 = static_cast<uint8_t>(u1 << 2);
        u2 = static_cast<uint8_t>(u2 << 2);
      }
      return;
    }
    case GgmlType::q6_k: {
      // ggml: y = d * sc * q, i.e. (d * sc) * q: exactly the integer form's product.
      int8_t q[256];
      float s[16];
      block_integers(type, b, q, s);
      for (int i = 0; i < 256; ++i) y[i] = s[i / 16] * static_cast<float>(q[i]);
      return;
    }
    default:
      throw Error("internal: not a quantized GGML type");
  }
}

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
  if (id >= sizeof(kTypes) / sizeof(kTypes[0])) return nullptr;
  return &kTypes[id];
}

void ggml_dequantize(GgmlType type, const uint8_t* src, float* dst, int64_t n) {
  switch (type) {
    case GgmlType::f32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::f16:
      for (int64_t i = 0; i < n; ++i) dst[i] = half(src + 2 * i);
      return;
    case GgmlType::bf16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    default:
      break;
  }
  const GgmlTypeInfo& info = *ggml_type_info(static_cast<uint32_t>(type));
  if (!info.supported || n % info.block_size != 0) throw Error("internal: ggml_dequantize of a partial block");
  for (int64_t i = 0; i < n / info.block_size; ++i)
    dequantize_block(type, src + static_cast<size_t>(i) * info.block_bytes, dst + i * info.block_size);
}

bool ggml_integer_form(GgmlType type, DType* dtype, int32_t* group_size) {
  switch (type) {
    case GgmlType::q4_0: *dtype = DType::i4, *group_size = 32; return true;
    case GgmlType::q8_0:
    case GgmlType::q5_0: *dtype = DType::i8, *group_size = 32; return true;
    case GgmlType::q6_k: *dtype = DType::i8, *group_size = 16; return true;
    default: return false;
  }
}

void ggml_to_integers(GgmlType type, const uint8_t* src, int8_t* q, float* scales, int64_t n) {
  DType dtype;
  int32_t group = 0;
  if (!ggml_integer_form(type, &dtype, &group)) throw Error("internal: GGML type without an integer form");
  const GgmlTypeInfo& info = *ggml_type_info(static_cast<uint32_t>(type));
  if (n % info.block_size != 0) throw Error("internal: ggml_to_integers of a partial block");
  const int64_t groups_per_block = info.block_size / group;
  for (int64_t i = 0; i < n / info.block_size; ++i)
    block_integers(type, src + static_cast<size_t>(i) * info.block_bytes, q + i * info.block_size,
                   scales + i * groups_per_block);
}

}  // namespace gpt2
