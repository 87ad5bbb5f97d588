#include "inspect/lens.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"
#include "common/order.h"
#include "common/thread_pool.h"
#include "inspect/observers.h"

namespace gpt2::inspect {

int64_t logit_rank(const float* logits, int n_listable, int32_t id) {
  const float v = logits[id];
  int64_t before = 0;
  for (int32_t j = 0; j < n_listable; ++j) before += most_likely_first(logits[j], j, v, id) ? 1 : 0;
  return before + 1;
}

LensRow lens_row(const float* logits, int n_vocab, int n_listable, int k, int32_t target) {
  LensRow row;
  float max = logits[0];
  for (int j = 0; j < n_vocab; ++j) {
    if (!std::isfinite(logits[j])) {
      row.finite = false;
      return row;
    }
    max = std::max(max, logits[j]);
  }
  double sum = 0;
  for (int j = 0; j < n_vocab; ++j) sum += std::exp(static_cast<double>(logits[j]) - max);
  const double log_sum = std::log(sum);
  auto logprob = [&](int32_t id) { return static_cast<double>(logits[id]) - max - log_sum; };

  // The k most likely, kept sorted; a logit below the current k-th costs one comparison.
  k = std::min(k, n_listable);
  std::vector<int32_t> top;
  top.reserve(static_cast<size_t>(k) + 1);
  auto before = [&](int32_t a, int32_t b) { return most_likely_first(logits[a], a, logits[b], b); };
  for (int32_t j = 0; j < n_listable && k > 0; ++j) {
    if (static_cast<int>(top.size()) == k && !before(j, top.back())) continue;
    top.insert(std::upper_bound(top.begin(), top.end(), j, before), j);
    if (static_cast<int>(top.size()) > k) top.pop_back();
  }
  for (int32_t id : top) row.top.push_back(LensCandidate{id, logprob(id)});
  if (target >= 0) {
    row.has_target = true;
    row.target_logprob = logprob(target);
    row.target_rank = logit_rank(logits, n_listable, target);
  }
  return row;
}

LogitLens::LogitLens(const Config& config, const ModelWeights& weights, Backend& backend, int first_row, int n_rows,
                     std::vector<int32_t> targets, int top_k, int n_listable, ThreadPool* pool)
    : config_(config), weights_(weights), first_row_(first_row), n_rows_(n_rows), top_k_(top_k),
      n_listable_(std::min(n_listable, config.n_vocab)), targets_(std::move(targets)), pool_(pool) {
  if (n_rows_ < 1 || static_cast<int>(targets_.size()) != n_rows_)
    throw Error("internal: LogitLens needs one target (or -1) per row");
  // About 32 MiB of logits per pass (GPT-2: 160 rows), so memory does not grow with the text.
  const int64_t per_row = static_cast<int64_t>(config_.n_vocab) * static_cast<int64_t>(sizeof(float));
  block_rows_ = static_cast<int>(std::clamp<int64_t>((int64_t{32} << 20) / per_row, 1, n_rows_));
  h_ = backend.alloc(block_rows_, config_.n_embd);
  logits_ = backend.alloc(block_rows_, config_.n_vocab);
  host_counted_ = HostMemory(mul_sizes({static_cast<size_t>(block_rows_), static_cast<size_t>(config_.n_vocab), sizeof(float)}),
                             "the lens's logits");
  host_.resize(static_cast<size_t>(block_rows_) * static_cast<size_t>(config_.n_vocab));
  layers_.resize(static_cast<size_t>(config_.n_layer + 1));
}

void LogitLens::on_residual(int layer, Tensor x, Backend& backend) {
  if (layer < 0 || layer > config_.n_layer || first_row_ + n_rows_ > x.rows)
    throw Error("internal: LogitLens: unexpected residual of layer " + std::to_string(layer));
  std::vector<LensRow>& out = layers_[static_cast<size_t>(layer)];
  out.assign(static_cast<size_t>(n_rows_), LensRow{});
  const int V = config_.n_vocab;
  for (int r0 = 0; r0 < n_rows_; r0 += block_rows_) {
    const int n = std::min(block_rows_, n_rows_ - r0);
    Tensor h = h_.first_rows(n), logits = logits_.first_rows(n);
    backend.layernorm(h, row_block(x, first_row_ + r0, n), weights_.ln_f_g, weights_.ln_f_b, config_.layer_norm_epsilon);
    backend.linear(logits, h, weights_.lm_head, Tensor{}, Epilogue::none);
    backend.read(host_.data(), logits);
    auto reduce = [&](int64_t begin, int64_t end, int) {
      for (int64_t i = begin; i < end; ++i)
        out[static_cast<size_t>(r0 + i)] =
            lens_row(host_.data() + i * V, V, n_listable_, top_k_, targets_[static_cast<size_t>(r0 + i)]);
    };
    if (pool_ != nullptr && n > 1) pool_->parallel_for(n, 1, reduce);
    else reduce(0, n, 0);
    for (int i = 0; i < n; ++i)
      if (!out[static_cast<size_t>(r0 + i)].finite)
        throw Error("the logit lens of layer " + std::to_string(layer) + " at token " + std::to_string(r0 + i) +
                    " is NaN or infinite: the model's weights are corrupt or overflow");
  }
}

}  // namespace gpt2::inspect
