// Packing of linear weights into the panel layout (cpu_kernels.h) and the run-time choice of
// the kernel table.
//
// Panel layout: element (o, k) of w [O, I] at panel o / 16, offset k * 16 + o % 16.
// int8: symmetric absmax quantization per group of `group_size` consecutive k of one output,
//   scale = max|w| / 127, q = round(w / scale) in [-127, 127] (so dequantization error is at
//   most scale / 2 per weight); all-zero groups get scale 0.
// Work is split over panels (each panel is written by one thread), so packing is deterministic.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

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

static const KernelTable& choose_kernels() {
  Isa limit = Isa::avx512;
  if (const char* env = std::getenv("GPT2_CPU_ISA")) {
    const std::string s = env;
    if (s == "generic") {
      limit = Isa::generic;
    } else if (s == "avx2") {
      limit = Isa::avx2;
    } else if (s != "avx512" && !s.empty()) {
      throw Error("GPT2_CPU_ISA='" + s + "' is not one of generic, avx2, avx512");
    }
  }
  for (Isa isa : {Isa::avx512, Isa::avx2}) {
    if (static_cast<int>(isa) > static_cast<int>(limit)) continue;
    if (const KernelTable* t = kernels_for(isa)) return *t;
  }
  return *generic::table();
}

const KernelTable& best_kernels() {
  static const KernelTable& t = choose_kernels();
  return t;
}

int64_t panel_count(int64_t out) { return (out + kPanel - 1) / kPanel; }

size_t packed_bytes(DType dtype, int64_t out, int64_t in) {
  return static_cast<size_t>(panel_count(out) * kPanel * in) * dtype_size(dtype);
}

size_t packed_scale_bytes(DType dtype, int64_t out, int64_t in, int32_t group_size) {
  if (dtype != DType::i8) return 0;
  const int64_t n_groups = (in + group_size - 1) / group_size;
  return static_cast<size_t>(panel_count(out) * n_groups * kPanel) * sizeof(float);
}

// Element (o, k) of a row-major source as fp32.
static float source_at(const Tensor& src, int64_t o, int64_t k) {
  const int64_t i = o * src.cols + k;
  switch (src.dtype) {
    case DType::f32: return static_cast<const float*>(src.data)[i];
    case DType::bf16: return bf16_to_f32(static_cast<const uint16_t*>(src.data)[i]);
    case DType::f16: return f16_to_f32(static_cast<const uint16_t*>(src.data)[i]);
    case DType::i8: {
      const int64_t n_groups = (src.cols + src.group_size - 1) / src.group_size;
      return static_cast<const int8_t*>(src.data)[i] * src.scales[o * n_groups + k / src.group_size];
    }
    case DType::i32: break;
  }
  throw Error("internal: cannot pack a matrix of dtype " + std::string(dtype_name(src.dtype)));
}

Tensor pack_matrix(const Tensor& src, DType dtype, int32_t group_size, void* data, float* scales,
                   int n_threads) {
  if (src.dtype == DType::i32 || (src.dtype == DType::i8 && (!src.scales || src.group_size < 1)))
    throw Error("internal: cannot pack a matrix of dtype " + std::string(dtype_name(src.dtype)));
  if (dtype != DType::f32 && dtype != DType::bf16 && dtype != DType::i8)
    throw Error("internal: the CPU backend has no " + std::string(dtype_name(dtype)) + " kernels");
  const int64_t O = src.rows, K = src.cols, P = panel_count(O);
  const int64_t G = dtype == DType::i8 ? group_size : 1;
  if (G < 1) throw Error("internal: int8 group size must be positive");
  const int64_t n_groups = (K + G - 1) / G;

  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.rows = O;
  t.cols = K;
  if (dtype == DType::i8) {
    t.scales = scales;
    t.group_size = static_cast<int32_t>(G);
  }

#pragma omp parallel num_threads(n_threads)
  {
    // Rows of the panel as fp32: the source itself when it is fp32, else a converted copy.
    std::vector<float> converted;
    if (src.dtype != DType::f32) converted.resize(static_cast<size_t>(kPanel * K));
#pragma omp for schedule(static)
    for (int64_t p = 0; p < P; ++p) {
      const float* rows[kPanel];
      for (int64_t lane = 0; lane < kPanel; ++lane) {
        const int64_t o = p * kPanel + lane;
        rows[lane] = nullptr;
        if (o >= O) continue;
        if (src.dtype == DType::f32) {
          rows[lane] = static_cast<const float*>(src.data) + o * K;
        } else {
          float* r = converted.data() + lane * K;
          for (int64_t k = 0; k < K; ++k) r[k] = source_at(src, o, k);
          rows[lane] = r;
        }
      }
      // Written in panel order (k-major, then lane), so the stores are sequential.
      if (dtype == DType::f32) {
        float* dst = static_cast<float*>(data) + p * K * kPanel;
        for (int64_t k = 0; k < K; ++k)
          for (int64_t lane = 0; lane < kPanel; ++lane) dst[k * kPanel + lane] = rows[lane] ? rows[lane][k] : 0.0f;
      } else if (dtype == DType::bf16) {
        uint16_t* dst = static_cast<uint16_t*>(data) + p * K * kPanel;
        for (int64_t k = 0; k < K; ++k)
          for (int64_t lane = 0; lane < kPanel; ++lane)
            dst[k * kPanel + lane] = rows[lane] ? f32_to_bf16(rows[lane][k]) : uint16_t{0};
      } else {
        int8_t* dst = static_cast<int8_t*>(data) + p * K * kPanel;
        for (int64_t g = 0; g < n_groups; ++g) {
          const int64_t k0 = g * G, k1 = std::min(K, k0 + G);
          float inv[kPanel];
          for (int64_t lane = 0; lane < kPanel; ++lane) {
            float amax = 0.0f;
            if (rows[lane])
              for (int64_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(rows[lane][k]));
            scales[(p * n_groups + g) * kPanel + lane] = amax / 127.0f;
            inv[lane] = amax > 0.0f ? 127.0f / amax : 0.0f;
          }
          for (int64_t k = k0; k < k1; ++k)
            for (int64_t lane = 0; lane < kPanel; ++lane) {
              const float q = rows[lane] ? std::nearbyint(rows[lane][k] * inv[lane]) : 0.0f;
              dst[k * kPanel + lane] = static_cast<int8_t>(std::max(-127.0f, std::min(127.0f, q)));
            }
        }
      }
    }
  }
  return t;
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
    case DType::i8: {
      const int8_t* w = static_cast<const int8_t*>(packed.data) + base;
      const int64_t G = packed.group_size, n_groups = (K + G - 1) / G;
      const float* s = packed.scales + p * n_groups * kPanel + lane;
      for (int64_t k = 0; k < K; ++k) dst[k] = static_cast<float>(w[k * kPanel]) * s[(k / G) * kPanel];
      return;
    }
    default:
      throw Error("internal: cannot unpack a matrix of dtype " + std::string(dtype_name(packed.dtype)));
  }
}

}  // namespace gpt2::cpu
