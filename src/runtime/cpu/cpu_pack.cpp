// Packing of linear weights into the panel layouts (cpu_kernels.h), the quantization of a linear's
// input for the integer kernels, and the run-time choice of the kernel table.
//
// fp32/bf16 panels: element (o, k) of w [O, I] at panel o / 16, offset k * 16 + o % 16.
// int8: symmetric absmax quantization per group of `group_size` consecutive k of one output,
//   scale = max|w| / 127, q = round(w / scale) in [-127, 127] (so dequantization error is at
//   most scale / 2 per weight); all-zero groups get scale 0.
// int4: ggml's Q4_0 reference quantization per group (see pack_matrix), so that fp32 weights
//   packed here and a Q4_0 GGUF made from the same weights by llama-quantize hold the same bits.
// Work is split over panels (each panel is written by one thread), so packing is deterministic.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/error.h"
#include "runtime/cpu/cpu_kernels.h"

namespace gpt2::cpu {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::generic: return "generic";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

static bool cpu_supports(Isa isa) {
#if defined(__GNUC__) && defined(__x86_64__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::generic: return true;
    case Isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("fma");
  }
  return false;
#else
  return isa == Isa::generic;
#endif
}

const KernelTable* kernels_for(Isa isa) {
  if (!cpu_supports(isa)) return nullptr;
  switch (isa) {
    case Isa::generic: return generic::table();
    case Isa::avx2: return avx2::table();
    case Isa::avx512: return avx512::table();
  }
  return nullptr;
}

const KernelTable& best_kernels(const std::string& limit_name) {
  Isa limit = Isa::avx512;
  if (limit_name == "generic") limit = Isa::generic;
  else if (limit_name == "avx2") limit = Isa::avx2;
  else if (limit_name != "avx512" && !limit_name.empty())
    throw UsageError("--cpu-isa must be generic, avx2 or avx512 (got '" + limit_name + "')");
  for (Isa isa : {Isa::avx512, Isa::avx2}) {
    if (static_cast<int>(isa) > static_cast<int>(limit)) continue;
    if (const KernelTable* t = kernels_for(isa)) return *t;
  }
  return *generic::table();
}

int64_t panel_count(int64_t out) { return (out + kPanel - 1) / kPanel; }

static bool is_int(DType t) { return t == DType::i8 || t == DType::i4; }

int64_t padded_k(DType dtype, int64_t in) { return is_int(dtype) ? (in + 3) / 4 * 4 : in; }

size_t packed_bytes(DType dtype, int64_t out, int64_t in) {
  const size_t values = static_cast<size_t>(panel_count(out) * kPanel * padded_k(dtype, in));
  if (dtype == DType::i4) return values / 2;
  return values * dtype_size(dtype);
}

size_t packed_scale_bytes(DType dtype, int64_t out, int64_t in, int32_t group_size) {
  if (!is_int(dtype)) return 0;
  const int64_t n_groups = (in + group_size - 1) / group_size;
  return static_cast<size_t>(panel_count(out) * n_groups * kPanel) * sizeof(float);
}

PackPlan pack_plan(const Tensor& src, DType backend) {
  if (!is_int(backend)) return PackPlan{backend, 0};
  if (is_int(src.dtype)) return PackPlan{src.dtype, src.group_size};
  return PackPlan{backend, backend == DType::i4 ? kInt4Group : kInt8Group};
}

// Element (o, k) of a row-major source as fp32.
static float source_at(const Tensor& src, int64_t o, int64_t k) {
  const int64_t i = o * src.cols + k;
  switch (src.dtype) {
    case DType::f32: return static_cast<const float*>(src.data)[i];
    case DType::bf16: return bf16_to_f32(static_cast<const uint16_t*>(src.data)[i]);
    case DType::f16: return f16_to_f32(static_cast<const uint16_t*>(src.data)[i]);
    case DType::i8:
    case DType::i4: {
      const int64_t n_groups = (src.cols + src.group_size - 1) / src.group_size;
      return static_cast<float>(static_cast<const int8_t*>(src.data)[i]) * src.scales[o * n_groups + k / src.group_size];
    }
    case DType::i32: break;
  }
  throw Error("internal: cannot pack a matrix of dtype " + std::string(dtype_name(src.dtype)));
}

// One group of one output quantized from fp32: q[0, n) and the scale.
static float quantize_int8(const float* x, int64_t n, int8_t* q) {
  float amax = 0.0f;
  for (int64_t k = 0; k < n; ++k) amax = std::max(amax, std::fabs(x[k]));
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  for (int64_t k = 0; k < n; ++k)
    q[k] = static_cast<int8_t>(std::max(-127.0f, std::min(127.0f, std::nearbyint(x[k] * inv))));
  return amax / 127.0f;
}

// ggml-quants.c quantize_row_q4_0_ref for one block of n <= 32 values (the last group of a row
// may be shorter); the scale is stored rounded to fp16, as in a Q4_0 block.
static float quantize_int4(const float* x, int64_t n, int8_t* q) {
  float amax = 0.0f, max = 0.0f;
  for (int64_t k = 0; k < n; ++k)
    if (amax < std::fabs(x[k])) {
      amax = std::fabs(x[k]);
      max = x[k];
    }
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int64_t k = 0; k < n; ++k) {
    const int u = std::min(15, static_cast<int>(static_cast<int8_t>(x[k] * id + 8.5f)));
    q[k] = static_cast<int8_t>(u - 8);
  }
  return f16_to_f32(f32_to_f16(d));
}

Tensor pack_matrix(const Tensor& src, DType dtype, int32_t group_size, void* data, float* scales, ThreadPool& pool) {
  if (src.dtype == DType::i32 || (is_int(src.dtype) && (!src.scales || src.group_size < 1)))
    throw Error("internal: cannot pack a matrix of dtype " + std::string(dtype_name(src.dtype)));
  if (dtype != DType::f32 && dtype != DType::bf16 && !is_int(dtype))
    throw Error("internal: the CPU backend has no " + std::string(dtype_name(dtype)) + " kernels");
  const int64_t O = src.rows, K = src.cols, P = panel_count(O), Kp = padded_k(dtype, K);
  const int64_t G = is_int(dtype) ? group_size : 1;
  if (is_int(dtype) && (G < 4 || G % 4 != 0 || G > kMaxIntGroup))
    throw Error("internal: integer group size " + std::to_string(G) + " (a multiple of 4 up to 256 is needed)");
  const int64_t n_groups = (K + G - 1) / G;
  // An integer source of the packed dtype and groups keeps its values: no requantization.
  const bool as_is = is_int(dtype) && src.dtype == dtype && src.group_size == G;

  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.rows = O;
  t.cols = K;
  if (is_int(dtype)) {
    t.scales = scales;
    t.group_size = static_cast<int32_t>(G);
  }

  // Per thread: the panel's rows as fp32 (unless the source is fp32), and for integer packing
  // their integers [16, Kp] (zero past K) and scales [16, n_groups].
  struct Scratch {
    std::vector<float> rows;
    std::vector<int8_t> q;
    std::vector<float> s;
  };
  std::vector<Scratch> scratch(static_cast<size_t>(pool.size()));
  pool.parallel_for(P, 1, [&](int64_t p_begin, int64_t p_end, int thread) {
    Scratch& sc = scratch[static_cast<size_t>(thread)];
    for (int64_t p = p_begin; p < p_end; ++p) {
      if (!is_int(dtype)) {
        const float* rows[kPanel];
        if (src.dtype != DType::f32) sc.rows.resize(static_cast<size_t>(kPanel * K));
        for (int64_t lane = 0; lane < kPanel; ++lane) {
          const int64_t o = p * kPanel + lane;
          rows[lane] = nullptr;
          if (o >= O) continue;
          if (src.dtype == DType::f32) {
            rows[lane] = static_cast<const float*>(src.data) + o * K;
          } else {
            float* r = sc.rows.data() + lane * K;
            for (int64_t k = 0; k < K; ++k) r[k] = source_at(src, o, k);
            rows[lane] = r;
          }
        }
        // Written in panel order (k-major, then lane), so the stores are sequential.
        if (dtype == DType::f32) {
          float* dst = static_cast<float*>(data) + p * K * kPanel;
          for (int64_t k = 0; k < K; ++k)
            for (int64_t lane = 0; lane < kPanel; ++lane) dst[k * kPanel + lane] = rows[lane] ? rows[lane][k] : 0.0f;
        } else {
          uint16_t* dst = static_cast<uint16_t*>(data) + p * K * kPanel;
          for (int64_t k = 0; k < K; ++k)
            for (int64_t lane = 0; lane < kPanel; ++lane)
              dst[k * kPanel + lane] = rows[lane] ? f32_to_bf16(rows[lane][k]) : uint16_t{0};
        }
        continue;
      }

      // Integers of the panel's 16 rows, then written in the block layout.
      sc.q.assign(static_cast<size_t>(kPanel * Kp), 0);
      sc.s.assign(static_cast<size_t>(kPanel * n_groups), 0.0f);
      sc.rows.resize(static_cast<size_t>(K));
      for (int64_t lane = 0; lane < kPanel; ++lane) {
        const int64_t o = p * kPanel + lane;
        if (o >= O) continue;
        int8_t* q = sc.q.data() + lane * Kp;
        float* s = sc.s.data() + lane * n_groups;
        if (as_is) {
          std::memcpy(q, static_cast<const int8_t*>(src.data) + o * K, static_cast<size_t>(K));
          std::memcpy(s, src.scales + o * n_groups, static_cast<size_t>(n_groups) * sizeof(float));
          continue;
        }
        const float* row = nullptr;
        if (src.dtype == DType::f32) {
          row = static_cast<const float*>(src.data) + o * K;
        } else {
          for (int64_t k = 0; k < K; ++k) sc.rows[static_cast<size_t>(k)] = source_at(src, o, k);
          row = sc.rows.data();
        }
        for (int64_t g = 0; g < n_groups; ++g) {
          const int64_t k0 = g * G, n = std::min(K, k0 + G) - k0;
          s[g] = dtype == DType::i4 ? quantize_int4(row + k0, n, q + k0) : quantize_int8(row + k0, n, q + k0);
        }
      }
      for (int64_t g = 0; g < n_groups; ++g)
        for (int64_t lane = 0; lane < kPanel; ++lane)
          scales[(p * n_groups + g) * kPanel + lane] = sc.s[static_cast<size_t>(lane * n_groups + g)];
      auto q_at = [&](int64_t o_in_panel, int64_t k) { return sc.q[static_cast<size_t>(o_in_panel * Kp + k)]; };
      if (dtype == DType::i8) {
        int8_t* dst = static_cast<int8_t*>(data) + p * Kp * kPanel;
        for (int64_t t2 = 0; t2 < Kp / 2; ++t2)
          for (int64_t b = 0; b < 32; ++b)
            dst[t2 * 32 + b] = q_at((b / 16) * 8 + (b % 16) / 2, 2 * t2 + b % 2);
      } else {
        uint8_t* dst = static_cast<uint8_t*>(data) + p * Kp * kPanel / 2;
        for (int64_t t4 = 0; t4 < Kp / 4; ++t4)
          for (int64_t b = 0; b < 32; ++b) {
            const int64_t lane = b / 16, i = b % 16, h = i / 8, j = i % 8;
            const int64_t o = h * 8 + lane * 4 + j / 2, k = 4 * t4 + j % 2;
            const int lo = q_at(o, k) + 8, hi = q_at(o, k + 2) + 8;
            dst[t4 * 32 + b] = static_cast<uint8_t>(lo | (hi << 4));
          }
      }
    }
  });
  return t;
}

// Integer q of (output lane, k) in a packed panel.
static int packed_int(const Tensor& w, int64_t p, int64_t lane, int64_t k) {
  const int64_t Kp = padded_k(w.dtype, w.cols);
  const int64_t h = lane / 8, r = lane % 8;
  if (w.dtype == DType::i8) {
    const int8_t* blk = static_cast<const int8_t*>(w.data) + p * Kp * kPanel + (k / 2) * 32;
    return blk[h * 16 + r * 2 + k % 2];
  }
  const uint8_t* blk = static_cast<const uint8_t*>(w.data) + p * Kp * kPanel / 2 + (k / 4) * 32;
  const int64_t kk = k % 4;
  const int64_t b = (r / 4) * 16 + h * 8 + (r % 4) * 2 + kk % 2;
  const int u = kk < 2 ? blk[b] & 0x0F : blk[b] >> 4;
  return u - 8;
}

void unpack_row(float* dst, const Tensor& packed, int64_t row) {
  const int64_t K = packed.cols;
  const int64_t p = row / kPanel, lane = row % kPanel;
  const int64_t base = p * K * kPanel + lane;
  switch (packed.dtype) {
    case DType::f32: {
      const float* w = static_cast<const float*>(packed.data) + base;
      for (int64_t k = 0; k < K; ++k) dst[k] = w[k * kPanel];
      return;
    }
    case DType::bf16: {
      const uint16_t* w = static_cast<const uint16_t*>(packed.data) + base;
      for (int64_t k = 0; k < K; ++k) dst[k] = bf16_to_f32(w[k * kPanel]);
      return;
    }
    case DType::i8:
    case DType::i4: {
      const int64_t G = packed.group_size, n_groups = (K + G - 1) / G;
      const float* s = packed.scales + p * n_groups * kPanel + lane;
      for (int64_t k = 0; k < K; ++k)
        dst[k] = static_cast<float>(packed_int(packed, p, lane, k)) * s[(k / G) * kPanel];
      return;
    }
    default:
      throw Error("internal: cannot unpack a matrix of dtype " + std::string(dtype_name(packed.dtype)));
  }
}

QuantizedRows quantize_rows(const float* in, int64_t ldi, int64_t n_rows, int64_t in_cols, int32_t group_size,
                            bool int4, QuantizedRowsBuffer& buffer) {
  const int64_t K = in_cols, Kp = (K + 3) / 4 * 4, G = group_size, n_groups = (K + G - 1) / G;
  if (buffer.xq.size() < static_cast<size_t>(n_rows * Kp)) buffer.xq.resize(static_cast<size_t>(n_rows * Kp));
  if (buffer.sx.size() < static_cast<size_t>(n_rows * n_groups)) {
    buffer.sx.resize(static_cast<size_t>(n_rows * n_groups));
    buffer.corr.resize(static_cast<size_t>(n_rows * n_groups));
  }
  for (int64_t n = 0; n < n_rows; ++n) {
    const float* x = in + n * ldi;
    int16_t* xq = buffer.xq.data() + n * Kp;
    for (int64_t g = 0; g < n_groups; ++g) {
      const int64_t k0 = g * G, k1 = std::min(K, k0 + G);
      float amax = 0.0f;
      for (int64_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(x[k]));
      const float inv = amax > 0.0f ? 32767.0f / amax : 0.0f;
      int32_t sum = 0;
      for (int64_t k = k0; k < k1; ++k) {
        // Clamped, then rounded to the nearest integer, ties to even (the bounds are integers, so
        // this equals rounding first; a NaN clamps to 32767). On x86 one cvtss2si in the default
        // rounding mode rather than a libm call per element.
        const float c = std::max(-32767.0f, std::min(32767.0f, x[k] * inv));
#if defined(__SSE2__)
        xq[k] = static_cast<int16_t>(_mm_cvtss_si32(_mm_set_ss(c)));
#else
        xq[k] = static_cast<int16_t>(std::nearbyint(c));
#endif
        sum += xq[k];
      }
      buffer.sx[static_cast<size_t>(n * n_groups + g)] = amax / 32767.0f;
      buffer.corr[static_cast<size_t>(n * n_groups + g)] = int4 ? 8 * sum : 0;
    }
    for (int64_t k = K; k < Kp; ++k) xq[k] = 0;
  }
  QuantizedRows r;
  r.xq = buffer.xq.data();
  r.sx = buffer.sx.data();
  r.corr = buffer.corr.data();
  r.ld = Kp;
  r.n_groups = n_groups;
  return r;
}

QuantizedRows quantize_input(const LinearArgs& a) {
  thread_local QuantizedRowsBuffer buffer;
  return quantize_rows(a.in, a.ldi, a.n_rows, a.w.cols, a.w.group_size, a.w.dtype == DType::i4, buffer);
}

}  // namespace gpt2::cpu
