// The cases and host references of the top-k / argmax kernel tests, shared by tests/cuda (the
// kernel on a GPU) and tests/emulation (its source on the CPU): GPT-2's 50257 columns at four
// scales, exact ties, all-equal rows, -inf, signed zeros and denormals, NaN and +inf, rows shorter
// than and straddling the 4096-element chunks, and row strides past cols. References: argmax by a
// left-to-right scan, top-k by a host sort in sampler.cpp's more_likely order (NaN last).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace gpt2::top_k_test {


inline int host_argmax(const float* row, int n) {
  int best = 0;
  for (int j = 1; j < n; ++j)
    if (row[j] > row[best] || std::isnan(row[best])) best = std::isnan(row[j]) ? best : j;
  return best;
}

struct TopKCase {
  std::string name;
  int rows, cols;
  int64_t ld;
  int k;
  std::vector<float> logits;  // [rows, ld]; columns [cols, ld) hold NaN and +inf, never read
};

using TopKGen = std::function<float(int r, int j, std::mt19937_64& rng)>;

inline TopKCase make_top_k_case(const std::string& name, int rows, int cols, int64_t ld, int k, uint64_t seed,
                         const TopKGen& gen) {
  TopKCase c{name, rows, cols, ld, k, {}};
  c.logits.assign(static_cast<size_t>(rows * ld), std::numeric_limits<float>::quiet_NaN());
  std::mt19937_64 rng(seed);
  for (int r = 0; r < rows; ++r) {
    for (int64_t j = cols; j < ld; ++j)
      if (j % 2) c.logits[static_cast<size_t>(r * ld + j)] = std::numeric_limits<float>::infinity();
    for (int j = 0; j < cols; ++j) c.logits[static_cast<size_t>(r * ld + j)] = gen(r, j, rng);
  }
  return c;
}

inline std::vector<TopKCase> top_k_cases() {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float denorm = std::numeric_limits<float>::denorm_min();
  const int V = 50257;
  const int ks[] = {1, 2, 40, 41, 106, 255, 256};
  std::vector<TopKCase> cases;

  // Four scales per launch: around 0, all negative (GPT-2's logits), all positive, denormals.
  const TopKGen normal = [](int r, int, std::mt19937_64& rng) {
    const float x = std::normal_distribution<float>(0.0f, 1.0f)(rng);
    switch (r % 4) {
      case 0: return x;
      case 1: return 3.0f * x - 80.0f;
      case 2: return x + 200.0f;
      default: return x * 1e-39f;
    }
  };
  for (int k : ks) cases.push_back(make_top_k_case("normal", 4, V, V, k, 10 + k, normal));
  cases.push_back(make_top_k_case("normal, 9 rows", 9, V, V, 40, 7, normal));

  // Exact ties: 5 values; or a rare top value (~30 of them) over a commoner second (~100).
  const TopKGen five = [](int r, int, std::mt19937_64& rng) {
    const float set[5] = {-2.0f, -0.5f, 0.0f, 1.25f, 3.0f};
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    if (r == 1) return u < 0.0006 ? 3.0f : u < 0.0026 ? 1.25f : set[static_cast<int>(u * 1000) % 3];
    return set[static_cast<int>(u * 5)];
  };
  for (int k : ks) cases.push_back(make_top_k_case("five values", 2, V, V, k, 20 + k, five));

  // All equal (ids 0..k-1): a number, -inf, -0.0.
  const TopKGen equal = [inf](int r, int, std::mt19937_64&) { return r == 0 ? 0.75f : r == 1 ? -inf : -0.0f; };
  for (int k : {1, 40, 256}) cases.push_back(make_top_k_case("all equal", 3, V, V, k, 0, equal));

  // -inf as an ordinary value: 90 % banned; only 10 finite entries, so -inf fills the rest.
  const TopKGen banned = [inf](int r, int j, std::mt19937_64& rng) {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    if (r == 0) return u < 0.9 ? -inf : static_cast<float>(u);
    return j % 5000 == 17 ? static_cast<float>(j) * -0.5f : -inf;
  };
  for (int k : {1, 40, 256}) cases.push_back(make_top_k_case("-inf", 2, V, V, k, 30 + k, banned));

  // Signed zeros tie (value bits kept), denormals do not; in row 1 the zeros are the largest.
  const TopKGen zeros = [denorm, inf](int r, int, std::mt19937_64& rng) {
    const float set[2][5] = {{0.0f, -0.0f, denorm, -denorm, -1.0f}, {0.0f, -0.0f, -denorm, -1.0f, -inf}};
    return set[r][std::uniform_int_distribution<int>(0, 4)(rng)];
  };
  for (int k : {1, 41, 256}) cases.push_back(make_top_k_case("+-0 and denormals", 2, V, V, k, 40 + k, zeros));

  // NaN: flagged and ranked below -inf (row 1 has 5 numbers; row 2 none); row 3 is clean.
  const TopKGen nans = [nan, inf](int r, int j, std::mt19937_64& rng) {
    const float x = std::normal_distribution<float>(0.0f, 1.0f)(rng);
    if (r == 0) return j == 0 || j % 503 == 7 ? nan : x;
    if (r == 1) return j % 10000 == 3 ? x : j == 20000 ? -inf : nan;
    if (r == 2) return nan;
    return x;
  };
  for (int k : {1, 40, 256}) cases.push_back(make_top_k_case("NaN", 4, V, V, k, 50 + k, nans));

  // +inf: flagged and first; -inf alone and FLT_MAX are not flagged.
  const TopKGen infs = [nan, inf](int r, int j, std::mt19937_64& rng) {
    const float x = std::normal_distribution<float>(0.0f, 1.0f)(rng);
    if (r == 0) return j == 999 || j == 50000 ? inf : x;
    if (r == 1) return j == 5 ? nan : j == 6 ? inf : x;
    if (r == 2) return j == 31337 ? -inf : x;
    return j == 12 ? std::numeric_limits<float>::max() : x;
  };
  for (int k : {1, 40}) cases.push_back(make_top_k_case("+inf", 4, V, V, k, 60 + k, infs));

  // Short rows and the chunk edges (1024 threads, 4096 elements per round), with ties.
  const TopKGen coarse = [](int, int, std::mt19937_64& rng) {
    return static_cast<float>(std::uniform_int_distribution<int>(-20, 20)(rng)) * 0.5f;
  };
  for (int cols : {1, 100, 257, 1023, 1024, 1025, 4095, 4096, 4097})
    for (int k : {1, 2, 40, 100, 255, 256})
      if (k <= cols) cases.push_back(make_top_k_case("short rows", 3, cols, cols, k, 70 + cols + k, coarse));

  // Row stride > cols (the padding holds NaN and +inf and must be neither read nor flagged).
  for (int k : {1, 256}) {
    cases.push_back(make_top_k_case("ld > cols", 3, V, V + 7, k, 80 + k, normal));
    cases.push_back(make_top_k_case("ld > cols, short", 3, 100, 128, std::min(k, 100), 90 + k, coarse));
  }
  return cases;
}

// The reference: sort by more_likely (value desc, then index asc; -0.0 == +0.0), NaN after
// every number (in index order), first k.
inline void reference_top_k(const float* row, int cols, int k, int32_t* ids, float* values, int32_t* invalid) {
  std::vector<int32_t> order(static_cast<size_t>(cols));
  std::iota(order.begin(), order.end(), 0);
  auto more_likely = [row](int32_t a, int32_t b) {
    const bool na = std::isnan(row[a]), nb = std::isnan(row[b]);
    if (na || nb) return na == nb ? a < b : nb;
    return row[a] > row[b] || (row[a] == row[b] && a < b);
  };
  std::partial_sort(order.begin(), order.begin() + k, order.end(), more_likely);
  for (int t = 0; t < k; ++t) {
    ids[t] = order[static_cast<size_t>(t)];
    values[t] = row[ids[t]];
  }
  *invalid = 0;
  for (int j = 0; j < cols; ++j)
    if (std::isnan(row[j]) || row[j] == std::numeric_limits<float>::infinity()) *invalid = 1;
}

inline uint32_t bits_of(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

// Compares one case's outputs [rows, k] with the reference; returns "" or the first mismatches.
inline std::string compare_top_k(const TopKCase& c, const std::vector<int32_t>& ids, const std::vector<float>& values,
                          const std::vector<int32_t>& invalid) {
  std::ostringstream bad;
  int shown = 0;
  std::vector<int32_t> ref_ids(static_cast<size_t>(c.k)), ref_invalid(1);
  std::vector<float> ref_values(static_cast<size_t>(c.k));
  for (int r = 0; r < c.rows; ++r) {
    reference_top_k(c.logits.data() + r * c.ld, c.cols, c.k, ref_ids.data(), ref_values.data(), ref_invalid.data());
    if (invalid[static_cast<size_t>(r)] != ref_invalid[0] && shown++ < 5)
      bad << " row " << r << ": invalid " << invalid[static_cast<size_t>(r)] << " want " << ref_invalid[0] << ";";
    for (int t = 0; t < c.k; ++t) {
      const size_t at = static_cast<size_t>(r) * c.k + t;
      if ((ids[at] != ref_ids[static_cast<size_t>(t)] ||
           bits_of(values[at]) != bits_of(ref_values[static_cast<size_t>(t)])) &&
          shown++ < 5)
        bad << " [" << r << ", " << t << "] got " << ids[at] << " (" << values[at] << ") want "
            << ref_ids[static_cast<size_t>(t)] << " (" << ref_values[static_cast<size_t>(t)] << ");";
    }
  }
  return bad.str();
}

}  // namespace gpt2::top_k_test
