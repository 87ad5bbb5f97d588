// GPT-2's pre-tokenization: text -> pieces, each of which is then BPE-encoded on its own.
//
// GPT-2 (and tiktoken's "gpt2"/"r50k_base") split text with the regex
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// taking at each position the first alternative that matches (leftmost-first, like Python's
// `regex` and Rust's `fancy-regex`). This is that regex as a hand-written scanner, no regex
// engine: at each position
//   1. an apostrophe followed by s t m d (or re ve ll) -> a 2- (3-) byte contraction, case-
//      sensitive ("'S" is not one);
//   2. else an optional ' ' (only U+0020) and then a maximal run of one class: letters,
//      numbers, or "other" (neither space, letter nor number);
//   3. else a run of whitespace. `\s+(?!\S)` backtracks so that the run stops before its last
//      whitespace character when a non-space follows: with two or more whitespace
//      characters the piece is the run minus its last character (which then prefixes the
//      next word if it is ' ', or stands alone); a single one, or a run reaching the end of
//      the text, is taken whole (`\s+`).
// Classes come from unicode.h (all of Unicode). Ill-formed UTF-8 bytes are `other`, one byte
// at a time, so any byte string splits into pieces whose concatenation is the input.
#pragma once

#include <cstddef>
#include <string_view>

#include "tokenizer/unicode.h"

namespace gpt2::pretokenize {

using unicode::CharClass;

// Classes of the ASCII characters (a test checks them against the Unicode tables):
// letters A-Z a-z, numbers 0-9, White_Space \t \n \v \f \r and ' ' (not 0x1C..0x1F).
inline constexpr CharClass ascii_class(unsigned char c) {
  return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) ? CharClass::letter
         : (c >= '0' && c <= '9')                          ? CharClass::number
         : ((c >= 0x09 && c <= 0x0D) || c == ' ')          ? CharClass::space
                                                             : CharClass::other;
}

struct CharInfo {
  CharClass cls;
  int length;  // bytes
};

inline CharInfo char_at(const unsigned char* p, const unsigned char* end) {
  if (*p < 0x80) return {ascii_class(*p), 1};
  const unicode::Utf8Char c = unicode::decode_utf8(p, end);
  if (c.status != unicode::Utf8Status::valid) return {CharClass::other, 1};
  return {unicode::char_class(c.cp), c.length};
}

// Calls on_piece(const unsigned char* begin, std::size_t length) for each piece, in order.
template <typename OnPiece>
void for_each_piece(std::string_view text, OnPiece&& on_piece) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* const end = p + text.size();
  while (p < end) {
    const unsigned char* const start = p;

    if (*p == '\'' && end - p >= 2) {  // 's 't 're 've 'm 'll 'd
      const unsigned char c1 = p[1];
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        on_piece(start, std::size_t{2});
        p += 2;
        continue;
      }
      if (end - p >= 3) {
        const unsigned char c2 = p[2];
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
          on_piece(start, std::size_t{3});
          p += 3;
          continue;
        }
      }
    }

    // ' ?' then a run of letters, numbers or others.
    const unsigned char* q = p;
    CharInfo first = char_at(q, end);
    if (*q == ' ' && q + 1 < end) {
      const CharInfo next = char_at(q + 1, end);
      if (next.cls != CharClass::space) {
        q += 1;
        first = next;
      }
    }
    if (first.cls != CharClass::space) {
      q += first.length;
      while (q < end) {
        const CharInfo c = char_at(q, end);
        if (c.cls != first.cls) break;
        q += c.length;
      }
      on_piece(start, static_cast<std::size_t>(q - start));
      p = q;
      continue;
    }

    // \s+(?!\S) | \s+
    const unsigned char* last = p;
    int count = 0;
    while (q < end) {
      const CharInfo c = char_at(q, end);
      if (c.cls != CharClass::space) break;
      last = q;
      q += c.length;
      ++count;
    }
    if (q < end && count >= 2) q = last;  // leave the last one to the next piece
    on_piece(start, static_cast<std::size_t>(q - start));
    p = q;
  }
}

}  // namespace gpt2::pretokenize
