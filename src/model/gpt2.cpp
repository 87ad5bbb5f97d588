#include "model/gpt2.h"

#include <string>
#include <utility>

#include "common/error.h"

namespace gpt2 {

Gpt2::Gpt2(HostModel host, std::unique_ptr<Backend> backend, const RunLimits& limits)
    : config_(host.config), name_(host.name), limits_(limits), backend_(std::move(backend)) {
  if (limits_.max_batch < 1 || limits_.max_tokens < 1)
    throw Error("internal: run limits must be at least one sequence of one token");
  if (limits_.max_tokens > config_.n_ctx) limits_.max_tokens = config_.n_ctx;
  backend_->load(config_, host.weights, limits_.max_batch);
  host = HostModel{};  // release the host copy of the weights

  const int64_t N = static_cast<int64_t>(limits_.max_batch) * limits_.max_tokens;
  const int64_t B = limits_.max_batch;
  const int64_t C = config_.n_embd;
  x_ = backend_->alloc(N, C);
  h_ = backend_->alloc(N, C);
  qkv_ = backend_->alloc(N, 3 * C);
  att_ = backend_->alloc(N, C);
  delta_ = backend_->alloc(N, C);
  fc_ = backend_->alloc(N, 4 * C);
  h_last_ = backend_->alloc(B, C);
  logits_ = backend_->alloc(limits_.all_logits ? N : B, config_.n_vocab);
}

void Gpt2::forward(const int32_t* tokens, int batch, int n_tokens, Logits which,
                   std::vector<float>& logits) {
  if (n_tokens == 1) which = Logits::last;  // one op sequence serves both
  run(tokens, batch, n_tokens, which);
  const int64_t rows = which == Logits::all ? static_cast<int64_t>(batch) * n_tokens : batch;
  logits.resize(static_cast<size_t>(rows) * config_.n_vocab);
  backend_->read(logits.data(), logits_.first_rows(rows));
}

void Gpt2::forward_last(const int32_t* tokens, int batch, int n_tokens) {
  run(tokens, batch, n_tokens, Logits::last);
}

void Gpt2::last_logits(std::vector<float>& logits) {
  if (last_batch_ == 0) throw Error("internal: last_logits without a Logits::last step before it");
  logits.resize(static_cast<size_t>(last_batch_) * config_.n_vocab);
  backend_->read(logits.data(), logits_.first_rows(last_batch_));
}

void Gpt2::top_k(int n_vocab, int k, std::vector<int32_t>& ids, std::vector<float>& values,
                 std::vector<int32_t>& invalid) {
  if (last_batch_ == 0) throw Error("internal: top_k without a Logits::last step before it");
  ids.resize(static_cast<size_t>(last_batch_) * k);
  values.resize(ids.size());
  invalid.resize(static_cast<size_t>(last_batch_));
  backend_->top_k(logits_.first_rows(last_batch_), n_vocab, k, ids.data(), values.data(), invalid.data());
}

void Gpt2::run(const int32_t* tokens, int batch, int n_tokens, Logits which) {
  if (batch < 1 || batch > limits_.max_batch)
    throw Error("batch of " + std::to_string(batch) + " sequences exceeds this run's limit of " +
                std::to_string(limits_.max_batch));
  if (n_tokens < 1 || n_tokens > limits_.max_tokens)
    throw Error("step of " + std::to_string(n_tokens) + " tokens exceeds this run's limit of " +
                std::to_string(limits_.max_tokens));
  if (pos_ + n_tokens > config_.n_ctx)
    throw Error("context full: " + std::to_string(pos_) + " + " + std::to_string(n_tokens) +
                " tokens exceed the model's " + std::to_string(config_.n_ctx) + " positions");
  if (which == Logits::all && !limits_.all_logits)
    throw Error("internal: Logits::all requested but the run was set up without all_logits");

  for (int i = 0; i < batch * n_tokens; ++i) {
    if (tokens[i] < 0 || tokens[i] >= config_.n_vocab)
      throw Error("token id " + std::to_string(tokens[i]) + " is outside the model's vocabulary of " +
                  std::to_string(config_.n_vocab));
  }

  const StepShape shape{batch, n_tokens, pos_};
  last_batch_ = 0;
  backend_->set_step(tokens, shape);
  backend_->run_step(shape, [&] { step(shape, which); });
  last_batch_ = which == Logits::last ? batch : 0;
  pos_ += n_tokens;
}

// One step of GPT-2 for B sequences of T new tokens (N = B*T rows, C = n_embd).
// The residual stream x is updated in place; each block's second residual add is fused
// with the LayerNorm that follows it (the next block's ln_1, or ln_f after the last block).
void Gpt2::step(const StepShape& shape, Logits which) {
  Backend& be = *backend_;
  const ModelWeights& w = be.weights();
  const int64_t N = shape.rows();
  Tensor x = x_.first_rows(N);          // [N, C]
  Tensor h = h_.first_rows(N);          // [N, C]
  Tensor qkv = qkv_.first_rows(N);      // [N, 3C]
  Tensor att = att_.first_rows(N);      // [N, C]
  Tensor delta = delta_.first_rows(N);  // [N, C]
  Tensor fc = fc_.first_rows(N);        // [N, 4C]

  be.embed(x);                                                     // x = wte[tokens] + wpe[positions]
  be.layernorm(h, x, w.h[0].ln_1_g, w.h[0].ln_1_b);                // h = ln_1(x)
  for (int l = 0; l < config_.n_layer; ++l) {
    const LayerWeights& layer = w.h[l];
    be.linear(qkv, h, layer.attn_qkv_w, layer.attn_qkv_b, Epilogue::none);       // [N, 3C] = c_attn(h)
    be.attention(att, qkv, l);                                                    // [N, C]  masked self-attention
    be.linear(delta, att, layer.attn_proj_w, layer.attn_proj_b, Epilogue::none);  // [N, C]  = c_proj(att)
    be.add_layernorm(x, delta, h, layer.ln_2_g, layer.ln_2_b);                   // x += delta; h = ln_2(x)
    be.linear(fc, h, layer.mlp_fc_w, layer.mlp_fc_b, Epilogue::gelu);            // [N, 4C] = gelu(c_fc(h))
    be.linear(delta, fc, layer.mlp_proj_w, layer.mlp_proj_b, Epilogue::none);    // [N, C]  = c_proj(fc)
    const bool last = l + 1 == config_.n_layer;
    const Tensor& g = last ? w.ln_f_g : w.h[l + 1].ln_1_g;
    const Tensor& b = last ? w.ln_f_b : w.h[l + 1].ln_1_b;
    be.add_layernorm(x, delta, h, g, b);                                          // x += delta; h = ln(x)
  }

  if (which == Logits::all) {
    be.linear(logits_.first_rows(N), h, w.lm_head, Tensor{}, Epilogue::none);  // [N, V] = h @ wte^T
  } else {
    Tensor h_last = h_last_.first_rows(shape.batch);                           // [B, C]
    be.take_last(h_last, h);
    be.linear(logits_.first_rows(shape.batch), h_last, w.lm_head, Tensor{}, Epilogue::none);  // [B, V]
  }
}

}  // namespace gpt2
