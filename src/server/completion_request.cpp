// Validation of /v1/completions bodies (see completion_request.h for the fields and ranges).
#include "server/completion_request.h"

#include <cmath>
#include <limits>
#include <sstream>

namespace gpt2::server {
namespace {

using nlohmann::json;

ApiError bad(const std::string& param, const std::string& message, const std::string& code = "") {
  return ApiError(400, message, param, code);
}

std::string show(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// The JSON type of a value, as a message names it.
std::string type_name(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

// Nesting depth of arrays and objects, counted on the bytes before parsing (strings skipped),
// so that a hostile body of a million '[' is refused cheaply.
bool nested_deeper_than(std::string_view body, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

// An integer field in [lo, hi]; JSON numbers with a fraction, booleans and strings are refused.
int64_t get_int(const json& v, const std::string& name, int64_t lo, int64_t hi) {
  const std::string range = "from " + std::to_string(lo) + " to " + std::to_string(hi);
  if (!v.is_number_integer()) throw bad(name, "'" + name + "' must be an integer " + range + " (got " + type_name(v) + ")");
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi) || (lo > 0 && u < static_cast<uint64_t>(lo)))
      throw bad(name, "'" + name + "' must be " + range + " (got " + std::to_string(u) + ")");
    return static_cast<int64_t>(u);
  }
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) throw bad(name, "'" + name + "' must be " + range + " (got " + std::to_string(x) + ")");
  return x;
}

// A number field in [lo, hi] (lo_open: lo itself excluded).
float get_number(const json& v, const std::string& name, double lo, double hi, bool lo_open = false) {
  const std::string range = (lo_open ? "in (" : "in [") + show(lo) + ", " + show(hi) + "]";
  if (!v.is_number()) throw bad(name, "'" + name + "' must be a number " + range + " (got " + type_name(v) + ")");
  const double x = v.get<double>();
  if (!std::isfinite(x) || x > hi || (lo_open ? x <= lo : x < lo))
    throw bad(name, "'" + name + "' must be " + range + " (got " + show(x) + ")");
  return static_cast<float>(x);
}

bool get_bool(const json& v, const std::string& name) {
  if (!v.is_boolean()) throw bad(name, "'" + name + "' must be a boolean (got " + type_name(v) + ")");
  return v.get<bool>();
}

std::vector<int32_t> token_prompt(const json& ids, const std::string& where, const CompletionLimits& limits) {
  if (ids.empty()) throw bad("prompt", where + " is an empty list of tokens");
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (const json& t : ids) {
    if (!t.is_number_integer())
      throw bad("prompt", where + " must hold token ids (integers), got " + type_name(t));
    const bool in_vocab = t.is_number_unsigned() ? t.get<uint64_t>() < static_cast<uint64_t>(limits.n_vocab)
                                                 : t.get<int64_t>() >= 0 && t.get<int64_t>() < limits.n_vocab;
    if (!in_vocab)
      throw bad("prompt", where + " holds token id " + t.dump() + ", outside the vocabulary [0, " +
                              std::to_string(limits.n_vocab) + ")");
    out.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return out;
}

std::vector<int32_t> text_prompt(const json& text, const Tokenizer& tokenizer) {
  std::vector<int32_t> ids = tokenizer.encode(text.get_ref<const std::string&>(), Special::allow);
  if (ids.empty()) ids.push_back(tokenizer.eot());  // a new document, as `gpt2 generate` starts one
  return ids;
}

// prompt: string | [string] | [int] | [[int]].
std::vector<std::vector<int32_t>> parse_prompts(const json& p, const CompletionLimits& limits,
                                                const Tokenizer& tokenizer) {
  std::vector<std::vector<int32_t>> prompts;
  if (p.is_string()) {
    prompts.push_back(text_prompt(p, tokenizer));
    return prompts;
  }
  const std::string kinds = "a string, an array of strings, an array of token ids or an array of arrays of token ids";
  if (!p.is_array()) throw bad("prompt", "'prompt' must be " + kinds + " (got " + type_name(p) + ")");
  if (p.empty()) throw bad("prompt", "'prompt' is an empty array");
  if (p[0].is_number_integer()) {
    prompts.push_back(token_prompt(p, "'prompt'", limits));
    return prompts;
  }
  if (static_cast<int64_t>(p.size()) > limits.max_choices)
    throw bad("prompt", "'prompt' holds " + std::to_string(p.size()) + " prompts; this server takes at most " +
                            std::to_string(limits.max_choices) + " at once");
  for (size_t i = 0; i < p.size(); ++i) {
    const std::string where = "'prompt[" + std::to_string(i) + "]'";
    if (p[i].is_string() && p[0].is_string()) prompts.push_back(text_prompt(p[i], tokenizer));
    else if (p[i].is_array() && p[0].is_array()) prompts.push_back(token_prompt(p[i], where, limits));
    else throw bad("prompt", "'prompt' must be " + kinds + " (element " + std::to_string(i) + " is " + type_name(p[i]) + ")");
  }
  return prompts;
}

std::vector<std::string> parse_stop(const json& v) {
  std::vector<std::string> stop;
  if (v.is_null()) return stop;
  if (v.is_string()) {
    stop.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    if (v.size() > static_cast<size_t>(kMaxStop))
      throw bad("stop", "'stop' holds " + std::to_string(v.size()) + " strings; at most " + std::to_string(kMaxStop));
    for (const json& s : v) {
      if (!s.is_string()) throw bad("stop", "'stop' must be a string or an array of strings (an element is " + type_name(s) + ")");
      stop.push_back(s.get<std::string>());
    }
  } else {
    throw bad("stop", "'stop' must be a string, an array of strings or null (got " + type_name(v) + ")");
  }
  for (const std::string& s : stop)
    if (s.empty()) throw bad("stop", "'stop' strings must not be empty");
  return stop;
}

}  // namespace

json parse_json_object(std::string_view body) {
  if (nested_deeper_than(body, kMaxJsonDepth))
    throw ApiError(400, "the JSON body is nested more than " + std::to_string(kMaxJsonDepth) + " levels deep");
  json j;
  try {
    j = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    // A parse_error, or an out_of_range for a number past a double (1e400): the client's body
    // either way. The message of nlohmann names the token it expected, or the number.
    throw ApiError(400, "We could not parse the JSON body of your request: " + std::string(e.what()), "",
                   "invalid_json");
  }
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object (got " + type_name(j) + ")", "", "invalid_json");
  return j;
}

CompletionRequest parse_completion_request(std::string_view body, const CompletionLimits& limits,
                                           const Tokenizer& tokenizer) {
  const json j = parse_json_object(body);
  CompletionRequest r;
  // OpenAI's defaults; the sampler's own (llama.cpp's) would change what a plain request means.
  r.sampler.temperature = 1.0f;
  r.sampler.top_k = 0;
  r.sampler.top_p = 1.0f;
  r.sampler.min_p = 0.0f;
  r.sampler.repeat_penalty = 1.0f;
  r.sampler.presence_penalty = 0.0f;
  r.sampler.frequency_penalty = 0.0f;
  const json* prompt = nullptr;
  const json* stream_options = nullptr;
  const json* best_of = nullptr;
  for (const auto& [key, v] : j.items()) {
    if (key == "prompt") prompt = &v;
    else if (key == "model") {
      if (!v.is_string()) throw bad(key, "'model' must be a string (got " + type_name(v) + ")");
      r.model = v.get<std::string>();
    } else if (key == "max_tokens") {
      if (!v.is_null()) r.max_tokens = static_cast<int>(get_int(v, key, 0, limits.n_ctx));
    } else if (key == "temperature") {
      if (!v.is_null()) r.sampler.temperature = get_number(v, key, 0, 2);
    } else if (key == "top_p") {
      if (!v.is_null()) r.sampler.top_p = get_number(v, key, 0, 1, true);
    } else if (key == "top_k") {
      if (!v.is_null()) r.sampler.top_k = static_cast<int>(get_int(v, key, 0, std::numeric_limits<int32_t>::max()));
    } else if (key == "min_p") {
      if (!v.is_null()) r.sampler.min_p = get_number(v, key, 0, 1);
    } else if (key == "presence_penalty") {
      if (!v.is_null()) r.sampler.presence_penalty = get_number(v, key, -2, 2);
    } else if (key == "frequency_penalty") {
      if (!v.is_null()) r.sampler.frequency_penalty = get_number(v, key, -2, 2);
    } else if (key == "repetition_penalty") {
      if (!v.is_null()) r.sampler.repeat_penalty = get_number(v, key, 0, 10, true);
    } else if (key == "repeat_last_n") {
      if (!v.is_null()) r.sampler.repeat_last_n = static_cast<int>(get_int(v, key, -1, std::numeric_limits<int32_t>::max()));
    } else if (key == "n") {
      if (!v.is_null()) r.n = static_cast<int>(get_int(v, key, 1, kMaxN));
    } else if (key == "stop") {
      r.stop = parse_stop(v);
    } else if (key == "seed") {
      if (v.is_null()) continue;
      if (!v.is_number_integer()) throw bad(key, "'seed' must be an integer (got " + type_name(v) + ")");
      r.seed = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
    } else if (key == "stream") {
      if (!v.is_null()) r.stream = get_bool(v, key);
    } else if (key == "stream_options") {
      if (!v.is_null()) stream_options = &v;
    } else if (key == "logprobs") {
      if (!v.is_null()) r.logprobs = static_cast<int>(get_int(v, key, 0, 20));
    } else if (key == "echo") {
      if (!v.is_null()) r.echo = get_bool(v, key);
    } else if (key == "ignore_eos") {
      if (!v.is_null()) r.ignore_eos = get_bool(v, key);
    } else if (key == "user") {
      if (!v.is_null() && !v.is_string()) throw bad(key, "'user' must be a string (got " + type_name(v) + ")");
    } else if (key == "best_of") {
      if (!v.is_null()) best_of = &v;
    } else if (key == "suffix") {
      if (!v.is_null() && !(v.is_string() && v.get_ref<const std::string&>().empty()))
        throw bad(key, "'suffix' (insertion) is not supported by this model");
    } else if (key == "logit_bias") {
      if (!v.is_null() && !(v.is_object() && v.empty()))
        throw bad(key, "'logit_bias' is not supported by this server");
    } else {
      throw bad(key, "Unrecognized request argument supplied: " + key);
    }
  }
  if (prompt == nullptr) throw bad("prompt", "'prompt' is required");
  if (best_of != nullptr && get_int(*best_of, "best_of", 1, kMaxN) != r.n)
    throw bad("best_of", "'best_of' other than n is not supported");
  if (stream_options != nullptr) {
    if (!r.stream) throw bad("stream_options", "'stream_options' is only allowed when 'stream' is true");
    if (!stream_options->is_object())
      throw bad("stream_options", "'stream_options' must be an object (got " + type_name(*stream_options) + ")");
    for (const auto& [key, v] : stream_options->items()) {
      if (key != "include_usage") throw bad("stream_options", "Unrecognized stream_options field: " + key);
      if (!v.is_null()) r.include_usage = get_bool(v, "stream_options.include_usage");
    }
  }
  r.prompts = parse_prompts(*prompt, limits, tokenizer);
  if (static_cast<int64_t>(r.prompts.size()) * r.n > limits.max_choices)
    throw bad("n", std::to_string(r.prompts.size()) + " prompt(s) × n = " + std::to_string(r.n) + " is " +
                       std::to_string(r.prompts.size() * static_cast<size_t>(r.n)) +
                       " choices; this server takes at most " + std::to_string(limits.max_choices) + " at once");
  // The context holds the prompt and every new token; the scheduler needs room for one token
  // past the prompt even when only the prompt's log-probabilities are asked for.
  for (size_t i = 0; i < r.prompts.size(); ++i) {
    const int64_t n_prompt = static_cast<int64_t>(r.prompts[i].size());
    if (n_prompt + std::max(r.max_tokens, 1) > limits.n_ctx)
      throw bad("prompt",
                "This model's maximum context length is " + std::to_string(limits.n_ctx) + " tokens, however you requested " +
                    std::to_string(n_prompt + r.max_tokens) + " tokens (" + std::to_string(n_prompt) + " in your prompt" +
                    (r.prompts.size() > 1 ? "[" + std::to_string(i) + "]" : std::string()) + "; " +
                    std::to_string(r.max_tokens) + " for the completion). Please reduce your prompt; or completion length.",
                "context_length_exceeded");
  }
  try {
    r.sampler.validate();
  } catch (const UsageError& e) {
    throw bad("", e.what());  // unreachable with the ranges above; kept as the sampler's last word
  }
  return r;
}

}  // namespace gpt2::server
