// Attention weights of single heads, recomputed from the q and k the forward pass produced
// (QkRecorder, inspect/observers.h), and what pattern a head follows.
//
// The forward pass never materializes the T x T weights (the attention op streams them); here
// they are recomputed for the heads asked for only, one head at a time or row by row:
//   w[t][j] = softmax_j(q_t . k_j / sqrt(head_dim)),  j = 0..t  (causal: query t sees keys 0..t)
// q_t . k_j in fp32 (head_dim terms, summed in the order d = 0..head_dim-1), the softmax with the
// row maximum subtracted, exp in fp32 and the normalizing sum in double.
//
// A head's weights are stored as a packed lower triangle: row t starts at t (t + 1) / 2.
//
// Head patterns follow TransformerLens's head detector (transformer_lens/head_detector.py,
// detect_head with error_measure "mul", nothing excluded): the score of a pattern P (0/1, lower
// triangular) is sum(w * P) / sum(w) = the fraction of the head's attention mass (T rows, each
// summing to 1) that falls on P:
//   previous token   P[t][t-1] = 1                                  (the sub-diagonal)
//   duplicate token  P[t][j] = 1 for j < t with id[j] == id[t]      (earlier copies of the token)
//   induction        P[t][j] = 1 for 1 <= j <= t with id[j-1] == id[t]  (the token after an earlier
//                    copy: the duplicate pattern shifted one key to the right)
//   first token      P[t][0] = 1                                    (not in TransformerLens; the
//                    "attention sink" many heads of trained models fall back on)
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gpt2 {
class ThreadPool;
}

namespace gpt2::inspect {

// Index of w[t][0] in a packed lower triangle; the triangle of T rows has tri_size(T) entries.
inline size_t tri_row(int t) { return static_cast<size_t>(t) * static_cast<size_t>(t + 1) / 2; }
inline size_t tri_size(int T) { return tri_row(T); }

// Row t of a head's weights: w[0..t]. q: [T, D] row-major, k_t: [D, T] (keys transposed).
void attention_row(const float* q, const float* k_t, int T, int D, int t, float* w);

// Every row of a head: w [tri_size(T)], rows spread over `pool` (nullptr: the calling thread).
void attention_weights(const float* q, const float* k_t, int T, int D, float* w, ThreadPool* pool);

struct HeadScores {
  double previous_token = 0;
  double duplicate_token = 0;
  double induction = 0;
  double first_token = 0;
};

// The four pattern scores of one head's weights (packed lower triangle of T = ids.size() rows).
HeadScores head_scores(const float* w, const std::vector<int32_t>& ids);

enum class HeadKind { previous_token, duplicate_token, induction, first_token, unclear };

// A head is of the pattern with the largest score, when that score reaches kMinPatternScore
// (ties: the order of HeadKind); otherwise unclear.
constexpr double kMinPatternScore = 0.3;
struct HeadClass {
  HeadKind kind = HeadKind::unclear;
  double score = 0;  // the largest of the four scores (also when unclear)
};
HeadClass classify(const HeadScores& s);
const char* head_kind_name(HeadKind kind);  // "previous-token", "duplicate-token", "induction", "first-token", "unclear"

// Whether any token occurs twice (otherwise the duplicate and induction patterns are empty).
bool has_repeats(const std::vector<int32_t>& ids);

}  // namespace gpt2::inspect
