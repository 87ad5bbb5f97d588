// `gpt2 score`: the sliding-window plan and log-softmax directly, then the command end to end
// on the tiny synthetic model (tests/data/models/tiny-gpt2), whose expected.json holds per-token
// log-probabilities computed by an independent PyTorch implementation.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli_run.h"
#include "cli/score_windows.h"

namespace {

using nlohmann::json;
using gpt2::cli::ScoreWindow;
using gpt2::test::read_bytes;
using gpt2::test::Run;
using gpt2::test::run_gpt2;
using gpt2::test::TempDir;
using gpt2::test::TempFile;

const std::string tiny_dir = std::string(GPT2_TEST_DATA) + "/models/tiny-gpt2";

json tiny_config() { return json::parse(read_bytes(tiny_dir + "/config.json")); }

json score_json(const std::string& text, std::vector<std::string> extra = {}) {
  TempFile file(text);
  std::vector<std::string> args = {"score", "-m", tiny_dir, "--device", "cpu", "--threads", "1", "--json",
                                   "-f", file.path};
  args.insert(args.end(), extra.begin(), extra.end());
  const Run run = run_gpt2(args);
  INFO("stderr: " << run.err);
  REQUIRE(run.exit_code == 0);
  return json::parse(run.out);
}

// Each word " wN" is its own pre-token, so the text of a list of words tokenizes as the
// concatenation of the words' tokens: chunks of it can be scored on their own.
std::string words(int from, int to) {
  std::string s;
  for (int i = from; i < to; ++i) s += " w" + std::to_string(i % 7) + (i % 3 == 0 ? " the" : " cat");
  return s;
}

}  // namespace

// ---------------------------------------------------------------- pure arithmetic

TEST_CASE("score windows: Hugging Face strided plan", "[score]") {
  const std::vector<ScoreWindow> plan = gpt2::cli::plan_score_windows(10, 4, 2);
  REQUIRE(plan.size() == 4);
  const int expect[4][3] = {{0, 4, 1}, {2, 6, 4}, {4, 8, 6}, {6, 10, 8}};
  for (int w = 0; w < 4; ++w) {
    CHECK(plan[w].begin == expect[w][0]);
    CHECK(plan[w].end == expect[w][1]);
    CHECK(plan[w].first_scored == expect[w][2]);
  }
}

TEST_CASE("score windows: a text shorter than the window is one pass", "[score]") {
  const std::vector<ScoreWindow> plan = gpt2::cli::plan_score_windows(5, 8, 4);
  REQUIRE(plan.size() == 1);
  CHECK(plan[0].begin == 0);
  CHECK(plan[0].end == 5);
  CHECK(plan[0].first_scored == 1);
}

TEST_CASE("score windows: stride == window leaves the first token of each chunk unscored", "[score]") {
  const std::vector<ScoreWindow> plan = gpt2::cli::plan_score_windows(10, 4, 4);
  REQUIRE(plan.size() == 3);
  CHECK(plan[1].begin == 4);
  CHECK(plan[1].first_scored == 5);
  CHECK(plan[2].begin == 8);
  CHECK(plan[2].end == 10);
  CHECK(plan[2].first_scored == 9);
}

TEST_CASE("score windows: every token after the first is scored once, with window - stride context", "[score]") {
  for (int n = 1; n <= 40; ++n) {
    for (int window = 2; window <= 12; ++window) {
      for (int stride = 1; stride < window; ++stride) {
        std::vector<int> times_scored(static_cast<size_t>(n), 0);
        int prev_end = 0;
        for (const ScoreWindow& w : gpt2::cli::plan_score_windows(n, window, stride)) {
          REQUIRE(w.end - w.begin <= window);
          REQUIRE(w.first_scored >= prev_end);  // never scores a token twice
          prev_end = w.end;
          for (int i = w.first_scored; i < w.end; ++i) {
            ++times_scored[static_cast<size_t>(i)];
            REQUIRE(i - w.begin >= std::min(i, window - stride));  // tokens of context
          }
        }
        REQUIRE(prev_end == n);
        REQUIRE(times_scored[0] == 0);
        for (int i = 1; i < n; ++i) REQUIRE(times_scored[static_cast<size_t>(i)] == 1);
      }
    }
  }
}

TEST_CASE("score log-softmax: hand-computed probabilities, no overflow at large logits", "[score]") {
  // p = (1, 2, 3) / 6 from logits log(1), log(2), log(3), shifted by 1000 (exp would overflow).
  const float logits[3] = {1000.0f, 1000.0f + std::log(2.0f), 1000.0f + std::log(3.0f)};
  const gpt2::cli::LogSoftmaxRow row = gpt2::cli::log_softmax_row(logits, 3);
  CHECK(row.logprob(logits, 0) == Approx(std::log(1.0 / 6)).margin(1e-5));
  CHECK(row.logprob(logits, 1) == Approx(std::log(2.0 / 6)).margin(1e-5));
  CHECK(row.logprob(logits, 2) == Approx(std::log(3.0 / 6)).margin(1e-5));
}

TEST_CASE("score top ids: most likely first, ties by id, k clamped to the vocabulary", "[score]") {
  const float logits[6] = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f, 0.0f};
  CHECK(gpt2::cli::top_ids(logits, 6, 3) == std::vector<int32_t>{1, 3, 4});
  CHECK(gpt2::cli::top_ids(logits, 6, 10) == std::vector<int32_t>{1, 3, 4, 0, 5, 2});
  CHECK(gpt2::cli::top_ids(logits, 6, 0).empty());
}

// ---------------------------------------------------------------- end to end on the tiny model

// expected.json (tools/reference/gpt2_reference.py, float64): "prompt_text", its ids "prompt",
// "logprobs" (null first), "bos_logprobs" (after <|endoftext|>), "next_top10" [{id, logprob}].
TEST_CASE("score --json equals the reference log-probabilities", "[score][cli]") {
  const json expected = json::parse(read_bytes(tiny_dir + "/expected.json"));
  const double tolerance = expected.value("tolerance", 1e-4);
  const std::string text = expected.at("prompt_text").get<std::string>();
  const json& ref_ids = expected.at("prompt");

  for (const bool bos : {false, true}) {
    INFO("--bos: " << bos);
    const json got = score_json(text, bos ? std::vector<std::string>{"--bos"} : std::vector<std::string>{});
    const json& ref_logprobs = expected.at(bos ? "bos_logprobs" : "logprobs");
    REQUIRE(got.at("n_tokens").get<size_t>() == ref_ids.size());
    REQUIRE(got.at("tokens").size() == ref_ids.size());
    double total = 0;
    int n_scored = 0;
    for (size_t i = 0; i < ref_ids.size(); ++i) {
      INFO("token " << i);
      const json& tok = got.at("tokens")[i];
      CHECK(tok.at("id").get<int>() == ref_ids[i].get<int>());
      if (ref_logprobs[i].is_null()) {
        CHECK(tok.at("logprob").is_null());
        continue;
      }
      REQUIRE(tok.at("logprob").is_number());
      CHECK(tok.at("logprob").get<double>() == Approx(ref_logprobs[i].get<double>()).margin(tolerance));
      total += tok.at("logprob").get<double>();
      ++n_scored;
    }
    CHECK(n_scored == static_cast<int>(ref_ids.size()) - (bos ? 0 : 1));
    CHECK(got.at("total_logprob").get<double>() == Approx(total).margin(1e-9));
    CHECK(got.at("perplexity").get<double>() == Approx(std::exp(-total / n_scored)).epsilon(1e-12));
    CHECK(got.at("model").get<std::string>() == tiny_dir);

    if (!bos) {  // the top 10 after the last token, most likely first
      const json& ref_next = expected.at("next_top10");
      REQUIRE(got.at("next").size() == ref_next.size());
      for (size_t i = 0; i < ref_next.size(); ++i) {
        INFO("next " << i);
        CHECK(got.at("next")[i].at("id") == ref_next[i].at("id"));
        CHECK(got.at("next")[i].at("logprob").get<double>() ==
              Approx(ref_next[i].at("logprob").get<double>()).margin(tolerance));
      }
    }
  }
}

TEST_CASE("score --json: the shape of the object", "[score][cli]") {
  const json got = score_json(" the cat sat on the mat", {"--top", "3"});
  for (const char* key : {"model", "n_tokens", "tokens", "next", "total_logprob", "perplexity"})
    CHECK(got.contains(key));
  CHECK(got.size() == 6);
  REQUIRE(got.at("tokens").size() == got.at("n_tokens").get<size_t>());
  CHECK(got.at("tokens")[0].at("logprob").is_null());  // nothing before it
  std::string joined;
  for (const json& t : got.at("tokens")) joined += t.at("text").get<std::string>();
  CHECK(joined == " the cat sat on the mat");
  REQUIRE(got.at("next").size() == 3);
  for (const json& t : got.at("next")) {
    CHECK(t.size() == 4);
    CHECK(t.at("prob").get<double>() == Approx(std::exp(t.at("logprob").get<double>())).epsilon(1e-9));
  }
}

TEST_CASE("score --json: text fields are valid UTF-8 even for parts of a character", "[score][cli]") {
  const json got = score_json(" \xe6\x97\xa5 ok");  // " 日 ok": " \xe6", "\x97", "\xa5", " ok"
  REQUIRE(got.at("n_tokens").get<int>() == 4);
  CHECK(got.at("tokens")[0].at("text").get<std::string>() == " \xEF\xBF\xBD");
  CHECK(got.at("tokens")[1].at("text").get<std::string>() == "\xEF\xBF\xBD");
  CHECK(got.at("tokens")[3].at("text").get<std::string>() == " ok");
}

TEST_CASE("score --top: most likely first, probabilities of the whole vocabulary sum to one", "[score][cli]") {
  const int n_vocab = tiny_config().value("vocab_size", 50257);
  // --top beyond the vocabulary lists it all.
  const json got = score_json(" one two three", {"--top", std::to_string(n_vocab + 5)});
  const json& next = got.at("next");
  REQUIRE(next.size() == static_cast<size_t>(n_vocab));
  double sum = 0;
  for (size_t i = 0; i < next.size(); ++i) {
    sum += next[i].at("prob").get<double>();
    if (i > 0) CHECK(next[i - 1].at("logprob").get<double>() >= next[i].at("logprob").get<double>());
  }
  CHECK(sum == Approx(1.0).margin(1e-6));

  // The top 5 are the head of that list.
  const json top5 = score_json(" one two three", {"--top", "5"}).at("next");
  REQUIRE(top5.size() == 5);
  for (size_t i = 0; i < 5; ++i) {
    CHECK(top5[i].at("id") == next[i].at("id"));
    CHECK(top5[i].at("logprob").get<double>() == Approx(next[i].at("logprob").get<double>()).margin(1e-9));
  }

  // Causality: the next-token log-probability of " four" after " one two three" is the
  // log-probability that scoring " one two three four" gives its last token.
  const json longer = score_json(" one two three four");
  const json& last = longer.at("tokens").back();
  const auto it = std::find_if(next.begin(), next.end(), [&](const json& t) { return t.at("id") == last.at("id"); });
  REQUIRE(it != next.end());
  CHECK((*it).at("logprob").get<double>() == Approx(last.at("logprob").get<double>()).margin(1e-4));
}

TEST_CASE("score --bos: the first token is scored against <|endoftext|>", "[score][cli]") {
  const std::string text = " the quick brown fox";
  const json plain = score_json(text);
  const json bos = score_json(text, {"--bos"});
  REQUIRE(bos.at("n_tokens") == plain.at("n_tokens"));  // the <|endoftext|> is not listed
  REQUIRE(plain.at("tokens")[0].at("logprob").is_null());
  REQUIRE(bos.at("tokens")[0].at("logprob").is_number());
  for (size_t i = 0; i < bos.at("tokens").size(); ++i) CHECK(bos.at("tokens")[i].at("id") == plain.at("tokens")[i].at("id"));

  // It equals the next-token distribution after the text "<|endoftext|>" alone.
  const int n_vocab = tiny_config().value("vocab_size", 50257);
  const json after_eot = score_json("<|endoftext|>", {"--top", std::to_string(n_vocab)});
  const json first = bos.at("tokens")[0];
  const json& next = after_eot.at("next");
  const auto it = std::find_if(next.begin(), next.end(), [&](const json& t) { return t.at("id") == first.at("id"); });
  REQUIRE(it != next.end());
  CHECK((*it).at("logprob").get<double>() == Approx(first.at("logprob").get<double>()).margin(1e-4));

  // One more scored token: the perplexity is over n tokens instead of n - 1.
  double total = 0;
  for (const json& t : bos.at("tokens")) total += t.at("logprob").get<double>();
  CHECK(bos.at("total_logprob").get<double>() == Approx(total).margin(1e-6));
  CHECK(bos.at("perplexity").get<double>() ==
        Approx(std::exp(-total / static_cast<double>(bos.at("n_tokens").get<int>()))).epsilon(1e-9));
}

TEST_CASE("score: texts longer than the context use a sliding window", "[score][cli]") {
  const int n_ctx = tiny_config().value("n_positions", 1024);
  // Three tokens per entry (" w", digit, word): three full chunks of n_ctx and a short one.
  const std::string text = words(0, n_ctx + 10);
  const json whole = score_json(text, {"--window", std::to_string(n_ctx), "--stride", std::to_string(n_ctx)});
  const json& tokens = whole.at("tokens");
  const int n = whole.at("n_tokens").get<int>();
  REQUIRE(n > 2 * n_ctx);
  CHECK(n % n_ctx != 0);  // the last chunk is cut short
  REQUIRE(tokens.size() == static_cast<size_t>(n));

  // window == stride == n_ctx: the same as scoring each chunk of n_ctx tokens on its own.
  int n_scored = 0;
  for (int begin = 0; begin < n; begin += n_ctx) {
    const int end = std::min(begin + n_ctx, n);
    std::string chunk;
    for (int i = begin; i < end; ++i) chunk += tokens[static_cast<size_t>(i)].at("text").get<std::string>();
    const json part = score_json(chunk);
    REQUIRE(part.at("n_tokens").get<int>() == end - begin);
    for (int i = begin; i < end; ++i) {
      const json& a = tokens[static_cast<size_t>(i)];
      const json& b = part.at("tokens")[static_cast<size_t>(i - begin)];
      REQUIRE(a.at("id") == b.at("id"));
      if (i == begin) {
        CHECK(a.at("logprob").is_null());
        CHECK(b.at("logprob").is_null());
      } else {
        ++n_scored;
        CHECK(a.at("logprob").get<double>() == Approx(b.at("logprob").get<double>()).margin(1e-5));
      }
    }
    if (end == n) {  // the last chunk's next-token list is the whole text's
      CHECK(part.at("next") == whole.at("next"));
    }
  }
  CHECK(n_scored == n - (n + n_ctx - 1) / n_ctx);
  CHECK(whole.at("perplexity").get<double>() ==
        Approx(std::exp(-whole.at("total_logprob").get<double>() / n_scored)).epsilon(1e-9));

  // Default stride (window / 2): every token but the first is scored, and the first window's
  // tokens equal the first chunk's.
  const json strided = score_json(text);
  REQUIRE(strided.at("n_tokens").get<int>() == n);
  CHECK(strided.at("tokens")[0].at("logprob").is_null());
  for (int i = 1; i < n; ++i) REQUIRE(strided.at("tokens")[static_cast<size_t>(i)].at("logprob").is_number());
  for (int i = 1; i < n_ctx; ++i) {
    CHECK(strided.at("tokens")[static_cast<size_t>(i)].at("logprob").get<double>() ==
          Approx(tokens[static_cast<size_t>(i)].at("logprob").get<double>()).margin(1e-5));
  }
}

TEST_CASE("score: the human-readable table", "[score][cli]") {
  // "日" (e6 97 a5) is split over the tokens " \xe6", "\x97", "\xa5": the table shows their bytes.
  const Run run = run_gpt2({"score", "-m", tiny_dir, "--device", "cpu", "--threads", "1", "-p",
                            " hello world \xe6\x97\xa5", "--top", "2"});
  INFO("stderr: " << run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(run.out.find("\" hello\"") != std::string::npos);
  CHECK(run.out.find("\" world\"") != std::string::npos);
  CHECK(run.out.find("\" \\xe6\"") != std::string::npos);
  CHECK(run.out.find("\"\\x97\"") != std::string::npos);
  CHECK(run.out.find("\xEF\xBF\xBD") == std::string::npos);  // no U+FFFD
  CHECK(run.out.find("next token (top 2)") != std::string::npos);
  CHECK(run.out.find("perplexity:") != std::string::npos);
  CHECK(run.out.find("\033[") == std::string::npos);  // no colours when stdout is not a terminal
}

TEST_CASE("score: errors", "[score][cli]") {
  const int n_ctx = tiny_config().value("n_positions", 1024);
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {{"-p", ""}, 1, "empty"},
      {{"-p", "hi", "--top", "-1"}, 2, "--top"},
      {{"-p", "hi", "--window", std::to_string(n_ctx + 1)}, 2, "--window"},
      {{"-p", "hi", "--window", "1"}, 2, "--window"},
      {{"-p", "hi", "--window", "8", "--stride", "9"}, 2, "--stride"},
      {{"-p", "hi", "--stride", "-3"}, 2, "--stride"},
      {{"-p", "hi", "--top", "many"}, 2, "--top"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"score", "-m", tiny_dir, "--device", "cpu"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const Run run = run_gpt2(args);
    INFO("args: " << c.args[0] << " " << c.args[1] << (c.args.size() > 2 ? " " + c.args[2] + " " + c.args[3] : ""));
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == c.exit_code);
    CHECK(run.err.rfind("error:", 0) == 0);
    CHECK(run.err.find(c.message) != std::string::npos);
    CHECK(std::count(run.err.begin(), run.err.end(), '\n') == 1);  // one line
    CHECK(run.out.empty());
  }

  // A missing model: the loader's one-line error naming the path, exit 1.
  const Run missing = run_gpt2({"score", "-m", tiny_dir + "/no-such-model", "-p", "hi"});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.rfind("error:", 0) == 0);
  CHECK(missing.err.find("no-such-model") != std::string::npos);
  CHECK(std::count(missing.err.begin(), missing.err.end(), '\n') == 1);
}

namespace {

// A copy of the tiny model (config.json, model.safetensors) in `dir`; `edit` may change the safetensors file's
// header (JSON) and data section before it is written.
void copy_tiny(const TempDir& dir, const std::function<void(json&, std::string&)>& edit = nullptr) {
  dir.write("config.json", read_bytes(tiny_dir + "/config.json"));
  std::string bytes = read_bytes(tiny_dir + "/model.safetensors");
  if (edit) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
    json header = json::parse(bytes.substr(8, n));
    std::string data = bytes.substr(8 + n);
    edit(header, data);
    const std::string text = header.dump();
    bytes.assign(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
    bytes += text + data;
  }
  dir.write("model.safetensors", bytes);
}

}  // namespace

// Regression: a model whose vocabulary is larger than its tokenizer's (checkpoints pad GPT-2's
// 50257 rows to 50304) listed rows the tokenizer has no token for among the next tokens: the
// table was half printed, then "error: token id 9591 is outside the vocabulary".
TEST_CASE("score: next tokens are only ids the tokenizer has, when the model has more rows", "[score][cli]") {
  TempDir dir;
  copy_tiny(dir);
  // A byte-level vocabulary of the 256 byte tokens and <|endoftext|>, no merges.
  const json full = json::parse(read_bytes(std::string(GPT2_TEST_DATA) + "/../../src/tokenizer/data/encoder.json"));
  json small = json::object();
  for (auto it = full.begin(); it != full.end(); ++it)
    if (it.value().get<int>() < 256) small[it.key()] = it.value();
  small["<|endoftext|>"] = 256;
  dir.write("vocab.json", small.dump());
  dir.write("merges.txt", "#version: 0.2\n");

  for (const bool as_json : {true, false}) {
    std::vector<std::string> args = {"score", "-m", dir.path, "--device", "cpu", "--threads", "1", "-p", "hello",
                                     "--top", "5"};
    if (as_json) args.push_back("--json");
    const Run run = run_gpt2(args);
    INFO("stderr: " << run.err);
    REQUIRE(run.exit_code == 0);
    CHECK(run.err.empty());
    if (!as_json) continue;
    const json out = json::parse(run.out);
    CHECK(out["n_tokens"] == 5);  // one token per byte
    REQUIRE(out["next"].size() == 5);
    for (const json& t : out["next"]) CHECK(t["id"].get<int>() <= 256);
  }
}

// Regression: NaN weights gave "logprob": null and a table of nan with exit code 0.
TEST_CASE("score: NaN logits from corrupt weights are an error, not NaN log-probabilities", "[score][cli]") {
  TempDir dir;
  copy_tiny(dir, [](json& header, std::string& data) {
    const json& offsets = header.at("ln_f.weight").at("data_offsets");
    const size_t begin = offsets[0].get<size_t>(), end = offsets[1].get<size_t>();
    const float nan = std::nanf("");
    for (size_t at = begin; at + 4 <= end; at += 4) std::memcpy(&data[at], &nan, 4);
  });
  for (const char* extra : {"--json", "--bos"}) {
    const Run run = run_gpt2({"score", "-m", dir.path, "--device", "cpu", "-p", "hello world", extra});
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == 1);
    CHECK(run.err.rfind("error:", 0) == 0);
    CHECK(run.err.find("NaN") != std::string::npos);
    CHECK(std::count(run.err.begin(), run.err.end(), '\n') == 1);
    CHECK(run.out.empty());
  }
  // generate stops at the first sampled token too.
  const Run gen = run_gpt2({"generate", "-m", dir.path, "--device", "cpu", "-p", "hello", "-n", "3", "--json"});
  CHECK(gen.exit_code == 1);
  CHECK(gen.err.find("NaN") != std::string::npos);
  CHECK(std::count(gen.err.begin(), gen.err.end(), '\n') == 1);
}

TEST_CASE("score: several files are scored in shared steps, each exactly as alone", "[score][cli]") {
  // Two short texts and one past the context (a sliding window): three results, in order,
  // each equal to scoring the file alone.
  const int n_ctx = tiny_config().at("n_positions").get<int>();
  const TempFile a(" the cat sat on the mat"), b(words(0, 20)), c(words(0, n_ctx));
  const Run run = run_gpt2({"score", "-m", tiny_dir, "--device", "cpu", "--threads", "1", "--json", "-f", a.path,
                            "-f", b.path, "-f", c.path});
  INFO("stderr: " << run.err);
  REQUIRE(run.exit_code == 0);
  std::vector<json> lines;
  size_t at = 0;
  while (at < run.out.size()) {
    const size_t end = run.out.find('\n', at);
    REQUIRE(end != std::string::npos);
    lines.push_back(json::parse(run.out.substr(at, end - at)));
    at = end + 1;
  }
  REQUIRE(lines.size() == 3);
  const std::string* paths[3] = {&a.path, &b.path, &c.path};
  for (size_t i = 0; i < 3; ++i) {
    INFO("file " << i);
    CHECK(lines[i].at("file") == *paths[i]);
    json alone = score_json(read_bytes(*paths[i]));
    json together = lines[i];
    together.erase("file");
    REQUIRE(together.at("tokens").size() == alone.at("tokens").size());
    for (size_t t = 0; t < alone.at("tokens").size(); ++t) {
      const json& x = together["tokens"][t];
      const json& y = alone["tokens"][t];
      CHECK(x.at("id") == y.at("id"));
      if (y.at("logprob").is_null()) CHECK(x.at("logprob").is_null());
      else CHECK(x.at("logprob").get<double>() == Approx(y.at("logprob").get<double>()).margin(1e-5));
    }
    CHECK(together.at("next") == alone.at("next"));
    CHECK(together.at("total_logprob").get<double>() == Approx(alone.at("total_logprob").get<double>()).margin(1e-4));
  }
  // The table names each file; an empty one is an error naming it.
  const Run table = run_gpt2({"score", "-m", tiny_dir, "--device", "cpu", "-f", a.path, "-f", b.path});
  REQUIRE(table.exit_code == 0);
  CHECK(table.out.find("=== " + a.path + " ===") != std::string::npos);
  CHECK(table.out.find("=== " + b.path + " ===") != std::string::npos);
  const TempFile empty("");
  const Run e = run_gpt2({"score", "-m", tiny_dir, "--device", "cpu", "-f", a.path, "-f", empty.path});
  CHECK(e.exit_code == 1);
  CHECK(e.err == "error: nothing to score: " + empty.path + " is empty\n");
}
