// The sampler: next-token logits -> one token id, as a chain of small steps.
//
//   logits [n_vocab] (one row, fp32, as the model returns them)
//     1. penalize      repetition penalty over the last `repeat_last_n` tokens (CTRL,
//                      Keskar et al. 2019: positive logits divided by r, negative multiplied),
//                      then OpenAI-style presence/frequency penalties:
//                      logit -= frequency * count + presence * (count > 0)
//     -- greedy (--greedy or temperature 0): argmax of the penalized logits, done --
//     2. temperature   logit /= T
//     3. top_k         keep the k largest logits (k = 0: all), sorted, most likely first
//     4. softmax       p = exp(logit - max) / sum, over the surviving candidates
//     5. top_p         keep the smallest prefix whose probability reaches P (nucleus,
//                      Holtzman et al. 2019)
//     6. min_p         keep candidates with p >= min_p * p_max
//     7. draw          with u in [0, 1): the first candidate whose cumulative probability
//                      (renormalized over the survivors) exceeds u
//
// This is the order the issue asks for and Hugging Face's warpers use (temperature first,
// so top-p and min-p see the tempered distribution). Every step keeps at least one
// candidate. Ties are broken by the smaller token id, so results never depend on the
// sort implementation.
//
// Reproducibility: the uniform u of a draw is a pure function of (seed, sample, step)
// (a counter-based hash, not a stateful generator), so sample b of a batch draws the same
// numbers whether it is generated alone or with others, and a seed gives the same text on
// every run for the same logits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gpt2 {

struct SamplerParams {
  float temperature = 0.8f;       // 0: greedy
  int top_k = 40;                 // 0: off
  float top_p = 0.95f;            // 1: off
  float min_p = 0.05f;            // 0: off
  float repeat_penalty = 1.0f;    // 1: off
  int repeat_last_n = 64;         // penalty window in tokens; 0: off, -1: the whole context
  float presence_penalty = 0.0f;  // 0: off
  float frequency_penalty = 0.0f; // 0: off
  bool greedy = false;

  bool is_greedy() const { return greedy || temperature == 0.0f; }
  // Throws gpt2::UsageError naming the option (as the CLI spells it) for out-of-range values.
  void validate() const;
};

struct Candidate {
  int32_t id;
  float logit;
  float p;  // set by softmax(); not renormalized after truncation
};

// ---- the steps ---------------------------------------------------------------------------

// Penalties of step 1 applied in place to logits [n_vocab]; `recent` is the penalty window
// (the last repeat_last_n tokens of the sequence, prompt included, as llama.cpp does).
// Ids outside [0, n_vocab) in `recent` are ignored.
void penalize(float* logits, int n_vocab, const std::vector<int32_t>& recent, float repeat_penalty,
              float presence_penalty, float frequency_penalty);

// Index of the largest logit (the smallest id among equal maxima).
int32_t argmax(const float* logits, int n_vocab);

// All tokens as candidates, in id order.
std::vector<Candidate> make_candidates(const float* logits, int n_vocab);

void apply_temperature(std::vector<Candidate>& candidates, float temperature);
// Sorts most likely first and keeps the first k (all when k <= 0 or k >= size).
void top_k(std::vector<Candidate>& candidates, int k);
// Sets p over the current candidates (numerically stable: max subtracted, sum in double).
void softmax(std::vector<Candidate>& candidates);
// Both expect candidates sorted most likely first with p set (top_k + softmax).
void top_p(std::vector<Candidate>& candidates, float p);
void min_p(std::vector<Candidate>& candidates, float p);
// Position in `candidates` chosen by u in [0, 1), probabilities renormalized over them.
size_t draw(const std::vector<Candidate>& candidates, double u);

// The uniform number in [0, 1) of draw `step` of sample `sample` under `seed`
// (53 random bits of a SplitMix64-style hash of the three).
double uniform(uint64_t seed, uint64_t sample, uint64_t step);

// ---- the chain ---------------------------------------------------------------------------

// Steps 1-6 on a copy of logits [n_vocab]: the candidates a draw chooses from, most likely
// first, p as after softmax (before renormalization). Greedy params give the argmax alone.
std::vector<Candidate> sampling_candidates(const float* logits, int n_vocab, const SamplerParams& params,
                                           const std::vector<int32_t>& recent);

// Steps 1-7 with an explicit u: the token id.
int32_t sample_token(const float* logits, int n_vocab, const SamplerParams& params,
                     const std::vector<int32_t>& recent, double u);

// The chain with the seeded draw: token id for sample `sample` at step `step`.
class Sampler {
 public:
  Sampler(const SamplerParams& params, uint64_t seed);

  const SamplerParams& params() const { return params_; }
  uint64_t seed() const { return seed_; }

  // `history` is the whole sequence so far (prompt + generated); the penalty window is
  // taken from its end.
  int32_t sample(const float* logits, int n_vocab, const std::vector<int32_t>& history, int sample,
                 int step);

  // Sampling from a row's most likely logits only (the model keeps the rest on its device):
  //
  // top_needed: how many of a row's most likely raw logits sample_top() wants for a sequence of
  // history_length tokens: k (1 when greedy, else top_k) + the penalty window (at most that many
  // distinct ids are lowered) + 1 for a banned id + 1 to see past the boundary. 0 when the
  // chain needs every logit: a draw without top-k, or a penalty that can raise a logit
  // (repeat penalty < 1, negative presence or frequency penalty).
  int top_needed(size_t history_length, bool banned) const;
  // The token sample() would choose from all n_vocab logits (with `banned`, or -1, set to
  // -infinity), decided from the m most likely raw logits of the row: ids, logits [m], most
  // likely first (value descending, equal values by smaller id). Exact: every logit outside
  // them is at most logits[m - 1] (penalties and temperature never raise one), so when that
  // boundary, penalized and tempered like an outsider would be, is strictly below the k-th
  // chosen candidate, no outsider can enter the top k (or be the argmax) and the rest of the
  // chain (softmax, top-p, min-p, draw) sees exactly the candidates sample() sees. Returns -1
  // when the boundary does not separate them (ties at the boundary, an overflowing temperature,
  // every candidate banned): the caller then calls sample() with all logits.
  int32_t sample_top(const int32_t* ids, const float* logits, int m, int n_vocab, const std::vector<int32_t>& history,
                     int32_t banned, int sample, int step);

 private:
  void take_window(const std::vector<int32_t>& history);  // recent_ = the penalty window
  bool penalties_active() const;

  SamplerParams params_;
  uint64_t seed_;
  std::vector<int32_t> recent_;  // reused penalty window
  std::vector<float> work_;      // reused penalized, tempered logits
};

// A seed for runs without --seed (from std::random_device).
uint64_t random_seed();

}  // namespace gpt2
