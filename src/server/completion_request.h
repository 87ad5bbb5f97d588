// POST /v1/completions: the JSON body -> a validated request, as a pure function (no I/O, no
// global state; the tokenizer is only read), so that it can be tested and fuzzed on its own.
//
// The fields are OpenAI's legacy completions API (https://platform.openai.com/docs/api-reference/
// completions/create) with OpenAI's defaults, plus llama.cpp's sampling extensions:
//   prompt             string | [string] | [int] | [[int]]  (required; "" is [<|endoftext|>])
//   max_tokens         int >= 0, default 16 (0: no new token; with echo the prompt alone)
//   temperature        [0, 2], default 1 (0: greedy)
//   top_p              (0, 1], default 1 (off)
//   top_k              int >= 0, default 0 (off)                         extension
//   min_p              [0, 1], default 0 (off)                           extension
//   presence_penalty, frequency_penalty   [-2, 2], default 0
//   repetition_penalty (0, 10], default 1 (off)                          extension
//   repeat_last_n      int >= -1, default 64 (the penalties' window)     extension
//   n                  [1, 128], default 1 (choices per prompt)
//   stop               string | [string] (at most 4, none empty) | null
//   seed               int (any 64-bit value) | null (a random seed)
//   stream             bool; stream_options {include_usage: bool} (only with stream)
//   logprobs           int [0, 20] | null
//   echo               bool: the prompt comes back before the completion (and its log-probs with logprobs)
//   ignore_eos         bool                                              extension
//   model, user        strings, accepted and not used (the server serves one model)
//   best_of            null or equal to n; suffix null or ""; logit_bias null or {} (not supported beyond that)
// Any other field is an error, as OpenAI answers "Unrecognized request argument supplied".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sampling/sampler.h"
#include "server/api_error.h"
#include "tokenizer/tokenizer.h"

namespace gpt2::server {

struct CompletionLimits {
  int n_ctx = 1024;       // prompt + max_tokens at most
  int n_vocab = 50257;    // prompt token ids below this (the tokenizer's)
  int max_choices = 128;  // prompts × n at most (what the server can hold at once)
};

struct CompletionRequest {
  std::string model;                          // as sent, "" when absent
  std::vector<std::vector<int32_t>> prompts;  // each at least one token
  int max_tokens = 16;
  int n = 1;
  bool echo = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int logprobs = -1;           // -1: none; else the alternatives per token
  std::vector<std::string> stop;
  bool ignore_eos = false;
  SamplerParams sampler;       // OpenAI's defaults (see the header comment), validated
  std::optional<uint64_t> seed;

  int choices() const { return static_cast<int>(prompts.size()) * n; }
};

constexpr int kMaxJsonDepth = 32;  // nesting of arrays and objects in a request body
constexpr int kMaxStop = 4;
constexpr int kMaxN = 128;

// Parses a request body that must be a JSON object. Throws ApiError 400: not JSON (with the
// parser's position), nested deeper than kMaxJsonDepth, or not an object.
nlohmann::json parse_json_object(std::string_view body);

// Throws ApiError 400 naming the parameter: a wrong type, a value out of range, an unknown
// field, a prompt token outside the vocabulary, prompt + max_tokens beyond the context (code
// "context_length_exceeded"), more choices than max_choices.
CompletionRequest parse_completion_request(std::string_view body, const CompletionLimits& limits,
                                           const Tokenizer& tokenizer);

}  // namespace gpt2::server
