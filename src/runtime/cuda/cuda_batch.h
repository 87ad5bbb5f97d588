// The step's Batch (runtime/batch.h) on the device, for the kernels that read each row's token,
// position and slot (kernels/batch.cuh).
//
// One int32 buffer with a layout fixed for the run by reserve(max_rows, max_sequences):
//
//   tokens [max_rows] | positions [max_rows] | row_slots [max_rows] | logit_rows [max_rows] |
//   seq_first_row [max_sequences + 1] | seq_slot [max_sequences] | seq_pos [max_sequences]
//
// Each step's batch fills the first N (R, S + 1, S) entries of its sections; the rest is stale
// and never read. Because the sections never move, a CUDA graph captured for one step (the
// kernels' arguments are pointers into this buffer) replays correctly for a later step with the
// same StepKey: upload() writes the new tokens, positions and slots to the same addresses.
// upload() stages the batch in pinned host memory and copies it with one asynchronous copy on
// the backend's stream, ahead of the step's kernels (or its graph replay).
#pragma once

#include <cstdint>

#include "kernels/batch.cuh"
#include "runtime/batch.h"
#include "runtime/cuda/cuda_memory.h"

namespace gpt2::cuda_backend {

class DeviceBatchBuffer {
 public:
  void reserve(int max_rows, int max_sequences, MemoryStats* stats);
  bool reserved() const { return max_rows_ > 0; }

  // Copies `batch` (rows <= max_rows, sequences <= max_sequences: checked by Backend::run_step)
  // to the device on `stream`. The pinned staging is reused: the previous upload's copy is
  // waited for first (an event, not the whole stream: the previous step may still run).
  void upload(const Batch& batch, cudaStream_t stream);

  // Pointers into the device buffer, fixed from reserve() on.
  const cuda::DeviceBatch& view() const { return view_; }

 private:
  int max_rows_ = 0;
  int max_sequences_ = 0;
  size_t ints_ = 0;
  // Offsets (in int32) of the sections, in the order above.
  size_t tokens_ = 0, positions_ = 0, row_slots_ = 0, logit_rows_ = 0, seq_first_row_ = 0, seq_slot_ = 0,
         seq_pos_ = 0;
  DeviceBuffer device_;
  PinnedBuffer staging_;
  OwnedEvent copied_;  // recorded after each upload's copy
  cuda::DeviceBatch view_;
};

}  // namespace gpt2::cuda_backend
