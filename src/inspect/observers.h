// What the tools that look inside GPT-2 (gpt2 attention, lens, drift) record from a forward step,
// through model/observer.h's StepObserver: the forward pass itself (model/gpt2.cpp, either
// backend) computes everything, and these observers only read its activations or run backend ops
// on them into buffers of their own.
//
//   QkRecorder    q and k of the chosen heads (attention weights are recomputed from them, head by
//                 head: inspect/heads.h)
//   ResidualRows  chosen rows of the residual stream at every layer boundary (drift)
//   LogitLens     ln_f and the LM head applied to the residual stream after each block, reduced
//                 to top-k / target log-prob / rank per position, layer by layer (inspect/lens.h)
//   ObserverList  several of them on one step
//
// Rows are rows of the step's Batch; these tools step one sequence per KV slot from position 0,
// so a sequence's rows are its positions.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "common/memory.h"
#include "model/config.h"
#include "model/observer.h"
#include "runtime/backend.h"

namespace gpt2::inspect {

// Rows [first, first + n) of an fp32 activation: a view (no copy) that backend ops and
// Backend::read accept, on the host or on the device.
inline Tensor row_block(Tensor t, int64_t first, int64_t n) {
  Tensor v = t;
  v.data = t.f32() + first * t.cols;
  v.rows = n;
  return v;
}

// A head of the model, numbered from 0 (layer.head, as the interpretability papers write it).
struct HeadRef {
  int layer = 0;
  int head = 0;
  bool operator==(const HeadRef& o) const { return layer == o.layer && head == o.head; }
};

// Records q and k of `heads` (layer-major order kept as given) for rows [first_row, first_row + n_rows)
// of the step: one sequence of n_rows tokens. Memory: 2 * n_rows * head_dim floats per head, plus
// one layer's qkv rows [n_rows, 3C] of scratch, reused.
class QkRecorder : public StepObserver {
 public:
  QkRecorder(const Config& config, std::vector<HeadRef> heads, int first_row, int n_rows);

  bool wants_qkv(int layer) const override;
  void on_qkv(int layer, Tensor qkv, Backend& backend) override;

  const std::vector<HeadRef>& heads() const { return heads_; }
  int n_rows() const { return n_rows_; }
  int head_dim() const { return head_dim_; }
  // Head i's queries q [T, head_dim] and keys transposed k_t [head_dim, T] (c_attn's bias included).
  const float* q(size_t i) const { return q_[i].data(); }
  const float* k_t(size_t i) const { return k_t_[i].data(); }
  // Whether every requested layer has been seen (the step ran).
  bool complete() const;

 private:
  Config config_;
  std::vector<HeadRef> heads_;
  int first_row_, n_rows_, head_dim_;
  std::vector<char> layer_wanted_, layer_seen_;
  HostMemory counted_;      // qkv_, q_ and k_t_, counted before they are allocated
  std::vector<float> qkv_;  // [T, 3C] one layer's rows, read back
  std::vector<std::vector<float>> q_, k_t_;
};

// Rows `rows` of the step's residual stream at every layer boundary 0..n_layer (layer 0: wte + wpe
// entering block 0; layer n_layer: after the last block, before ln_f). Reads only those rows.
class ResidualRows : public StepObserver {
 public:
  ResidualRows(int n_layer, int n_embd, std::vector<int> rows);

  bool wants_residual() const override { return true; }
  void on_residual(int layer, Tensor x, Backend& backend) override;

  // The row rows[i] at `layer`: n_embd floats.
  const float* row(int layer, size_t i) const {
    return data_.data() + (static_cast<size_t>(layer) * rows_.size() + i) * static_cast<size_t>(n_embd_);
  }
  int n_embd() const { return n_embd_; }

 private:
  int n_layer_, n_embd_;
  std::vector<int> rows_;
  HostMemory counted_;       // data_, counted before it is allocated
  std::vector<float> data_;  // [n_layer + 1, rows, C]
};

// Several observers on one step, called in order.
class ObserverList : public StepObserver {
 public:
  explicit ObserverList(std::vector<StepObserver*> list) : list_(std::move(list)) {}
  bool wants_residual() const override;
  void on_residual(int layer, Tensor x, Backend& backend) override;
  bool wants_qkv(int layer) const override;
  void on_qkv(int layer, Tensor qkv, Backend& backend) override;

 private:
  std::vector<StepObserver*> list_;
};

// cos(a, b) = a.b / (|a| |b|) in double; 0 when either is the zero vector.
double cosine(const float* a, const float* b, int n);

}  // namespace gpt2::inspect
