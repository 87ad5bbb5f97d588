#include "inspect/observers.h"

#include <cmath>
#include <cstring>
#include <string>

#include "common/error.h"
#include "common/memory.h"

namespace gpt2::inspect {

QkRecorder::QkRecorder(const Config& config, std::vector<HeadRef> heads, int first_row, int n_rows)
    : config_(config), heads_(std::move(heads)), first_row_(first_row), n_rows_(n_rows), head_dim_(config.head_dim()) {
  if (n_rows_ < 1 || first_row_ < 0) throw Error("internal: QkRecorder needs at least one row");
  layer_wanted_.assign(static_cast<size_t>(config_.n_layer), 0);
  layer_seen_.assign(static_cast<size_t>(config_.n_layer), 0);
  for (const HeadRef& h : heads_) {
    if (h.layer < 0 || h.layer >= config_.n_layer || h.head < 0 || h.head >= config_.n_head)
      throw Error("internal: QkRecorder: head " + std::to_string(h.layer) + "." + std::to_string(h.head) +
                  " is not in the model");
    layer_wanted_[static_cast<size_t>(h.layer)] = 1;
  }
  const size_t per_head = static_cast<size_t>(n_rows_) * static_cast<size_t>(head_dim_);
  const size_t qkv_floats = mul_sizes({static_cast<size_t>(n_rows_), 3, static_cast<size_t>(config_.n_embd)});
  counted_ = HostMemory(mul_sizes({add_sizes(mul_sizes({2, heads_.size(), per_head}), qkv_floats), sizeof(float)}),
                        "the q and k of " + std::to_string(heads_.size()) + " attention heads");
  q_.assign(heads_.size(), std::vector<float>(per_head));
  k_t_.assign(heads_.size(), std::vector<float>(per_head));
}

bool QkRecorder::wants_qkv(int layer) const {
  return layer >= 0 && layer < config_.n_layer && layer_wanted_[static_cast<size_t>(layer)];
}

bool QkRecorder::complete() const {
  for (size_t l = 0; l < layer_wanted_.size(); ++l)
    if (layer_wanted_[l] && !layer_seen_[l]) return false;
  return true;
}

// One read of the sequence's qkv rows, then each requested head's slices: q as it is, k transposed
// so that a query's scores against every key are a stream of axpys (inspect/heads.cpp).
void QkRecorder::on_qkv(int layer, Tensor qkv, Backend& backend) {
  const int64_t C = config_.n_embd, T = n_rows_, D = head_dim_;
  if (first_row_ + T > qkv.rows || qkv.cols != 3 * C)
    throw Error("internal: QkRecorder: qkv " + std::to_string(qkv.rows) + " x " + std::to_string(qkv.cols) +
                " does not hold rows " + std::to_string(first_row_) + "+" + std::to_string(T));
  qkv_.resize(static_cast<size_t>(T * 3 * C));
  backend.read(qkv_.data(), row_block(qkv, first_row_, T));
  for (size_t i = 0; i < heads_.size(); ++i) {
    if (heads_[i].layer != layer) continue;
    const int64_t q0 = heads_[i].head * D, k0 = C + heads_[i].head * D;
    float* q = q_[i].data();
    float* kt = k_t_[i].data();
    for (int64_t t = 0; t < T; ++t) {
      const float* row = qkv_.data() + t * 3 * C;
      std::memcpy(q + t * D, row + q0, static_cast<size_t>(D) * sizeof(float));
      for (int64_t d = 0; d < D; ++d) kt[d * T + t] = row[k0 + d];
    }
  }
  layer_seen_[static_cast<size_t>(layer)] = 1;
}

ResidualRows::ResidualRows(int n_layer, int n_embd, std::vector<int> rows)
    : n_layer_(n_layer), n_embd_(n_embd), rows_(std::move(rows)) {
  counted_ = HostMemory(mul_sizes({static_cast<size_t>(n_layer_ + 1), rows_.size(), static_cast<size_t>(n_embd_),
                                   sizeof(float)}),
                        "the residual stream of " + std::to_string(rows_.size()) + " rows");
  data_.assign(static_cast<size_t>(n_layer_ + 1) * rows_.size() * static_cast<size_t>(n_embd_), 0.0f);
}

void ResidualRows::on_residual(int layer, Tensor x, Backend& backend) {
  if (layer < 0 || layer > n_layer_ || x.cols != n_embd_) throw Error("internal: ResidualRows: unexpected residual");
  for (size_t i = 0; i < rows_.size(); ++i) {
    if (rows_[i] < 0 || rows_[i] >= x.rows) throw Error("internal: ResidualRows: row outside the step");
    float* dst = data_.data() + (static_cast<size_t>(layer) * rows_.size() + i) * static_cast<size_t>(n_embd_);
    backend.read(dst, row_block(x, rows_[i], 1));
  }
}

bool ObserverList::wants_residual() const {
  for (const StepObserver* o : list_)
    if (o->wants_residual()) return true;
  return false;
}

void ObserverList::on_residual(int layer, Tensor x, Backend& backend) {
  for (StepObserver* o : list_)
    if (o->wants_residual()) o->on_residual(layer, x, backend);
}

bool ObserverList::wants_qkv(int layer) const {
  for (const StepObserver* o : list_)
    if (o->wants_qkv(layer)) return true;
  return false;
}

void ObserverList::on_qkv(int layer, Tensor qkv, Backend& backend) {
  for (StepObserver* o : list_)
    if (o->wants_qkv(layer)) o->on_qkv(layer, qkv, backend);
}

double cosine(const float* a, const float* b, int n) {
  double ab = 0, aa = 0, bb = 0;
  for (int i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0.0;
}

}  // namespace gpt2::inspect
