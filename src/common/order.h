// The one order of candidates on the host: most likely first (larger value first), equal values
// by the smaller id, so every list of top tokens (the sampler's, score's "next", the CPU top_k,
// the lens) is the same whatever the sort. +0 and -0 are equal; NaN is never passed (callers
// filter it first).
#pragma once

#include <cstdint>

namespace gpt2 {

inline bool most_likely_first(float a_value, int32_t a_id, float b_value, int32_t b_id) {
  return a_value > b_value || (a_value == b_value && a_id < b_id);
}

}  // namespace gpt2
