// GPT-2's byte-level BPE.
//
// encode(text):
//   1. split at "<|endoftext|>" (Special::allow) -> the special id between ordinary segments;
//   2. pre-tokenize each segment into pieces (pretokenize.h: GPT-2's regex, hand-written);
//   3. BPE each piece: start from one token per byte, then repeatedly merge the adjacent pair
//      with the lowest merge rank (leftmost first among equal ranks) until no adjacent pair
//      is a merge. The ids are the vocabulary's; for GPT-2, merge k makes token 256 + k.
// Merging the leftmost lowest-ranked pair one at a time gives the same result as Hugging
// Face's "merge every occurrence of the best pair" and as tiktoken's rank-of-concatenation
// rule on GPT-2 (the parity fixtures check the ids against tiktoken).
//
// Speed: pieces repeat (" the", ","), so each encode call keeps a bounded cache of piece ->
// ids keyed by the bytes of the input itself (no copies). Short pieces merge in place in
// small arrays (O(n^2) with n <= 64, cache-resident); long ones (runs of symbols, random
// bytes, minified code) use a linked list and a min-heap of candidate pairs: O(n log n).
// Pair -> rank is an open-addressing table of 8-byte slots (MergeTable), rank -> merged id an
// array; every piece's first pair ranks come from a 256 x 256 byte-pair table. Measured
// (tools/bench_tokenizer.cpp): about 15x tiktoken's speed on English text and code, 4x on a
// soup of random tokens where few pieces repeat.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <queue>
#include <utility>

#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "common/error.h"
#include "common/files.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

// The built-in vocab.bpe (builtin_vocab.S).
extern "C" const char gpt2_builtin_vocab_bpe[];
extern "C" const char gpt2_builtin_vocab_bpe_end[];

namespace gpt2 {
namespace {

constexpr std::string_view kEndOfText = "<|endoftext|>";

// GPT-2's reversible byte <-> printable-unicode table (bytes_to_unicode in OpenAI's
// encoder.py): the 188 bytes that are printable Latin-1 (! .. ~, ¡ .. ¬, ® .. ÿ) stand for
// themselves; the other 68 (controls, space, DEL, NBSP, soft hyphen) become U+0100 + n in
// byte order. Vocabulary files spell tokens with these characters ("Ġthe" = " the").
struct ByteUnicode {
  std::array<uint32_t, 256> byte_to_cp{};
  std::array<int16_t, 324> cp_to_byte{};  // -1 where a code point stands for no byte
  std::array<uint8_t, 256> order{};       // GPT-2's byte-token order: printable ones first

  ByteUnicode() {
    cp_to_byte.fill(-1);
    auto printable = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; };
    int n = 0;
    for (int b = 0; b < 256; ++b)
      if (printable(b)) order[n++] = static_cast<uint8_t>(b);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      if (printable(b)) {
        byte_to_cp[b] = static_cast<uint32_t>(b);
      } else {
        byte_to_cp[b] = 256 + static_cast<uint32_t>(extra++);
        order[n++] = static_cast<uint8_t>(b);
      }
      cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteUnicode& byte_unicode() {
  static const ByteUnicode table;
  return table;
}

// "Ġthe" -> " the". False when a character is not one of the 256 byte characters.
bool unicode_token_to_bytes(std::string_view token, std::string& bytes) {
  const ByteUnicode& map = byte_unicode();
  bytes.clear();
  const auto* p = reinterpret_cast<const unsigned char*>(token.data());
  const auto* end = p + token.size();
  while (p < end) {
    const unicode::Utf8Char c = unicode::decode_utf8(p, end);
    if (c.status != unicode::Utf8Status::valid || c.cp >= map.cp_to_byte.size() || map.cp_to_byte[c.cp] < 0)
      return false;
    bytes.push_back(static_cast<char>(map.cp_to_byte[c.cp]));
    p += c.length;
  }
  return true;
}

constexpr int32_t kNoRank = INT32_MAX;

// Open-addressing map (left id, right id) -> merge rank, plus rank -> merged id; built once,
// read-only after. Lookups are most of BPE's time and mostly miss the CPU caches, so slots
// are 8 bytes when ids fit in 16 bits (GPT-2: 50257 tokens): a 32-bit key and the rank, 1 MB
// for 50000 merges at load <= 1/2. Larger vocabularies use 16-byte slots with 64-bit keys.
class MergeTable {
 public:
  void reserve(std::size_t n_merges, std::size_t n_vocab) {
    std::size_t cap = 16;
    while (cap < n_merges * 2 + 1) cap *= 2;  // load <= 1/2: short probe sequences
    compact_ = n_vocab < 0xFFFF;
    if (compact_) narrow_.assign(cap, kEmptyNarrow);
    else wide_.assign(cap, Wide{kEmptyWide, 0});
    mask_ = cap - 1;
    merged_.clear();
    merged_.reserve(n_merges);
  }
  // Ranks are given in order 0, 1, 2... Returns false when the pair is already present
  // (its first rank is kept; the later one never applies).
  bool insert(int32_t left, int32_t right, int32_t merged) {
    const auto rank = static_cast<int32_t>(merged_.size());
    if (compact_) {
      const uint32_t key = narrow_key(left, right);
      for (std::size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
        if (narrow_[i] == kEmptyNarrow) {
          narrow_[i] = (static_cast<uint64_t>(key) << 32) | static_cast<uint32_t>(rank);
          break;
        }
        if (static_cast<uint32_t>(narrow_[i] >> 32) == key) return false;
      }
    } else {
      const uint64_t key = wide_key(left, right);
      for (std::size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
        if (wide_[i].key == kEmptyWide) {
          wide_[i] = Wide{key, rank};
          break;
        }
        if (wide_[i].key == key) return false;
      }
    }
    merged_.push_back(merged);
    return true;
  }
  // The rank of merging (left, right), or kNoRank.
  int32_t rank(int32_t left, int32_t right) const {
    if (compact_) {
      const uint32_t key = narrow_key(left, right);
      for (std::size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
        const uint64_t slot = narrow_[i];
        if (static_cast<uint32_t>(slot >> 32) == key) return static_cast<int32_t>(static_cast<uint32_t>(slot));
        if (slot == kEmptyNarrow) return kNoRank;
      }
    }
    const uint64_t key = wide_key(left, right);
    for (std::size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      const Wide& slot = wide_[i];
      if (slot.key == key) return slot.rank;
      if (slot.key == kEmptyWide) return kNoRank;
    }
  }
  int32_t merged(int32_t rank) const { return merged_[static_cast<std::size_t>(rank)]; }

 private:
  struct Wide {
    uint64_t key;
    int32_t rank;
  };
  // Empty slots: key 0xFFFFFFFF (ids 65535, 65535) cannot occur with ids < 0xFFFF.
  static constexpr uint64_t kEmptyNarrow = ~uint64_t{0};
  static constexpr uint64_t kEmptyWide = ~uint64_t{0};
  static uint32_t narrow_key(int32_t left, int32_t right) {
    return (static_cast<uint32_t>(left) << 16) | static_cast<uint32_t>(right);
  }
  static uint64_t wide_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  static std::size_t hash(uint64_t key) {
    key *= 0x9E3779B97F4A7C15ull;
    return static_cast<std::size_t>(key ^ (key >> 29));
  }
  bool compact_ = true;
  std::vector<uint64_t> narrow_;
  std::vector<Wide> wide_;
  std::vector<int32_t> merged_;  // rank -> merged id
  std::size_t mask_ = 0;
};

// A fast 64-bit hash of short byte strings (pieces, tokens): 8 bytes per multiply.
uint64_t hash_bytes(const unsigned char* p, std::size_t n) {
  uint64_t h = 0x243F6A8885A308D3ull ^ (n * 0x9E3779B97F4A7C15ull);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p + i, n - i);
  h = (h ^ tail) * 0xC4CEB9FE1A85EC53ull;
  return h ^ (h >> 29);
}
uint64_t hash_bytes(std::string_view s) { return hash_bytes(reinterpret_cast<const unsigned char*>(s.data()), s.size()); }

// Token bytes -> id over a dense id -> bytes table, for loading (150 000 lookups for GPT-2:
// a flat open-addressing array of (hash high bits, id) is several times faster than
// std::unordered_map's node chains here).
class TokenIndex {
 public:
  explicit TokenIndex(const std::vector<std::string>& tokens) : tokens_(tokens) {
    std::size_t cap = 16;
    while (cap < tokens.size() * 2 + 1) cap *= 2;
    slots_.assign(cap, kEmpty);
    mask_ = cap - 1;
  }
  // Adds token `id`; returns the id already holding the same bytes, or -1.
  int32_t insert(int32_t id) {
    const std::string& bytes = tokens_[static_cast<std::size_t>(id)];
    const uint64_t h = hash_bytes(bytes);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      if (slots_[i] == kEmpty) {
        slots_[i] = (h & kHashMask) | static_cast<uint32_t>(id);
        return -1;
      }
      const auto other = static_cast<int32_t>(static_cast<uint32_t>(slots_[i]));
      if ((slots_[i] & kHashMask) == (h & kHashMask) && tokens_[static_cast<std::size_t>(other)] == bytes) return other;
    }
  }
  // The id of the token with these bytes, or -1.
  int32_t find(std::string_view bytes) const {
    const uint64_t h = hash_bytes(bytes);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      if (slots_[i] == kEmpty) return -1;
      const auto id = static_cast<int32_t>(static_cast<uint32_t>(slots_[i]));
      if ((slots_[i] & kHashMask) == (h & kHashMask) && tokens_[static_cast<std::size_t>(id)] == bytes) return id;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static constexpr uint64_t kHashMask = 0xFFFFFFFF00000000ull;  // high half: hash; low: id
  const std::vector<std::string>& tokens_;
  std::vector<uint64_t> slots_;
  std::size_t mask_ = 0;
};

// Piece bytes -> ids, for one encode call. Keys point into the caller's text, which outlives
// the cache. Bounded: when full it starts over rather than growing without limit.
class PieceCache {
 public:
  static constexpr std::size_t kMaxEntries = std::size_t{1} << 16;
  static constexpr std::size_t kMaxPieceBytes = 256;  // longer pieces rarely repeat

  PieceCache() { reset(1024); }

  // The cached ids of the piece, or nullptr.
  const int32_t* find(const unsigned char* p, std::size_t n, uint64_t h, uint32_t& count) const {
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.bytes == nullptr) return nullptr;
      if (s.hash == h && s.length == n && std::memcmp(s.bytes, p, n) == 0) {
        count = s.id_count;
        return ids_.data() + s.id_offset;
      }
    }
  }
  void insert(const unsigned char* p, std::size_t n, uint64_t h, const int32_t* ids, std::size_t count) {
    if (size_ + 1 > slots_.size() / 2) {
      if (slots_.size() / 2 >= kMaxEntries) reset(slots_.size());
      else grow();
    }
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.bytes == nullptr) {
        s = Slot{h, p, static_cast<uint32_t>(n), static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(count)};
        ids_.insert(ids_.end(), ids, ids + count);
        ++size_;
        return;
      }
    }
  }
 private:
  struct Slot {
    uint64_t hash;
    const unsigned char* bytes;  // nullptr: empty
    uint32_t length;
    uint32_t id_offset;
    uint32_t id_count;
  };
  void reset(std::size_t capacity) {
    slots_.assign(capacity, Slot{0, nullptr, 0, 0, 0});
    mask_ = capacity - 1;
    size_ = 0;
    ids_.clear();
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.size() * 2, Slot{0, nullptr, 0, 0, 0});
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.bytes == nullptr) continue;
      std::size_t i = s.hash & mask_;
      while (slots_[i].bytes != nullptr) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  std::vector<int32_t> ids_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace

struct Tokenizer::Impl {
  std::vector<std::string> tokens;  // id -> bytes
  std::array<int32_t, 256> byte_ids{};
  MergeTable merges;
  // rank of merging the byte tokens of (x, y), at [x * 256 + y]: every piece starts with these
  // lookups, and a 256 KB array answers them without hashing.
  std::vector<int32_t> byte_pair_ranks;
  std::vector<std::pair<int32_t, int32_t>> merge_pairs;  // (left, right) ids in rank order, for same_as
  int32_t eot_id = -1;

  void encode_ordinary(std::string_view text, std::vector<int32_t>& out, PieceCache& cache) const;
  void bpe(const unsigned char* p, std::size_t n, std::vector<int32_t>& out) const;
  void bpe_small(const unsigned char* p, std::size_t n, std::vector<int32_t>& out) const;
  void bpe_long(const unsigned char* p, std::size_t n, std::vector<int32_t>& out) const;
};

namespace {

constexpr std::size_t kSmallPiece = 64;  // bytes; longer pieces take the heap path

// A merge of the source files, already turned into bytes.
struct Merge {
  std::string left;
  std::string right;
  std::size_t line;  // 1-based line (or entry) in the source, for errors
};

// Builds the tables from token bytes (id -> bytes, dense) and merges in rank order; every
// inconsistency is an error naming `source`.
std::shared_ptr<const Tokenizer::Impl> build(std::vector<std::string> tokens, const std::vector<Merge>& merges,
                                             const std::string& source) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  TokenIndex ids(tokens);
  for (std::size_t id = 0; id < tokens.size(); ++id) {
    const int32_t twin = ids.insert(static_cast<int32_t>(id));
    if (twin >= 0)
      throw Error(source + ": token '" + to_valid_utf8(tokens[id]) + "' appears twice (ids " + std::to_string(twin) +
                  " and " + std::to_string(id) + ")");
  }
  for (int b = 0; b < 256; ++b) {
    const int32_t id = ids.find(std::string(1, static_cast<char>(b)));
    if (id < 0) throw Error(source + ": no token for byte " + std::to_string(b) + " (not a byte-level BPE vocabulary)");
    impl->byte_ids[b] = id;
  }
  impl->eot_id = ids.find(kEndOfText);
  if (impl->eot_id < 0) throw Error(source + ": no <|endoftext|> token");

  impl->merges.reserve(merges.size(), tokens.size());
  std::string joined;
  for (const Merge& m : merges) {
    auto where = [&] { return source + " line " + std::to_string(m.line) + ": merge '" +
                              to_valid_utf8(m.left) + " " + to_valid_utf8(m.right) + "': "; };
    const int32_t left = ids.find(m.left);
    if (left < 0) throw Error(where() + "'" + to_valid_utf8(m.left) + "' is not in the vocabulary");
    const int32_t right = ids.find(m.right);
    if (right < 0) throw Error(where() + "'" + to_valid_utf8(m.right) + "' is not in the vocabulary");
    joined.assign(m.left).append(m.right);
    const int32_t merged = ids.find(joined);
    if (merged < 0) throw Error(where() + "the merged token is not in the vocabulary");
    impl->merges.insert(left, right, merged);
    impl->merge_pairs.emplace_back(left, right);
  }
  impl->byte_pair_ranks.resize(256 * 256);
  for (int x = 0; x < 256; ++x)
    for (int y = 0; y < 256; ++y) impl->byte_pair_ranks[x * 256 + y] = impl->merges.rank(impl->byte_ids[x], impl->byte_ids[y]);
  impl->tokens = std::move(tokens);
  return impl;
}

// merges.txt / vocab.bpe: an optional "#version" line, then "LEFT RIGHT" per line in rank
// order, tokens spelled with GPT-2's byte characters.
std::vector<Merge> parse_merges_text(std::string_view text, const std::string& source) {
  std::vector<Merge> merges;
  std::size_t line_no = 0;
  std::string left, right;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (line_no == 1 && line.rfind("#version", 0) == 0) continue;
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos)
      throw Error(source + " line " + std::to_string(line_no) + ": expected two tokens separated by one space, got '" +
                  to_valid_utf8(line) + "'");
    if (!unicode_token_to_bytes(line.substr(0, space), left) ||
        !unicode_token_to_bytes(line.substr(space + 1), right))
      throw Error(source + " line " + std::to_string(line_no) + ": '" + to_valid_utf8(line) +
                  "' uses characters outside GPT-2's byte alphabet");
    merges.push_back(Merge{left, right, line_no});
  }
  return merges;
}

// A JSON object token -> id (vocab.json, encoder.json, tokenizer.json's model.vocab) into the
// dense id -> bytes table. `extra` holds tokens given as raw text (tokenizer.json's
// added_tokens) for ids the object lacks.
std::vector<std::string> vocab_from_json(const nlohmann::json& vocab,
                                         const std::vector<std::pair<int64_t, std::string>>& extra,
                                         const std::string& source) {
  if (!vocab.is_object()) throw Error(source + ": the vocabulary is not a JSON object of token -> id");
  constexpr int64_t kMaxVocab = 1 << 24;
  std::vector<std::string> tokens;
  std::vector<bool> present;
  auto put = [&](int64_t id, std::string bytes, const std::string& name) {
    if (id < 0 || id >= kMaxVocab) throw Error(source + ": token '" + name + "' has id " + std::to_string(id) + " out of range");
    if (static_cast<std::size_t>(id) >= tokens.size()) {
      tokens.resize(static_cast<std::size_t>(id) + 1);
      present.resize(static_cast<std::size_t>(id) + 1, false);
    }
    if (present[static_cast<std::size_t>(id)]) return false;
    tokens[static_cast<std::size_t>(id)] = std::move(bytes);
    present[static_cast<std::size_t>(id)] = true;
    return true;
  };
  std::string bytes;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer())
      throw Error(source + ": the id of token '" + it.key() + "' is not an integer");
    if (!unicode_token_to_bytes(it.key(), bytes))
      throw Error(source + ": token '" + it.key() + "' uses characters outside GPT-2's byte alphabet");
    if (!put(it.value().get<int64_t>(), bytes, it.key()))
      throw Error(source + ": id " + std::to_string(it.value().get<int64_t>()) + " is used twice");
  }
  for (const auto& [id, text] : extra) put(id, text, text);  // already present: the vocab's own
  for (std::size_t id = 0; id < tokens.size(); ++id)
    if (!present[id]) throw Error(source + ": ids are not contiguous (no token has id " + std::to_string(id) + ")");
  return tokens;
}

nlohmann::json parse_json_text(std::string_view text, const std::string& path) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error("'" + path + "' is not valid JSON: " + e.what());
  }
}

std::shared_ptr<const Tokenizer::Impl> load_vocab_and_merges(std::string_view vocab_text, const std::string& vocab_path,
                                                              std::string_view merges_text,
                                                              const std::string& merges_path) {
  const nlohmann::json vocab = parse_json_text(vocab_text, vocab_path);
  std::vector<std::string> tokens = vocab_from_json(vocab, {}, "'" + vocab_path + "'");
  const std::vector<Merge> merges = parse_merges_text(merges_text, "'" + merges_path + "'");
  return build(std::move(tokens), merges, "'" + vocab_path + "' + '" + merges_path + "'");
}

// Hugging Face tokenizer.json: model.vocab, model.merges ("a b" strings, or [a, b] pairs in
// newer files), added_tokens [{id, content}].
std::shared_ptr<const Tokenizer::Impl> load_tokenizer_json(std::string_view text, const std::string& path) {
  const std::string source = "'" + path + "'";
  const nlohmann::json root = parse_json_text(text, path);
  try {
    if (!root.is_object() || !root.contains("model") || !root["model"].is_object())
      throw Error(source + ": no \"model\" object");
    const nlohmann::json& model = root["model"];
    if (model.contains("type") && model["type"] != "BPE")
      throw Error(source + ": model type is " + model["type"].dump() + ", not BPE");
    if (!model.contains("vocab") || !model.contains("merges") || !model["merges"].is_array())
      throw Error(source + ": model needs \"vocab\" and \"merges\"");

    std::vector<std::pair<int64_t, std::string>> added;
    if (root.contains("added_tokens") && root["added_tokens"].is_array()) {
      const nlohmann::json& list = root["added_tokens"];
      for (std::size_t i = 0; i < list.size(); ++i) {
        // An id checked as an integer first: nlohmann converts a float such as 2E65 to int64
        // with undefined behaviour.
        const nlohmann::json& t = list[i];
        if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
            !t["content"].is_string())
          throw Error(source + ": added_tokens[" + std::to_string(i) + "] is not {\"id\": integer, \"content\": string}");
        added.emplace_back(t["id"].get<int64_t>(), t["content"].get<std::string>());
      }
    }
    std::vector<std::string> tokens = vocab_from_json(model["vocab"], added, source);

    std::vector<Merge> merges;
    const nlohmann::json& list = model["merges"];
    merges.reserve(list.size());
    std::string left, right;
    for (std::size_t i = 0; i < list.size(); ++i) {
      std::string a, b;
      if (list[i].is_string()) {
        const std::string s = list[i].get<std::string>();
        const std::size_t space = s.find(' ');
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
          throw Error(source + ": merge " + std::to_string(i) + " '" + s + "' is not two tokens separated by one space");
        a = s.substr(0, space);
        b = s.substr(space + 1);
      } else if (list[i].is_array() && list[i].size() == 2 && list[i][0].is_string() && list[i][1].is_string()) {
        a = list[i][0].get<std::string>();
        b = list[i][1].get<std::string>();
      } else {
        throw Error(source + ": merge " + std::to_string(i) + " is neither \"a b\" nor [\"a\", \"b\"]");
      }
      if (!unicode_token_to_bytes(a, left) || !unicode_token_to_bytes(b, right))
        throw Error(source + ": merge " + std::to_string(i) + " uses characters outside GPT-2's byte alphabet");
      merges.push_back(Merge{left, right, i + 1});
    }
    return build(std::move(tokens), merges, source + " merges");
  } catch (const nlohmann::json::exception& e) {
    throw Error(source + ": unexpected structure: " + e.what());
  }
}

// The built-in vocabulary: GPT-2's ids follow from vocab.bpe alone (see data/README.md).
std::shared_ptr<const Tokenizer::Impl> load_builtin() {
  const std::string source = "built-in vocab.bpe";
  const std::string_view text(gpt2_builtin_vocab_bpe,
                              static_cast<std::size_t>(gpt2_builtin_vocab_bpe_end - gpt2_builtin_vocab_bpe));
  const std::vector<Merge> merges = parse_merges_text(text, source);
  std::vector<std::string> tokens;
  tokens.reserve(256 + merges.size() + 1);
  for (uint8_t b : byte_unicode().order) tokens.emplace_back(1, static_cast<char>(b));
  for (const Merge& m : merges) tokens.push_back(m.left + m.right);
  tokens.emplace_back(kEndOfText);
  return build(std::move(tokens), merges, source);
}

// Lists of tokens and "LEFT RIGHT" merges in GPT-2's byte alphabet (GGUF's tokenizer.ggml.*).
std::shared_ptr<const Tokenizer::Impl> load_lists(const std::vector<std::string>& token_list,
                                                  const std::vector<std::string>& merge_list, const std::string& source) {
  constexpr std::size_t kMaxVocab = std::size_t{1} << 24;
  if (token_list.size() > kMaxVocab) throw Error(source + ": " + std::to_string(token_list.size()) + " tokens is too many");
  std::vector<std::string> tokens(token_list.size());
  for (std::size_t i = 0; i < token_list.size(); ++i)
    if (!unicode_token_to_bytes(token_list[i], tokens[i]))
      throw Error(source + ": token " + std::to_string(i) + " '" + to_valid_utf8(token_list[i]) +
                  "' uses characters outside GPT-2's byte alphabet");
  std::vector<Merge> merges;
  merges.reserve(merge_list.size());
  std::string left, right;
  for (std::size_t i = 0; i < merge_list.size(); ++i) {
    const std::string& m = merge_list[i];
    const std::size_t space = m.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == m.size() || m.find(' ', space + 1) != std::string::npos)
      throw Error(source + ": merge " + std::to_string(i) + " '" + to_valid_utf8(m) +
                  "' is not two tokens separated by one space");
    if (!unicode_token_to_bytes(std::string_view(m).substr(0, space), left) ||
        !unicode_token_to_bytes(std::string_view(m).substr(space + 1), right))
      throw Error(source + ": merge " + std::to_string(i) + " uses characters outside GPT-2's byte alphabet");
    merges.push_back(Merge{left, right, i + 1});
  }
  return build(std::move(tokens), merges, source);
}

}  // namespace

// ---- BPE -------------------------------------------------------------------------------

void Tokenizer::Impl::bpe(const unsigned char* p, std::size_t n, std::vector<int32_t>& out) const {
  if (n == 1) {
    out.push_back(byte_ids[*p]);
  } else if (n <= kSmallPiece) {
    bpe_small(p, n, out);
  } else {
    bpe_long(p, n, out);
  }
}

// ids[i] and the rank of (ids[i], ids[i+1]) in flat arrays; each step finds the lowest rank,
// merges, and refreshes only the two neighbouring pair ranks.
void Tokenizer::Impl::bpe_small(const unsigned char* p, std::size_t n, std::vector<int32_t>& out) const {
  int32_t ids[kSmallPiece];
  int32_t ranks[kSmallPiece];  // ranks[i]: pair (i, i+1); ranks[n-1] unused
  for (std::size_t i = 0; i < n; ++i) ids[i] = byte_ids[p[i]];
  auto pair_rank = [&](std::size_t i) { return merges.rank(ids[i], ids[i + 1]); };
  for (std::size_t i = 0; i + 1 < n; ++i) ranks[i] = byte_pair_ranks[p[i] * 256u + p[i + 1]];
  while (n > 1) {
    std::size_t best = 0;
    for (std::size_t i = 1; i + 1 < n; ++i)
      if (ranks[i] < ranks[best]) best = i;  // strict: leftmost wins ties
    if (ranks[best] == kNoRank) break;
    ids[best] = merges.merged(ranks[best]);
    // Remove element best+1.
    for (std::size_t i = best + 1; i + 1 < n; ++i) {
      ids[i] = ids[i + 1];
      ranks[i] = ranks[i + 1];
    }
    --n;
    if (best + 1 < n) ranks[best] = pair_rank(best);
    if (best > 0) ranks[best - 1] = pair_rank(best - 1);
  }
  out.insert(out.end(), ids, ids + n);
}

// Symbols in a doubly linked list over byte positions; a min-heap of (rank, position)
// holds candidate pairs. Entries go stale when a neighbour merges; a popped entry is used
// only if its pair is still adjacent and still has that rank (a rank names one pair).
void Tokenizer::Impl::bpe_long(const unsigned char* p, std::size_t n, std::vector<int32_t>& out) const {
  std::vector<int32_t> ids(n);
  std::vector<int32_t> prev(n), next(n);
  for (std::size_t i = 0; i < n; ++i) {
    ids[i] = byte_ids[p[i]];
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  using Candidate = std::pair<int32_t, int32_t>;  // (rank, left position): lowest, then leftmost
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push = [&](int32_t left) {
    if (left < 0 || next[left] < 0) return;
    const int32_t rank = merges.rank(ids[left], ids[next[left]]);
    if (rank != kNoRank) heap.emplace(rank, left);
  };
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const int32_t rank = byte_pair_ranks[p[i] * 256u + p[i + 1]];
    if (rank != kNoRank) heap.emplace(rank, static_cast<int32_t>(i));
  }
  while (!heap.empty()) {
    const auto [rank, left] = heap.top();
    heap.pop();
    if (ids[left] < 0) continue;  // merged into its left neighbour
    const int32_t right = next[left];
    if (right < 0) continue;
    if (merges.rank(ids[left], ids[right]) != rank) continue;  // stale
    ids[left] = merges.merged(rank);
    ids[right] = -1;
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    push(prev[left]);
    push(left);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) out.push_back(ids[i]);
}

void Tokenizer::Impl::encode_ordinary(std::string_view text, std::vector<int32_t>& out, PieceCache& cache) const {
  pretokenize::for_each_piece(text, [&](const unsigned char* p, std::size_t n) {
    if (n == 1) {
      out.push_back(byte_ids[*p]);
      return;
    }
    if (n > PieceCache::kMaxPieceBytes) {
      bpe(p, n, out);
      return;
    }
    const uint64_t h = hash_bytes(p, n);
    uint32_t count = 0;
    if (const int32_t* ids = cache.find(p, n, h, count)) {
      out.insert(out.end(), ids, ids + count);
      return;
    }
    const std::size_t before = out.size();
    bpe(p, n, out);
    cache.insert(p, n, h, out.data() + before, out.size() - before);
  });
}

// ---- public API ----------------------------------------------------------------------------

Tokenizer Tokenizer::builtin() {
  static const std::shared_ptr<const Impl> impl = load_builtin();  // parsed once per process
  return Tokenizer(impl);
}

Tokenizer Tokenizer::from_dir(const std::string& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0)
    throw Error("model directory '" + dir + "' not found (-m takes a model directory or random:gpt2 ...)");
  if (!S_ISDIR(st.st_mode))
    throw Error("'" + dir + "' is not a directory (-m takes a model directory or random:gpt2 ...)");
  const std::string base = dir.back() == '/' ? dir : dir + "/";
  // Present = any directory entry (lstat), so that a broken link or a directory in the
  // place of a file is reported by read_file() instead of silently skipped.
  auto has = [&](const char* name) {
    struct stat entry {};
    return lstat((base + name).c_str(), &entry) == 0;
  };
  if (has("vocab.json") || has("merges.txt")) {
    if (!has("vocab.json")) throw Error("'" + base + "merges.txt' has no vocab.json beside it");
    if (!has("merges.txt")) throw Error("'" + base + "vocab.json' has no merges.txt beside it");
    return from_vocab_and_merges(read_file(base + "vocab.json"), base + "vocab.json", read_file(base + "merges.txt"),
                                 base + "merges.txt");
  }
  if (has("encoder.json") || has("vocab.bpe")) {
    if (!has("encoder.json")) throw Error("'" + base + "vocab.bpe' has no encoder.json beside it");
    if (!has("vocab.bpe")) throw Error("'" + base + "encoder.json' has no vocab.bpe beside it");
    return from_vocab_and_merges(read_file(base + "encoder.json"), base + "encoder.json", read_file(base + "vocab.bpe"),
                                 base + "vocab.bpe");
  }
  if (has("tokenizer.json")) return from_tokenizer_json(read_file(base + "tokenizer.json"), base + "tokenizer.json");
  return builtin();
}

Tokenizer Tokenizer::from_vocab_and_merges(std::string_view vocab_json, const std::string& vocab_name,
                                           std::string_view merges_text, const std::string& merges_name) {
  return Tokenizer(load_vocab_and_merges(vocab_json, vocab_name, merges_text, merges_name));
}

Tokenizer Tokenizer::from_tokenizer_json(std::string_view text, const std::string& name) {
  return Tokenizer(load_tokenizer_json(text, name));
}

Tokenizer Tokenizer::from_lists(const std::vector<std::string>& tokens, const std::vector<std::string>& merges,
                                const std::string& source) {
  return Tokenizer(load_lists(tokens, merges, source));
}

bool Tokenizer::same_as(const Tokenizer& other) const {
  return impl_ == other.impl_ || (impl_->tokens == other.impl_->tokens && impl_->merge_pairs == other.impl_->merge_pairs &&
                                  impl_->eot_id == other.impl_->eot_id);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, Special special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 4 + 16);
  PieceCache cache;
  if (special == Special::allow) {
    std::size_t pos = 0;
    for (std::size_t hit; (hit = text.find(kEndOfText, pos)) != std::string_view::npos; pos = hit + kEndOfText.size()) {
      impl_->encode_ordinary(text.substr(pos, hit - pos), out, cache);
      out.push_back(impl_->eot_id);
    }
    impl_->encode_ordinary(text.substr(pos), out, cache);
  } else {
    impl_->encode_ordinary(text, out, cache);
  }
  return out;
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= impl_->tokens.size())
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                std::to_string(impl_->tokens.size() - 1) + ")");
  return impl_->tokens[static_cast<std::size_t>(id)];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::size_t size = 0;
  for (int32_t id : ids) size += token_bytes(id).size();  // also checks every id first
  std::string out;
  out.reserve(size);
  for (int32_t id : ids) out += impl_->tokens[static_cast<std::size_t>(id)];
  return out;
}

int Tokenizer::n_vocab() const { return static_cast<int>(impl_->tokens.size()); }
int32_t Tokenizer::eot() const { return impl_->eot_id; }

// ---- UTF-8 output ----------------------------------------------------------------------------

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
}

std::string to_valid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* end = p + bytes.size();
  while (p < end) {
    const unicode::Utf8Char c = unicode::decode_utf8(p, end);
    if (c.status == unicode::Utf8Status::valid) out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(c.length));
    else out += kReplacement;
    p += c.length;
  }
  return out;
}

std::string StreamDecoder::push(int32_t id) {
  pending_ += tokenizer_->token_bytes(id);
  std::string out;
  const auto* begin = reinterpret_cast<const unsigned char*>(pending_.data());
  const auto* p = begin;
  const auto* end = begin + pending_.size();
  while (p < end) {
    const unicode::Utf8Char c = unicode::decode_utf8(p, end);
    if (c.status == unicode::Utf8Status::truncated) break;  // may complete with the next token
    if (c.status == unicode::Utf8Status::valid) out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(c.length));
    else out += kReplacement;
    p += c.length;
  }
  pending_.erase(0, static_cast<std::size_t>(p - begin));
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = to_valid_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace gpt2
