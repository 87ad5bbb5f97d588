// What gpt2 attention, lens and drift share: a text tokenized for one forward step (no sliding
// window: what is shown is one context), the observed step itself, tokens as JSON, and --html.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "model/gpt2.h"
#include "model/observer.h"
#include "tokenizer/tokenizer.h"

namespace gpt2::cli {

// The ids of `text`, checked for one step: an empty text, or one longer than the model's
// context, is a gpt2::Error naming `what` ("the text", "text 2 (...)", a file).
std::vector<int32_t> inspect_ids(const Tokenizer& tokenizer, const std::string& text, int n_ctx, const std::string& what);

// Limits for one step of these sequences (no logits: the tools read activations).
RunLimits inspect_limits(const std::vector<std::vector<int32_t>>& seqs);

// One forward step: every sequence from position 0 of a fresh KV slot, in order (sequence s owns
// the rows that follow sequence s - 1's), with `observer` watching; no logits are computed.
void observe_step(Gpt2& model, const std::vector<std::vector<int32_t>>& seqs, StepObserver& observer);

// [{"id", "text"}] with each token's bytes as valid UTF-8.
nlohmann::ordered_json tokens_json(const Tokenizer& tokenizer, const std::vector<int32_t>& ids);

// Host threads for the analysis (attention weights, lens reductions): --threads, or all cores.
int host_threads(const ModelOptions& options);

// A text named for messages: `text 2 ("One mole of…")`.
std::string text_name(int index, const std::string& text);

}  // namespace gpt2::cli
