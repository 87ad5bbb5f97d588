// Plain double-precision reference of GPT-2's ops and forward pass, written straight from the
// math (llm.c train_gpt2.c style), for checking the CPU backend. Also a tiny seeded random
// HostModel with awkward sizes, and GPT-2 on the CPU backend for a copy of it.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "model/config.h"
#include "model/gpt2.h"
#include "model/weights.h"
#include "runtime/cpu/cpu_backend.h"

namespace gpt2::test {

// n values ~ N(0, sd) from a fixed seed.
inline std::vector<float> random_vector(size_t n, uint64_t seed, float sd = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// v as an fp32 [rows, cols] tensor (v keeps the memory).
inline Tensor view(std::vector<float>& v, int64_t rows, int64_t cols) {
  Tensor t;
  t.data = v.data();
  t.rows = rows;
  t.cols = cols;
  return t;
}

// out [N, O] = in [N, I] @ w[O, I]^T + bias, optionally gelu_new.
inline std::vector<double> ref_linear(const std::vector<double>& in, int64_t N, int64_t I, const float* w,
                                      int64_t O, const float* bias, bool gelu) {
  std::vector<double> out(static_cast<size_t>(N * O));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) {
      double s = bias ? bias[o] : 0.0;
      for (int64_t i = 0; i < I; ++i) s += in[n * I + i] * static_cast<double>(w[o * I + i]);
      if (gelu) s = 0.5 * s * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (s + 0.044715 * s * s * s)));
      out[n * O + o] = s;
    }
  return out;
}

inline std::vector<double> ref_layernorm(const std::vector<double>& x, int64_t N, int64_t C, const float* g,
                                         const float* b, double eps) {
  std::vector<double> out(x.size());
  for (int64_t n = 0; n < N; ++n) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += x[n * C + c];
    mean /= C;
    for (int64_t c = 0; c < C; ++c) var += (x[n * C + c] - mean) * (x[n * C + c] - mean);
    var /= C;
    for (int64_t c = 0; c < C; ++c) out[n * C + c] = (x[n * C + c] - mean) / std::sqrt(var + eps) * g[c] + b[c];
  }
  return out;
}

// Causal attention of one sequence of T tokens that starts at position 0: qkv [T, 3C] -> [T, C].
inline std::vector<double> ref_attention(const std::vector<double>& qkv, int64_t T, int64_t C, int64_t H) {
  const int64_t hd = C / H;
  std::vector<double> out(static_cast<size_t>(T * C), 0.0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> s(static_cast<size_t>(t + 1));
      double m = -1e300, sum = 0;
      for (int64_t j = 0; j <= t; ++j) {
        double d = 0;
        for (int64_t e = 0; e < hd; ++e) d += qkv[t * 3 * C + h * hd + e] * qkv[j * 3 * C + C + h * hd + e];
        s[j] = d / std::sqrt(static_cast<double>(hd));
        m = std::max(m, s[j]);
      }
      for (int64_t j = 0; j <= t; ++j) sum += (s[j] = std::exp(s[j] - m));
      for (int64_t j = 0; j <= t; ++j)
        for (int64_t e = 0; e < hd; ++e) out[t * C + h * hd + e] += s[j] / sum * qkv[j * 3 * C + 2 * C + h * hd + e];
    }
  return out;
}

// Logits [T, V] of every token of one sequence.
inline std::vector<double> ref_forward(const HostModel& m, const std::vector<int32_t>& tokens) {
  const Config& cfg = m.config;
  const int64_t T = static_cast<int64_t>(tokens.size()), C = cfg.n_embd, V = cfg.n_vocab;
  const ModelWeights& w = m.weights;
  std::vector<double> x(static_cast<size_t>(T * C));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c) x[t * C + c] = double(w.wte.f32()[tokens[t] * C + c]) + w.wpe.f32()[t * C + c];
  for (const LayerWeights& l : w.h) {
    auto h = ref_layernorm(x, T, C, l.ln_1_g.f32(), l.ln_1_b.f32(), cfg.layer_norm_epsilon);
    auto qkv = ref_linear(h, T, C, l.attn_qkv_w.f32(), 3 * C, l.attn_qkv_b.f32(), false);
    auto att = ref_attention(qkv, T, C, cfg.n_head);
    auto proj = ref_linear(att, T, C, l.attn_proj_w.f32(), C, l.attn_proj_b.f32(), false);
    for (size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
    h = ref_layernorm(x, T, C, l.ln_2_g.f32(), l.ln_2_b.f32(), cfg.layer_norm_epsilon);
    auto fc = ref_linear(h, T, C, l.mlp_fc_w.f32(), 4 * C, l.mlp_fc_b.f32(), true);
    auto mp = ref_linear(fc, T, 4 * C, l.mlp_proj_w.f32(), C, l.mlp_proj_b.f32(), false);
    for (size_t i = 0; i < x.size(); ++i) x[i] += mp[i];
  }
  auto h = ref_layernorm(x, T, C, w.ln_f_g.f32(), w.ln_f_b.f32(), cfg.layer_norm_epsilon);
  return ref_linear(h, T, C, w.lm_head.f32(), V, nullptr, false);
}

// A small model with odd sizes: V = 67 (a partial last panel), head_dim = 10 (not a multiple of
// the vector width). Weights N(0, 0.2) (larger than GPT-2's 0.02 so that a tiny model still
// has peaked, token-dependent distributions), gains near 1, small biases.
inline Config tiny_config() {
  Config c;
  c.n_vocab = 67;
  c.n_ctx = 40;
  c.n_embd = 40;
  c.n_head = 4;
  c.n_layer = 2;
  return c;
}

inline HostModel tiny_model(const Config& cfg, uint64_t seed) {
  HostModel m;
  m.config = cfg;
  m.name = "tiny";
  const int64_t C = cfg.n_embd, V = cfg.n_vocab;
  const size_t per_layer = 2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + 4 * C * C + 4 * C + 4 * C * C + C;
  m.storage_floats = static_cast<size_t>(V * C + cfg.n_ctx * C + 2 * C) + per_layer * cfg.n_layer;
  m.storage.reset(new float[m.storage_floats]);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  size_t used = 0;
  auto take = [&](int64_t rows, int64_t cols, float mean, float sd) {
    Tensor t;
    t.data = m.storage.get() + used;
    t.rows = rows;
    t.cols = cols;
    for (int64_t i = 0; i < rows * cols; ++i) t.f32()[i] = mean + sd * normal(rng);
    used += static_cast<size_t>(rows * cols);
    return t;
  };
  ModelWeights& w = m.weights;
  w.wte = take(V, C, 0, 0.2f);
  w.wpe = take(cfg.n_ctx, C, 0, 0.05f);
  for (int l = 0; l < cfg.n_layer; ++l) {
    LayerWeights lw;
    lw.ln_1_g = take(1, C, 1, 0.1f);
    lw.ln_1_b = take(1, C, 0, 0.05f);
    lw.attn_qkv_w = take(3 * C, C, 0, 0.2f);
    lw.attn_qkv_b = take(1, 3 * C, 0, 0.05f);
    lw.attn_proj_w = take(C, C, 0, 0.2f);
    lw.attn_proj_b = take(1, C, 0, 0.05f);
    lw.ln_2_g = take(1, C, 1, 0.1f);
    lw.ln_2_b = take(1, C, 0, 0.05f);
    lw.mlp_fc_w = take(4 * C, C, 0, 0.2f);
    lw.mlp_fc_b = take(1, 4 * C, 0, 0.05f);
    lw.mlp_proj_w = take(C, 4 * C, 0, 0.1f);
    lw.mlp_proj_b = take(1, C, 0, 0.05f);
    w.h.push_back(lw);
  }
  w.ln_f_g = take(1, C, 1, 0.1f);
  w.ln_f_b = take(1, C, 0, 0.05f);
  w.lm_head = w.wte;  // tied, as in GPT-2
  return m;
}

// A copy that owns its own storage (Gpt2 consumes its HostModel): every tensor of the weight
// table moved to the same offset in the copy.
inline HostModel clone(const HostModel& m) {
  HostModel c;
  c.config = m.config;
  c.name = m.name;
  c.source_dtype = m.source_dtype;
  c.storage_floats = m.storage_floats;
  c.storage.reset(new float[m.storage_floats]);
  std::memcpy(c.storage.get(), m.storage.get(), m.storage_floats * sizeof(float));
  const bool tied = m.tied_head();
  c.weights = m.weights;  // views into m's storage until moved below
  for (const WeightEntry& e : weight_table(c.config, c.weights, tied))
    e.tensor->data = c.storage.get() + (e.tensor->f32() - m.storage.get());
  if (tied) c.weights.lm_head = c.weights.wte;
  return c;
}

// GPT-2 on a CPU backend of `threads` threads with `dtype` weights, for a copy of `host`.
inline Gpt2 cpu_model(const HostModel& host, DType dtype, const RunLimits& limits, int threads = 2) {
  BackendOptions opt;
  opt.device = Device::cpu;
  opt.threads = threads;
  opt.auto_dtype = false;
  opt.weight_dtype = dtype;
  return Gpt2(clone(host), make_cpu_backend(opt), limits);
}

}  // namespace gpt2::test
