// Helpers of the CUDA tests: the CUDA backend is compared with the CPU backend (the fp32
// oracle) on the same weights and inputs.
//
// Same weights: for a 16-bit CUDA run the host fp32 weights are first rounded to that dtype
// (and back to fp32), so the CPU computes in fp32 on exactly the values the GPU holds. What is
// left to differ is the GPU's own rounding: 16-bit copies of the GEMM inputs (prefill), the
// 16-bit KV cache, and fp32 summation order. The tolerances below are set for that.
//
// Backend options: the test program (not the library) reads GPT2_CUDA_PDL=0,
// GPT2_CUDA_GRAPHS=0 and GPT2_CUDA_ATTENTION=simt from the environment into the CUDA backend's
// BackendOptions, so that scripts/gpu-check.sh can rerun failed tests without PDL or with the
// SIMT prefill kernel (cuda_options below).
#pragma once

#include <cuda_runtime.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/dtype.h"
#include "common/thread_pool.h"
#include "model/config.h"
#include "model/weights.h"
#include "runtime/backend.h"
#include "runtime/batch.h"
#include "runtime/device.h"
#include "runtime/kv_cache.h"
#include "runtime/cpu_reference.h"  // test::random_vector, test::view

namespace gpt2::test {

// The smallest model the CUDA kernels serve: 2 layers, 2 heads of 64 (their one head size),
// 128 positions, a vocabulary of 500.
inline Config head64_config() {
  Config config;
  config.n_vocab = 500;
  config.n_ctx = 128;
  config.n_embd = 128;
  config.n_head = 2;
  config.n_layer = 2;
  return config;
}

// Seeded random weights with GPT-2's shapes (model/weights.h), on a pool of the machine's cores
// (the values do not depend on the thread count).
inline HostModel random_host(const Config& config, uint64_t seed) {
  static ThreadPool pool(static_cast<int>(std::max(1u, std::min(16u, std::thread::hardware_concurrency()))));
  return random_model(config, seed, pool);
}

// Every tensor field of a ModelWeights, lm_head included (it may alias wte).
inline std::vector<Tensor*> all_tensors(const Config& config, ModelWeights& w) {
  std::vector<Tensor*> out;
  for (const WeightEntry& e : weight_table(config, w, /*tied_head=*/false)) out.push_back(e.tensor);
  return out;
}

// A deep copy of a host model (its own storage, every view re-pointed into it).
inline HostModel copy_model(const HostModel& src) {
  HostModel dst;
  dst.config = src.config;
  dst.name = src.name;
  dst.source_dtype = src.source_dtype;
  dst.storage_floats = src.storage_floats;
  dst.storage.reset(new float[src.storage_floats]);
  std::memcpy(dst.storage.get(), src.storage.get(), src.storage_floats * sizeof(float));
  dst.weights = src.weights;
  const float* base = src.storage.get();
  for (Tensor* t : all_tensors(dst.config, dst.weights))
    if (t->data) t->data = dst.storage.get() + (static_cast<const float*>(t->data) - base);
  return dst;
}

// x rounded to `dtype` and back (round to nearest even; f32: x itself).
inline float round_to(float x, DType dtype) {
  switch (dtype) {
    case DType::bf16: return bf16_to_f32(f32_to_bf16(x));
    case DType::f16: return f16_to_f32(f32_to_f16(x));
    default: return x;
  }
}

// Rounds columns [first, last) of a row-major [rows, cols] host matrix to `dtype` and back.
inline void round_columns(std::vector<float>& m, int64_t cols, int64_t first, int64_t last, DType dtype) {
  for (size_t row = 0; row < m.size(); row += static_cast<size_t>(cols))
    for (size_t i = row + static_cast<size_t>(first); i < row + static_cast<size_t>(last); ++i)
      m[i] = round_to(m[i], dtype);
}

// Snaps columns [first, last) of a row-major [rows, cols] host matrix to multiples of 1/8 in
// [-8, 8]: such values (7 significant bits) and the sum of two of them (8) are exact in fp16 and
// bf16, so a snapped k or v plus a snapped bias lands in a 16-bit cache unrounded.
inline void snap_columns(std::vector<float>& m, int64_t cols, int64_t first, int64_t last) {
  for (size_t row = 0; row < m.size(); row += static_cast<size_t>(cols))
    for (size_t i = row + static_cast<size_t>(first); i < row + static_cast<size_t>(last); ++i)
      m[i] = std::round(std::min(8.0f, std::max(-8.0f, m[i])) * 8.0f) / 8.0f;
}

// Rounds every weight matrix to `dtype` and back (biases and gains stay fp32, as on the GPU).
inline void round_matrices(HostModel& m, DType dtype) {
  if (dtype == DType::f32) return;
  std::vector<const void*> done;
  for (const WeightEntry& e : weight_table(m.config, m.weights, /*tied_head=*/false)) {
    Tensor& t = *e.tensor;
    if (e.use == WeightUse::vector || !t.data) continue;
    if (std::find(done.begin(), done.end(), t.data) != done.end()) continue;  // a tied lm_head is wte
    done.push_back(t.data);
    float* p = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = round_to(p[i], dtype);
  }
}

inline std::unique_ptr<Backend> cpu_backend() {
  BackendOptions o;
  o.device = Device::cpu;
  o.auto_dtype = false;
  o.weight_dtype = DType::f32;
  return make_backend(o);
}

// An environment switch of the test program: true unless `name` is set to "0".
inline bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return !(v && std::strcmp(v, "0") == 0);
}

enum class Graphs { from_environment, off };

// The CUDA backend's options for `dtype`, with the triage switches of the environment.
inline BackendOptions cuda_options(DType dtype, Graphs graphs = Graphs::from_environment) {
  BackendOptions o;
  o.device = Device::cuda;
  o.auto_dtype = false;
  o.weight_dtype = dtype;
  o.cuda_pdl = env_on("GPT2_CUDA_PDL");
  o.cuda_graphs = graphs == Graphs::off ? false : env_on("GPT2_CUDA_GRAPHS");
  const char* attention = std::getenv("GPT2_CUDA_ATTENTION");
  const bool simt = attention && std::strcmp(attention, "simt") == 0;
  o.cuda_attention = simt ? CudaAttention::simt : CudaAttention::auto_select;
  return o;
}

// GPT2_TEST_CUDA_AS_CPU (compile-time, never set by CMake): the "CUDA" side becomes a second CPU
// backend, to dry-run this harness (shapes, sequencing, timing of the CPU oracle) without a GPU.
inline std::unique_ptr<Backend> cuda_backend(DType dtype, Graphs graphs = Graphs::from_environment) {
#ifdef GPT2_TEST_CUDA_AS_CPU
  (void)dtype;
  (void)graphs;
  return cpu_backend();
#else
  return make_backend(cuda_options(dtype, graphs));
#endif
}

// Uploads a host model's weights to a backend as Gpt2's constructor does (one reservation, each
// tensor for its use); returns the backend-resident views.
inline ModelWeights upload_weights(Backend& be, const HostModel& host) {
  const Config& c = host.config;
  const bool tied = host.tied_head();
  ModelWeights src = host.weights;  // views: weight_table needs a mutable ModelWeights
  ModelWeights dst;
  dst.h.resize(static_cast<size_t>(c.n_layer));
  const std::vector<WeightEntry> from = weight_table(c, src, tied);
  const std::vector<WeightEntry> to = weight_table(c, dst, tied);
  size_t bytes = 0;
  for (const WeightEntry& e : from) bytes += be.upload_bytes(e.tensor->rows, e.tensor->cols, e.use);
  be.reserve_weights(bytes);
  for (size_t i = 0; i < from.size(); ++i) *to[i].tensor = be.upload(*from[i].tensor, from[i].use);
  if (tied) dst.lm_head = dst.wte;
  return dst;
}

enum class Capture { never, allowed };

// Runs `ops` as one step of `batch` on `be`. Capture::never marks the step observed, so the ops
// run as issued (an op test); Capture::allowed lets the CUDA backend capture a decode step in a
// CUDA graph and replay it for later steps of the same key (`ops` then runs only at capture).
inline void run_step(Backend& be, const Batch& batch, const std::function<void()>& ops,
                     Capture capture = Capture::never) {
  // One KV cache per test: the key need not tell caches apart (a null cache).
  be.run_step(batch, StepKey::of(batch, KvCache{}, capture == Capture::never), ops);
}

// A batch of `n_seqs` sequences of `n_tokens` tokens each, sequence s in slot slots[s] at
// position positions[s], token ids from `tokens` (n_seqs * n_tokens, sequence-major).
inline Batch uniform_batch(const std::vector<int32_t>& slots, const std::vector<int32_t>& positions, int n_tokens,
                           const std::vector<int32_t>& tokens, Logits want) {
  Batch b;
  for (size_t s = 0; s < slots.size(); ++s)
    b.add(slots[s], positions[s], tokens.data() + s * static_cast<size_t>(n_tokens), n_tokens, want);
  return b;
}

inline std::vector<int32_t> random_tokens(size_t n, int n_vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, n_vocab - 1);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = dist(rng);
  return v;
}

// Writes host floats into a backend activation (device memory for CUDA). The CUDA backend works
// on its own non-blocking stream: synchronize the device around the copy.
inline void write(Backend& be, const Tensor& t, const std::vector<float>& src) {
  REQUIRE(src.size() == static_cast<size_t>(t.numel()));
  if (be.name() == "cuda") {
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    REQUIRE(cudaMemcpy(t.data, src.data(), t.bytes(), cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  } else {
    std::memcpy(t.data, src.data(), t.bytes());
  }
}

// Fills an output with NaN so that an element the op forgets to write fails the comparison.
inline void poison(Backend& be, const Tensor& t) {
  write(be, t, std::vector<float>(static_cast<size_t>(t.numel()), std::numeric_limits<float>::quiet_NaN()));
}

inline std::vector<float> read_all(Backend& be, const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  be.read(v.data(), t);
  return v;
}

// elem: every |got - ref| <= elem * (rms(ref) + |ref|); rel_l2: ||got - ref|| / ||ref||. See close().
struct Tolerance {
  double elem;
  double rel_l2;
  const char* name = "";  // e.g. "model bf16": the row of the headroom table (tolerance_report)
};

// The largest share of each named tolerance any close() used (1 = at the limit): printed after
// the run, so a passing GPU run still shows how much room each tolerance has left.
struct ToleranceUse {
  double elem = 0, rel_l2 = 0;
  int checks = 0;
};
inline std::map<std::string, ToleranceUse>& tolerance_use() {
  static std::map<std::string, ToleranceUse> use;
  return use;
}

// One op: fp32 sums in another order; 16-bit: one rounding of the GEMM input or the cache
// (2^-11 for fp16, 2^-8 for bf16, relative), accumulated over a dot product.
inline Tolerance op_tolerance(DType dtype) {
  switch (dtype) {
    case DType::f16: return {1e-2, 2e-3, "op fp16"};
    case DType::bf16: return {5e-2, 1.5e-2, "op bf16"};
    default: return {1e-4, 1e-5, "op fp32"};
  }
}

// The whole model. Set from a CPU emulation of the CUDA path's roundings (16-bit GEMM inputs
// above 8 rows, the 16-bit KV cache, Q and P of the tensor-core prefill attention) over every
// case of test_model.cpp and several seeds (2026-11-28): the worst were elem 2.3e-2 / rel 5.0e-3
// (bf16), 3.0e-3 / 6.2e-4 (fp16), 1.1e-5 / 2.7e-6 (fp32, summation order only); the limits
// leave ~4-5x (16-bit) and ~10x (fp32) of room, and are tight enough that a dropped c_fc or
// v bias (elem 0.135-0.150 in bf16) fails.
inline Tolerance model_tolerance(DType dtype) {
  switch (dtype) {
    case DType::f16: return {1.5e-2, 3e-3, "model fp16"};
    case DType::bf16: return {1e-1, 2.5e-2, "model bf16"};
    default: return {2e-4, 3e-5, "model fp32"};
  }
}

inline void tolerance_report() {
  if (tolerance_use().empty()) return;
  std::printf("tolerance headroom (worst share of the limit over all checks; 1 = at the limit):\n");
  for (const auto& [name, use] : tolerance_use())
    std::printf("  %-12s elem %.3f  rel_l2 %.3f  (%d checks)\n", name.c_str(), use.elem, use.rel_l2, use.checks);
}

// Compares got with ref; on failure prints the first mismatches and the error summary.
// row_len > 0: the element check's rms(ref) is that of the element's own row of row_len values
// rather than of the whole tensor, for outputs whose rows differ in scale by construction
// (attention: row t averages t + 1 values). rel_l2 is always over the whole tensor.
inline bool close(const std::vector<float>& got, const std::vector<float>& ref, Tolerance tol,
                  const std::string& what, size_t row_len = 0) {
  if (got.size() != ref.size() || (row_len > 0 && ref.size() % row_len != 0)) {
    UNSCOPED_INFO(what << ": size " << got.size() << " vs " << ref.size() << " (rows of " << row_len << ")");
    return false;
  }
  const size_t n = ref.size(), len = row_len > 0 ? row_len : std::max<size_t>(1, n);
  double ss_ref = 0, ss_err = 0, max_err = 0;
  std::vector<double> row_rms((n + len - 1) / len, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const double r2 = static_cast<double>(ref[i]) * ref[i];
    ss_ref += r2;
    row_rms[i / len] += r2;
    const double e = static_cast<double>(got[i]) - ref[i];
    ss_err += e * e;
  }
  for (double& r : row_rms) r = std::sqrt(r / static_cast<double>(len));
  const double rms = std::sqrt(ss_ref / std::max<size_t>(1, n));
  size_t bad = 0;
  double worst_share = 0;
  std::ostringstream first;
  for (size_t i = 0; i < n; ++i) {
    const double e = std::fabs(static_cast<double>(got[i]) - ref[i]);
    const double scale = row_rms[i / len] + std::fabs(ref[i]);
    const bool ok = std::isfinite(got[i]) && e <= tol.elem * scale;
    if (std::isfinite(got[i])) {
      max_err = std::max(max_err, e);
      if (scale > 0) worst_share = std::max(worst_share, e / (tol.elem * scale));
    }
    if (!ok && bad++ < 5) first << " [" << i << "] got " << got[i] << " want " << ref[i] << ";";
  }
  const double rel = ss_ref > 0 ? std::sqrt(ss_err / ss_ref) : std::sqrt(ss_err);
  if (*tol.name) {
    ToleranceUse& use = tolerance_use()[tol.name];
    use.elem = std::max(use.elem, worst_share);
    if (std::isfinite(rel)) use.rel_l2 = std::max(use.rel_l2, rel / tol.rel_l2);
    ++use.checks;
  }
  const bool pass = bad == 0 && rel <= tol.rel_l2 && std::isfinite(rel);
  if (!pass)
    UNSCOPED_INFO(what << ": " << bad << " of " << n << " elements outside tolerance"
                       << (row_len > 0 ? " (scale: rms of each row)" : "") << ", max |err| " << max_err
                       << ", rel L2 " << rel << " (limit " << tol.rel_l2 << "), rms(ref) " << rms << ";"
                       << first.str());
  return pass;
}

}  // namespace gpt2::test
