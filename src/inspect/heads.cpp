#include "inspect/heads.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "common/thread_pool.h"

namespace gpt2::inspect {

void attention_row(const float* q, const float* k_t, int T, int D, int t, float* w) {
  const int n = t + 1;
  // scores[j] = q_t . k_j, accumulated over d as axpys along the keys (vectorizable, no reduction).
  std::fill(w, w + n, 0.0f);
  const float* qt = q + static_cast<size_t>(t) * D;
  for (int d = 0; d < D; ++d) {
    const float qd = qt[d];
    const float* kd = k_t + static_cast<size_t>(d) * T;
    for (int j = 0; j < n; ++j) w[j] += qd * kd[j];
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  float max = w[0];
  for (int j = 1; j < n; ++j) max = std::max(max, w[j]);
  double sum = 0;
  for (int j = 0; j < n; ++j) {
    w[j] = std::exp((w[j] - max) * scale);
    sum += w[j];
  }
  const double inv = 1.0 / sum;
  for (int j = 0; j < n; ++j) w[j] = static_cast<float>(w[j] * inv);
}

void attention_weights(const float* q, const float* k_t, int T, int D, float* w, ThreadPool* pool) {
  auto rows = [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) attention_row(q, k_t, T, D, static_cast<int>(t), w + tri_row(static_cast<int>(t)));
  };
  if (pool == nullptr || T < 64) {
    rows(0, T, 0);
    return;
  }
  // Row t costs t + 1: small chunks balance the triangle.
  pool->parallel_for(T, 16, rows);
}

HeadScores head_scores(const float* w, const std::vector<int32_t>& ids) {
  HeadScores s;
  const int T = static_cast<int>(ids.size());
  if (T == 0) return s;
  // Earlier positions of each token, so the duplicate and induction sums visit only matching keys.
  std::unordered_map<int32_t, std::vector<int>> seen;
  for (int t = 0; t < T; ++t) {
    const float* row = w + tri_row(t);
    s.first_token += row[0];
    if (t >= 1) s.previous_token += row[t - 1];
    auto it = seen.find(ids[static_cast<size_t>(t)]);
    if (it != seen.end()) {
      for (int j : it->second) {
        s.duplicate_token += row[j];      // j < t, same token
        s.induction += row[j + 1];        // j + 1 <= t: the key after the earlier copy
      }
    }
    seen[ids[static_cast<size_t>(t)]].push_back(t);
  }
  s.previous_token /= T;
  s.duplicate_token /= T;
  s.induction /= T;
  s.first_token /= T;
  return s;
}

HeadClass classify(const HeadScores& s) {
  const std::pair<HeadKind, double> all[] = {{HeadKind::previous_token, s.previous_token},
                                             {HeadKind::duplicate_token, s.duplicate_token},
                                             {HeadKind::induction, s.induction},
                                             {HeadKind::first_token, s.first_token}};
  HeadClass best{all[0].first, all[0].second};
  for (const auto& [kind, score] : all)
    if (score > best.score) best = HeadClass{kind, score};
  if (best.score < kMinPatternScore) best.kind = HeadKind::unclear;
  return best;
}

const char* head_kind_name(HeadKind kind) {
  switch (kind) {
    case HeadKind::previous_token: return "previous-token";
    case HeadKind::duplicate_token: return "duplicate-token";
    case HeadKind::induction: return "induction";
    case HeadKind::first_token: return "first-token";
    case HeadKind::unclear: break;
  }
  return "unclear";
}

bool has_repeats(const std::vector<int32_t>& ids) {
  std::unordered_set<int32_t> seen;
  for (int32_t id : ids)
    if (!seen.insert(id).second) return true;
  return false;
}

}  // namespace gpt2::inspect
