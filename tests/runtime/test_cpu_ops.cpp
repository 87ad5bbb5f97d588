// The CPU backend's ops against a plain double-precision reference (cpu_reference.h) on random
// inputs of awkward sizes, exact checks by construction, and thread-count invariance. Every
// linear case runs on every kernel ISA this CPU supports (generic, AVX2, AVX-512).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/thread_pool.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/cpu/cpu_kernels.h"
#include "runtime/cpu_reference.h"

using namespace gpt2;

namespace {

using test::random_vector;
using test::view;

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// Max of |got - want| / (atol + rtol * scale) over all elements; <= 1 passes. Prints the first
// few mismatches (llm.c validate_result style).
double worst_error(const std::vector<float>& got, const std::vector<double>& want, double atol, double rtol,
                   const std::vector<double>& scale, bool print = true) {
  double worst = 0;
  int printed = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = std::fabs(got[i] - want[i]) / (atol + rtol * scale[i]);
    if (e > 1 && print && printed++ < 5) std::printf("  mismatch at %zu: got %.9g want %.9g\n", i, got[i], want[i]);
    worst = std::max(worst, e);
  }
  return worst;
}

// sum_i |in[n, i] * w[o, i]| + |bias|: the scale of a dot product's rounding error.
std::vector<double> dot_scale(const std::vector<float>& in, int64_t N, int64_t I, const std::vector<float>& w,
                              int64_t O, const float* bias) {
  std::vector<double> s(static_cast<size_t>(N * O));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) {
      double a = bias ? std::fabs(bias[o]) : 0.0;
      for (int64_t i = 0; i < I; ++i) a += std::fabs(double(in[n * I + i]) * w[o * I + i]);
      s[n * O + o] = a;
    }
  return s;
}

std::vector<cpu::Isa> available_isas() {
  std::vector<cpu::Isa> v;
  for (cpu::Isa isa : {cpu::Isa::generic, cpu::Isa::avx2, cpu::Isa::avx512})
    if (cpu::kernels_for(isa)) v.push_back(isa);
  return v;
}

// Packing on one thread (pack_matrix writes each panel from one task: any pool gives the same bits).
ThreadPool& one_thread() {
  static ThreadPool pool(1);
  return pool;
}

// Runs one linear through a kernel table directly (single task covering every panel).
std::vector<float> run_linear(const cpu::KernelTable& k, std::vector<float>& in, int64_t N, int64_t I,
                              std::vector<float>& w, int64_t O, const float* bias, Epilogue e, DType dtype) {
  std::vector<char> data(cpu::packed_bytes(dtype, O, I) + 64);
  std::vector<float> scales(cpu::packed_scale_bytes(dtype, O, I, 64) / sizeof(float) + 16);
  cpu::LinearArgs a;
  a.w = cpu::pack_matrix(view(w, O, I), dtype, 64, data.data(), scales.data(), one_thread());
  std::vector<float> out(static_cast<size_t>(N * O), -12345.0f);
  a.out = out.data();
  a.ldo = O;
  a.in = in.data();
  a.ldi = I;
  a.n_rows = N;
  a.bias = bias;
  a.epilogue = e;
  k.linear_panels(a, 0, cpu::panel_count(O));
  return out;
}

}  // namespace

TEST_CASE("linear matches the double reference for awkward shapes on every ISA", "[cpu][linear]") {
  struct Dims {
    int64_t O, I;
  };
  for (cpu::Isa isa : available_isas()) {
    const cpu::KernelTable& k = *cpu::kernels_for(isa);
    for (int64_t N : {1, 7, 63, 64, 65}) {
      for (Dims d : {Dims{37, 29}, Dims{48, 64}, Dims{5, 3}, Dims{100, 131}}) {
        for (Epilogue e : {Epilogue::none, Epilogue::gelu}) {
          const bool with_bias = e == Epilogue::gelu || d.O % 2 == 0;
          INFO("isa " << cpu::isa_name(isa) << " N " << N << " O " << d.O << " I " << d.I << " gelu "
                      << (e == Epilogue::gelu) << " bias " << with_bias);
          auto in = random_vector(N * d.I, 1 + N);
          auto w = random_vector(d.O * d.I, 2 + d.O, 0.3f);
          auto bias = random_vector(d.O, 3);
          const float* b = with_bias ? bias.data() : nullptr;
          auto got = run_linear(k, in, N, d.I, w, d.O, b, e, DType::f32);
          auto want = test::ref_linear(to_double(in), N, d.I, w.data(), d.O, b, e == Epilogue::gelu);
          // fp32 accumulation: error <~ I * 2^-24 * sum|terms|; GELU adds ~1e-7 absolute.
          auto scale = dot_scale(in, N, d.I, w, d.O, b);
          CHECK(worst_error(got, want, 1e-6, 4e-6, scale) <= 1.0);
        }
      }
    }
  }
}

TEST_CASE("linear with small integers is exact (GEMM and GEMV paths)", "[cpu][linear]") {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(-4, 4);
  const int64_t O = 70, I = 300;
  for (cpu::Isa isa : available_isas()) {
    for (int64_t N : {1, 9, 64}) {
      std::vector<float> in(N * I), w(O * I), bias(O);
      for (float& x : in) x = static_cast<float>(small(rng));
      for (float& x : w) x = static_cast<float>(small(rng));
      for (float& x : bias) x = static_cast<float>(small(rng));
      auto got = run_linear(*cpu::kernels_for(isa), in, N, I, w, O, bias.data(), Epilogue::none, DType::f32);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < O; ++o) {
          int64_t s = static_cast<int64_t>(bias[o]);
          for (int64_t i = 0; i < I; ++i) s += static_cast<int64_t>(in[n * I + i]) * static_cast<int64_t>(w[o * I + i]);
          REQUIRE(got[n * O + o] == static_cast<float>(s));
        }
    }
  }
}

TEST_CASE("every output of a linear is the same bits whatever the row count", "[cpu][linear]") {
  // Prefill (many rows, register-tiled GEMM) and decode (one row, GEMV) must agree exactly.
  const int64_t O = 77, I = 96, N = 19;
  auto in = random_vector(N * I, 11);
  auto w = random_vector(O * I, 12, 0.2f);
  auto bias = random_vector(O, 13);
  for (cpu::Isa isa : available_isas()) {
    for (DType dt : {DType::f32, DType::bf16, DType::i8}) {
      const cpu::KernelTable& k = *cpu::kernels_for(isa);
      auto all = run_linear(k, in, N, I, w, O, bias.data(), Epilogue::gelu, dt);
      for (int64_t n = 0; n < N; ++n) {
        std::vector<float> row(in.begin() + n * I, in.begin() + (n + 1) * I);
        auto one = run_linear(k, row, 1, I, w, O, bias.data(), Epilogue::gelu, dt);
        for (int64_t o = 0; o < O; ++o) REQUIRE(one[o] == all[n * O + o]);
      }
    }
  }
}

TEST_CASE("bf16 and int8 weights stay within their quantization error", "[cpu][linear]") {
  const int64_t N = 5, O = 50, I = 200;
  auto in = random_vector(N * I, 21);
  auto w = random_vector(O * I, 22, 0.1f);
  for (cpu::Isa isa : available_isas()) {
    const cpu::KernelTable& k = *cpu::kernels_for(isa);
    auto want = test::ref_linear(to_double(in), N, I, w.data(), O, nullptr, false);
    auto scale = dot_scale(in, N, I, w, O, nullptr);
    // bf16 rounds each weight by at most 2^-9 relative; int8 (absmax/127 per group of 64) by
    // at most half a step, ~0.4% of the group's largest weight.
    auto bf = run_linear(k, in, N, I, w, O, nullptr, Epilogue::none, DType::bf16);
    CHECK(worst_error(bf, want, 1e-6, 1.0 / 512, scale) <= 1.0);
    CHECK(worst_error(bf, want, 1e-6, 1.0 / 4096, scale, false) > 1.0);  // really rounded to bf16
    auto q = run_linear(k, in, N, I, w, O, nullptr, Epilogue::none, DType::i8);
    // Per weight: |err| <= step/2 = amax/254, amax <~ 4.5 sd; relative to |w| on average ~0.8 sd.
    CHECK(worst_error(q, want, 1e-6, 0.03, scale) <= 1.0);
  }
}

TEST_CASE("int8 packing round-trips and keeps exact small values", "[cpu][pack]") {
  // Each group of 64 holds a 127 so its scale is exactly 1: integers survive unchanged.
  const int64_t O = 20, I = 130;
  std::vector<float> w(O * I);
  for (int64_t i = 0; i < O * I; ++i) w[i] = static_cast<float>((i * 37) % 255 - 127);
  for (int64_t o = 0; o < O; ++o)
    for (int64_t g = 0; g < I; g += 64) w[o * I + g] = 127.0f;
  std::vector<char> data(cpu::packed_bytes(DType::i8, O, I));
  std::vector<float> scales(cpu::packed_scale_bytes(DType::i8, O, I, 64) / sizeof(float));
  ThreadPool pool(2);
  Tensor packed = cpu::pack_matrix(view(w, O, I), DType::i8, 64, data.data(), scales.data(), pool);
  std::vector<float> row(I);
  for (int64_t o = 0; o < O; ++o) {
    cpu::unpack_row(row.data(), packed, o);
    for (int64_t i = 0; i < I; ++i) REQUIRE(row[i] == w[o * I + i]);
  }
}

TEST_CASE("layernorm kernels match the reference; a constant row gives beta exactly", "[cpu][layernorm]") {
  for (cpu::Isa isa : available_isas()) {
    const cpu::KernelTable& k = *cpu::kernels_for(isa);
    for (int64_t C : {1, 15, 37, 768}) {
      auto g = random_vector(C, 31);
      auto b = random_vector(C, 32);
      for (float& x : g) x += 1.0f;
      auto x = random_vector(C, 33, 3.0f);
      for (float& v : x) v += 5.0f;  // a mean far from 0
      std::vector<float> out(C);
      k.layernorm_row(out.data(), x.data(), g.data(), b.data(), C, 1e-5f);
      auto want = test::ref_layernorm(to_double(x), 1, C, g.data(), b.data(), 1e-5);
      std::vector<double> scale(C);
      for (int64_t c = 0; c < C; ++c) scale[c] = std::fabs(g[c]) * 4 + std::fabs(b[c]);
      INFO("isa " << cpu::isa_name(isa) << " C " << C);
      CHECK(worst_error(out, want, 1e-6, 2e-6, scale) <= 1.0);
      // Constant row (exactly summable): x - mean == 0, so out == beta bit for bit.
      std::vector<float> constant(C, 3.5f);
      k.layernorm_row(out.data(), constant.data(), g.data(), b.data(), C, 1e-5f);
      for (int64_t c = 0; c < C; ++c) REQUIRE(out[c] == b[c]);
    }
  }
}

TEST_CASE("attention kernel matches the reference softmax", "[cpu][attention]") {
  for (cpu::Isa isa : available_isas()) {
    const cpu::KernelTable& k = *cpu::kernels_for(isa);
    for (int64_t hd : {10, 16, 64, 70}) {
      for (int64_t n_keys : {1, 15, 16, 17, 100}) {
        const int64_t stride = hd + 3;
        auto q = random_vector(hd, 41 + hd, 0.5f);
        auto kv = random_vector(2 * n_keys * stride, 42 + n_keys);
        std::vector<float> out(hd), scores(n_keys);
        const float* kp = kv.data();
        const float* vp = kv.data() + n_keys * stride;
        const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
        k.attention_query(out.data(), q.data(), kp, vp, stride, n_keys, hd, static_cast<float>(scale),
                          scores.data());
        std::vector<double> s(n_keys), want(hd, 0.0);
        double m = -1e300, sum = 0;
        for (int64_t j = 0; j < n_keys; ++j) {
          double d = 0;
          for (int64_t e = 0; e < hd; ++e) d += double(q[e]) * kp[j * stride + e];
          m = std::max(m, s[j] = d * scale);
        }
        for (int64_t j = 0; j < n_keys; ++j) sum += (s[j] = std::exp(s[j] - m));
        for (int64_t j = 0; j < n_keys; ++j)
          for (int64_t e = 0; e < hd; ++e) want[e] += s[j] / sum * vp[j * stride + e];
        INFO("isa " << cpu::isa_name(isa) << " hd " << hd << " keys " << n_keys);
        CHECK(worst_error(out, want, 2e-6, 2e-6, std::vector<double>(hd, 4.0)) <= 1.0);
      }
    }
  }
}

namespace {

// Uploads host tensors to a bare backend in one weight reservation (as Gpt2 does), in order.
std::vector<Tensor> upload_all(Backend& be, const std::vector<std::pair<Tensor, WeightUse>>& host) {
  size_t bytes = 0;
  for (const auto& [t, use] : host) bytes += be.upload_bytes(t.rows, t.cols, use);
  be.reserve_weights(bytes);
  std::vector<Tensor> out;
  for (const auto& [t, use] : host) out.push_back(be.upload(t, use));
  return out;
}

}  // namespace

TEST_CASE("backend linear: a caller's row-major matrix and an uploaded one agree, for any thread count",
          "[cpu][linear]") {
  const int64_t N = 65, O = 123, I = 77;
  auto in = random_vector(N * I, 51);
  auto w = random_vector(O * I, 52, 0.2f);
  auto bias = random_vector(O, 53);
  auto want = test::ref_linear(to_double(in), N, I, w.data(), O, bias.data(), true);
  auto scale = dot_scale(in, N, I, w, O, bias.data());
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3}) {
    INFO("threads " << threads);
    BackendOptions opt;
    opt.device = Device::cpu;
    opt.threads = threads;
    auto be = make_cpu_backend(opt);
    const std::vector<Tensor> up = upload_all(*be, {{view(w, O, I), WeightUse::matrix}, {view(bias, 1, O), WeightUse::vector}});
    Tensor out = be->alloc(N, O);
    Tensor x = be->alloc(N, I);
    std::copy(in.begin(), in.end(), x.f32());
    be->linear(out, x, view(w, O, I), view(bias, 1, O), Epilogue::gelu);  // packed into a temporary
    std::vector<float> got(N * O);
    be->read(got.data(), out);
    CHECK(worst_error(got, want, 1e-6, 4e-6, scale) <= 1.0);
    results.push_back(got);
    be->linear(out, x, up[0], up[1], Epilogue::gelu);  // the backend's own packed weights
    std::vector<float> resident(N * O);
    be->read(resident.data(), out);
    CHECK(resident == got);
  }
  CHECK(results[0] == results[1]);
  CHECK(results[0] == results[2]);
}

TEST_CASE("the CPU backend describes itself, takes an ISA limit and rejects fp16", "[cpu]") {
  BackendOptions opt;
  opt.threads = 2;
  auto be = make_cpu_backend(opt);
  CHECK(be->name() == "cpu");
  CHECK(be->weight_dtype() == DType::f32);
  CHECK(be->peak_device_bytes() == -1);
  const std::string d = be->describe();
  CHECK(d.rfind("cpu (2 threads, ", 0) == 0);
  CHECK(d.find(cpu::isa_name(cpu::best_kernels("").isa)) != std::string::npos);

  // cpu_isa caps the kernels: generic always runs; avx2 gives AVX2 where the CPU has it.
  opt.cpu_isa = "generic";
  CHECK(make_cpu_backend(opt)->describe() == "cpu (2 threads, generic)");
  CHECK(cpu::best_kernels("generic").isa == cpu::Isa::generic);
  opt.cpu_isa = "avx2";
  const cpu::Isa avx2 = cpu::kernels_for(cpu::Isa::avx2) ? cpu::Isa::avx2 : cpu::Isa::generic;
  CHECK(cpu::best_kernels("avx2").isa == avx2);
  CHECK(make_cpu_backend(opt)->describe() == std::string("cpu (2 threads, ") + cpu::isa_name(avx2) + ")");
  CHECK(cpu::best_kernels("avx512").isa == cpu::best_kernels("").isa);
  opt.cpu_isa = "sse9";
  CHECK_THROWS_AS(make_cpu_backend(opt), UsageError);
  CHECK_THROWS_WITH(cpu::best_kernels("sse9"), Catch::Contains("--cpu-isa") && Catch::Contains("'sse9'"));
  opt.cpu_isa.clear();

  opt.auto_dtype = false;
  opt.weight_dtype = DType::f16;
  try {
    make_cpu_backend(opt);
    FAIL("fp16 on the CPU must be refused");
  } catch (const UsageError& e) {  // a bad option: exit code 2
    CHECK(std::string(e.what()) == "--dtype fp16 is for CUDA; use fp32, bf16 or int8 on the CPU");
  }
  opt.weight_dtype = DType::i8;
  CHECK(make_cpu_backend(opt)->weight_dtype() == DType::i8);
}

TEST_CASE("backend layernorm, add_layernorm and attention match the reference for N = 1..65", "[cpu][ops]") {
  Config cfg = test::tiny_config();  // n_embd 40, 4 heads of head_dim 10
  cfg.n_ctx = 80;
  const HostModel host = test::tiny_model(cfg, 9);
  const int64_t C = cfg.n_embd, H = cfg.n_head;
  const float eps = cfg.layer_norm_epsilon;
  BackendOptions opt;
  opt.threads = 2;
  auto be = make_cpu_backend(opt);
  const std::vector<Tensor> up = upload_all(*be, {{host.weights.h[0].ln_1_g, WeightUse::vector},
                                                  {host.weights.h[0].ln_1_b, WeightUse::vector},
                                                  {host.weights.h[0].attn_qkv_b, WeightUse::vector}});
  const Tensor g = up[0], b = up[1], qkv_bias = up[2];
  be->reserve_batch(65, 2);
  KvCache kv = be->alloc_kv(1, 2, cfg.n_ctx, cfg.n_head, cfg.head_dim());
  for (int64_t N : {1, 7, 63, 64, 65}) {
    INFO("N " << N);
    auto xv = random_vector(N * C, 60 + N, 2.0f);
    auto dv = random_vector(N * C, 70 + N, 0.5f);
    Tensor x = be->alloc(N, C), d = be->alloc(N, C), out = be->alloc(N, C);
    std::copy(xv.begin(), xv.end(), x.f32());
    std::copy(dv.begin(), dv.end(), d.f32());
    std::vector<double> scale(N * C, 4.0);

    be->layernorm(out, x, g, b, eps);
    std::vector<float> got(N * C);
    be->read(got.data(), out);
    auto want = test::ref_layernorm(to_double(xv), N, C, g.f32(), b.f32(), eps);
    CHECK(worst_error(got, want, 1e-6, 2e-6, scale) <= 1.0);

    be->add_layernorm(x, d, out, g, b, eps);
    std::vector<float> residual(N * C);
    be->read(residual.data(), x);
    be->read(got.data(), out);
    std::vector<double> sum(N * C);
    for (int64_t i = 0; i < N * C; ++i) {
      REQUIRE(residual[i] == xv[i] + dv[i]);  // the residual add is one fp32 add
      sum[i] = residual[i];
    }
    want = test::ref_layernorm(sum, N, C, g.f32(), b.f32(), eps);
    CHECK(worst_error(got, want, 1e-6, 2e-6, scale) <= 1.0);

    // One sequence of N tokens from position 0 of slot 0, no bias.
    const std::vector<int32_t> tokens(static_cast<size_t>(N), 1);
    auto qkv = random_vector(N * 3 * C, 80 + N);
    Tensor tq = be->alloc(N, 3 * C), att = be->alloc(N, C);
    std::copy(qkv.begin(), qkv.end(), tq.f32());
    Batch one;
    one.add(0, 0, tokens.data(), static_cast<int>(N), Logits::none);
    be->run_step(one, StepKey::of(one, kv, false), [&] { be->attention(att, tq, Tensor{}, kv.layer(0), one); });
    be->read(got.data(), att);
    want = test::ref_attention(to_double(qkv), N, C, H);
    CHECK(worst_error(got, want, 2e-6, 2e-6, scale) <= 1.0);
    std::vector<float> unchanged(N * 3 * C);
    be->read(unchanged.data(), tq);
    CHECK(unchanged == qkv);  // no bias: qkv is left as it was

    // The same rows as two sequences packed side by side (slot 1 first, then slot 0), with
    // c_attn's bias fused in: each attends to its own rows only, and qkv holds q | k | v + bias.
    const int64_t n1 = N / 2 + 1, n0 = N - n1;
    std::copy(qkv.begin(), qkv.end(), tq.f32());
    Batch two;
    two.add(1, 0, tokens.data(), static_cast<int>(n1), Logits::none);
    if (n0 > 0) two.add(0, 0, tokens.data(), static_cast<int>(n0), Logits::none);
    be->run_step(two, StepKey::of(two, kv, false), [&] { be->attention(att, tq, qkv_bias, kv.layer(0), two); });
    be->read(got.data(), att);
    std::vector<float> biased(N * 3 * C);
    be->read(biased.data(), tq);
    std::vector<double> with_bias(N * 3 * C);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < 3 * C; ++c) {
        const int64_t i = n * 3 * C + c;
        REQUIRE(biased[i] == qkv[i] + qkv_bias.f32()[c]);  // one fp32 add
        with_bias[i] = biased[i];
      }
    for (auto [first, n] : {std::pair<int64_t, int64_t>{0, n1}, {n1, n0}}) {
      if (n == 0) continue;
      INFO("sequence of " << n << " rows from row " << first);
      const std::vector<double> rows(with_bias.begin() + first * 3 * C, with_bias.begin() + (first + n) * 3 * C);
      want = test::ref_attention(rows, n, C, H);
      const std::vector<float> part(got.begin() + first * C, got.begin() + (first + n) * C);
      CHECK(worst_error(part, want, 2e-6, 2e-6, std::vector<double>(n * C, 4.0)) <= 1.0);
    }
  }
}
