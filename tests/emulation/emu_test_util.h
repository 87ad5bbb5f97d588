// Helpers of the emulation tests: "device" buffers (host memory, 256-byte aligned as cudaMalloc
// gives, poisoned with 0xff bytes so an output the kernel does not write reads as NaN / -1),
// 16-bit encodings, seeded inputs, a DeviceBatch built from runtime/batch.h's Batch, and the
// readable comparison of llm.c's validate_result (atol + rtol * |ref|, first mismatches, max
// errors).
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/error.h"
#include "gpt2emu.h"
#include "kernels/batch.cuh"
#include "runtime/batch.h"

namespace gpt2::emu_test {

// An array in "device" memory: aligned like cudaMalloc's, 0xff-filled until written.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) : n_(n), p_(static_cast<T*>(std::aligned_alloc(256, (n * sizeof(T) + 255) / 256 * 256 + 256))) {
    poison();
  }
  explicit DeviceArray(const std::vector<T>& v) : DeviceArray(v.size()) {
    if (!v.empty()) std::memcpy(p_.get(), v.data(), v.size() * sizeof(T));
  }
  T* data() { return p_.get(); }
  const T* data() const { return p_.get(); }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return p_.get()[i]; }
  const T& operator[](size_t i) const { return p_.get()[i]; }
  void poison() { std::memset(static_cast<void*>(p_.get()), 0xff, n_ * sizeof(T)); }
  std::vector<T> to_vector() const { return std::vector<T>(p_.get(), p_.get() + n_); }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  size_t n_ = 0;
  std::unique_ptr<T, Free> p_;
};

inline std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.0f, float offset = 0.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = offset + scale * dist(rng);
  return v;
}

inline uint32_t bits_of(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

// x rounded to `dtype` and back (f32: x).
inline float round_to(float x, DType dtype) {
  switch (dtype) {
    case DType::bf16: return bf16_to_f32(f32_to_bf16(x));
    case DType::f16: return f16_to_f32(f32_to_f16(x));
    default: return x;
  }
}

// Bytes of `values` stored in `dtype` (f32, f16, bf16), for weights and caches.
inline DeviceArray<uint8_t> encode(const std::vector<float>& values, DType dtype) {
  const size_t es = dtype_size(dtype);
  DeviceArray<uint8_t> out(values.size() * es);
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::f32) {
      std::memcpy(out.data() + 4 * i, &values[i], 4);
    } else {
      const uint16_t h = dtype == DType::bf16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

// Element i of an array of `dtype` as float.
inline float decode_at(const void* data, DType dtype, size_t i) {
  if (dtype == DType::f32) {
    float f;
    std::memcpy(&f, static_cast<const uint8_t*>(data) + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, static_cast<const uint8_t*>(data) + 2 * i, 2);
  return dtype == DType::bf16 ? bf16_to_f32(h) : f16_to_f32(h);
}

inline std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// Compares got[i] with ref[i] (|got - ref| <= atol + rtol |ref|, NaN never close); on failure
// the returned text names the first mismatches and the largest errors.
inline std::string compare(const float* got, const double* ref, size_t n, double atol, double rtol) {
  std::ostringstream bad;
  size_t n_bad = 0;
  double max_abs = 0, max_rel = 0;
  for (size_t i = 0; i < n; ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - ref[i]);
    const bool ok = err <= atol + rtol * std::fabs(ref[i]);  // false for NaN
    if (!std::isnan(err)) {
      max_abs = std::max(max_abs, err);
      if (ref[i] != 0) max_rel = std::max(max_rel, err / std::fabs(ref[i]));
    }
    if (!ok && n_bad++ < 5) bad << " [" << i << "] got " << got[i] << " want " << ref[i] << ";";
  }
  if (n_bad == 0) return "";
  std::ostringstream msg;
  msg << n_bad << " of " << n << " outside atol " << atol << " + rtol " << rtol << " (max abs " << max_abs
      << ", max rel " << max_rel << "):" << bad.str();
  return msg.str();
}
inline std::string compare(const std::vector<float>& got, const std::vector<double>& ref, double atol, double rtol) {
  if (got.size() != ref.size()) return "size " + std::to_string(got.size()) + " != " + std::to_string(ref.size());
  return compare(got.data(), ref.data(), got.size(), atol, rtol);
}

// First index where two arrays differ bitwise, or "" when identical.
template <typename T>
std::string compare_bits(const T* got, const T* want, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(got + i, want + i, sizeof(T)) != 0) {
      std::ostringstream s;
      s << "differs first at [" << i << "] of " << n;
      if (sizeof(T) == 4) {
        uint32_t a, b;
        std::memcpy(&a, got + i, 4);
        std::memcpy(&b, want + i, 4);
        s << " (bits 0x" << std::hex << a << " vs 0x" << b << ")";
      }
      return s.str();
    }
  return "";
}

// runtime/batch.h's Batch in "device" memory, as src/runtime/cuda uploads it.
struct UploadedBatch {
  DeviceArray<int32_t> tokens, positions, row_slots, logit_rows, seq_first_row, seq_slot, seq_pos;
  cuda::DeviceBatch view;

  explicit UploadedBatch(const Batch& b)
      : tokens(b.tokens), positions(b.positions), row_slots(b.row_slots), logit_rows(b.logit_rows),
        seq_first_row(b.seq_first_row), seq_slot(b.seq_slot), seq_pos(b.seq_pos) {
    view.tokens = tokens.data();
    view.positions = positions.data();
    view.row_slots = row_slots.data();
    view.logit_rows = logit_rows.data();
    view.seq_first_row = seq_first_row.data();
    view.seq_slot = seq_slot.data();
    view.seq_pos = seq_pos.data();
  }
};

// A sequence of a test batch: n new tokens at positions [pos, pos + n) of `slot`.
struct SeqSpec {
  int slot, pos, n;
};

inline Batch make_batch(const std::vector<SeqSpec>& seqs, int n_vocab, uint64_t seed) {
  Batch b;
  std::mt19937_64 rng(seed);
  for (const SeqSpec& s : seqs) {
    std::vector<int32_t> ids(static_cast<size_t>(s.n));
    for (int32_t& id : ids) id = static_cast<int32_t>(rng() % static_cast<uint64_t>(n_vocab));
    b.add(s.slot, s.pos, ids.data(), s.n, Logits::last);
  }
  return b;
}

// Runs `body` under the forward, reverse and a shuffled schedule of each block's threads and
// requires the three results (bytes) to be identical: a kernel whose results depend on the
// order of its threads between two synchronization points has a data race.
template <typename Body>
std::vector<uint8_t> run_every_schedule(const char* what, Body body) {
  const gpt2emu::Schedule saved = gpt2emu::schedule();
  gpt2emu::set_schedule(gpt2emu::Schedule::forward);
  const std::vector<uint8_t> first = body();
  const gpt2emu::Schedule others[] = {gpt2emu::Schedule::reverse, gpt2emu::Schedule::shuffle};
  for (gpt2emu::Schedule s : others) {
    gpt2emu::set_schedule(s, 12345);
    const std::vector<uint8_t> again = body();
    INFO(what << ": results under the " << (s == gpt2emu::Schedule::reverse ? "reverse" : "shuffled")
              << " schedule differ from the forward one (a race between barriers)");
    CHECK(compare_bits(again.data(), first.data(), std::min(again.size(), first.size())) == "");
    CHECK(again.size() == first.size());
  }
  gpt2emu::set_schedule(saved);
  return first;
}

template <typename T>
void append_bytes(std::vector<uint8_t>& out, const T* p, size_t n) {
  const uint8_t* b = reinterpret_cast<const uint8_t*>(p);
  out.insert(out.end(), b, b + n * sizeof(T));
}

}  // namespace gpt2::emu_test
