// Fuzz target: GPT-2's tokenizer (the built-in vocabulary) on arbitrary bytes, and the streaming
// decoder (StreamDecoder, src/tokenizer/tokenizer.cpp) that `generate` prints through.
//
// Checked for every input x:
//   - decode(encode(x)) == x, with <|endoftext|> special and plain, every id in the vocabulary;
//   - for two id sequences (encode(x), and ids read from x as 16-bit numbers, which cut UTF-8
//     characters at arbitrary token boundaries), streamed through StreamDecoder:
//       every chunk push() returns is complete, valid UTF-8 on its own (never half a character),
//       and so is finish()'s;
//       the chunks plus finish() equal to_valid_utf8(decode(ids)): the exact bytes where they are
//       valid UTF-8, each invalid sequence replaced by U+FFFD as if the whole text were decoded
//       at once (a held-back prefix that never completes becomes U+FFFD at finish());
//       in particular, when decode(ids) is valid UTF-8 the chunks concatenate to exactly it.
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

using namespace gpt2;
using gpt2::fuzz::is_valid_utf8;

namespace {

void check_stream(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  const std::string full = tok.decode(ids);
  StreamDecoder stream(tok);
  std::string joined;
  for (int32_t id : ids) {
    const std::string chunk = stream.push(id);
    FUZZ_EXPECT(is_valid_utf8(chunk), "push() returned part of a UTF-8 character");
    joined += chunk;
  }
  const std::string last = stream.finish();
  FUZZ_EXPECT(is_valid_utf8(last), "finish() returned invalid UTF-8");
  joined += last;
  FUZZ_EXPECT(joined == to_valid_utf8(full));
  if (is_valid_utf8(full)) FUZZ_EXPECT(joined == full);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Tokenizer tok = Tokenizer::builtin();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<int32_t> encoded;
  for (Special special : {Special::allow, Special::plain}) {
    const std::vector<int32_t> ids = tok.encode(text, special);
    for (int32_t id : ids) FUZZ_EXPECT(id >= 0 && id < tok.n_vocab(), std::to_string(id));
    FUZZ_EXPECT(tok.decode(ids) == text);
    if (special == Special::allow) encoded = ids;
  }
  FUZZ_EXPECT(is_valid_utf8(to_valid_utf8(text)));
  if (is_valid_utf8(text)) FUZZ_EXPECT(to_valid_utf8(text) == text);
  check_stream(tok, encoded);
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 1 < size; i += 2) ids.push_back(static_cast<int32_t>((data[i] | data[i + 1] << 8) % tok.n_vocab()));
  check_stream(tok, ids);
  return 0;
}
