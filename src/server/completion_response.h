// OpenAI's text_completion objects, built from the scheduler's Completions: the whole response,
// the chunks of a stream, logprobs and usage. Pure functions of their arguments.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace gpt2::server {

// OpenAI's finish_reason: "stop" for <|endoftext|> or a stop string, "length" otherwise.
const char* openai_finish_reason(FinishReason reason);

// A token as OpenAI's logprobs name it: its text, or "bytes:\xNN..." when its bytes are not
// valid UTF-8 on their own (part of a character split over tokens).
std::string token_string(const Tokenizer& tokenizer, int32_t id);

// Unicode characters in UTF-8 bytes (continuation bytes not counted): text_offset's unit.
size_t utf8_chars(const std::string& bytes);

// One choice as the response reports it.
struct ChoiceOutput {
  int index = 0;
  std::string text;  // with echo: the prompt's text first
  FinishReason finish_reason = FinishReason::length;
  nlohmann::ordered_json logprobs;  // null, or logprobs_json(...)
};

// {"tokens", "token_logprobs", "top_logprobs", "text_offset"} over `prompt` (echo with logprobs:
// the prompt's log-probabilities, the first null) then `completion`; text_offset counts
// characters from the start of the prompt's text (`prompt_chars` before the first completion
// token when the prompt is not echoed, OpenAI's convention).
nlohmann::ordered_json logprobs_json(const Tokenizer& tokenizer, const std::vector<TokenLogprob>& prompt,
                                     const std::vector<TokenLogprob>& completion, size_t prompt_chars);

nlohmann::ordered_json usage_json(int64_t prompt_tokens, int64_t completion_tokens);

// The whole non-streamed response.
nlohmann::ordered_json completion_json(const std::string& id, int64_t created, const std::string& model,
                                       const std::vector<ChoiceOutput>& choices, int64_t prompt_tokens,
                                       int64_t completion_tokens);

// One chunk of a stream: a piece of text of one choice (finish_reason null), or its end
// (text "" and the finish reason). with_usage adds "usage": null, as OpenAI does on every chunk
// when stream_options.include_usage is set.
nlohmann::ordered_json chunk_json(const std::string& id, int64_t created, const std::string& model, int index,
                                  const std::string& text, const char* finish_reason,
                                  const nlohmann::ordered_json& logprobs, bool with_usage);

// The stream's last chunk with include_usage: no choices, the usage.
nlohmann::ordered_json usage_chunk_json(const std::string& id, int64_t created, const std::string& model,
                                        int64_t prompt_tokens, int64_t completion_tokens);

// JSON text for a body: invalid UTF-8 (never expected) replaced rather than thrown.
std::string dump_json(const nlohmann::ordered_json& j);

}  // namespace gpt2::server
