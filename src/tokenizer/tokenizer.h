// GPT-2's byte-level BPE (tiktoken's "gpt2" encoding, Hugging Face's GPT2Tokenizer).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gpt2 {

// How "<|endoftext|>" written in the input is treated.
enum class Special {
  allow,  // the special token, id 50256 (tiktoken encode(..., allowed_special="all"))
  plain,  // ordinary text (tiktoken encode_ordinary, `--no-special`)
};

class Tokenizer {
 public:
  // GPT-2's vocabulary, built into the binary.
  static Tokenizer builtin();
  // From a model directory: vocab.json + merges.txt, encoder.json + vocab.bpe, or
  // tokenizer.json; the built-in vocabulary when the directory has none of them.
  // Unreadable or malformed files throw gpt2::Error naming the file.
  static Tokenizer from_dir(const std::string& dir);
  // The same files' contents already read, for callers that hold bytes, not files (tests,
  // fuzzers); errors name them as `vocab_name`, `merges_name`, `name`.
  static Tokenizer from_vocab_and_merges(std::string_view vocab_json, const std::string& vocab_name,
                                         std::string_view merges_text, const std::string& merges_name);
  static Tokenizer from_tokenizer_json(std::string_view text, const std::string& name);
  // From a vocabulary given as lists (a GGUF file's tokenizer.ggml.tokens and .merges): tokens
  // spelled with GPT-2's byte characters as vocab.json spells them, id = position; merges
  // "LEFT RIGHT" in rank order. Inconsistent lists throw gpt2::Error naming `source`.
  static Tokenizer from_lists(const std::vector<std::string>& tokens, const std::vector<std::string>& merges,
                              const std::string& source);
  // Whether both give the same ids for every text: the same tokens and the same merges in the
  // same order.
  bool same_as(const Tokenizer& other) const;

  // Any bytes: valid UTF-8 gives exactly tiktoken's ids; bytes that are not valid UTF-8
  // (which tiktoken cannot take) are pre-tokenized like punctuation, one "other" character
  // per byte. decode(encode(x)) == x for every byte string x.
  std::vector<int32_t> encode(std::string_view text, Special special = Special::allow) const;
  // The exact bytes of the tokens (possibly invalid UTF-8 when cut mid-character).
  // Ids outside the vocabulary throw gpt2::Error.
  std::string decode(const std::vector<int32_t>& ids) const;
  const std::string& token_bytes(int32_t id) const;

  int n_vocab() const;       // 50257 for GPT-2
  int32_t eot() const;       // id of <|endoftext|>, 50256

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// Turns a stream of token ids into printable text: bytes of an incomplete UTF-8 character
// are held back until the character completes.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {}
  std::string push(int32_t id);  // complete UTF-8 text ready to print (may be empty)
  std::string finish();          // what is left; bytes that never completed become U+FFFD

 private:
  const Tokenizer* tokenizer_;
  std::string pending_;
};

// `bytes` with every invalid UTF-8 sequence replaced by U+FFFD (for JSON and terminals).
std::string to_valid_utf8(std::string_view bytes);

}  // namespace gpt2
