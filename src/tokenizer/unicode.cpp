// Character classes for the pre-tokenizer and strict UTF-8 decoding.
//
// char_class: a two-stage lookup. The 0x110000 code points are cut into 4352 blocks of 256;
// stage 1 maps a block to one of the distinct block patterns (a few hundred: most blocks are
// all-`other` or all-letter), stage 2 holds those patterns, one byte per code point. Built
// once from the generated range tables (about 300 KB, a few milliseconds), then O(1).
#include "tokenizer/unicode.h"

#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace gpt2::unicode {
namespace {

constexpr uint32_t kCodepoints = 0x110000;
constexpr uint32_t kBlock = 256;

struct ClassTable {
  std::vector<uint16_t> stage1;  // block -> pattern index
  std::vector<uint8_t> stage2;   // pattern index * 256 + offset -> CharClass

  ClassTable() {
    std::vector<uint8_t> flat(kCodepoints, static_cast<uint8_t>(CharClass::other));
    auto fill = [&](const CodepointRange* ranges, std::size_t count, CharClass cls) {
      for (std::size_t i = 0; i < count; ++i)
        for (uint32_t cp = ranges[i].first; cp <= ranges[i].last && cp < kCodepoints; ++cp)
          flat[cp] = static_cast<uint8_t>(cls);
    };
    fill(letter_ranges, letter_range_count, CharClass::letter);
    fill(number_ranges, number_range_count, CharClass::number);
    fill(space_ranges, space_range_count, CharClass::space);

    std::map<std::string, uint16_t> patterns;
    stage1.resize(kCodepoints / kBlock);
    for (uint32_t block = 0; block < kCodepoints / kBlock; ++block) {
      std::string key(reinterpret_cast<const char*>(&flat[block * kBlock]), kBlock);
      auto it = patterns.find(key);
      if (it == patterns.end()) {
        it = patterns.emplace(key, static_cast<uint16_t>(patterns.size())).first;
        stage2.insert(stage2.end(), key.begin(), key.end());
      }
      stage1[block] = it->second;
    }
  }
};

const ClassTable& class_table() {
  static const ClassTable table;  // thread-safe one-time initialization
  return table;
}

}  // namespace

CharClass char_class(uint32_t cp) {
  if (cp >= kCodepoints) return CharClass::other;
  const ClassTable& t = class_table();
  return static_cast<CharClass>(t.stage2[t.stage1[cp / kBlock] * kBlock + cp % kBlock]);
}

Utf8Char decode_utf8(const unsigned char* p, const unsigned char* end) {
  const unsigned b0 = p[0];
  if (b0 < 0x80) return {b0, 1, Utf8Status::valid};
  int need;           // continuation bytes after the lead byte
  unsigned lo = 0x80, hi = 0xBF;  // allowed range of the first continuation byte
  uint32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) { need = 1; cp = b0 & 0x1F; }
  else if (b0 == 0xE0) { need = 2; lo = 0xA0; cp = 0; }           // no overlongs
  else if (b0 >= 0xE1 && b0 <= 0xEC) { need = 2; cp = b0 & 0x0F; }
  else if (b0 == 0xED) { need = 2; hi = 0x9F; cp = 0xD; }         // no surrogates
  else if (b0 >= 0xEE && b0 <= 0xEF) { need = 2; cp = b0 & 0x0F; }
  else if (b0 == 0xF0) { need = 3; lo = 0x90; cp = 0; }           // no overlongs
  else if (b0 >= 0xF1 && b0 <= 0xF3) { need = 3; cp = b0 & 0x07; }
  else if (b0 == 0xF4) { need = 3; hi = 0x8F; cp = 4; }           // nothing past U+10FFFF
  else return {0xFFFD, 1, Utf8Status::invalid};                  // 80..C1, F5..FF

  for (int k = 1; k <= need; ++k) {
    if (p + k >= end) return {0xFFFD, k, Utf8Status::truncated};
    const unsigned b = p[k];
    if (b < lo || b > hi) return {0xFFFD, k, Utf8Status::invalid};
    cp = (cp << 6) | (b & 0x3F);
    lo = 0x80;
    hi = 0xBF;
  }
  return {cp, need + 1, Utf8Status::valid};
}

}  // namespace gpt2::unicode
