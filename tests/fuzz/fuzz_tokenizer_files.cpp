// Fuzz target: loading a tokenizer from its files (src/tokenizer/tokenizer.cpp). The first byte
// chooses the files: even, vocab.json and merges.txt, the rest of the input split at its first
// NUL byte (vocab.json before it); odd, tokenizer.json (the rest of the input). A load is a
// gpt2::Error or a tokenizer for which decode(encode(x)) == x, x the input itself and a few
// fixed texts, with every id inside the vocabulary.
#include <string>
#include <string_view>

#include "common/error.h"
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

using namespace gpt2;

namespace {

void check_round_trip(const Tokenizer& tok, std::string_view text) {
  for (Special special : {Special::allow, Special::plain}) {
    const std::vector<int32_t> ids = tok.encode(text, special);
    for (int32_t id : ids) FUZZ_EXPECT(id >= 0 && id < tok.n_vocab(), std::to_string(id));
    FUZZ_EXPECT(tok.decode(ids) == text, std::string(text));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    Tokenizer tok = Tokenizer::builtin();
    if (data[0] % 2 == 0) {
      const size_t nul = rest.find('\0');
      const std::string_view vocab = rest.substr(0, nul);
      const std::string_view merges = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
      tok = Tokenizer::from_vocab_and_merges(vocab, "vocab.json", merges, "merges.txt");
    } else {
      tok = Tokenizer::from_tokenizer_json(rest, "tokenizer.json");
    }
    FUZZ_EXPECT(tok.eot() >= 0 && tok.eot() < tok.n_vocab());
    for (std::string_view text : {"Hello world", " the  theory\n\n", "<|endoftext|>x<|endoftext|>", "caf\xC3\xA9 \xFF"})
      check_round_trip(tok, text);
    check_round_trip(tok, rest.substr(0, 256));
  } catch (const Error&) {
  }
  return 0;
}
