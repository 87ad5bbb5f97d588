// `gpt2 tokenize`, run as a user runs it (the built binary, through the shell).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cli/cli_run.h"
#include "tokenizer/tokenizer.h"

namespace {

using gpt2::test::Run;
using gpt2::test::run_gpt2;
using gpt2::test::TempFile;

std::vector<int32_t> parse_ids(const std::string& line) {
  std::vector<int32_t> ids;
  std::size_t pos = 0;
  while (pos < line.size()) {
    std::size_t end = line.find_first_of(" \n", pos);
    if (end == std::string::npos) end = line.size();
    if (end > pos) ids.push_back(std::stoi(line.substr(pos, end - pos)));
    pos = end + 1;
  }
  return ids;
}

bool is_valid_utf8(const std::string& s) { return gpt2::to_valid_utf8(s) == s; }

// Bytes no text editor would keep: BOM, NUL, CR, invalid UTF-8, a cut emoji.
const char kAwkward[] = "\xEF\xBB\xBFHi\r\n\0x \xFF\xFE caf\xC3\xA9 \xF0\x9F\x91";
const std::string kAwkwardBytes(kAwkward, sizeof kAwkward - 1);

}  // namespace

TEST_CASE("tokenize prints ids separated by spaces", "[cli][tokenize]") {
  const Run r = run_gpt2({"tokenize", "-p", "Hello world"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "15496 995\n");
  CHECK(r.err.empty());
}

TEST_CASE("tokenize --count prints the number of tokens only", "[cli][tokenize]") {
  CHECK(run_gpt2({"tokenize", "--count", "-p", "Hello world, again"}).out == "4\n");
  const Run json = run_gpt2({"tokenize", "--count", "--json", "-p", "Hello world"});
  CHECK(json.exit_code == 0);
  CHECK(nlohmann::json::parse(json.out) == nlohmann::json{{"n_tokens", 2}});
}

TEST_CASE("tokenize --json prints ids and token strings", "[cli][tokenize]") {
  const Run r = run_gpt2({"tokenize", "--json", "-p", "Hello world"});
  REQUIRE(r.exit_code == 0);
  const auto doc = nlohmann::json::parse(r.out);
  CHECK(doc.at("ids") == nlohmann::json::array({15496, 995}));
  CHECK(doc.at("tokens") == nlohmann::json::array({"Hello", " world"}));
}

TEST_CASE("tokenize -f takes the file's bytes exactly; --json stays valid UTF-8", "[cli][tokenize]") {
  TempFile input(kAwkwardBytes);
  const auto expected = gpt2::Tokenizer::builtin().encode(kAwkwardBytes);

  const Run plain = run_gpt2({"tokenize", "-f", input.path});
  REQUIRE(plain.exit_code == 0);
  CHECK(parse_ids(plain.out) == expected);

  const Run json = run_gpt2({"tokenize", "--json", "-f", input.path});
  REQUIRE(json.exit_code == 0);
  CHECK(is_valid_utf8(json.out));
  const auto doc = nlohmann::json::parse(json.out);  // throws on invalid UTF-8
  CHECK(doc.at("ids").get<std::vector<int32_t>>() == expected);
  CHECK(doc.at("tokens").size() == expected.size());
  // The cut emoji's bytes are shown as U+FFFD in the token strings, never raw.
  std::string joined;
  for (const auto& t : doc.at("tokens")) joined += t.get<std::string>();
  CHECK(joined.find("\xEF\xBF\xBD") != std::string::npos);
  CHECK(joined.find("caf\xC3\xA9") != std::string::npos);
}

TEST_CASE("tokenize reads stdin with -p - or with no input option", "[cli][tokenize]") {
  CHECK(run_gpt2({"tokenize", "-p", "-"}, "Hello world").out == "15496 995\n");
  CHECK(run_gpt2({"tokenize"}, "Hello world").out == "15496 995\n");
  CHECK(run_gpt2({"tokenize"}).out == "\n");  // empty stdin: no tokens
}

TEST_CASE("tokenize --decode writes the exact bytes back", "[cli][tokenize]") {
  const Run hello = run_gpt2({"tokenize", "--decode", "15496 995"});
  CHECK(hello.exit_code == 0);
  CHECK(hello.out == "Hello world");  // no newline added
  CHECK(run_gpt2({"tokenize", "--decode", "[15496, 11, 995]"}).out == "Hello, world");

  // Round trip of awkward bytes: ids from -f, back to the same bytes.
  TempFile input(kAwkwardBytes);
  const Run ids = run_gpt2({"tokenize", "-f", input.path});
  REQUIRE(ids.exit_code == 0);
  std::string id_list = ids.out;
  id_list.pop_back();  // newline
  const Run back = run_gpt2({"tokenize", "--decode", id_list});
  CHECK(back.exit_code == 0);
  CHECK(back.out == kAwkwardBytes);

  // --decode - reads the ids from stdin; --json adds the text, made valid UTF-8.
  CHECK(run_gpt2({"tokenize", "--decode", "-"}, ids.out).out == kAwkwardBytes);
  const Run json = run_gpt2({"tokenize", "--json", "--decode", id_list});
  REQUIRE(json.exit_code == 0);
  CHECK(is_valid_utf8(json.out));
  const auto doc = nlohmann::json::parse(json.out);
  CHECK(doc.at("text") == gpt2::to_valid_utf8(kAwkwardBytes));
}

TEST_CASE("tokenize: <|endoftext|> is special unless --no-special", "[cli][tokenize]") {
  CHECK(run_gpt2({"tokenize", "-p", "a<|endoftext|>b"}).out == "64 50256 65\n");
  CHECK(run_gpt2({"tokenize", "--no-special", "-p", "<|endoftext|>"}).out == "27 91 437 1659 5239 91 29\n");
}

TEST_CASE("tokenize errors: one line, 'error:', exit 2 for usage and 1 for files", "[cli][tokenize]") {
  auto check_error = [](const Run& r, int status, const std::string& words) {
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == status);
    CHECK(r.out.empty());
    CHECK(r.err.rfind("error:", 0) == 0);
    CHECK(r.err.find(words) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  };
  check_error(run_gpt2({"tokenize", "--decode", "15496 abc"}), 2, "'abc' is not a token id");
  check_error(run_gpt2({"tokenize", "--decode", "50257"}), 2, "outside the vocabulary");
  // Regression: ids of 10 digits or more were "not a token id"; they are ids outside the vocabulary.
  check_error(run_gpt2({"tokenize", "--decode", "99999999999999"}), 2,
              "token id 99999999999999 is outside the vocabulary");
  CHECK(run_gpt2({"tokenize", "--decode", "00000000000015496"}).out == "Hello");
  // Regression: -f on a directory was libstdc++'s "basic_filebuf::underflow error reading the
  // file", without the file's name; -f "" silently read stdin instead.
  check_error(run_gpt2({"tokenize", "-f", "/tmp"}), 1, "cannot read '/tmp': it is a directory");
  // Regression: a newline in a quoted path or value split the error over two lines.
  check_error(run_gpt2({"tokenize", "-f", "/nonexistent/a\nb"}), 1, "cannot read '/nonexistent/a\\nb'");
  check_error(run_gpt2({"generate", "-m", "no\nmodel", "-p", "x"}), 1, "'no\\nmodel'");
  check_error(run_gpt2({"bench", "-m", "random:gpt2", "--batch", "1\n2"}), 2, "'1\\n2'");
  // Regression: a read error on stdin (here: stdin redirected from a directory) was taken for an
  // empty text: tokenize printed an empty line, generate generated from <|endoftext|>.
  {
    const gpt2::test::TempFile err;
    const std::string cmd = gpt2::test::shell_quote(GPT2_BINARY) + " tokenize </tmp >/dev/null 2>" +
                            gpt2::test::shell_quote(err.path);
    const int status = std::system(cmd.c_str());
    Run r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.err = gpt2::test::read_bytes(err.path);
    check_error(r, 1, "cannot read stdin");
  }
  // Regression: an unknown random:NAME silently used the built-in vocabulary.
  check_error(run_gpt2({"tokenize", "-m", "random:gpt5", "-p", "x"}), 1, "unknown model 'random:gpt5'");
  check_error(run_gpt2({"tokenize", "-f", ""}, std::string("15496")), 2, "-f needs a file name");
  check_error(run_gpt2({"tokenize", "--decode", "1", "-p", "x"}), 2, "--decode");
  check_error(run_gpt2({"tokenize", "-p", "x", "-f", "/dev/null"}), 2, "exclude");
  check_error(run_gpt2({"tokenize", "--no-such-option", "-p", "x"}), 2, "no-such-option");
  check_error(run_gpt2({"tokenize", "-f", "/nonexistent/input.txt"}), 1, "/nonexistent/input.txt");
  check_error(run_gpt2({"tokenize", "-m", "/nonexistent/model", "-p", "x"}), 1, "'/nonexistent/model' not found");

  // A model directory whose merges.txt is malformed.
  char dir[] = "/tmp/gpt2_tokenize_model_XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string vocab = std::string(dir) + "/vocab.json", merges = std::string(dir) + "/merges.txt";
  std::ofstream(vocab) << "{\"a\": 0}";
  std::ofstream(merges) << "#version: 0.2\nnot-a-pair\n";
  const Run bad = run_gpt2({"tokenize", "-m", dir, "-p", "x"});
  std::remove(vocab.c_str());
  std::remove(merges.c_str());
  rmdir(dir);
  check_error(bad, 1, "line 2: expected two tokens");
}
