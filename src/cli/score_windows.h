// The arithmetic of `gpt2 score`, kept free of the model so that tests can check it directly:
// the sliding-window plan for texts longer than the context, and log-softmax of one row of logits.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/order.h"

namespace gpt2::cli {

// One forward pass of the sliding-window scorer: tokens [begin, end) go in, and the tokens
// [first_scored, end) get their log-probabilities from it. Token i is predicted by logits row
// i - 1 - begin, so the first token of a window is never scored by that window.
struct ScoreWindow {
  int begin = 0;
  int end = 0;
  int first_scored = 0;
};

// Hugging Face's strided perplexity recipe (docs "Perplexity of fixed-length models"):
// windows start at 0, stride, 2*stride, ... and are `window` tokens long (the last one is cut
// at n); each window scores only the tokens that no earlier window scored, which leaves it
// up to window - stride tokens of left context. The plan stops at the first window that
// reaches the end of the text.
//
// Every token except token 0 is scored exactly once when stride < window. With
// stride == window the windows do not overlap, and the first token of each window has no
// context inside it, so it stays unscored: the result equals scoring each chunk on its own.
// Requires n >= 1, window >= 1, 1 <= stride <= window.
inline std::vector<ScoreWindow> plan_score_windows(int n, int window, int stride) {
  std::vector<ScoreWindow> plan;
  int prev_end = 0;
  for (int begin = 0; begin < n; begin += stride) {
    const int end = std::min(begin + window, n);
    plan.push_back(ScoreWindow{begin, end, std::max(prev_end, begin + 1)});
    prev_end = end;
    if (end == n) break;
  }
  return plan;
}

// log_softmax(logits)[target] for a row of n_vocab logits: subtract the row maximum (so exp
// never overflows) and sum the exponentials in double (50257 terms of fp32 would lose digits).
struct LogSoftmaxRow {
  float max = 0;
  double log_sum = 0;  // log(sum_j exp(logits[j] - max))
  double logprob(const float* logits, int32_t id) const {
    return static_cast<double>(logits[id]) - max - log_sum;
  }
};

inline LogSoftmaxRow log_softmax_row(const float* logits, int n_vocab) {
  LogSoftmaxRow row;
  row.max = *std::max_element(logits, logits + n_vocab);
  double sum = 0;
  for (int j = 0; j < n_vocab; ++j) sum += std::exp(static_cast<double>(logits[j]) - row.max);
  row.log_sum = std::log(sum);
  return row;
}

// The k most likely ids of a row, most likely first (ties: smaller id first, for stable output).
inline std::vector<int32_t> top_ids(const float* logits, int n_vocab, int k) {
  k = std::min(k, n_vocab);
  std::vector<int32_t> ids(static_cast<size_t>(n_vocab));
  for (int j = 0; j < n_vocab; ++j) ids[static_cast<size_t>(j)] = j;
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return most_likely_first(logits[a], a, logits[b], b);
  });
  ids.resize(static_cast<size_t>(k));
  return ids;
}

}  // namespace gpt2::cli
