#include "runtime/cuda/cuda_batch.h"

#include <cstring>
#include <vector>

#include "common/error.h"

namespace gpt2::cuda_backend {

void DeviceBatchBuffer::reserve(int max_rows, int max_sequences, MemoryStats* stats) {
  if (reserved()) throw Error("internal: CUDA batch buffer reserved twice");
  const size_t rows = static_cast<size_t>(max_rows), seqs = static_cast<size_t>(max_sequences);
  tokens_ = 0;
  positions_ = tokens_ + rows;
  row_slots_ = positions_ + rows;
  logit_rows_ = row_slots_ + rows;
  seq_first_row_ = logit_rows_ + rows;
  seq_slot_ = seq_first_row_ + seqs + 1;
  seq_pos_ = seq_slot_ + seqs;
  ints_ = seq_pos_ + seqs;
  device_ = DeviceBuffer(ints_ * sizeof(int32_t), "the step's batch (" + std::to_string(max_rows) + " rows)", stats);
  staging_ = PinnedBuffer(ints_ * sizeof(int32_t));
  std::memset(staging_.as<int32_t>(), 0, ints_ * sizeof(int32_t));  // entries past a batch's end are copied, never read
  cudaEvent_t event = nullptr;
  GPT2_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  copied_.reset(event);
  const int32_t* d = device_.as<int32_t>();
  view_.tokens = d + tokens_;
  view_.positions = d + positions_;
  view_.row_slots = d + row_slots_;
  view_.logit_rows = d + logit_rows_;
  view_.seq_first_row = d + seq_first_row_;
  view_.seq_slot = d + seq_slot_;
  view_.seq_pos = d + seq_pos_;
  max_rows_ = max_rows;
  max_sequences_ = max_sequences;
}

void DeviceBatchBuffer::upload(const Batch& batch, cudaStream_t stream) {
  if (!reserved()) throw Error("internal: CUDA batch upload before reserve_batch");
  if (batch.rows() > max_rows_ || batch.sequences() > max_sequences_ || batch.n_logit_rows() > max_rows_)
    throw Error("internal: CUDA batch larger than the reserved buffer");
  GPT2_CUDA_CHECK(cudaEventSynchronize(copied_));  // the staging may still feed the previous copy
  int32_t* h = staging_.as<int32_t>();
  auto put = [h](size_t at, const std::vector<int32_t>& v) {
    if (!v.empty()) std::memcpy(h + at, v.data(), v.size() * sizeof(int32_t));
  };
  put(tokens_, batch.tokens);
  put(positions_, batch.positions);
  put(row_slots_, batch.row_slots);
  put(logit_rows_, batch.logit_rows);
  put(seq_first_row_, batch.seq_first_row);
  put(seq_slot_, batch.seq_slot);
  put(seq_pos_, batch.seq_pos);
  // One copy up to the last entry this batch uses (seq_pos is the last section).
  const size_t used = seq_pos_ + static_cast<size_t>(batch.sequences());
  GPT2_CUDA_CHECK(cudaMemcpyAsync(device_.get(), h, used * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
  GPT2_CUDA_CHECK(cudaEventRecord(copied_, stream));
}

}  // namespace gpt2::cuda_backend
