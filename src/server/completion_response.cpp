#include "server/completion_response.h"

#include <cmath>
#include <cstdio>

namespace gpt2::server {

using nlohmann::ordered_json;

const char* openai_finish_reason(FinishReason reason) {
  return reason == FinishReason::eos || reason == FinishReason::stop ? "stop" : "length";
}

std::string token_string(const Tokenizer& tokenizer, int32_t id) {
  const std::string& bytes = tokenizer.token_bytes(id);
  if (to_valid_utf8(bytes) == bytes) return bytes;
  std::string out = "bytes:";
  for (unsigned char c : bytes) {
    char buf[5];
    std::snprintf(buf, sizeof buf, "\\x%02x", c);
    out += buf;
  }
  return out;
}

size_t utf8_chars(const std::string& bytes) {
  size_t n = 0;
  for (unsigned char c : bytes) n += (c & 0xC0) != 0x80;
  return n;
}

namespace {

ordered_json number_or_null(double v) { return std::isfinite(v) ? ordered_json(v) : ordered_json(nullptr); }

}  // namespace

ordered_json logprobs_json(const Tokenizer& tokenizer, const std::vector<TokenLogprob>& prompt,
                           const std::vector<TokenLogprob>& completion, size_t prompt_chars) {
  ordered_json tokens = ordered_json::array();
  ordered_json token_logprobs = ordered_json::array();
  ordered_json top_logprobs = ordered_json::array();
  ordered_json text_offset = ordered_json::array();
  size_t offset = prompt.empty() ? prompt_chars : 0;
  auto add = [&](const TokenLogprob& t, bool first_of_prompt) {
    tokens.push_back(token_string(tokenizer, t.id));
    text_offset.push_back(offset);
    offset += utf8_chars(tokenizer.token_bytes(t.id));
    if (first_of_prompt) {  // nothing before it to predict it
      token_logprobs.push_back(nullptr);
      top_logprobs.push_back(nullptr);
      return;
    }
    token_logprobs.push_back(number_or_null(t.logprob));
    ordered_json top = ordered_json::object();
    for (const auto& [id, lp] : t.top) top[token_string(tokenizer, id)] = number_or_null(lp);
    top_logprobs.push_back(std::move(top));
  };
  for (size_t i = 0; i < prompt.size(); ++i) add(prompt[i], i == 0);
  for (const TokenLogprob& t : completion) add(t, false);
  ordered_json out;
  out["tokens"] = std::move(tokens);
  out["token_logprobs"] = std::move(token_logprobs);
  out["top_logprobs"] = std::move(top_logprobs);
  out["text_offset"] = std::move(text_offset);
  return out;
}

ordered_json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  ordered_json u;
  u["prompt_tokens"] = prompt_tokens;
  u["completion_tokens"] = completion_tokens;
  u["total_tokens"] = prompt_tokens + completion_tokens;
  return u;
}

ordered_json completion_json(const std::string& id, int64_t created, const std::string& model,
                             const std::vector<ChoiceOutput>& choices, int64_t prompt_tokens,
                             int64_t completion_tokens) {
  ordered_json out;
  out["id"] = id;
  out["object"] = "text_completion";
  out["created"] = created;
  out["model"] = model;
  ordered_json list = ordered_json::array();
  for (const ChoiceOutput& c : choices) {
    ordered_json choice;
    choice["text"] = c.text;
    choice["index"] = c.index;
    choice["logprobs"] = c.logprobs;
    choice["finish_reason"] = openai_finish_reason(c.finish_reason);
    list.push_back(std::move(choice));
  }
  out["choices"] = std::move(list);
  out["usage"] = usage_json(prompt_tokens, completion_tokens);
  return out;
}

ordered_json chunk_json(const std::string& id, int64_t created, const std::string& model, int index,
                        const std::string& text, const char* finish_reason, const ordered_json& logprobs,
                        bool with_usage) {
  ordered_json choice;
  choice["text"] = text;
  choice["index"] = index;
  choice["logprobs"] = logprobs;
  choice["finish_reason"] = finish_reason ? ordered_json(finish_reason) : ordered_json(nullptr);
  ordered_json out;
  out["id"] = id;
  out["object"] = "text_completion";
  out["created"] = created;
  out["model"] = model;
  out["choices"] = ordered_json::array({std::move(choice)});
  if (with_usage) out["usage"] = nullptr;
  return out;
}

ordered_json usage_chunk_json(const std::string& id, int64_t created, const std::string& model,
                              int64_t prompt_tokens, int64_t completion_tokens) {
  ordered_json out;
  out["id"] = id;
  out["object"] = "text_completion";
  out["created"] = created;
  out["model"] = model;
  out["choices"] = ordered_json::array();
  out["usage"] = usage_json(prompt_tokens, completion_tokens);
  return out;
}

std::string dump_json(const ordered_json& j) { return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace); }

}  // namespace gpt2::server
