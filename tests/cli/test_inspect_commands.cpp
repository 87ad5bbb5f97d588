// `gpt2 attention`, `gpt2 lens`, `gpt2 drift` and `gpt2 score --color` end to end: the JSON against
// the float64 reference (tests/data/models/tiny-gpt2/inside.json, heads-2l/inside.json), the
// terminal views, and one-line errors with the right exit codes.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli_run.h"

namespace {

using nlohmann::json;
using gpt2::test::read_bytes;
using gpt2::test::Run;
using gpt2::test::run_gpt2;
using gpt2::test::TempDir;

const std::string kTiny = std::string(GPT2_TEST_DATA) + "/models/tiny-gpt2";
const std::string kHeads = std::string(GPT2_TEST_DATA) + "/models/heads-2l";

json inside(const std::string& dir) { return json::parse(read_bytes(dir + "/inside.json")); }

std::vector<std::string> with_model(const std::string& dir, std::vector<std::string> args) {
  args.insert(args.begin() + 1, {"-m", dir, "--device", "cpu", "--threads", "2"});
  return args;
}

json run_json(const std::vector<std::string>& args) {
  const Run run = run_gpt2(args);
  INFO("stderr: " << run.err);
  REQUIRE(run.exit_code == 0);
  return json::parse(run.out);
}

// One line on stderr starting "error:", and the exit code.
void require_error(const Run& run, int code, const std::string& fragment) {
  INFO("stdout: " << run.out << "\nstderr: " << run.err);
  CHECK(run.exit_code == code);
  CHECK(run.err.rfind("error: ", 0) == 0);
  CHECK(std::count(run.err.begin(), run.err.end(), '\n') == 1);
  CHECK(run.err.find(fragment) != std::string::npos);
}

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
  return n;
}

}  // namespace

TEST_CASE("attention --json: every head's weights match the float64 reference", "[inspect-cli]") {
  const json ref = inside(kTiny);
  const json j = run_json(with_model(kTiny, {"attention", "-p", ref["prompt_text"], "--json"}));
  CHECK(j["model"] == kTiny);
  REQUIRE(j["tokens"].size() == ref["ids"].size());
  for (size_t t = 0; t < j["tokens"].size(); ++t) {
    CHECK(j["tokens"][t]["id"] == ref["ids"][t]);
    CHECK(j["tokens"][t].contains("text"));
  }
  const json& heads = j["heads"];
  REQUIRE(heads.size() == ref["attention"].size());
  double max_err = 0, max_row = 0;
  for (size_t i = 0; i < heads.size(); ++i) {
    CHECK(heads[i]["layer"] == ref["attention"][i]["layer"]);
    CHECK(heads[i]["head"] == ref["attention"][i]["head"]);
    const json& w = heads[i]["weights"];
    REQUIRE(w.size() == ref["ids"].size());
    for (size_t t = 0; t < w.size(); ++t) {
      REQUIRE(w[t].size() == t + 1);  // query t over keys 0..t
      double sum = 0;
      for (size_t k = 0; k <= t; ++k) {
        sum += w[t][k].get<double>();
        max_err = std::max(max_err, std::abs(w[t][k].get<double>() - ref["attention"][i]["weights"][t][k].get<double>()));
      }
      max_row = std::max(max_row, std::abs(sum - 1));
    }
  }
  INFO("max |w - ref| " << max_err << ", max |row sum - 1| " << max_row);
  CHECK(max_err <= 1e-5);
  CHECK(max_row <= 1e-5);
}

TEST_CASE("attention --layer/--head: one head as a heatmap with the mask blank", "[inspect-cli]") {
  const Run run = run_gpt2(with_model(kHeads, {"attention", "-p", "kbhnadlfgjockbhnadlfgjoc", "--layer", "0", "--head", "0"}));
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(run.out.find("layer 0 head 0") != std::string::npos);
  CHECK(run.out.find("\033[") == std::string::npos);  // not a terminal: no colour
  // Row t of the previous-token head: a full cell on key t-1, faint cells elsewhere up to t, and
  // nothing (blank) after t.
  const std::string full = "\xE2\x96\x88\xE2\x96\x88", faint = "\xC2\xB7 ";
  int rows = 0;
  std::istringstream lines(run.out);
  for (std::string line; std::getline(lines, line);) {
    // Rows look like "   5 \"a\"            cells...": an index, the token quoted, the cells.
    if (line.size() < 6 || line[4] != ' ' || line[5] != '"' || line.find_first_not_of(' ') > 3) continue;
    const int t = std::stoi(line.substr(0, 4));
    const std::string cells = line.substr(line.rfind('"') + 1);
    const int n_full = count(cells, full), n_faint = count(cells, faint);
    CHECK(n_full == 1);
    CHECK(n_full + n_faint == t + 1);
    ++rows;
  }
  CHECK(rows == 24);
}

TEST_CASE("attention: several heads give each query's strongest key", "[inspect-cli]") {
  const Run run = run_gpt2(with_model(kHeads, {"attention", "-p", "kbhnadlfgjockbhnadlfgjoc", "--layer", "1"}));
  REQUIRE(run.exit_code == 0);
  CHECK(run.out.find("layer 1") != std::string::npos);
  CHECK(run.out.find("h0") != std::string::npos);
  CHECK(run.out.find("h1") != std::string::npos);
  // Query 12 ("k" again): the induction head (h0) attends to key 1 (after the first "k"), the
  // duplicate-token head (h1) to key 0 (the first "k").
  const size_t row = run.out.find("\n  12 ");
  REQUIRE(row != std::string::npos);
  const std::string line = run.out.substr(row + 1, run.out.find('\n', row + 1) - row - 1);
  CHECK(line.find("    1 1.00    0 1.00") != std::string::npos);
}

TEST_CASE("attention --summary classifies the hand-built heads", "[inspect-cli]") {
  const Run run = run_gpt2(with_model(kHeads, {"attention", "-p", "kbhnadlfgjockbhnadlfgjoc", "--summary"}));
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  auto line_of = [&](const std::string& head) {
    const size_t at = run.out.find("\n" + std::string(5 - head.size(), ' ') + head + "   ");
    REQUIRE(at != std::string::npos);
    return run.out.substr(at + 1, run.out.find('\n', at + 1) - at - 1);
  };
  CHECK(line_of("0.0").find("previous-token") != std::string::npos);
  CHECK(line_of("0.1").find("first-token") != std::string::npos);
  CHECK(line_of("1.0").find("induction") != std::string::npos);
  CHECK(line_of("1.1").find("duplicate-token") != std::string::npos);
  // Best first.
  CHECK(run.out.find("\n  0.1") < run.out.find("\n  0.0"));
  CHECK(run.out.find("\n  0.0") < run.out.find("\n  1.0"));

  const json j = run_json(with_model(kHeads, {"attention", "-p", "kbhnadlfgjockbhnadlfgjoc", "--summary", "--json"}));
  REQUIRE(j["heads"].size() == 4);
  CHECK(j["heads"][0]["layer"] == 0);
  CHECK(j["heads"][0]["head"] == 1);
  CHECK(j["heads"][0]["kind"] == "first-token");
  for (const json& h : j["heads"]) {
    CHECK_FALSE(h.contains("weights"));
    CHECK(h["score"].get<double>() >= 0.45);
  }
}

TEST_CASE("lens --json matches the reference, and its last layer is score's log-probs", "[inspect-cli]") {
  const json ref = inside(kTiny);
  const json j = run_json(with_model(kTiny, {"lens", "-p", ref["prompt_text"], "--json", "--top", "3"}));
  CHECK(j["model"] == kTiny);
  const size_t T = ref["ids"].size();
  REQUIRE(j["layers"].size() == ref["lens"].size());
  double max_err = 0;
  for (size_t l = 0; l < j["layers"].size(); ++l) {
    CHECK(j["layers"][l]["layer"] == l);
    const json& pos = j["layers"][l]["positions"];
    REQUIRE(pos.size() == T);
    for (size_t t = 0; t < T; ++t) {
      const json& want = ref["lens"][l]["positions"][t];
      REQUIRE(pos[t]["top"].size() == 3);
      for (size_t k = 0; k < 3; ++k) {
        CHECK(pos[t]["top"][k].contains("text"));
        max_err = std::max(max_err, std::abs(pos[t]["top"][k]["logprob"].get<double>() - want["top"][k]["logprob"].get<double>()));
      }
      if (t + 1 == T) {
        CHECK(pos[t]["target_logprob"].is_null());
        CHECK(pos[t]["target_rank"].is_null());
        continue;
      }
      max_err = std::max(max_err, std::abs(pos[t]["target_logprob"].get<double>() - want["target_logprob"].get<double>()));
      CHECK(pos[t]["target_rank"] == want["target_rank"]);
    }
  }
  INFO("max |logprob - ref| " << max_err);
  CHECK(max_err <= 2e-4);

  const json score = run_json(with_model(kTiny, {"score", "-p", ref["prompt_text"], "--json"}));
  const json& last = j["layers"].back()["positions"];
  for (size_t t = 1; t < T; ++t)
    CHECK(last[t - 1]["target_logprob"].get<double>() == Approx(score["tokens"][t]["logprob"].get<double>()).margin(1e-9));
}

TEST_CASE("drift --json: cosines of the word across texts match the reference", "[inspect-cli]") {
  const json ref = inside(kTiny);
  std::vector<std::string> args = {"drift", "--word", ref["drift_word"], "--json"};
  for (const json& t : ref["drift_texts"]) {
    args.push_back("-p");
    args.push_back(t);
  }
  const json j = run_json(with_model(kTiny, args));
  CHECK(j["word"] == "fox");
  REQUIRE(j["texts"].size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(j["texts"][i]["text"] == ref["drift_texts"][i]);
    CHECK(j["texts"][i]["position"] == ref["drift"]["texts"][i]["position"]);
    CHECK(j["texts"][i]["token"]["id"] == 21831);
  }
  double max_err = 0;
  REQUIRE(j["layers"].size() == ref["drift"]["layers"].size());
  for (size_t l = 0; l < j["layers"].size(); ++l)
    for (size_t a = 0; a < 3; ++a)
      for (size_t b = 0; b < 3; ++b)
        max_err = std::max(max_err, std::abs(j["layers"][l]["cosine"][a][b].get<double>() -
                                             ref["drift"]["layers"][l]["cosine"][a][b].get<double>()));
  for (size_t a = 0; a < 3; ++a)
    for (size_t b = 0; b < 3; ++b) CHECK(j["embedding"]["cosine"][a][b].get<double>() == Approx(1.0).margin(1e-12));
  INFO("max |cosine - ref| " << max_err);
  CHECK(max_err <= 1e-5);

  const Run table = run_gpt2(with_model(kTiny, {"drift", "--word", "fox", "-p", "The lazy fox", "-p", "The quick brown fox"}));
  REQUIRE(table.exit_code == 0);
  CHECK(table.out.find("embed") != std::string::npos);
  CHECK(table.out.find("0-1") != std::string::npos);
}

TEST_CASE("lens and attention terminal views", "[inspect-cli]") {
  const Run lens = run_gpt2(with_model(kTiny, {"lens", "-p", "The quick brown fox"}));
  REQUIRE(lens.exit_code == 0);
  CHECK(lens.out.find("L0") != std::string::npos);
  CHECK(lens.out.find("L2") != std::string::npos);
  CHECK(lens.out.find("\" quick\"") != std::string::npos);
  CHECK(lens.out.find("\033[") == std::string::npos);
  const Run colour = run_gpt2(with_model(kTiny, {"lens", "-p", "The quick brown fox", "--color=always"}));
  REQUIRE(colour.exit_code == 0);
  CHECK(colour.out.find("\033[") != std::string::npos);
}

TEST_CASE("score --color: ranks as GLTR colours them, plain text in a pipe unless forced", "[inspect-cli]") {
  const std::string text = "The quick brown fox jumps over the lazy dog.";
  const Run plain = run_gpt2(with_model(kTiny, {"score", "-p", text}));
  REQUIRE(plain.exit_code == 0);
  CHECK(plain.out.find("rank") == std::string::npos);  // the default view is unchanged
  const Run piped = run_gpt2(with_model(kTiny, {"score", "-p", text, "--color"}));
  REQUIRE(piped.exit_code == 0);
  CHECK(piped.out.find("\033[") == std::string::npos);
  CHECK(piped.out.find("    rank") != std::string::npos);
  const Run forced = run_gpt2(with_model(kTiny, {"score", "-p", text, "--color=always"}));
  REQUIRE(forced.exit_code == 0);
  CHECK(forced.out.find("\033[30;48;5;") != std::string::npos);
  CHECK(forced.out.find("top 10") != std::string::npos);
  CHECK(forced.out.find("top 1000") != std::string::npos);
  CHECK(forced.out.find("beyond") != std::string::npos);
  const Run never = run_gpt2(with_model(kTiny, {"score", "-p", text, "--color=never"}));
  REQUIRE(never.exit_code == 0);
  CHECK(never.out.find("\033[") == std::string::npos);
  // The rank column against the JSON's log-probs: rank 1 exactly where the token was the top choice.
  require_error(run_gpt2(with_model(kTiny, {"score", "-p", text, "--color=sometimes"})), 2, "--color");
}

TEST_CASE("--html writes a self-contained page for each command", "[inspect-cli]") {
  const TempDir dir;
  const std::string text = "The quick brown fox jumps over the lazy dog.";
  const std::vector<std::vector<std::string>> commands = {
      {"attention", "-p", text}, {"lens", "-p", text}, {"drift", "--word", "fox", "-p", text, "-p", "The lazy fox"}, {"score", "-p", text}};
  for (const auto& c : commands) {
    const std::string page = dir.path + "/" + c[0] + ".html";
    std::vector<std::string> args = c;
    args.push_back("--html");
    args.push_back(page);
    const Run run = run_gpt2(with_model(kTiny, args));
    INFO(c[0] << ": " << run.err);
    REQUIRE(run.exit_code == 0);
    CHECK(run.err.find("wrote " + page) != std::string::npos);
    std::string html = read_bytes(page);
    CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
    CHECK(html.find("data-kind=\"" + c[0] + "\"") != std::string::npos);
    CHECK(html.find("id=\"gpt2-data\"") != std::string::npos);
    CHECK(html.find("</html>") != std::string::npos);
    // Nothing from the network: no external scripts, styles or images (the one URL is SVG's XML
    // namespace, a name that is never fetched).
    for (size_t at; (at = html.find("http://www.w3.org/2000/svg")) != std::string::npos;) html.erase(at, 26);
    CHECK(html.find("http://") == std::string::npos);
    CHECK(html.find("https://") == std::string::npos);
    CHECK(html.find("src=") == std::string::npos);
  }
  require_error(run_gpt2(with_model(kTiny, {"lens", "-p", text, "--html", dir.path + "/no/such/dir/page.html"})), 1,
                "--html");
}

TEST_CASE("inspection commands: bad input is a one-line error", "[inspect-cli]") {
  const std::string text = "The quick brown fox";
  require_error(run_gpt2(with_model(kTiny, {"attention", "-p", text, "--layer", "2"})), 2, "--layer 2");
  require_error(run_gpt2(with_model(kTiny, {"attention", "-p", text, "--head", "5"})), 2, "--head 5");
  require_error(run_gpt2(with_model(kTiny, {"attention", "-p", text, "--layer", "-1"})), 2, "--layer -1");
  require_error(run_gpt2(with_model(kTiny, {"attention", "-p", ""})), 1, "empty");
  require_error(run_gpt2(with_model(kTiny, {"lens", "-p", ""})), 1, "empty");
  require_error(run_gpt2(with_model(kTiny, {"lens", "-p", text, "--top", "0"})), 2, "--top");
  // heads-2l has 31 positions: 40 letters are 40 tokens.
  require_error(run_gpt2(with_model(kHeads, {"attention", "-p", std::string(40, 'a')})), 1, "context");
  require_error(run_gpt2(with_model(kHeads, {"lens", "-p", std::string(40, 'a')})), 1, "context");
  require_error(run_gpt2(with_model(kTiny, {"drift", "--word", "cat", "-p", "The fox", "-p", "The lazy fox"})), 2,
                "not in text 0");
  require_error(run_gpt2(with_model(kTiny, {"drift", "--word", "fox", "-p", "The fox", "-p", "The foxes"})), 2,
                "not in text 1");
  require_error(run_gpt2(with_model(kTiny, {"drift", "--word", "fox", "-p", "The fox"})), 2, "two texts");
  require_error(run_gpt2(with_model(kTiny, {"drift", "--word", "fox", "-p", "The fox", "-p", ""})), 1, "empty");
  require_error(run_gpt2(with_model(kHeads, {"drift", "--word", "a", "-p", "a b", "-p", std::string(40, 'a') + " a"})), 1,
                "context");
  require_error(run_gpt2(with_model(kTiny, {"drift", "-p", "The fox", "-p", "A fox"})), 2, "--word");
}
