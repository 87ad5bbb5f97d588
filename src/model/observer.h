// StepObserver: a caller's view into one forward step (model/gpt2.h), for the tools that show
// what GPT-2 computes (attention patterns, the logit lens, how a word's vector drifts).
//
// The forward pass is the same with or without an observer: Gpt2::step hands the observer a
// view of an activation right after the op that produced it, and the observer may read it to
// the host (Backend::read) or run backend ops on it into buffers of its own (the logit lens
// applies ln_f and the LM head with the very ops the model uses), but never writes it. So an
// observed step's logits are bit-identical to an unobserved one's, and without an observer
// nothing is read back at all. An observed step is never replayed from a CUDA graph
// (StepKey::observed): the backend runs its ops eagerly, one by one.
#pragma once

#include <cstdint>

#include "runtime/backend.h"

namespace gpt2 {

class StepObserver {
 public:
  virtual ~StepObserver() = default;

  // Whether to see the residual stream at every layer boundary.
  virtual bool wants_residual() const { return false; }
  // x [N, C]: layer 0 is the stream entering block 0 (wte + wpe), layer n_layer the stream
  // after the last block (before ln_f).
  virtual void on_residual(int layer, Tensor x, Backend& backend) {}

  // Whether to see layer l's qkv right after its attention.
  virtual bool wants_qkv(int layer) const { return false; }
  // qkv [N, 3C]: q | k | v with c_attn's bias, n_head heads of head_dim inside each.
  virtual void on_qkv(int layer, Tensor qkv, Backend& backend) {}
};

}  // namespace gpt2
