// Batch: the rows of one forward step, for any mix of sequences (a prompt being prefilled
// beside sequences decoding one token each, all at their own positions).
//
// Rows are packed sequence by sequence, as FlashAttention's variable-length API packs them
// (cu_seqlens): sequence s owns rows [seq_first_row[s], seq_first_row[s + 1]), which hold its
// new tokens at positions seq_pos[s] .. seq_pos[s] + n - 1 of KV-cache slot seq_slot[s]. Every
// row also carries its own token, position and slot, so that a per-row op (embedding, KV append,
// decode attention) needs no search. A row's new key/value goes to its slot at its position;
// its query attends to positions [0, its position] of its slot.
//
// logit_rows lists the rows whose next-token logits the step produces, in the order the
// logits come out ([R, n_vocab], R = logit_rows.size()): each sequence's last row, or every row
// of a sequence that asks for all (scoring).
//
// A decode-only batch (every sequence one new token) is the fast path on CUDA (split-K decode
// attention, a captured graph); a batch that mixes decode tokens with prompt chunks is correct
// everywhere but runs the decode rows through the prefill attention kernel there.
//
// A backend uploads the whole batch once per step (Backend::run_step), so a captured CUDA
// graph reads the current step's tokens, positions and slots from the same device memory.
// Nothing here knows GPT-2: it is rows, positions and cache slots.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace gpt2 {

enum class Logits { none, last, all };  // which rows of a sequence produce logits

struct Batch {
  std::vector<int32_t> tokens;         // [N] token id of each row
  std::vector<int32_t> positions;      // [N] position of each row in its sequence
  std::vector<int32_t> row_slots;      // [N] KV-cache slot of each row
  std::vector<int32_t> seq_first_row;  // [S + 1] first row of each sequence, then N
  std::vector<int32_t> seq_slot;       // [S]
  std::vector<int32_t> seq_pos;        // [S] position of the sequence's first new token
  std::vector<int32_t> logit_rows;     // [R] rows whose logits the step produces
  int max_seq_tokens = 0;              // new tokens of the longest sequence

  Batch() { seq_first_row.push_back(0); }

  int rows() const { return static_cast<int>(tokens.size()); }
  int sequences() const { return static_cast<int>(seq_slot.size()); }
  int n_logit_rows() const { return static_cast<int>(logit_rows.size()); }
  int seq_tokens(int s) const { return seq_first_row[s + 1] - seq_first_row[s]; }
  bool empty() const { return tokens.empty(); }
  // Every sequence brings one new token (a decode step), so row s is sequence s.
  bool decode_only() const { return !tokens.empty() && max_seq_tokens == 1; }

  // Appends a sequence of n tokens (n >= 1) for `slot`, at positions [pos, pos + n).
  // Gpt2::forward checks the batch against the model and the cache (slots distinct and
  // allocated, positions inside the context and not past what the slot holds).
  void add(int32_t slot, int32_t pos, const int32_t* ids, int n, Logits want) {
    const int32_t first = rows();
    for (int i = 0; i < n; ++i) {
      tokens.push_back(ids[i]);
      positions.push_back(pos + i);
      row_slots.push_back(slot);
      if (want == Logits::all || (want == Logits::last && i == n - 1)) logit_rows.push_back(first + i);
    }
    seq_slot.push_back(slot);
    seq_pos.push_back(pos);
    seq_first_row.push_back(first + n);
    max_seq_tokens = std::max(max_seq_tokens, n);
  }

  void clear() {
    tokens.clear();
    positions.clear();
    row_slots.clear();
    seq_first_row.assign(1, 0);
    seq_slot.clear();
    seq_pos.clear();
    logit_rows.clear();
    max_seq_tokens = 0;
  }
};

}  // namespace gpt2
