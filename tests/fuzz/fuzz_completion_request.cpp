// Fuzz target: the server's request parsing (src/server/completion_request.cpp): a POST
// /v1/completions body -> a validated CompletionRequest, with GPT-2's built-in tokenizer and
// the server's default limits. Every body is an ApiError (400, naming the parameter, whose
// error body the server can send: valid UTF-8 JSON) or a request inside every documented range:
// at least one prompt, each at least one token inside the vocabulary, prompt + max_tokens within
// the context, choices within the limit. Any other exception is a finding (the server would
// answer 500 for a client's mistake).
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "server/api_error.h"
#include "server/completion_request.h"
#include "server/completion_response.h"
#include "tokenizer/tokenizer.h"

using namespace gpt2;
using namespace gpt2::server;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Tokenizer tok = Tokenizer::builtin();
  const CompletionLimits limits;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  try {
    const CompletionRequest r = parse_completion_request(body, limits, tok);
    FUZZ_EXPECT(!r.prompts.empty());
    for (const auto& p : r.prompts) {
      FUZZ_EXPECT(!p.empty());
      FUZZ_EXPECT(static_cast<int>(p.size()) + std::max(r.max_tokens, 1) <= limits.n_ctx);
      for (int32_t id : p) FUZZ_EXPECT(id >= 0 && id < limits.n_vocab, std::to_string(id));
    }
    FUZZ_EXPECT(r.max_tokens >= 0 && r.max_tokens <= limits.n_ctx);
    FUZZ_EXPECT(r.n >= 1 && r.n <= kMaxN && r.choices() <= limits.max_choices);
    FUZZ_EXPECT(r.stop.size() <= static_cast<size_t>(kMaxStop));
    for (const std::string& s : r.stop) FUZZ_EXPECT(!s.empty());
    FUZZ_EXPECT(r.logprobs >= -1 && r.logprobs <= 20);
    FUZZ_EXPECT(r.sampler.temperature >= 0.0f && r.sampler.temperature <= 2.0f);
    FUZZ_EXPECT(r.sampler.top_p > 0.0f && r.sampler.top_p <= 1.0f);
    FUZZ_EXPECT(r.sampler.min_p >= 0.0f && r.sampler.min_p <= 1.0f);
    FUZZ_EXPECT(!r.include_usage || r.stream);
  } catch (const ApiError& e) {
    FUZZ_EXPECT(e.status == 400, std::to_string(e.status));
    const std::string sent = dump_json(error_json(e));
    FUZZ_EXPECT(fuzz::is_valid_utf8(sent), sent);
    FUZZ_EXPECT(sent.find('\n') == std::string::npos, sent);
  }
  return 0;
}
