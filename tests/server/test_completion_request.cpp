// The pure parts of the server: request validation (completion_request.h) and the response
// objects (completion_response.h), without a socket.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "server/completion_request.h"
#include "server/completion_response.h"

using namespace gpt2;
using namespace gpt2::server;

namespace {

const Tokenizer& tok() {
  static const Tokenizer t = Tokenizer::builtin();
  return t;
}

CompletionRequest parse(const std::string& body, CompletionLimits limits = {}) {
  return parse_completion_request(body, limits, tok());
}

// The ApiError a body gets: its status and param.
ApiError error_of(const std::string& body, CompletionLimits limits = {}) {
  try {
    parse(body, limits);
  } catch (const ApiError& e) {
    return e;
  }
  FAIL("no error for " << body);
  return ApiError(0, "");
}

}  // namespace

TEST_CASE("completion request: OpenAI's defaults") {
  const CompletionRequest r = parse(R"({"model": "gpt2", "prompt": "Hello world"})");
  REQUIRE(r.prompts.size() == 1);
  CHECK(r.prompts[0] == std::vector<int32_t>{15496, 995});
  CHECK(r.max_tokens == 16);
  CHECK(r.n == 1);
  CHECK(r.sampler.temperature == 1.0f);
  CHECK(r.sampler.top_p == 1.0f);
  CHECK(r.sampler.top_k == 0);
  CHECK(r.sampler.min_p == 0.0f);
  CHECK(r.logprobs == -1);
  CHECK_FALSE(r.echo);
  CHECK_FALSE(r.stream);
  CHECK_FALSE(r.seed.has_value());
  CHECK(r.model == "gpt2");
}

TEST_CASE("completion request: every prompt form") {
  CHECK(parse(R"({"prompt": ""})").prompts == std::vector<std::vector<int32_t>>{{50256}});
  CHECK(parse(R"({"prompt": ["Hello", " world"]})").prompts == std::vector<std::vector<int32_t>>{{15496}, {995}});
  CHECK(parse(R"({"prompt": [15496, 995]})").prompts == std::vector<std::vector<int32_t>>{{15496, 995}});
  CHECK(parse(R"({"prompt": [[15496], [995, 11]]})").prompts == std::vector<std::vector<int32_t>>{{15496}, {995, 11}});
  CHECK(parse(R"({"prompt": "a<|endoftext|>b"})").prompts[0] == std::vector<int32_t>{64, 50256, 65});
}

TEST_CASE("completion request: every field read") {
  const CompletionRequest r = parse(R"({"prompt": "x", "max_tokens": 5, "temperature": 0.5, "top_p": 0.9,
      "top_k": 7, "min_p": 0.1, "n": 3, "stop": ["\n", "."], "seed": 42, "stream": true,
      "stream_options": {"include_usage": true}, "logprobs": 2, "echo": true, "presence_penalty": 0.5,
      "frequency_penalty": -0.5, "repetition_penalty": 1.1, "ignore_eos": true, "user": "me",
      "best_of": 3, "suffix": null, "logit_bias": {}, "repeat_last_n": -1})");
  CHECK(r.max_tokens == 5);
  CHECK(r.sampler.temperature == 0.5f);
  CHECK(r.sampler.top_p == 0.9f);
  CHECK(r.sampler.top_k == 7);
  CHECK(r.sampler.min_p == Approx(0.1f));
  CHECK(r.n == 3);
  CHECK(r.stop == std::vector<std::string>{"\n", "."});
  CHECK(r.seed == uint64_t{42});
  CHECK(r.stream);
  CHECK(r.include_usage);
  CHECK(r.logprobs == 2);
  CHECK(r.echo);
  CHECK(r.sampler.presence_penalty == 0.5f);
  CHECK(r.sampler.frequency_penalty == -0.5f);
  CHECK(r.sampler.repeat_penalty == Approx(1.1f));
  CHECK(r.sampler.repeat_last_n == -1);
  CHECK(r.ignore_eos);
  CHECK(r.choices() == 3);
  CHECK(parse(R"({"prompt": "x", "stop": "END", "seed": -1})").seed == ~uint64_t{0});
  CHECK(parse(R"({"prompt": "x", "max_tokens": null, "stop": null, "logprobs": null})").max_tokens == 16);
}

TEST_CASE("completion request: errors name the parameter") {
  struct Case {
    const char* body;
    const char* param;
  };
  const Case cases[] = {
      {R"({"max_tokens": 4})", "prompt"},
      {R"({"prompt": 5})", "prompt"},
      {R"({"prompt": []})", "prompt"},
      {R"({"prompt": [[]]})", "prompt"},
      {R"({"prompt": ["a", 1]})", "prompt"},
      {R"({"prompt": [1, "a"]})", "prompt"},
      {R"({"prompt": [50257]})", "prompt"},
      {R"({"prompt": [-1]})", "prompt"},
      {R"({"prompt": [1.5]})", "prompt"},
      {R"({"prompt": "x", "max_tokens": -1})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 2.5})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": "16"})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 99999999999999999999})", "max_tokens"},
      {R"({"prompt": "x", "temperature": -0.1})", "temperature"},
      {R"({"prompt": "x", "temperature": 2.5})", "temperature"},
      {R"({"prompt": "x", "temperature": "hot"})", "temperature"},
      {R"({"prompt": "x", "top_p": 0})", "top_p"},
      {R"({"prompt": "x", "top_p": 1.5})", "top_p"},
      {R"({"prompt": "x", "top_k": -1})", "top_k"},
      {R"({"prompt": "x", "min_p": 2})", "min_p"},
      {R"({"prompt": "x", "presence_penalty": 3})", "presence_penalty"},
      {R"({"prompt": "x", "frequency_penalty": -3})", "frequency_penalty"},
      {R"({"prompt": "x", "repetition_penalty": 0})", "repetition_penalty"},
      {R"({"prompt": "x", "n": 0})", "n"},
      {R"({"prompt": "x", "n": 129})", "n"},
      {R"({"prompt": "x", "stop": 1})", "stop"},
      {R"({"prompt": "x", "stop": [""]})", "stop"},
      {R"({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]})", "stop"},
      {R"({"prompt": "x", "seed": 1.5})", "seed"},
      {R"({"prompt": "x", "stream": 1})", "stream"},
      {R"({"prompt": "x", "stream_options": {"include_usage": true}})", "stream_options"},
      {R"({"prompt": "x", "stream": true, "stream_options": {"other": true}})", "stream_options"},
      {R"({"prompt": "x", "logprobs": 21})", "logprobs"},
      {R"({"prompt": "x", "logprobs": true})", "logprobs"},
      {R"({"prompt": "x", "echo": "yes"})", "echo"},
      {R"({"prompt": "x", "best_of": 2})", "best_of"},
      {R"({"prompt": "x", "suffix": "end"})", "suffix"},
      {R"({"prompt": "x", "logit_bias": {"50256": -100}})", "logit_bias"},
      {R"({"prompt": "x", "model": 3})", "model"},
      {R"({"prompt": "x", "frobnicate": true})", "frobnicate"},
  };
  for (const Case& c : cases) {
    INFO(c.body);
    const ApiError e = error_of(c.body);
    CHECK(e.status == 400);
    CHECK(e.param == c.param);
    CHECK(e.type == "invalid_request_error");
    CHECK(std::string(e.what()).find(c.param) != std::string::npos);
  }
}

TEST_CASE("completion request: malformed bodies") {
  for (const char* body : {"", "{", "not json", "[1, 2]", "\"prompt\"", "{\"prompt\": \"\xff\"}", "null"}) {
    INFO(body);
    CHECK(error_of(body).status == 400);
  }
  CHECK(error_of(std::string(100000, '[')).status == 400);  // refused before parsing
  CHECK(error_of("{\"prompt\": " + std::string(40, '[') + "1" + std::string(40, ']') + "}").status == 400);
}

// Found by tests/fuzz/fuzz_completion_request (corpus/fuzz_completion_request/number-overflow): a
// number past a double made nlohmann throw out_of_range, not parse_error, which escaped as a 500.
TEST_CASE("completion request: a number too large for a double is a 400 naming it") {
  for (const char* body : {"{\"prompt\": \"a\", \"max_tokens\": 1e400}", "{\"temperature\": -1e7808}",
                           "[1e999]"}) {
    INFO(body);
    const ApiError e = error_of(body);
    CHECK(e.status == 400);
    CHECK(e.code == "invalid_json");
    CHECK_THAT(e.what(), Catch::Contains("number overflow"));
  }
}

TEST_CASE("completion request: the context and the server's capacity") {
  CompletionLimits limits;
  limits.n_ctx = 8;
  limits.max_choices = 4;
  CHECK(parse(R"({"prompt": [1, 2, 3], "max_tokens": 5})", limits).max_tokens == 5);
  const ApiError e = error_of(R"({"prompt": [1, 2, 3], "max_tokens": 6})", limits);
  CHECK(e.status == 400);
  CHECK(e.code == "context_length_exceeded");
  CHECK(std::string(e.what()).find("maximum context length is 8 tokens") != std::string::npos);
  CHECK(error_of(R"({"prompt": [1, 2, 3, 4, 5, 6, 7, 8], "max_tokens": 0})", limits).code == "context_length_exceeded");
  CHECK(error_of(R"({"prompt": "x", "max_tokens": 9})", limits).param == "max_tokens");
  CHECK(parse(R"({"prompt": ["a", "b"], "n": 2, "max_tokens": 2})", limits).choices() == 4);
  CHECK(error_of(R"({"prompt": ["a", "b"], "n": 3, "max_tokens": 2})", limits).param == "n");
  CHECK(error_of(R"({"prompt": ["a", "b", "c", "d", "e"], "max_tokens": 2})", limits).param == "prompt");
}

TEST_CASE("completion response: the text_completion object") {
  std::vector<ChoiceOutput> choices(1);
  choices[0].text = " world";
  choices[0].finish_reason = FinishReason::eos;
  const auto j = completion_json("cmpl-1", 123, "tiny", choices, 2, 1);
  CHECK(dump_json(j) ==
        R"({"id":"cmpl-1","object":"text_completion","created":123,"model":"tiny","choices":[{"text":" world","index":0,)"
        R"("logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}})");
  CHECK(std::string(openai_finish_reason(FinishReason::stop)) == "stop");
  CHECK(std::string(openai_finish_reason(FinishReason::length)) == "length");
}

TEST_CASE("completion response: logprobs with and without the prompt") {
  // "Hello world": 15496 995. The prompt's first token has nothing before it: null.
  std::vector<TokenLogprob> prompt = {{15496, std::nan(""), {}}, {995, -2.5, {{11, -1.0}, {995, -2.5}}}};
  std::vector<TokenLogprob> completion = {{11, -0.5, {{11, -0.5}}}};
  const auto echoed = logprobs_json(tok(), prompt, completion, 11);
  CHECK(dump_json(echoed) ==
        R"({"tokens":["Hello"," world",","],"token_logprobs":[null,-2.5,-0.5],"top_logprobs":[null,{",":-1.0," world":-2.5},)"
        R"({",":-0.5}],"text_offset":[0,5,11]})");
  const auto plain = logprobs_json(tok(), {}, completion, 11);
  CHECK(dump_json(plain) == R"({"tokens":[","],"token_logprobs":[-0.5],"top_logprobs":[{",":-0.5}],"text_offset":[11]})");
  // A token that holds part of a UTF-8 character is named by its bytes (emoji take two tokens).
  int split = 0;
  for (int32_t id : tok().encode("\xf0\x9f\x98\x80")) {
    const std::string s = token_string(tok(), id);
    const std::string& bytes = tok().token_bytes(id);
    if (to_valid_utf8(bytes) != bytes) {
      CHECK(s.compare(0, 6, "bytes:") == 0);
      ++split;
    } else {
      CHECK(s == bytes);
    }
  }
  CHECK(split > 0);
}
