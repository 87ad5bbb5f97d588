// The rows of one step on the device: runtime/batch.h's Batch, uploaded by the CUDA backend once
// per step (src/runtime/cuda/cuda_batch.h) into one int32 buffer whose layout is fixed for the
// run, so a captured CUDA graph reads every replay's tokens, positions and slots from the same
// addresses. Plain pointers (no CUDA types): included by the kernel launchers' headers.
//
// Rows are packed sequence by sequence (FlashAttention's cu_seqlens): sequence s owns rows
// [seq_first_row[s], seq_first_row[s + 1]) at positions seq_pos[s] .. of slot seq_slot[s]; every
// row also carries its own token, position and slot for per-row kernels. A decode step (every
// sequence one new token) has row s = sequence s.
#pragma once

#include <cstdint>

namespace gpt2::cuda {

struct DeviceBatch {
  const int32_t* tokens = nullptr;         // [N] token id of each row
  const int32_t* positions = nullptr;      // [N] position of each row in its sequence
  const int32_t* row_slots = nullptr;      // [N] KV-cache slot of each row
  const int32_t* logit_rows = nullptr;     // [R] rows whose logits the step produces, in output order
  const int32_t* seq_first_row = nullptr;  // [S + 1] first row of each sequence, then N
  const int32_t* seq_slot = nullptr;       // [S] KV-cache slot of each sequence
  const int32_t* seq_pos = nullptr;        // [S] position of each sequence's first new token
};

}  // namespace gpt2::cuda
