// The logit lens (nostalgebraist 2020): the model's own final LayerNorm and LM head applied to the
// residual stream at every layer boundary, so that one sees the next-token prediction form block
// by block. Layer 0 is the stream entering block 0 (wte + wpe), layer n_layer the stream after the
// last block, whose lens is the model's output (what `gpt2 score` reports).
//
// LogitLens runs on the backend, inside the observed step, with the ops the model uses:
//   h      [n, C] = layernorm(x rows; ln_f_g, ln_f_b, eps)
//   logits [n, V] = h @ lm_head^T
// a block of rows at a time into buffers allocated once, and reduces each row on the host to what
// is kept (top-k, the target's log-prob and rank): no layer's logits outlive its reduction.
#pragma once

#include <cstdint>
#include <vector>

#include "common/memory.h"
#include "model/config.h"
#include "model/observer.h"
#include "model/weights.h"

namespace gpt2 {
class ThreadPool;
}

namespace gpt2::inspect {

struct LensCandidate {
  int32_t id = 0;
  double logprob = 0;
};

struct LensRow {
  bool finite = true;              // false: the row held NaN or an infinity (nothing else is set)
  std::vector<LensCandidate> top;  // most likely first (ties: smaller id)
  bool has_target = false;
  double target_logprob = 0;
  int64_t target_rank = 0;         // 1 = the most likely
};

// One row of logits [n_vocab]: log-softmax over all n_vocab (row max subtracted, sum in double),
// the k most likely of the first n_listable ids (the ids a tokenizer can show), and the target's
// log-prob and rank among those ids (target < 0: none). Never throws (it runs on pool threads).
LensRow lens_row(const float* logits, int n_vocab, int n_listable, int k, int32_t target);

// The rank (1 = most likely) of `id` among the first n_listable logits, in the order of
// common/order.h (larger first, ties by smaller id).
int64_t logit_rank(const float* logits, int n_listable, int32_t id);

class LogitLens : public StepObserver {
 public:
  // rows [first_row, first_row + n_rows) of the step (one sequence); targets[t]: the token that
  // follows row t, or -1. Allocates its buffers on `backend` (the model's) now, before the step.
  LogitLens(const Config& config, const ModelWeights& weights, Backend& backend, int first_row, int n_rows,
            std::vector<int32_t> targets, int top_k, int n_listable, ThreadPool* pool);

  bool wants_residual() const override { return true; }
  void on_residual(int layer, Tensor x, Backend& backend) override;

  // layers()[layer][t], layer 0..n_layer.
  const std::vector<std::vector<LensRow>>& layers() const { return layers_; }

 private:
  Config config_;
  const ModelWeights& weights_;
  int first_row_, n_rows_, top_k_, n_listable_;
  std::vector<int32_t> targets_;
  ThreadPool* pool_;
  int block_rows_;                 // rows per ln_f + LM head pass
  Tensor h_, logits_;              // [block_rows, C], [block_rows, V] on the backend
  HostMemory host_counted_;
  std::vector<float> host_;        // [block_rows, V]
  std::vector<std::vector<LensRow>> layers_;
};

}  // namespace gpt2::inspect
