// The tokenizer's parts: pre-tokenization, byte-level tokens, decoding, streaming, UTF-8
// repair, the built-in vocabulary, and loading vocabularies from model directories.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using namespace gpt2;
using Ids = std::vector<int32_t>;

namespace {

std::vector<std::string> pieces(std::string_view text) {
  std::vector<std::string> out;
  pretokenize::for_each_piece(text, [&](const unsigned char* p, std::size_t n) {
    out.emplace_back(reinterpret_cast<const char*>(p), n);
  });
  return out;
}

// GPT-2's id of a single-byte token, written out from the rule in OpenAI's encoder.py
// (printable Latin-1 bytes first in byte order, then the other 68 in byte order), not
// taken from the implementation.
int32_t byte_token(unsigned b) {
  if (b >= 0x21 && b <= 0x7E) return static_cast<int32_t>(b - 0x21);             // 0..93
  if (b >= 0xA1 && b <= 0xAC) return static_cast<int32_t>(94 + b - 0xA1);        // 94..105
  if (b >= 0xAE) return static_cast<int32_t>(106 + b - 0xAE);                    // 106..187
  if (b <= 0x20) return static_cast<int32_t>(188 + b);                            // 188..220
  if (b >= 0x7F && b <= 0xA0) return static_cast<int32_t>(221 + b - 0x7F);       // 221..254
  return 255;                                                                      // 0xAD
}

std::string random_bytes(std::mt19937& rng, std::size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xFF);
  return s;
}

// A fresh directory under /tmp, removed (with its files) at the end of the test.
struct TempDir {
  std::string path;
  std::vector<std::string> files;
  TempDir() {
    char name[] = "/tmp/gpt2_tok_XXXXXX";
    REQUIRE(mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() {
    for (const auto& f : files) std::remove((path + "/" + f).c_str());
    rmdir(path.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  void write(const std::string& name, const std::string& bytes) {
    std::ofstream(path + "/" + name, std::ios::binary) << bytes;
    files.push_back(name);
  }
};

// GPT-2's byte alphabet spelling of a byte (bytes_to_unicode), as UTF-8.
std::string byte_char(unsigned b) {
  const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  unsigned cp = b;
  if (!printable) {
    unsigned n = 0;
    for (unsigned x = 0; x < b; ++x)
      if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// A tiny vocabulary: the 256 bytes (ids 0..255 in byte order, unlike GPT-2), then
// he(256) ll(257) hell(258) hello(259) <|endoftext|>(260).
std::string tiny_vocab_json(bool with_eot = true) {
  std::string json = "{";
  for (unsigned b = 0; b < 256; ++b) {
    std::string c = byte_char(b);
    if (c == "\"" || c == "\\") c = "\\" + c;
    json += "\"" + c + "\": " + std::to_string(b) + ", ";
  }
  json += "\"he\": 256, \"ll\": 257, \"hell\": 258, \"hello\": 259";
  if (with_eot) json += ", \"<|endoftext|>\": 260";
  return json + "}";
}
const char* const kTinyMerges = "#version: 0.2\nh e\nl l\nhe ll\nhell o\n";

}  // namespace

// ---- pre-tokenization --------------------------------------------------------------------

TEST_CASE("pre-tokenizer splits like GPT-2's regex", "[tokenizer]") {
  using V = std::vector<std::string>;
  CHECK(pieces("Hello world") == V{"Hello", " world"});
  CHECK(pieces("it's") == V{"it", "'s"});
  CHECK(pieces("IT'S") == V{"IT", "'", "S"});  // contractions are case-sensitive
  CHECK(pieces("we'll they're I've I'm he'd") ==
        V{"we", "'ll", " they", "'re", " I", "'ve", " I", "'m", " he", "'d"});
  CHECK(pieces("'sa") == V{"'s", "a"});
  CHECK(pieces("x''s") == V{"x", "''", "s"});  // only at the start of a match
  CHECK(pieces("abc123def") == V{"abc", "123", "def"});
  CHECK(pieces(" 42 ?!") == V{" 42", " ?!"});
  // \s+(?!\S): a run before a word leaves its last space to the word.
  CHECK(pieces("a   b") == V{"a", "  ", " b"});
  CHECK(pieces("a \n b") == V{"a", " \n", " b"});
  CHECK(pieces("a\n\nb") == V{"a", "\n", "\n", "b"});
  CHECK(pieces("a\tb") == V{"a", "\t", "b"});
  CHECK(pieces("a   ") == V{"a", "   "});  // a run at the end is taken whole
  CHECK(pieces(" ") == V{" "});
  CHECK(pieces("  x") == V{" ", " x"});
  // Unicode classes: letters of any script, numbers of any script, U+00A0/U+3000 are
  // whitespace but only U+0020 prefixes a word.
  CHECK(pieces("ёжик 你好") == V{"ёжик", " 你好"});
  CHECK(pieces("x\u00a0y") == V{"x", "\u00a0", "y"});
  CHECK(pieces("١٢٣ abc") == V{"١٢٣", " abc"});
  CHECK(pieces("हिन्दी") == V{"ह", "ि", "न", "्", "द", "ी"});  // vowel signs are marks, not letters
  CHECK(pieces("\xEF\xBB\xBFHi") == V{"\xEF\xBB\xBF", "Hi"});  // U+FEFF is not whitespace
  CHECK(pieces("a\xC2\x85" "b") == V{"a", "\xC2\x85", "b"});      // U+0085 is
  // Invalid UTF-8 bytes are "other", like punctuation.
  CHECK(pieces("ab\xFF\xFE!cd") == V{"ab", "\xFF\xFE!", "cd"});
  CHECK(pieces(" \x80x") == V{" \x80", "x"});
}

TEST_CASE("ASCII fast path agrees with the Unicode tables", "[tokenizer]") {
  for (unsigned c = 0; c < 128; ++c) {
    INFO("character " << c);
    CHECK(pretokenize::ascii_class(static_cast<unsigned char>(c)) == unicode::char_class(c));
  }
  CHECK(unicode::char_class(0x4E2D) == unicode::CharClass::letter);   // 中
  CHECK(unicode::char_class(0x0661) == unicode::CharClass::number);   // ١
  CHECK(unicode::char_class(0x2167) == unicode::CharClass::number);   // Ⅷ (Nl)
  CHECK(unicode::char_class(0x3000) == unicode::CharClass::space);
  CHECK(unicode::char_class(0x0301) == unicode::CharClass::other);    // combining acute
  CHECK(unicode::char_class(0x1F600) == unicode::CharClass::other);   // 😀
  CHECK(unicode::char_class(0x20000) == unicode::CharClass::letter);  // CJK ext. B
  CHECK(unicode::char_class(0x10FFFF) == unicode::CharClass::other);
}

TEST_CASE("strict UTF-8 decoding", "[tokenizer]") {
  auto decode = [](std::string_view s) {
    return unicode::decode_utf8(reinterpret_cast<const unsigned char*>(s.data()),
                                reinterpret_cast<const unsigned char*>(s.data()) + s.size());
  };
  CHECK(decode("\xE2\x82\xAC").cp == 0x20AC);
  CHECK(decode("\xF0\x9F\x98\x80").cp == 0x1F600);
  CHECK(decode("\xC0\x80").status == unicode::Utf8Status::invalid);      // overlong
  CHECK(decode("\xED\xA0\x80").status == unicode::Utf8Status::invalid);  // surrogate
  CHECK(decode("\xF4\x90\x80\x80").status == unicode::Utf8Status::invalid);  // > U+10FFFF
  const auto cut = decode("\xF0\x9F\x98");
  CHECK(cut.status == unicode::Utf8Status::truncated);
  CHECK(cut.length == 3);
  const auto bad = decode("\xE2\x82x");
  CHECK(bad.status == unicode::Utf8Status::invalid);
  CHECK(bad.length == 2);  // the maximal subpart
}

// ---- encoding and decoding ------------------------------------------------------------------

TEST_CASE("known GPT-2 ids", "[tokenizer]") {
  const Tokenizer tok = Tokenizer::builtin();
  CHECK(tok.n_vocab() == 50257);
  CHECK(tok.eot() == 50256);
  CHECK(tok.encode("Hello world") == Ids{15496, 995});
  CHECK(tok.encode("Hello, world!") == Ids{15496, 11, 995, 0});
  CHECK(tok.encode("") == Ids{});
  CHECK(tok.encode("<|endoftext|>") == Ids{50256});
  CHECK(tok.encode("<|endoftext|>", Special::plain) == Ids{27, 91, 437, 1659, 5239, 91, 29});
  CHECK(tok.token_bytes(15496) == "Hello");
  CHECK(tok.token_bytes(995) == " world");
  CHECK(tok.token_bytes(50256) == "<|endoftext|>");
  CHECK(tok.token_bytes(220) == " ");
  CHECK_THROWS_AS(tok.token_bytes(50257), Error);
  CHECK_THROWS_AS(tok.decode({15496, -1}), Error);
}

TEST_CASE("the 256 byte tokens are GPT-2's, in GPT-2's order", "[tokenizer]") {
  const Tokenizer tok = Tokenizer::builtin();
  for (unsigned b = 0; b < 256; ++b) {
    INFO("byte " << b);
    CHECK(tok.token_bytes(byte_token(b)) == std::string(1, static_cast<char>(b)));
  }
}

TEST_CASE("invalid UTF-8 input: byte-level ids, checked by hand", "[tokenizer]") {
  const Tokenizer tok = Tokenizer::builtin();
  // Lone bytes that no merge covers are their byte tokens.
  CHECK(tok.encode("\xFF") == Ids{byte_token(0xFF)});
  CHECK(tok.encode("\x80") == Ids{byte_token(0x80)});
  CHECK(byte_token(0xFF) == 187);
  CHECK(byte_token(0x80) == 222);
  // "a" is a letter piece, 0x80 an "other" piece, "b" a letter piece: three pieces, so the
  // invalid byte never merges with the letters around it.
  CHECK(tok.encode("a\x80" "b") == Ids{64, 222, 65});
  // A truncated euro sign. "€" is E2 82 AC, one token (26391), made by the merges
  // "Ĥ ¬" (82 AC, vocab.bpe line 8701) and then "â Ĥ¬" (line 26137). Without AC no
  // merge applies: the two byte tokens of E2 and 82.
  CHECK(tok.encode("\xE2\x82\xAC") == Ids{26391});
  CHECK(tok.encode("\xE2\x82") == Ids{byte_token(0xE2), byte_token(0x82)});
  CHECK(byte_token(0xE2) == 158);
  CHECK(byte_token(0x82) == 224);
  // NUL and CR survive.
  CHECK(tok.encode(std::string("a\0b", 3)) == Ids{64, byte_token(0), 65});
  CHECK(tok.decode(tok.encode("x\r\ny")) == "x\r\ny");
}

TEST_CASE("decode(encode(x)) == x on random byte strings", "[tokenizer]") {
  const Tokenizer tok = Tokenizer::builtin();
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    const std::string bytes = random_bytes(rng, 1 + rng() % 300);
    REQUIRE(tok.decode(tok.encode(bytes, Special::plain)) == bytes);
    REQUIRE(tok.decode(tok.encode(bytes, Special::allow)) == bytes);
  }
  // Long pieces take the heap path: random bytes with no whitespace or letters.
  std::string symbols;
  for (int i = 0; i < 20000; ++i) symbols += static_cast<char>(0x80 + rng() % 0x40);
  CHECK(tok.decode(tok.encode(symbols)) == symbols);
}

TEST_CASE("long pieces merge exactly as short ones do", "[tokenizer]") {
  // Pieces over 64 bytes take the heap path (bpe_long). The parity corpus checks it against
  // tiktoken (long words, runs of symbols); here a known case and round trips.
  const Tokenizer tok = Tokenizer::builtin();
  const std::string a1000(1000, 'a');
  const Ids ids = tok.encode(a1000);
  CHECK(tok.decode(ids) == a1000);
  // GPT-2 has "aaaa" as one token (id 24794); tiktoken gives 250 of them for 1000 "a".
  CHECK(tok.token_bytes(24794) == "aaaa");
  CHECK(ids == Ids(250, 24794));
  // Random letter strings straddling 64 bytes round-trip.
  std::mt19937 rng(99);
  for (int i = 0; i < 200; ++i) {
    std::string word;
    const std::size_t n = 40 + rng() % 60;
    for (std::size_t k = 0; k < n; ++k) word += static_cast<char>('a' + rng() % 6);
    const Ids whole = tok.encode(word);
    CHECK(tok.decode(whole) == word);
  }
}

TEST_CASE("to_valid_utf8 replaces each maximal ill-formed subpart with one U+FFFD", "[tokenizer]") {
  CHECK(to_valid_utf8("abc") == "abc");
  CHECK(to_valid_utf8("a\xFF" "b") == "a\xEF\xBF\xBD" "b");
  CHECK(to_valid_utf8("\xE2\x82") == "\xEF\xBF\xBD");              // truncated: one
  CHECK(to_valid_utf8("\xE2\x82x") == "\xEF\xBF\xBDx");
  CHECK(to_valid_utf8("\xC0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong: two
  CHECK(to_valid_utf8("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(to_valid_utf8("\xF0\x9F\x98\x80") == "\xF0\x9F\x98\x80");
}

TEST_CASE("StreamDecoder holds back incomplete characters", "[tokenizer]") {
  const Tokenizer tok = Tokenizer::builtin();
  // "👍" is F0 9F 91 8D; GPT-2 encodes it as several tokens that cut the character.
  const Ids ids = tok.encode("ok 👍!");
  REQUIRE(ids.size() >= 3);
  StreamDecoder stream(tok);
  std::vector<std::string> parts;
  for (int32_t id : ids) parts.push_back(stream.push(id));
  parts.push_back(stream.finish());
  std::string all;
  for (const auto& p : parts) {
    CHECK(to_valid_utf8(p) == p);  // never half a character
    all += p;
  }
  CHECK(all == "ok 👍!");

  // A character that never completes becomes U+FFFD at the end only.
  StreamDecoder cut(tok);
  CHECK(cut.push(tok.encode("\xF0\x9F")[0]).empty());
  CHECK(cut.finish() == "\xEF\xBF\xBD");
}

TEST_CASE("streamed output equals to_valid_utf8 of the whole, on random bytes", "[tokenizer]") {
  const Tokenizer tok = Tokenizer::builtin();
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string bytes = random_bytes(rng, 1 + rng() % 64);
    if (i % 2 == 0) bytes = "\xE4\xBD\xA0\xE5\xA5\xBD " + bytes + "\xF0\x9F\x98";  // valid + cut
    const Ids ids = tok.encode(bytes);
    StreamDecoder stream(tok);
    std::string out;
    for (int32_t id : ids) {
      const std::string part = stream.push(id);
      REQUIRE(to_valid_utf8(part) == part);
      out += part;
    }
    out += stream.finish();
    REQUIRE(out == to_valid_utf8(bytes));
  }
}

// ---- vocabularies ------------------------------------------------------------------------------

TEST_CASE("the built-in vocabulary equals encoder.json + vocab.bpe, id by id", "[tokenizer]") {
  const Tokenizer builtin = Tokenizer::builtin();
  const Tokenizer files = Tokenizer::from_dir(GPT2_TEST_DATA "/../../src/tokenizer/data");
  REQUIRE(files.n_vocab() == builtin.n_vocab());
  for (int32_t id = 0; id < builtin.n_vocab(); ++id) {
    if (files.token_bytes(id) != builtin.token_bytes(id)) FAIL("token " << id << " differs");
  }
  const std::string text = "Tokenizers: the same ids from files as from the binary. 你好 👍🏽 <|endoftext|>";
  CHECK(files.encode(text) == builtin.encode(text));
}

TEST_CASE("a directory without vocabulary files gives the built-in one", "[tokenizer]") {
  TempDir dir;
  const Tokenizer tok = Tokenizer::from_dir(dir.path);
  CHECK(tok.encode("Hello world") == Ids{15496, 995});
}

TEST_CASE("vocab.json + merges.txt, encoder.json + vocab.bpe and tokenizer.json load", "[tokenizer]") {
  // "hellohe": h e l l o h e -> both (h,e) merge first (rank 0, leftmost first), then
  // (l,l), (he,ll), (hell,o): "hello" "he".
  SECTION("vocab.json + merges.txt") {
    TempDir dir;
    dir.write("vocab.json", tiny_vocab_json());
    dir.write("merges.txt", kTinyMerges);
    const Tokenizer tok = Tokenizer::from_dir(dir.path);
    CHECK(tok.n_vocab() == 261);
    CHECK(tok.eot() == 260);
    CHECK(tok.encode("hellohe") == Ids{259, 256});
    CHECK(tok.encode("hel lo<|endoftext|>") == Ids{256, 'l', ' ', 'l', 'o', 260});
  }
  SECTION("encoder.json + vocab.bpe, CRLF line ends") {
    TempDir dir;
    dir.write("encoder.json", tiny_vocab_json());
    dir.write("vocab.bpe", "#version: 0.2\r\nh e\r\nl l\r\nhe ll\r\nhell o\r\n");
    CHECK(Tokenizer::from_dir(dir.path).encode("hellohe") == Ids{259, 256});
  }
  SECTION("tokenizer.json, merges as strings and as pairs") {
    TempDir dir;
    const std::string vocab = tiny_vocab_json(/*with_eot=*/false);
    dir.write("tokenizer.json",
              "{\"added_tokens\": [{\"id\": 260, \"content\": \"<|endoftext|>\", \"special\": true}],"
              " \"model\": {\"type\": \"BPE\", \"vocab\": " + vocab +
              ", \"merges\": [\"h e\", [\"l\", \"l\"], \"he ll\", \"hell o\"]}}");
    const Tokenizer tok = Tokenizer::from_dir(dir.path);
    CHECK(tok.encode("hellohe<|endoftext|>") == Ids{259, 256, 260});
  }
}

TEST_CASE("malformed or unreadable vocabulary files give a clear error", "[tokenizer]") {
  auto error_of = [](const std::string& dir) -> std::string {
    try {
      Tokenizer::from_dir(dir);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  using Catch::Matchers::Contains;

  CHECK_THAT(error_of("/nonexistent/model"), Contains("model directory '/nonexistent/model' not found"));
  {
    TempDir dir;
    dir.write("vocab.json", tiny_vocab_json());
    CHECK_THAT(error_of(dir.path), Contains("has no merges.txt"));
  }
  {
    TempDir dir;
    dir.write("vocab.json", "{\"a\": 0,");
    dir.write("merges.txt", kTinyMerges);
    const std::string e = error_of(dir.path);
    CHECK_THAT(e, Contains("vocab.json' is not valid JSON"));
    CHECK(e.find('\n') == std::string::npos);
  }
  {
    TempDir dir;
    dir.write("vocab.json", "[1, 2]");
    dir.write("merges.txt", kTinyMerges);
    CHECK_THAT(error_of(dir.path), Contains("not a JSON object"));
  }
  {
    TempDir dir;
    dir.write("vocab.json", "{\"a\": 0, \"b\": 2}");
    dir.write("merges.txt", kTinyMerges);
    CHECK_THAT(error_of(dir.path), Contains("no token has id 1"));
  }
  {
    TempDir dir;
    dir.write("vocab.json", "{\"a\": 0, \"b\": \"one\"}");
    dir.write("merges.txt", kTinyMerges);
    CHECK_THAT(error_of(dir.path), Contains("is not an integer"));
  }
  {
    TempDir dir;  // only three byte tokens: not a byte-level vocabulary
    dir.write("vocab.json", "{\"a\": 0, \"b\": 1, \"<|endoftext|>\": 2}");
    dir.write("merges.txt", "#version: 0.2\n");
    CHECK_THAT(error_of(dir.path), Contains("no token for byte 0"));
  }
  {
    TempDir dir;
    dir.write("vocab.json", tiny_vocab_json(/*with_eot=*/false));
    dir.write("merges.txt", kTinyMerges);
    CHECK_THAT(error_of(dir.path), Contains("no <|endoftext|> token"));
  }
  {
    TempDir dir;
    dir.write("vocab.json", tiny_vocab_json());
    dir.write("merges.txt", "#version: 0.2\nh e\nl l x\n");
    CHECK_THAT(error_of(dir.path), Contains("merges.txt' line 3: expected two tokens"));
  }
  {
    TempDir dir;
    dir.write("vocab.json", tiny_vocab_json());
    dir.write("merges.txt", "#version: 0.2\nh e\nhe q\n");  // "heq" is not a token
    CHECK_THAT(error_of(dir.path), Contains("line 3: merge 'he q': the merged token is not in the vocabulary"));
  }
  {
    TempDir dir;
    dir.write("vocab.json", tiny_vocab_json());
    dir.write("merges.txt", "#version: 0.2\nhel lo\n");
    CHECK_THAT(error_of(dir.path), Contains("'hel' is not in the vocabulary"));
  }
  {
    TempDir dir;  // merges.txt is a directory: unreadable
    dir.write("vocab.json", tiny_vocab_json());
    REQUIRE(mkdir((dir.path + "/merges.txt").c_str(), 0700) == 0);
    const std::string e = error_of(dir.path);
    rmdir((dir.path + "/merges.txt").c_str());
    CHECK_THAT(e, Contains("cannot read"));
    CHECK_THAT(e, Contains("merges.txt"));
  }
  {
    TempDir dir;
    dir.write("tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
    CHECK_THAT(error_of(dir.path), Contains("not BPE"));
  }
  {
    TempDir dir;
    dir.write("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": [1]}}");
    CHECK_THAT(error_of(dir.path), Contains("merge 0 is neither"));
  }
  // Found by tests/fuzz/fuzz_tokenizer_files (corpus/fuzz_tokenizer_files/added-token-float-id):
  // a float id (2E65) was converted to int64 with undefined behaviour (UBSan).
  for (const char* added : {"{\"id\": 2E65, \"content\": \"x\"}", "{\"id\": 1.5, \"content\": \"x\"}",
                            "{\"id\": 3, \"content\": 4}", "{\"content\": \"x\"}", "7"}) {
    INFO(added);
    const std::string doc = std::string("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, ") +
                            "\"added_tokens\": [" + added + "]}";
    try {
      Tokenizer::from_tokenizer_json(doc, "dir/tokenizer.json");
      FAIL("no error");
    } catch (const Error& e) {
      CHECK_THAT(e.what(), Contains("'dir/tokenizer.json'") && Contains("added_tokens[0]"));
    }
  }
}

TEST_CASE("one Tokenizer encodes from several threads at once", "[tokenizer]") {
  // The vocabulary is shared and read-only; each encode call has its own piece cache.
  const Tokenizer tok = Tokenizer::builtin();
  std::string text;
  for (int i = 0; i < 200; ++i) text += "Thread " + std::to_string(i) + " says: it's 你好, naïve café 👍🏽!\n";
  const Ids want = tok.encode(text);
  std::vector<Ids> got(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < got.size(); ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 20; ++rep) got[t] = tok.encode(text);
    });
  for (auto& th : threads) th.join();
  for (const Ids& ids : got) CHECK(ids == want);
}

TEST_CASE("a Hugging Face tokenizer.json of GPT-2 gives the built-in vocabulary", "[tokenizer]") {
  // Written here from encoder.json + vocab.bpe in the layout transformers saves: model.vocab,
  // model.merges as "a b" strings, added_tokens with <|endoftext|>.
  const std::string data = GPT2_TEST_DATA "/../../src/tokenizer/data";
  auto vocab = nlohmann::json::parse(read_file(data + "/encoder.json"));
  nlohmann::json merges = nlohmann::json::array();
  const std::string bpe = read_file(data + "/vocab.bpe");
  std::size_t pos = bpe.find('\n') + 1;  // after "#version: 0.2"
  while (pos < bpe.size()) {
    const std::size_t eol = bpe.find('\n', pos);
    if (eol > pos) merges.push_back(bpe.substr(pos, eol - pos));
    pos = eol + 1;
  }
  REQUIRE(merges.size() == 50000);
  const nlohmann::json doc = {
      {"version", "1.0"},
      {"added_tokens", {{{"id", 50256}, {"content", "<|endoftext|>"}, {"special", true}}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
  TempDir dir;
  dir.write("tokenizer.json", doc.dump());
  const Tokenizer tok = Tokenizer::from_dir(dir.path);
  const Tokenizer builtin = Tokenizer::builtin();
  REQUIRE(tok.n_vocab() == 50257);
  CHECK(tok.eot() == 50256);
  const std::string text = "Hugging Face's GPT2TokenizerFast: \"tokenizer.json\" 123 你好 👨‍👩‍👧 <|endoftext|>x";
  CHECK(tok.encode(text) == builtin.encode(text));
  for (int32_t id = 0; id < 50257; id += 97) CHECK(tok.token_bytes(id) == builtin.token_bytes(id));
}
