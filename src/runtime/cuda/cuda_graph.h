// CUDA graphs for the CUDA backend's decode steps: a step's ops captured once per StepKey and
// replayed for every later step with that key.
//
// Why: a GPT-2 decode step is ~7 kernels per layer (87 for gpt2), each a few microseconds; as
// one graph launch they cost one CPU call and no per-kernel launch gaps. A replay runs the very
// kernels, grids and pointers of the capture; everything that changes from step to step
// (tokens, positions, KV slots, logit rows) is read by the kernels from the device batch
// (cuda_batch.h), uploaded before each replay, so the key must fix everything else: the rows,
// the logit rows, the sequences and their longest length (StepKey, the whole of it: two steps
// with the same rows but other logit rows gather other rows and run another LM-head shape).
// What the key cannot say is which tensors the ops use: a replay assumes that `record` would
// issue the same ops on the same memory as in the capture (the model's activations, weights
// and KV cache are allocated once, so it does). The backend drops every graph when it allocates
// a KV cache, whose layers a later step might use instead of the captured ones.
//
// A capture the driver refuses (a launch it does not allow in capture, an instantiation error)
// does not lose the step: nothing captured has run, so the ops run eagerly instead, with a note
// through log_note. One retry at the next capturable step (a first capture can trip over
// one-time work, e.g. a kernel's lazy loading); after a second failure every step runs eagerly
// and enabled() is false.
#pragma once

#include <functional>
#include <map>

#include "runtime/backend.h"
#include "runtime/cuda/cuda_memory.h"

namespace gpt2::cuda_backend {

class StepGraphs {
 public:
  explicit StepGraphs(bool enabled) : enabled_(enabled) {}

  // Whether steps are still captured (false when turned off, or after two failed captures).
  bool enabled() const { return enabled_; }

  // Runs one step whose key is capturable: replays its graph, capturing `record` into it first
  // when the key is new. `forget` resets the host-side state the ops keep about device memory
  // (which 16-bit activation copies are current): called before a capture (a graph must not
  // depend on what earlier steps left), after a failed one (nothing captured ran) and after a
  // replay (the replay wrote memory behind the host's back). When graphs are off, runs record().
  void run(cudaStream_t stream, const StepKey& key, const std::function<void()>& record,
           const std::function<void()>& forget);

  // Forgets every graph (their kernels hold pointers into memory that is about to change).
  void clear() { graphs_.clear(); }
  size_t size() const { return graphs_.size(); }

 private:
  bool enabled_;
  int failures_ = 0;
  std::map<StepKey, OwnedGraphExec> graphs_;
};

}  // namespace gpt2::cuda_backend
