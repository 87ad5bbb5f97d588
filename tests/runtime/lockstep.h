// Lockstep runs for tests: B sequences of T tokens each, side by side in KV slots 0..B-1, each
// at its slot's current length, as the old fixed-shape forward(tokens, B, T) ran them, written
// on the ragged Batch API (runtime/batch.h). Tests of mixed batches build their Batch by hand.
//
//   Gpt2 model(host, backend, test::lockstep_limits(B, T, Logits::all));
//   KvCache kv = test::lockstep_cache(model, B);               // slots 0..B-1 acquired
//   std::vector<float> logits = test::lockstep(model, kv, tokens, B, T, Logits::all);  // [B, T, V]
//   test::lockstep_reset(kv);                                  // every slot back to position 0
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/gpt2.h"
#include "runtime/batch.h"
#include "runtime/kv_cache.h"

namespace gpt2::test {

// Room for steps of up to B sequences of up to T tokens, with logits of the last row of each
// sequence (Logits::last) or of every row (Logits::all).
inline RunLimits lockstep_limits(int B, int T, Logits want) {
  RunLimits limits;
  limits.max_rows = B * T;
  limits.max_sequences = B;
  limits.max_logit_rows = want == Logits::all ? B * T : B;
  return limits;
}

// A KV cache of n_slots slots of the model with every slot acquired: slot b is sequence b.
inline KvCache lockstep_cache(Gpt2& model, int n_slots) {
  KvCache kv = model.make_kv_cache(n_slots);
  for (int b = 0; b < n_slots; ++b)
    if (kv.acquire() != b) throw Error("internal: lockstep_cache: slot " + std::to_string(b) + " was not free");
  return kv;
}

// The logits of the last forward, [R, V], copied to the host.
inline std::vector<float> read_logits(Gpt2& model, const Outputs& out) {
  std::vector<float> logits(static_cast<size_t>(out.logits.numel()));
  if (!logits.empty()) model.backend().read(logits.data(), out.logits);
  return logits;
}

// tokens [B, T]: sequence b is tokens[b * T, (b + 1) * T) and runs in slot b at position
// kv.length(b). Returns logits [B, T, V] (Logits::all) or [B, V] (Logits::last).
inline std::vector<float> lockstep(Gpt2& model, KvCache& kv, const int32_t* tokens, int B, int T, Logits want) {
  Batch batch;
  for (int b = 0; b < B; ++b) batch.add(b, kv.length(b), tokens + static_cast<size_t>(b) * T, T, want);
  Outputs out;
  model.forward(batch, kv, out);
  return read_logits(model, out);
}

inline std::vector<float> lockstep(Gpt2& model, KvCache& kv, const std::vector<int32_t>& tokens, int B, Logits want) {
  return lockstep(model, kv, tokens.data(), B, static_cast<int>(tokens.size()) / B, want);
}

// Every slot back to position 0 (still acquired).
inline void lockstep_reset(KvCache& kv) {
  for (int s = 0; s < kv.n_slots(); ++s) kv.clear(s);
}

}  // namespace gpt2::test
