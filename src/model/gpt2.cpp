#include "model/gpt2.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/memory.h"
#include "model/observer.h"

namespace gpt2 {

size_t RunBytes::backend() const { return add_sizes(activations, kv_cache); }

RunBytes run_bytes(const Config& config, const RunLimits& limits) {
  const size_t N = static_cast<size_t>(std::max(limits.max_rows, 1));
  const size_t R = static_cast<size_t>(std::clamp(limits.max_logit_rows, 1, limits.max_rows));
  const size_t S = static_cast<size_t>(std::max(limits.max_sequences, 1));
  const size_t C = static_cast<size_t>(config.n_embd), V = static_cast<size_t>(config.n_vocab);
  RunBytes b;
  // x, h, att, delta [N, C]; qkv [N, 3C]; fc [N, 4C]; h_out [R, C]; logits [R, V] (the constructor's allocs)
  b.activations = mul_sizes({add_sizes(mul_sizes({N, 11 * C}), mul_sizes({R, add_sizes(C, V)})), sizeof(float)});
  // k and v of every layer, [S, n_ctx, C] each
  b.kv_cache = mul_sizes({S, 2, static_cast<size_t>(config.n_layer), static_cast<size_t>(config.n_ctx), C, sizeof(float)});
  b.host_logits = mul_sizes({R, V, sizeof(float)});
  return b;
}

Gpt2::Gpt2(HostModel host, std::unique_ptr<Backend> backend, const RunLimits& limits)
    : config_(host.config), name_(host.name), limits_(limits), backend_(std::move(backend)) {
  if (limits_.max_rows < 1 || limits_.max_sequences < 1 || limits_.max_logit_rows < 1)
    throw Error("internal: run limits must allow at least one row, sequence and logit row");
  if (limits_.max_sequences > limits_.max_rows) limits_.max_sequences = limits_.max_rows;
  if (limits_.max_logit_rows > limits_.max_rows) limits_.max_logit_rows = limits_.max_rows;
  if (static_cast<int>(host.weights.h.size()) != config_.n_layer)
    throw Error("internal: host weights have " + std::to_string(host.weights.h.size()) + " blocks, config says " +
                std::to_string(config_.n_layer));

  // Every tensor of the one weight table, uploaded for its use into one backend allocation.
  const bool tied = host.tied_head();
  weights_.h.resize(static_cast<size_t>(config_.n_layer));
  const std::vector<WeightEntry> src = weight_table(config_, host.weights, tied);
  const std::vector<WeightEntry> dst = weight_table(config_, weights_, tied);
  size_t bytes = 0;
  for (const WeightEntry& e : src) bytes += backend_->upload_bytes(*e.tensor, e.use);
  backend_->reserve_weights(bytes);
  for (size_t i = 0; i < src.size(); ++i) *dst[i].tensor = backend_->upload(*src[i].tensor, src[i].use);
  if (tied) weights_.lm_head = weights_.wte;
  host = HostModel{};  // release the host copy of the weights

  backend_->reserve_batch(limits_.max_rows, limits_.max_sequences);
  const int64_t N = limits_.max_rows, R = limits_.max_logit_rows, C = config_.n_embd;
  x_ = backend_->alloc(N, C);
  h_ = backend_->alloc(N, C);
  qkv_ = backend_->alloc(N, 3 * C);
  att_ = backend_->alloc(N, C);
  delta_ = backend_->alloc(N, C);
  fc_ = backend_->alloc(N, 4 * C);
  h_out_ = backend_->alloc(R, C);
  logits_ = backend_->alloc(R, config_.n_vocab);
}

KvCache Gpt2::make_kv_cache(int n_slots) {
  if (n_slots < 1) throw Error("internal: a KV cache needs at least one slot");
  return backend_->alloc_kv(config_.n_layer, n_slots, config_.n_ctx, config_.n_head, config_.head_dim());
}

void Gpt2::check(const Batch& batch, const KvCache& kv) const {
  if (batch.empty()) throw Error("internal: an empty batch");
  if (batch.rows() > limits_.max_rows)
    throw Error("a step of " + std::to_string(batch.rows()) + " tokens exceeds this run's limit of " +
                std::to_string(limits_.max_rows));
  if (batch.sequences() > limits_.max_sequences)
    throw Error("a step of " + std::to_string(batch.sequences()) + " sequences exceeds this run's limit of " +
                std::to_string(limits_.max_sequences));
  if (batch.n_logit_rows() > limits_.max_logit_rows)
    throw Error("internal: a step asks for " + std::to_string(batch.n_logit_rows()) +
                " rows of logits, this run has room for " + std::to_string(limits_.max_logit_rows));
  if (kv.n_layer() != config_.n_layer || kv.n_ctx() != config_.n_ctx || kv.layer(0).n_head != config_.n_head ||
      kv.layer(0).head_dim != config_.head_dim())
    throw Error("internal: the KV cache was not made for this model");
  // The per-row fields are what the backends index with: they must agree with the sequences.
  const size_t N = batch.tokens.size();
  if (batch.positions.size() != N || batch.row_slots.size() != N ||
      batch.seq_first_row.size() != batch.seq_slot.size() + 1 || batch.seq_pos.size() != batch.seq_slot.size() ||
      batch.seq_first_row.front() != 0 || batch.seq_first_row.back() != static_cast<int>(N))
    throw Error("internal: a batch whose rows and sequences disagree");
  for (int s = 0; s < batch.sequences(); ++s) {
    if (batch.seq_first_row[s + 1] < batch.seq_first_row[s]) throw Error("internal: a batch whose rows and sequences disagree");
    for (int r = batch.seq_first_row[s]; r < batch.seq_first_row[s + 1]; ++r) {
      if (batch.row_slots[r] != batch.seq_slot[s] || batch.positions[r] != batch.seq_pos[s] + (r - batch.seq_first_row[s]))
        throw Error("internal: batch row " + std::to_string(r) + " disagrees with its sequence's slot or position");
    }
  }
  for (int i = 0; i < batch.n_logit_rows(); ++i) {
    const int r = batch.logit_rows[i];
    if (r < 0 || r >= static_cast<int>(N) || (i > 0 && r <= batch.logit_rows[i - 1]))
      throw Error("internal: logit rows must be distinct rows of the batch, in order");
  }
  std::vector<char> seen(static_cast<size_t>(kv.n_slots()), 0);
  for (int s = 0; s < batch.sequences(); ++s) {
    const int slot = batch.seq_slot[s], pos = batch.seq_pos[s], n = batch.seq_tokens(s);
    if (!kv.in_use(slot)) throw Error("internal: KV slot " + std::to_string(slot) + " is not allocated");
    if (seen[static_cast<size_t>(slot)]++) throw Error("internal: KV slot " + std::to_string(slot) + " twice in a step");
    if (pos < 0 || pos > kv.length(slot))
      throw Error("internal: a sequence at position " + std::to_string(pos) + " but its slot holds " +
                  std::to_string(kv.length(slot)) + " positions");
    if (n < 1 || pos + n > config_.n_ctx)
      throw Error("context full: " + std::to_string(pos) + " + " + std::to_string(n) + " tokens exceed the model's " +
                  std::to_string(config_.n_ctx) + " positions");
  }
  for (int32_t id : batch.tokens) {
    if (id < 0 || id >= config_.n_vocab)
      throw Error("token id " + std::to_string(id) + " is outside the model's vocabulary of " +
                  std::to_string(config_.n_vocab));
  }
}

void Gpt2::forward(const Batch& batch, KvCache& kv, Outputs& out) {
  check(batch, kv);
  StepObserver* observer = out.observer;
  backend_->run_step(batch, StepKey::of(batch, kv, observer != nullptr), [&] { step(batch, kv, observer); });
  for (int s = 0; s < batch.sequences(); ++s) kv.set_length(batch.seq_slot[s], batch.seq_pos[s] + batch.seq_tokens(s));
  out.logits = batch.n_logit_rows() > 0 ? logits_.first_rows(batch.n_logit_rows()) : Tensor{};
}

// One step of GPT-2 over the batch's N rows (C = n_embd, R = logit rows). The residual stream x
// is updated in place; each block's second residual add is fused with the LayerNorm that follows
// it (the next block's ln_1, or ln_f after the last block); c_attn's bias is added by the
// attention op, which writes k and v to the cache in the same pass.
void Gpt2::step(const Batch& batch, const KvCache& kv, StepObserver* observer) {
  Backend& be = *backend_;
  const ModelWeights& w = weights_;
  const float eps = config_.layer_norm_epsilon;
  const int64_t N = batch.rows(), R = batch.n_logit_rows();
  Tensor x = x_.first_rows(N);          // [N, C]
  Tensor h = h_.first_rows(N);          // [N, C]
  Tensor qkv = qkv_.first_rows(N);      // [N, 3C]
  Tensor att = att_.first_rows(N);      // [N, C]
  Tensor delta = delta_.first_rows(N);  // [N, C]
  Tensor fc = fc_.first_rows(N);        // [N, 4C]
  const bool see_residual = observer && observer->wants_residual();

  be.embed(x, w.wte, w.wpe, batch);                                  // x = wte[tokens] + wpe[positions]
  if (see_residual) observer->on_residual(0, x, be);
  be.layernorm(h, x, w.h[0].ln_1_g, w.h[0].ln_1_b, eps);             // h = ln_1(x)
  for (int l = 0; l < config_.n_layer; ++l) {
    const LayerWeights& layer = w.h[l];
    be.linear(qkv, h, layer.attn_qkv_w, Tensor{}, Epilogue::none);              // [N, 3C] = h @ W_qkv (bias below)
    be.attention(att, qkv, layer.attn_qkv_b, kv.layer(l), batch);                // [N, C]  masked self-attention
    if (observer && observer->wants_qkv(l)) observer->on_qkv(l, qkv, be);
    be.linear(delta, att, layer.attn_proj_w, layer.attn_proj_b, Epilogue::none);  // [N, C]  = c_proj(att)
    be.add_layernorm(x, delta, h, layer.ln_2_g, layer.ln_2_b, eps);              // x += delta; h = ln_2(x)
    be.linear(fc, h, layer.mlp_fc_w, layer.mlp_fc_b, Epilogue::gelu);            // [N, 4C] = gelu(c_fc(h))
    be.linear(delta, fc, layer.mlp_proj_w, layer.mlp_proj_b, Epilogue::none);    // [N, C]  = c_proj(fc)
    const bool last = l + 1 == config_.n_layer;
    const Tensor& g = last ? w.ln_f_g : w.h[l + 1].ln_1_g;
    const Tensor& b = last ? w.ln_f_b : w.h[l + 1].ln_1_b;
    be.add_layernorm(x, delta, h, g, b, eps);                                     // x += delta; h = ln(x)
    if (see_residual) observer->on_residual(l + 1, x, be);
  }
  if (R == 0) return;
  Tensor h_out = h_out_.first_rows(R);                                            // [R, C]
  be.gather_rows(h_out, h, batch);                                                // the logit rows of ln_f(x)
  be.linear(logits_.first_rows(R), h_out, w.lm_head, Tensor{}, Epilogue::none);   // [R, V] = h_out @ wte^T
}

}  // namespace gpt2
