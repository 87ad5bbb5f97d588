// Parity with tiktoken's "gpt2" encoding: every id of every case in
// tests/data/tokenizer/parity.json (made by tools/tiktoken/make_fixtures.js) must match.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "tokenizer/tokenizer.h"

using namespace gpt2;

namespace {

std::string show_ids(const std::vector<int32_t>& ids, std::size_t from) {
  std::string out;
  for (std::size_t i = from; i < ids.size() && i < from + 12; ++i) out += std::to_string(ids[i]) + " ";
  return out;
}

// Empty when equal; otherwise where they first differ, for the failure message.
std::string first_difference(const std::vector<int32_t>& got, const std::vector<int32_t>& want) {
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  if (i == got.size() && i == want.size()) return "";
  const std::size_t from = i >= 3 ? i - 3 : 0;
  return "first difference at id " + std::to_string(i) + " (of " + std::to_string(want.size()) + "): got [" +
         show_ids(got, from) + "...], tiktoken [" + show_ids(want, from) + "...]";
}

}  // namespace

TEST_CASE("encode matches tiktoken's gpt2 encoding on the whole parity corpus", "[tokenizer][parity]") {
  const auto doc = nlohmann::json::parse(read_file(GPT2_TEST_DATA "/tokenizer/parity.json"));
  const Tokenizer tok = Tokenizer::builtin();
  const auto& cases = doc.at("cases");
  REQUIRE(cases.size() >= 100);

  std::size_t n_ids = 0, n_ordinary = 0, mismatches = 0;
  for (const auto& c : cases) {
    const std::string name = c.at("name").get<std::string>();
    const std::string text = c.at("text").get<std::string>();
    const auto want = c.at("ids").get<std::vector<int32_t>>();
    const std::vector<int32_t> got = tok.encode(text, Special::allow);
    const std::string diff = first_difference(got, want);
    if (!diff.empty()) {
      ++mismatches;
      FAIL_CHECK(name << ": " << diff);
    }
    n_ids += want.size();
    CHECK(tok.decode(got) == text);

    if (c.contains("ids_ordinary")) {
      const auto want_plain = c.at("ids_ordinary").get<std::vector<int32_t>>();
      const std::string diff_plain = first_difference(tok.encode(text, Special::plain), want_plain);
      if (!diff_plain.empty()) {
        ++mismatches;
        FAIL_CHECK(name << " (ordinary): " << diff_plain);
      }
      ++n_ordinary;
    }
  }
  INFO("cases " << cases.size() << ", ids " << n_ids);
  CHECK(mismatches == 0);
  CHECK(n_ids > 30000);
  CHECK(n_ordinary >= 3);
}

TEST_CASE("every case also matches when encoded piece by piece at the special token", "[tokenizer][parity]") {
  // Concatenating all cases into one text (with "<|endoftext|>" between them) must give the
  // cases' ids joined by 50256: the per-call piece cache must not leak between pieces.
  const auto doc = nlohmann::json::parse(read_file(GPT2_TEST_DATA "/tokenizer/parity.json"));
  const Tokenizer tok = Tokenizer::builtin();
  std::string all;
  std::vector<int32_t> want;
  for (const auto& c : doc.at("cases")) {
    all += c.at("text").get<std::string>() + "<|endoftext|>";
    const auto ids = c.at("ids").get<std::vector<int32_t>>();
    want.insert(want.end(), ids.begin(), ids.end());
    want.push_back(50256);
  }
  const std::vector<int32_t> got = tok.encode(all);
  CHECK(first_difference(got, want).empty());
}
