#include "cli/inspect_common.h"

#include <algorithm>
#include <thread>

#include "cli/terminal.h"
#include "common/error.h"

namespace gpt2::cli {

std::vector<int32_t> inspect_ids(const Tokenizer& tokenizer, const std::string& text, int n_ctx, const std::string& what) {
  if (text.empty()) throw Error("nothing to look at: " + what + " is empty");
  std::vector<int32_t> ids = tokenizer.encode(text);
  if (static_cast<int>(ids.size()) > n_ctx)
    throw Error(what + " is " + std::to_string(ids.size()) + " tokens, longer than the model's context of " +
                std::to_string(n_ctx) + " (one forward pass shows one context: cut the text)");
  return ids;
}

RunLimits inspect_limits(const std::vector<std::vector<int32_t>>& seqs) {
  RunLimits limits;
  int64_t rows = 0;
  for (const auto& s : seqs) rows += static_cast<int64_t>(s.size());
  limits.max_rows = step_size(std::max<int64_t>(1, rows));
  limits.max_sequences = step_size(std::max<int64_t>(1, static_cast<int64_t>(seqs.size())));
  limits.max_logit_rows = 1;
  return limits;
}

void observe_step(Gpt2& model, const std::vector<std::vector<int32_t>>& seqs, StepObserver& observer) {
  KvCache kv = model.make_kv_cache(static_cast<int>(seqs.size()));
  Batch batch;
  for (const auto& ids : seqs) {
    const int slot = kv.acquire();
    batch.add(slot, 0, ids.data(), static_cast<int>(ids.size()), Logits::none);
  }
  Outputs out;
  out.observer = &observer;
  model.forward(batch, kv, out);
}

nlohmann::ordered_json tokens_json(const Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
  nlohmann::ordered_json tokens = nlohmann::ordered_json::array();
  for (int32_t id : ids) tokens.push_back({{"id", id}, {"text", to_valid_utf8(tokenizer.token_bytes(id))}});
  return tokens;
}

int host_threads(const ModelOptions& options) {
  if (options.threads > 0) return options.threads;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

std::string text_name(int index, const std::string& text) {
  std::string shown = quoted(text);
  if (display_width(shown) > 40) shown = fit(shown, 39);
  while (!shown.empty() && shown.back() == ' ') shown.pop_back();
  return "text " + std::to_string(index) + " (" + shown + ")";
}

}  // namespace gpt2::cli
