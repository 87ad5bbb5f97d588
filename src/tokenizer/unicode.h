// The Unicode pieces GPT-2's tokenizer needs: strict UTF-8 decoding (Unicode 3.9, Table 3-7)
// and the character classes of its pre-tokenization pattern (\p{L}, \p{N}, White_Space).
#pragma once

#include <cstddef>
#include <cstdint>

namespace gpt2::unicode {

struct CodepointRange {
  uint32_t first;
  uint32_t last;  // inclusive
};
// Generated tables (unicode_tables.cpp), sorted and non-overlapping.
extern const CodepointRange letter_ranges[];
extern const std::size_t letter_range_count;
extern const CodepointRange number_ranges[];
extern const std::size_t number_range_count;
extern const CodepointRange space_ranges[];
extern const std::size_t space_range_count;

// The classes of the pattern 's|'t|...| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+.
// Bytes that are not well-formed UTF-8 count as `other` (GPT-2's pattern only ever sees
// valid text; treating a stray byte like a symbol keeps it out of words and numbers).
enum class CharClass : uint8_t { other = 0, letter = 1, number = 2, space = 3 };

// Class of a code point (U+0000..U+10FFFF); a two-stage table built once on first use.
CharClass char_class(uint32_t cp);

enum class Utf8Status : uint8_t {
  valid,      // `length` bytes form the character `cp`
  invalid,    // `length` bytes (>= 1) are a maximal ill-formed subpart: one U+FFFD
  truncated,  // the `length` bytes up to `end` start a valid character that is not complete
};
struct Utf8Char {
  uint32_t cp;
  int length;
  Utf8Status status;
};
// Decodes the character at p (p < end). Ill-formed input is split into maximal subparts
// as the Unicode standard recommends (the same U+FFFD count as browsers and Python).
Utf8Char decode_utf8(const unsigned char* p, const unsigned char* end);

}  // namespace gpt2::unicode
