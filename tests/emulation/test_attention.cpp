// The ragged attention kernels emulated, on mixed batches (runtime/batch.h's packed rows, each
// sequence in its own KV slot at its own position), against a float64 reference:
//   kernels/kv_cache.cu          qkv += bias in place, k and v of each row to (slot, position):
//                                bit-exact, and nothing else of the cache touched;
//   kernels/attention_prefill.cu the SIMT fp32 kernel (fp32, fp16, bf16 caches) and the WMMA
//                                tensor-core kernel (fp16, bf16 caches), out and its 16-bit copy;
//   kernels/attention_decode.cu  Flash-Decoding splits and the last-block combine, with the fused
//                                bias add, KV append and q/k/v write-back, twice in a row (the
//                                counters must be left at zero).
// Cache positions past each slot's valid length hold 0xff bytes (NaN): a kernel that reads a
// key or value outside the causal range poisons its output.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "emu_test_util.h"
#include "kernels/attention.cuh"
#include "kernels/kv_cache.cuh"

using namespace gpt2;
using namespace gpt2::emu_test;

namespace {

constexpr int kHd = 64;

struct Cache {
  int n_slots, n_head, n_ctx;
  DType dtype;
  std::vector<float> k, v;      // the values the cache should hold, as floats (NaN: garbage)
  DeviceArray<uint8_t> dk, dv;  // the cache in `dtype`

  size_t at(int slot, int h, int p, int d) const {
    return ((static_cast<size_t>(slot) * n_head + h) * n_ctx + p) * kHd + d;
  }
  size_t size() const { return static_cast<size_t>(n_slots) * n_head * n_ctx * kHd; }
};

// A cache whose slots hold random keys and values at positions [0, valid[slot]) and garbage
// after: the positions a step appends are included in `valid` (the append overwrites them).
Cache make_cache(int n_slots, int n_head, int n_ctx, DType dtype, const std::vector<int>& valid, uint64_t seed) {
  Cache c{n_slots, n_head, n_ctx, dtype, {}, {}, {}, {}};
  c.k = random_floats(c.size(), seed);
  c.v = random_floats(c.size(), seed + 1);
  for (size_t i = 0; i < c.size(); ++i) {
    c.k[i] = round_to(c.k[i], dtype);
    c.v[i] = round_to(c.v[i], dtype);
  }
  c.dk = encode(c.k, dtype);
  c.dv = encode(c.v, dtype);
  const size_t es = dtype_size(dtype);
  for (int s = 0; s < n_slots; ++s)
    for (int h = 0; h < n_head; ++h)
      for (int p = valid[static_cast<size_t>(s)]; p < n_ctx; ++p) {
        const size_t i = c.at(s, h, p, 0);
        std::memset(c.dk.data() + i * es, 0xff, kHd * es);
        std::memset(c.dv.data() + i * es, 0xff, kHd * es);
        for (int d = 0; d < kHd; ++d) c.k[i + static_cast<size_t>(d)] = c.v[i + static_cast<size_t>(d)] = NAN;
      }
  return c;
}

// What the step's KV append writes: k, v (+ bias) of row n at (row_slots[n], positions[n]).
void expect_append(Cache& c, const Batch& b, const std::vector<float>& qkv_biased) {
  const int C = c.n_head * kHd;
  for (int n = 0; n < b.rows(); ++n)
    for (int h = 0; h < c.n_head; ++h)
      for (int d = 0; d < kHd; ++d) {
        const size_t i = c.at(b.row_slots[static_cast<size_t>(n)], h, b.positions[static_cast<size_t>(n)], d);
        const size_t r = static_cast<size_t>(n) * 3 * C + static_cast<size_t>(h) * kHd + static_cast<size_t>(d);
        c.k[i] = round_to(qkv_biased[r + static_cast<size_t>(C)], c.dtype);
        c.v[i] = round_to(qkv_biased[r + 2 * static_cast<size_t>(C)], c.dtype);
      }
}

// The cache holds exactly c.k / c.v (garbage bytes where NaN), bit for bit.
std::string compare_cache(const Cache& c) {
  const DeviceArray<uint8_t> want_k = encode(c.k, c.dtype), want_v = encode(c.v, c.dtype);
  const size_t es = dtype_size(c.dtype);
  for (size_t i = 0; i < c.size(); ++i) {
    const bool garbage = std::isnan(c.k[i]);
    for (int which = 0; which < 2; ++which) {
      const uint8_t* got = (which ? c.dv : c.dk).data() + i * es;
      const uint8_t* want = (which ? want_v : want_k).data() + i * es;
      bool ok = true;
      for (size_t e = 0; e < es; ++e) ok = ok && (garbage ? got[e] == 0xff : got[e] == want[e]);
      if (!ok) {
        const size_t d = i % kHd, p = i / kHd % static_cast<size_t>(c.n_ctx);
        const size_t h = i / kHd / static_cast<size_t>(c.n_ctx) % static_cast<size_t>(c.n_head);
        const size_t s = i / kHd / static_cast<size_t>(c.n_ctx) / static_cast<size_t>(c.n_head);
        return std::string(which ? "v" : "k") + " cache [slot " + std::to_string(s) + ", head " + std::to_string(h) +
               ", pos " + std::to_string(p) + ", dim " + std::to_string(d) + "] " +
               (garbage ? "written outside the step's rows" : "differs from the appended value");
      }
    }
  }
  return "";
}

// out [N, C]: row n attends over positions [0, positions[n]] of slot row_slots[n] (float64).
std::vector<double> ref_attention(const std::vector<float>& qkv_biased, const Cache& c, const Batch& b) {
  const int C = c.n_head * kHd;
  std::vector<double> out(static_cast<size_t>(b.rows()) * C, 0.0);
  for (int n = 0; n < b.rows(); ++n) {
    const int slot = b.row_slots[static_cast<size_t>(n)], pos = b.positions[static_cast<size_t>(n)];
    for (int h = 0; h < c.n_head; ++h) {
      const float* q = qkv_biased.data() + static_cast<size_t>(n) * 3 * C + static_cast<size_t>(h) * kHd;
      std::vector<double> s(static_cast<size_t>(pos) + 1);
      double m = -1e300, sum = 0;
      for (int j = 0; j <= pos; ++j) {
        double dot = 0;
        for (int d = 0; d < kHd; ++d) dot += static_cast<double>(q[d]) * c.k[c.at(slot, h, j, d)];
        s[static_cast<size_t>(j)] = dot / std::sqrt(static_cast<double>(kHd));
        m = std::max(m, s[static_cast<size_t>(j)]);
      }
      for (double& x : s) sum += (x = std::exp(x - m));
      for (int j = 0; j <= pos; ++j)
        for (int d = 0; d < kHd; ++d)
          out[static_cast<size_t>(n) * C + static_cast<size_t>(h) * kHd + static_cast<size_t>(d)] +=
              s[static_cast<size_t>(j)] / sum * c.v[c.at(slot, h, j, d)];
    }
  }
  return out;
}

// Slot lengths after the batch: each sequence's slot holds positions [0, pos + n).
std::vector<int> valid_after(const std::vector<SeqSpec>& seqs, int n_slots) {
  std::vector<int> valid(static_cast<size_t>(n_slots), 0);
  for (const SeqSpec& s : seqs) valid[static_cast<size_t>(s.slot)] = s.pos + s.n;
  return valid;
}

const char* kernel_name(DType dtype, cuda::PrefillKernel kernel) {
  if (dtype == DType::f32 || kernel == cuda::PrefillKernel::simt) return "SIMT";
  return "tensor cores";
}

// Tolerances (atol = rtol) of out against float64, values ~N(0,1): the SIMT kernel is fp32
// throughout (largest error seen 6e-7); the tensor-core kernel rounds q and p to the cache
// dtype (2^-9 relative for bf16, 2^-12 for fp16; largest errors seen 4.3e-3 and 5.9e-4).
double prefill_tolerance(DType dtype, cuda::PrefillKernel kernel) {
  if (dtype == DType::f32 || kernel == cuda::PrefillKernel::simt) return 5e-6;
  return dtype == DType::bf16 ? 2e-2 : 3e-3;
}

struct PrefillRun {
  std::vector<float> qkv, out;
  std::vector<uint16_t> out16;
  std::string cache_mismatch;
};

// One prefill step: append, then attention; checks the append and returns the outputs.
PrefillRun run_prefill(const std::vector<SeqSpec>& seqs, int n_slots, int n_head, int n_ctx, DType dtype,
                       cuda::PrefillKernel kernel, bool with_bias, Cache* cache_out = nullptr) {
  const Batch batch = make_batch(seqs, 50257, 5);
  const UploadedBatch ub(batch);
  const int N = batch.rows(), C = n_head * kHd;
  const std::vector<float> qkv0 = random_floats(static_cast<size_t>(N) * 3 * C, 40 + N);
  const std::vector<float> bias = random_floats(static_cast<size_t>(3 * C), 41, 0.5f);
  Cache cache = make_cache(n_slots, n_head, n_ctx, dtype, valid_after(seqs, n_slots), 42);
  DeviceArray<float> qkv(qkv0), d_bias(bias), out(static_cast<size_t>(N) * C);
  DeviceArray<uint16_t> out16(static_cast<size_t>(N) * C);
  const bool copy16 = dtype != DType::f32;

  cuda::qkv_bias_kv_append(qkv.data(), cache.dk.data(), cache.dv.data(), dtype, with_bias ? d_bias.data() : nullptr,
                           ub.view, N, n_head, kHd, n_ctx, nullptr);
  std::vector<float> biased = qkv0;
  if (with_bias)
    for (size_t i = 0; i < biased.size(); ++i) biased[i] = qkv0[i] + bias[i % static_cast<size_t>(3 * C)];
  PrefillRun r;
  r.qkv = qkv.to_vector();
  expect_append(cache, batch, biased);
  r.cache_mismatch = compare_cache(cache);
  if (compare_bits(r.qkv.data(), biased.data(), biased.size()) != "") r.cache_mismatch += " (and qkv != qkv + bias)";

  cuda::attention_prefill(out.data(), copy16 ? out16.data() : nullptr, qkv.data(), cache.dk.data(), cache.dv.data(),
                          dtype, ub.view, batch.sequences(), batch.max_seq_tokens, n_head, kHd, n_ctx, kernel,
                          nullptr);
  r.out = out.to_vector();
  r.out16 = out16.to_vector();
  if (cache_out) *cache_out = std::move(cache);
  return r;
}

void check_prefill(const std::vector<SeqSpec>& seqs, int n_slots, int n_head, int n_ctx, DType dtype,
                   cuda::PrefillKernel kernel, bool with_bias) {
  Cache cache{};
  const PrefillRun r = run_prefill(seqs, n_slots, n_head, n_ctx, dtype, kernel, with_bias, &cache);
  const Batch batch = make_batch(seqs, 50257, 5);
  INFO("prefill " << kernel_name(dtype, kernel) << " " << dtype_name(dtype) << (with_bias ? " bias" : "") << ", "
                  << batch.sequences() << " sequences, " << batch.rows() << " rows");
  CHECK(r.cache_mismatch == "");
  const double tol = prefill_tolerance(dtype, kernel);
  CHECK(compare(r.out, ref_attention(r.qkv, cache, batch), tol, tol) == "");
  if (dtype != DType::f32)
    for (size_t i = 0; i < r.out.size(); ++i) {
      const uint16_t want = dtype == DType::f16 ? f32_to_f16(r.out[i]) : f32_to_bf16(r.out[i]);
      if (r.out16[i] != want) {
        FAIL_CHECK("out16[" << i << "] is not out rounded");
        break;
      }
    }
}

// The mixed batch: a 70-token chunk at position 1 of slot 2, a 1-token sequence at
// position 40 of slot 0, a 7-token chunk at position 0 of slot 1 (rows in that order, so row
// order, slot order and position order all differ).
const std::vector<SeqSpec> kMixed = {{2, 1, 70}, {0, 40, 1}, {1, 0, 7}};
// Longer keys (several key tiles, the online softmax rescaling), a lone first token, and a
// chunk straddling a 64-key tile edge; the first sequence ends at the last cache position.
const std::vector<SeqSpec> kLong = {{0, 102, 28}, {2, 0, 1}, {1, 63, 2}};
// Chunks of exactly one query tile and one past it.
const std::vector<SeqSpec> kEdges = {{1, 0, 64}, {0, 5, 65}};

}  // namespace

TEST_CASE("emulated prefill attention on a mixed batch matches float64 (SIMT and tensor cores)",
          "[emulation][attention]") {
  for (const auto* seqs : {&kMixed, &kLong, &kEdges})
    for (DType dtype : {DType::f32, DType::f16, DType::bf16})
      for (cuda::PrefillKernel kernel : {cuda::PrefillKernel::auto_select, cuda::PrefillKernel::simt}) {
        if (dtype == DType::f32 && kernel == cuda::PrefillKernel::simt) continue;  // the same kernel
        check_prefill(*seqs, 3, 2, 130, dtype, kernel, /*with_bias=*/seqs == &kMixed || dtype == DType::bf16);
      }
}

TEST_CASE("emulated prefill attention does not depend on the order of threads", "[emulation][attention]") {
  for (const auto* seqs : {&kMixed, &kLong})
    for (DType dtype : {DType::f32, DType::bf16})
      run_every_schedule(dtype == DType::f32 ? "prefill SIMT" : "prefill tensor cores", [&] {
        const PrefillRun r = run_prefill(*seqs, 3, 2, 130, dtype, cuda::PrefillKernel::auto_select, true);
        std::vector<uint8_t> b;
        append_bytes(b, r.out.data(), r.out.size());
        append_bytes(b, r.out16.data(), r.out16.size());
        return b;
      });
}

TEST_CASE("emulated prefill attention refuses what it does not support", "[emulation][attention]") {
  const Batch batch = make_batch(kMixed, 100, 1);
  const UploadedBatch ub(batch);
  DeviceArray<float> buf(16);
  CHECK_THROWS_AS(cuda::attention_prefill(buf.data(), nullptr, buf.data(), buf.data(), buf.data(), DType::f32, ub.view,
                                          3, 70, 2, 128, 130, cuda::PrefillKernel::auto_select, nullptr),
                  Error);
  CHECK_THROWS_AS(cuda::attention_prefill(buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), DType::f32,
                                          ub.view, 3, 70, 2, 64, 130, cuda::PrefillKernel::auto_select, nullptr),
                  Error);
}

namespace {

struct DecodeRun {
  std::vector<float> out, qkv;
  std::vector<int32_t> counters;
  std::string cache_mismatch;
  std::vector<double> ref;
};

// Five sequences decoding one token each at 5 positions of 5 slots (first position, a split's
// last, a split's first, the middle, the context's last position), n_ctx not a multiple of
// the 32-position split; two steps with fresh q, k, v (the second re-appends the positions).
DecodeRun run_decode(DType dtype, bool with_bias, bool pdl, int steps) {
  const int n_slots = 6, n_head = 3, n_ctx = 100, C = n_head * kHd;
  const std::vector<SeqSpec> seqs = {{4, 0, 1}, {0, 31, 1}, {5, 32, 1}, {2, 77, 1}, {1, 99, 1}};
  const Batch batch = make_batch(seqs, 50257, 9);
  const UploadedBatch ub(batch);
  const int B = batch.rows();
  Cache cache = make_cache(n_slots, n_head, n_ctx, dtype, valid_after(seqs, n_slots), 60);
  const int splits = cuda::attention_decode_splits(n_ctx);
  DeviceArray<float> partial_o(static_cast<size_t>(B) * n_head * splits * kHd);
  DeviceArray<float> partial_ml(static_cast<size_t>(B) * n_head * splits * 2);
  DeviceArray<int32_t> counters(std::vector<int32_t>(static_cast<size_t>(B) * n_head, 0));
  const std::vector<float> bias = random_floats(static_cast<size_t>(3 * C), 61, 0.5f);
  DeviceArray<float> d_bias(bias);
  DecodeRun r;
  for (int step = 0; step < steps; ++step) {
    const std::vector<float> qkv0 = random_floats(static_cast<size_t>(B) * 3 * C, 62 + step);
    DeviceArray<float> qkv(qkv0), out(static_cast<size_t>(B) * C);
    cuda::attention_decode(out.data(), qkv.data(), cache.dk.data(), cache.dv.data(), dtype,
                           with_bias ? d_bias.data() : nullptr, ub.view, B, n_head, kHd, n_ctx, partial_o.data(),
                           partial_ml.data(), counters.data(), pdl, nullptr);
    std::vector<float> biased = qkv0;
    if (with_bias)
      for (size_t i = 0; i < biased.size(); ++i) biased[i] = qkv0[i] + bias[i % static_cast<size_t>(3 * C)];
    expect_append(cache, batch, biased);
    const std::string mismatch = compare_cache(cache);
    if (!mismatch.empty()) r.cache_mismatch = "step " + std::to_string(step) + ": " + mismatch;
    if (compare_bits(qkv.data(), biased.data(), biased.size()) != "")
      r.cache_mismatch += " step " + std::to_string(step) + ": qkv is not q, k, v with the bias";
    r.out = out.to_vector();
    r.qkv = qkv.to_vector();
    r.ref = ref_attention(biased, cache, batch);
  }
  r.counters = counters.to_vector();
  return r;
}

}  // namespace

TEST_CASE("emulated decode attention (split + last-block combine) on 5 sequences matches float64",
          "[emulation][attention]") {
  for (DType dtype : {DType::f32, DType::f16, DType::bf16})
    for (bool with_bias : {false, true}) {
      const DecodeRun r = run_decode(dtype, with_bias, /*pdl=*/with_bias, 2);
      INFO("decode " << dtype_name(dtype) << (with_bias ? " bias" : ""));
      CHECK(r.cache_mismatch == "");
      CHECK(compare(r.out, r.ref, 5e-6, 5e-6) == "");  // fp32 math on the cache's values (seen: 3e-7)
      for (int32_t c : r.counters) CHECK(c == 0);
    }
}

TEST_CASE("emulated decode attention does not depend on the order of threads", "[emulation][attention]") {
  run_every_schedule("decode", [] {
    const DecodeRun r = run_decode(DType::bf16, true, true, 1);
    std::vector<uint8_t> b;
    append_bytes(b, r.out.data(), r.out.size());
    append_bytes(b, r.qkv.data(), r.qkv.size());
    return b;
  });
}

TEST_CASE("emulated qkv_bias_kv_append without a bias only copies k and v", "[emulation][attention]") {
  for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    const std::vector<SeqSpec> seqs = {{1, 5, 3}, {0, 0, 1}};
    const Batch batch = make_batch(seqs, 100, 3);
    const UploadedBatch ub(batch);
    const int n_head = 2, C = n_head * kHd;
    Cache cache = make_cache(2, n_head, 16, dtype, valid_after(seqs, 2), 7);
    const std::vector<float> qkv0 = random_floats(static_cast<size_t>(batch.rows()) * 3 * C, 8);
    DeviceArray<float> qkv(qkv0);
    cuda::qkv_bias_kv_append(qkv.data(), cache.dk.data(), cache.dv.data(), dtype, nullptr, ub.view, batch.rows(),
                             n_head, kHd, 16, nullptr);
    expect_append(cache, batch, qkv0);
    INFO(dtype_name(dtype));
    CHECK(compare_cache(cache) == "");
    CHECK(compare_bits(qkv.data(), qkv0.data(), qkv0.size()) == "");
  }
}
