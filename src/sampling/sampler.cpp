// The sampler chain; the math of each step is stated in sampler.h.
// Numerics: logits stay fp32 as the model produced them; softmax subtracts the maximum and
// sums in double, so p of a 50257-token vocabulary is accurate to fp32 rounding; the draw
// compares u against cumulative sums in double.
#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>
#include <unordered_map>

#include "common/error.h"
#include "common/order.h"

namespace gpt2 {

// "-1.5", not std::to_string's "-1.500000".
static std::string show(float v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

void SamplerParams::validate() const {
  auto finite = [](float v) { return std::isfinite(v); };
  if (!finite(temperature) || temperature < 0.0f)
    throw UsageError("--temperature must be 0 (greedy) or more (got " + show(temperature) + ")");
  if (top_k < 0) throw UsageError("--top-k must be 0 (off) or more (got " + std::to_string(top_k) + ")");
  if (!finite(top_p) || top_p <= 0.0f || top_p > 1.0f)
    throw UsageError("--top-p must be in (0, 1], 1 is off (got " + show(top_p) + ")");
  if (!finite(min_p) || min_p < 0.0f || min_p > 1.0f)
    throw UsageError("--min-p must be in [0, 1], 0 is off (got " + show(min_p) + ")");
  if (!finite(repeat_penalty) || repeat_penalty <= 0.0f)
    throw UsageError("--repeat-penalty must be more than 0, 1 is off (got " + show(repeat_penalty) +
                     ")");
  if (repeat_last_n < -1)
    throw UsageError("--repeat-last-n must be -1 (whole context), 0 (off) or more (got " +
                     std::to_string(repeat_last_n) + ")");
  if (!finite(presence_penalty)) throw UsageError("--presence-penalty must be a finite number");
  if (!finite(frequency_penalty)) throw UsageError("--frequency-penalty must be a finite number");
}

// One logit of a token seen `count` times in the window (count >= 1).
static float penalized(float logit, int count, float repeat_penalty, float presence_penalty,
                       float frequency_penalty) {
  // Dividing a negative logit would raise it, so negative logits are multiplied (CTRL).
  logit = logit > 0.0f ? logit / repeat_penalty : logit * repeat_penalty;
  return logit - (frequency_penalty * static_cast<float>(count) + presence_penalty);
}

void penalize(float* logits, int n_vocab, const std::vector<int32_t>& recent, float repeat_penalty,
              float presence_penalty, float frequency_penalty) {
  if (recent.empty()) return;
  if (repeat_penalty == 1.0f && presence_penalty == 0.0f && frequency_penalty == 0.0f) return;
  // Each distinct token is penalized once for the repetition penalty, `count` times for
  // the frequency penalty: count first, then touch each token once.
  std::unordered_map<int32_t, int> counts;
  for (int32_t id : recent) {
    if (id >= 0 && id < n_vocab) ++counts[id];
  }
  for (const auto& [id, count] : counts)
    logits[id] = penalized(logits[id], count, repeat_penalty, presence_penalty, frequency_penalty);
}

int32_t argmax(const float* logits, int n_vocab) {
  int32_t best = 0;
  for (int32_t i = 1; i < n_vocab; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

std::vector<Candidate> make_candidates(const float* logits, int n_vocab) {
  std::vector<Candidate> out(static_cast<size_t>(n_vocab));
  for (int32_t i = 0; i < n_vocab; ++i) out[i] = Candidate{i, logits[i], 0.0f};
  return out;
}

void apply_temperature(std::vector<Candidate>& candidates, float temperature) {
  for (Candidate& c : candidates) c.logit /= temperature;
}

// Most likely first; equal logits by smaller id (common/order.h), so the order is a total order.
static bool more_likely(const Candidate& a, const Candidate& b) { return most_likely_first(a.logit, a.id, b.logit, b.id); }

void top_k(std::vector<Candidate>& candidates, int k) {
  if (k <= 0 || static_cast<size_t>(k) >= candidates.size()) {
    std::sort(candidates.begin(), candidates.end(), more_likely);
    return;
  }
  // O(V) selection, then sorting only the k survivors (k = 40 by default).
  std::nth_element(candidates.begin(), candidates.begin() + k, candidates.end(), more_likely);
  candidates.resize(static_cast<size_t>(k));
  std::sort(candidates.begin(), candidates.end(), more_likely);
}

void softmax(std::vector<Candidate>& candidates) {
  if (candidates.empty()) return;
  float max_logit = -std::numeric_limits<float>::infinity();
  for (const Candidate& c : candidates) max_logit = std::max(max_logit, c.logit);
  if (max_logit == -std::numeric_limits<float>::infinity()) {
    // Every token banned: fall back to uniform rather than 0/0.
    for (Candidate& c : candidates) c.p = 1.0f / static_cast<float>(candidates.size());
    return;
  }
  double sum = 0.0;
  for (Candidate& c : candidates) {
    c.p = std::exp(c.logit - max_logit);
    sum += c.p;
  }
  for (Candidate& c : candidates) c.p = static_cast<float>(c.p / sum);
}

void top_p(std::vector<Candidate>& candidates, float p) {
  if (p >= 1.0f) return;
  double cumulative = 0.0;
  size_t keep = candidates.size();
  for (size_t i = 0; i < candidates.size(); ++i) {
    cumulative += candidates[i].p;
    if (cumulative >= p) {
      keep = i + 1;  // the candidate that reaches p is kept
      break;
    }
  }
  candidates.resize(std::max<size_t>(keep, 1));
}

void min_p(std::vector<Candidate>& candidates, float p) {
  if (p <= 0.0f || candidates.empty()) return;
  const float threshold = p * candidates.front().p;  // sorted: front is p_max
  size_t keep = 1;
  while (keep < candidates.size() && candidates[keep].p >= threshold) ++keep;
  candidates.resize(keep);
}

size_t draw(const std::vector<Candidate>& candidates, double u) {
  if (candidates.empty()) throw Error("internal: draw from no candidates");
  double total = 0.0;
  for (const Candidate& c : candidates) total += c.p;
  const double target = u * total;
  double cumulative = 0.0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    cumulative += candidates[i].p;
    if (target < cumulative) return i;
  }
  return candidates.size() - 1;  // u * total rounded up to the total
}

static uint64_t mix64(uint64_t x) {
  // SplitMix64's finalizer (Steele et al. 2014): a bijection with full avalanche.
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

double uniform(uint64_t seed, uint64_t sample, uint64_t step) {
  const uint64_t h = mix64(mix64(mix64(seed) ^ sample) ^ step);
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

// The k most likely of logits [n_vocab], most likely first: the same set and order as
// make_candidates + top_k, but with a bounded heap whose front is the least likely kept,
// so nearly every token costs one comparison and only the k survivors are stored.
static std::vector<Candidate> select_top_k(const float* logits, int n_vocab, int k) {
  std::vector<Candidate> heap;
  heap.reserve(static_cast<size_t>(k));
  for (int32_t i = 0; i < n_vocab; ++i) {
    const Candidate c{i, logits[i], 0.0f};
    if (static_cast<int>(heap.size()) < k) {
      heap.push_back(c);
      std::push_heap(heap.begin(), heap.end(), more_likely);
    } else if (more_likely(c, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), more_likely);
      heap.back() = c;
      std::push_heap(heap.begin(), heap.end(), more_likely);
    }
  }
  std::sort(heap.begin(), heap.end(), more_likely);
  return heap;
}

// Without top-k, sorts (most likely first) only as much of the vocabulary as top-p and
// min-p can keep: the full sort of 50257 candidates costs milliseconds per token, while
// the nucleus is usually a few hundred tokens. The kept head is exactly the head of the
// full sort (more_likely is a total order), so the chain's result does not change.
static void sort_head(std::vector<Candidate>& candidates, float p_top, float p_min) {
  if (p_top < 1.0f) {
    for (size_t m = 256; m < candidates.size(); m *= 4) {
      std::nth_element(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(m), candidates.end(),
                       more_likely);
      std::sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(m), more_likely);
      double cumulative = 0.0;  // summed in the order top_p() sums
      for (size_t i = 0; i < m; ++i) cumulative += candidates[i].p;
      if (cumulative >= p_top) {
        candidates.resize(m);  // top_p() cuts inside this head
        return;
      }
    }
  } else if (p_min > 0.0f && !candidates.empty()) {
    float p_max = 0.0f;
    for (const Candidate& c : candidates) p_max = std::max(p_max, c.p);
    const float threshold = p_min * p_max;  // what min_p() will compare against
    auto kept = std::partition(candidates.begin(), candidates.end(),
                               [threshold](const Candidate& c) { return c.p >= threshold; });
    candidates.erase(kept, candidates.end());
  }
  std::sort(candidates.begin(), candidates.end(), more_likely);
}

// Steps 1-6; `work` is scratch for the penalized, tempered logits, kept by the Sampler so
// that a 50257-float buffer is not allocated (and page-faulted) for every token.
static std::vector<Candidate> run_chain(const float* logits, int n_vocab, const SamplerParams& params,
                                        const std::vector<int32_t>& recent, std::vector<float>& work) {
  if (n_vocab < 1) throw Error("internal: sampling from an empty vocabulary");
  // NaN (or +infinity) logits come from a broken model (corrupt or overflowing weights):
  // sampling from them would print garbage as if it were text.
  for (int i = 0; i < n_vocab; ++i) {
    if (std::isnan(logits[i]) || logits[i] == std::numeric_limits<float>::infinity())
      throw Error("the model produced " + std::string(std::isnan(logits[i]) ? "NaN" : "infinite") +
                  " logits (token " + std::to_string(i) + "): its weights are corrupt or overflow");
  }
  const bool penalties = !recent.empty() && (params.repeat_penalty != 1.0f || params.presence_penalty != 0.0f ||
                                             params.frequency_penalty != 0.0f);
  if (penalties) {
    work.assign(logits, logits + n_vocab);
    penalize(work.data(), n_vocab, recent, params.repeat_penalty, params.presence_penalty, params.frequency_penalty);
  }
  if (params.is_greedy()) {
    const float* scores = penalties ? work.data() : logits;
    const int32_t id = argmax(scores, n_vocab);
    return {Candidate{id, scores[id], 1.0f}};
  }
  // The steps of sampler.h in order, each computed the same way as the step functions
  // (the tests check the two agree exactly), with the sorting done only where needed.
  if (!penalties) work.assign(logits, logits + n_vocab);
  // A penalty can push a logit to +infinity (a huge negative frequency penalty), and a tiny
  // temperature can overflow logit / T: softmax would then compute inf - inf = NaN and draw
  // garbage. In both cases the distribution is (in the limit) all on the largest score, so
  // the draw is the argmax of the scores before tempering.
  const int32_t best = argmax(work.data(), n_vocab);  // before tempering
  bool overflow = false;
  for (float& logit : work) {
    logit /= params.temperature;  // apply_temperature
    overflow = overflow || logit == std::numeric_limits<float>::infinity();
  }
  if (overflow) return {Candidate{best, work[static_cast<size_t>(best)], 1.0f}};
  std::vector<Candidate> candidates;
  if (params.top_k > 0 && params.top_k < n_vocab) {
    candidates = select_top_k(work.data(), n_vocab, params.top_k);  // top_k
    softmax(candidates);
  } else {
    candidates = make_candidates(work.data(), n_vocab);
    softmax(candidates);
    sort_head(candidates, params.top_p, params.min_p);  // top_k(0): sorted
  }
  top_p(candidates, params.top_p);
  min_p(candidates, params.min_p);
  return candidates;
}

std::vector<Candidate> sampling_candidates(const float* logits, int n_vocab, const SamplerParams& params,
                                           const std::vector<int32_t>& recent) {
  std::vector<float> work;
  return run_chain(logits, n_vocab, params, recent, work);
}

int32_t sample_token(const float* logits, int n_vocab, const SamplerParams& params,
                     const std::vector<int32_t>& recent, double u) {
  const std::vector<Candidate> candidates = sampling_candidates(logits, n_vocab, params, recent);
  return candidates[draw(candidates, u)].id;
}

Sampler::Sampler(const SamplerParams& params, uint64_t seed) : params_(params), seed_(seed) {
  params_.validate();
}

void Sampler::take_window(const std::vector<int32_t>& history) {
  const size_t window = params_.repeat_last_n < 0
                            ? history.size()
                            : std::min(history.size(), static_cast<size_t>(params_.repeat_last_n));
  recent_.assign(history.end() - static_cast<std::ptrdiff_t>(window), history.end());
}

// As in run_chain: whether penalize() changes anything for the current window.
bool Sampler::penalties_active() const {
  return !recent_.empty() && (params_.repeat_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                              params_.frequency_penalty != 0.0f);
}

int32_t Sampler::sample(const float* logits, int n_vocab, const std::vector<int32_t>& history, int sample,
                        int step) {
  take_window(history);
  const double u = uniform(seed_, static_cast<uint64_t>(sample), static_cast<uint64_t>(step));
  const std::vector<Candidate> candidates = run_chain(logits, n_vocab, params_, recent_, work_);
  return candidates[draw(candidates, u)].id;
}

int Sampler::top_needed(size_t history_length, bool banned) const {
  const bool greedy = params_.is_greedy();
  if (!greedy && params_.top_k <= 0) return 0;
  const size_t window = params_.repeat_last_n < 0 ? history_length
                                                  : std::min(history_length, static_cast<size_t>(params_.repeat_last_n));
  const bool penalties = window > 0 && (params_.repeat_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                                        params_.frequency_penalty != 0.0f);
  if (penalties && (params_.repeat_penalty < 1.0f || params_.presence_penalty < 0.0f ||
                    params_.frequency_penalty < 0.0f))
    return 0;
  const size_t needed = static_cast<size_t>(greedy ? 1 : params_.top_k) + (penalties ? window : 0) + (banned ? 1 : 0) + 1;
  return needed > static_cast<size_t>(std::numeric_limits<int>::max()) ? 0 : static_cast<int>(needed);
}

int32_t Sampler::sample_top(const int32_t* ids, const float* logits, int m, int n_vocab,
                            const std::vector<int32_t>& history, int32_t banned, int sample, int step) {
  if (m < 1) throw Error("internal: sampling from no candidates");
  take_window(history);
  std::vector<Candidate> candidates(static_cast<size_t>(m));
  for (int i = 0; i < m; ++i) candidates[i] = Candidate{ids[i], logits[i], 0.0f};
  // Step 1 on the candidates, with the arithmetic of penalize() (an outsider's logit only drops).
  if (penalties_active()) {
    std::unordered_map<int32_t, int> counts;
    for (int32_t id : recent_)
      if (id >= 0 && id < n_vocab) ++counts[id];
    for (Candidate& c : candidates) {
      auto it = counts.find(c.id);
      if (it != counts.end())
        c.logit = penalized(c.logit, it->second, params_.repeat_penalty, params_.presence_penalty,
                            params_.frequency_penalty);
    }
  }
  for (Candidate& c : candidates)
    if (c.id == banned) c.logit = -std::numeric_limits<float>::infinity();
  const float boundary = logits[m - 1];  // no logit outside the candidates is larger
  if (params_.is_greedy()) {
    const Candidate best = *std::min_element(candidates.begin(), candidates.end(), more_likely);
    return boundary < best.logit ? best.id : -1;  // argmax: the smallest id among equal maxima
  }
  const int k = params_.top_k;
  if (k <= 0 || k >= m) return -1;
  for (Candidate& c : candidates) {
    c.logit /= params_.temperature;  // apply_temperature
    if (c.logit == std::numeric_limits<float>::infinity()) return -1;  // run_chain's overflow case
  }
  std::sort(candidates.begin(), candidates.end(), more_likely);
  candidates.resize(static_cast<size_t>(k));  // top_k
  if (!(boundary / params_.temperature < candidates.back().logit)) return -1;
  softmax(candidates);
  top_p(candidates, params_.top_p);
  min_p(candidates, params_.min_p);
  const double u = uniform(seed_, static_cast<uint64_t>(sample), static_cast<uint64_t>(step));
  return candidates[draw(candidates, u)].id;
}

uint64_t random_seed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

}  // namespace gpt2
