// `gpt2 generate` end to end (GPT2_BINARY) on the tiny synthetic model
// (tests/data/models/tiny-gpt2, n_ctx 256), whose expected.json holds the greedy
// continuation of an independent PyTorch implementation: option errors, greedy output,
// streaming and echo, seeds, stop strings, the context end, JSON.
#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli_run.h"
#include "tokenizer/tokenizer.h"

namespace {

using gpt2::test::Run;
using gpt2::test::run_gpt2;
using gpt2::test::TempFile;
using nlohmann::json;

const std::string kTiny = std::string(GPT2_TEST_DATA) + "/models/tiny-gpt2";

// Runs `gpt2 generate ARGS...` with stdin from /dev/null.
Run generate(const std::vector<std::string>& args) {
  std::vector<std::string> full = {"generate"};
  full.insert(full.end(), args.begin(), args.end());
  return run_gpt2(full);
}

json expected() {
  std::ifstream in(kTiny + "/expected.json");
  REQUIRE(in.good());
  return json::parse(in);
}

json parse_json(const Run& r) {
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  return json::parse(r.out);
}

}  // namespace

TEST_CASE("gpt2 generate: bad options are usage errors (exit 2)", "[cli][generate]") {
  const std::vector<std::vector<std::string>> bad = {
      {"--temperature", "-1"}, {"--top-p", "0"},         {"--top-p", "1.5"},   {"-n", "0"},
      {"-n", "-3"},            {"--device", "quantum"},  {"--top-k", "-1"},    {"--min-p", "2"},
      {"--num-samples", "0"},  {"--repeat-penalty", "0"}, {"--stop", ""},      {"--dtype", "fp4"},
      {"--seed", "abc"},       {"--seed", "-2"},         {"--seed", "99999999999999999999"},
      {"--no-such-option"},    {"--device", "cpu", "--dtype", "fp16"}};
  for (const auto& extra : bad) {
    std::vector<std::string> args = {"-m", kTiny, "-p", "Hello"};
    args.insert(args.end(), extra.begin(), extra.end());
    const Run r = generate(args);
    INFO("options: " << extra[0] << (extra.size() > 1 ? " " + extra[1] : "") << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.rfind("error:", 0) == 0);
    CHECK(r.out.empty());
  }
  const Run r = generate({"-m", kTiny, "-p", "Hello", "--temperature", "-1"});
  CHECK(r.err.find("--temperature") != std::string::npos);
}

TEST_CASE("gpt2 generate: --help lists the options with their defaults", "[cli][generate]") {
  const Run r = generate({"--help"});
  REQUIRE(r.exit_code == 0);
  for (const char* text : {"--temperature", "0.8", "--top-k", "40", "--top-p", "0.95", "--min-p", "0.05",
                           "--repeat-penalty", "--repeat-last-n", "64", "--seed", "--greedy", "--stop",
                           "--num-samples", "--json", "--no-echo", "--ignore-eos", "--device", "--threads"}) {
    INFO(text);
    CHECK(r.out.find(text) != std::string::npos);
  }
}

TEST_CASE("gpt2 generate: greedy output equals the reference, streamed after the prompt", "[cli][generate]") {
  const json exp = expected();
  const std::string prompt = exp.at("prompt_text");
  const std::vector<int32_t> reference = exp.at("greedy").get<std::vector<int32_t>>();
  const std::string continuation = gpt2::to_valid_utf8(gpt2::Tokenizer::builtin().decode(reference));
  const std::string n = std::to_string(reference.size());

  const json j = parse_json(generate({"-m", kTiny, "-p", prompt, "-n", n, "--greedy", "--json"}));
  CHECK(j.at("prompt_tokens") == exp.at("prompt"));
  REQUIRE(j.at("samples").size() == 1);
  CHECK(j["samples"][0].at("tokens").get<std::vector<int32_t>>() == reference);
  CHECK(j["samples"][0].at("text") == continuation);
  CHECK(j["samples"][0].at("finish_reason") == "length");
  CHECK(j.contains("seed"));
  const Run raw = generate({"-m", kTiny, "-p", prompt, "-n", "1", "--greedy", "--json"});
  CHECK(raw.out.rfind("{\"prompt_tokens\":", 0) == 0);  // keys in the documented order

  // --temperature 0 is greedy too; plain output is prompt + continuation + newline.
  const Run plain = generate({"-m", kTiny, "-p", prompt, "-n", n, "--temperature", "0"});
  REQUIRE(plain.exit_code == 0);
  CHECK(plain.out == prompt + continuation + "\n");
  const Run no_echo = generate({"-m", kTiny, "-p", prompt, "-n", n, "--greedy", "--no-echo"});
  CHECK(no_echo.out == continuation + "\n");
}

TEST_CASE("gpt2 generate: a seed repeats its samples, alone or in a batch", "[cli][generate]") {
  const std::vector<std::string> base = {"-m", kTiny, "-p", "Once upon a time", "-n", "12", "--json", "--seed", "77"};
  const json a = parse_json(generate(base));
  const json b = parse_json(generate(base));
  CHECK(a == b);
  CHECK(a.at("seed") == 77);
  std::vector<std::string> batch = base;
  batch.insert(batch.end(), {"--num-samples", "3"});
  const json three = parse_json(generate(batch));
  REQUIRE(three.at("samples").size() == 3);
  CHECK(three["samples"][0] == a["samples"][0]);
  CHECK(three["samples"][1].at("tokens") != three["samples"][0].at("tokens"));

  // --seed -1 (the default) picks a random seed, reported by --json ...
  const json r1 = parse_json(generate({"-m", kTiny, "-p", "Once", "-n", "2", "--json", "--seed", "-1"}));
  CHECK(r1.at("seed").is_number_unsigned());
  const uint64_t chosen = r1.at("seed");
  const json replay =
      parse_json(generate({"-m", kTiny, "-p", "Once", "-n", "2", "--json", "--seed", std::to_string(chosen)}));
  CHECK(replay == r1);
  // ... and by --verbose.
  const Run v = generate({"-m", kTiny, "-p", "Once", "-n", "2", "-v"});
  REQUIRE(v.exit_code == 0);
  CHECK(v.err.find("seed: ") != std::string::npos);
  CHECK(v.err.find("time to first token") != std::string::npos);
  CHECK(v.err.find("tokens/s") != std::string::npos);
  CHECK(v.err.find("loaded") != std::string::npos);
}

TEST_CASE("gpt2 generate: --stop ends the text before a string spanning tokens", "[cli][generate]") {
  const json exp = expected();
  const std::string prompt = exp.at("prompt_text");
  const std::vector<int32_t> reference = exp.at("greedy").get<std::vector<int32_t>>();
  const gpt2::Tokenizer tokenizer = gpt2::Tokenizer::builtin();
  // The end of token 1's text and the start of token 2's, so it spans the two.
  const std::string t1 = tokenizer.token_bytes(reference[1]);
  const std::string t2 = tokenizer.token_bytes(reference[2]);
  REQUIRE(t1.size() >= 2);
  REQUIRE(t2.size() >= 2);
  const std::string stop = t1.substr(t1.size() - 2) + t2.substr(0, 2);
  const std::string full = tokenizer.decode(reference);
  const std::string before = full.substr(0, full.find(stop));

  const json j = parse_json(generate({"-m", kTiny, "-p", prompt, "-n", "20", "--greedy", "--json", "--stop", stop,
                                      "--stop", "never appears"}));
  CHECK(j["samples"][0].at("finish_reason") == "stop");
  CHECK(j["samples"][0].at("text") == before);
  CHECK(j["samples"][0].at("tokens").size() == 3);

  const Run plain = generate({"-m", kTiny, "-p", prompt, "-n", "20", "--greedy", "--no-echo", "--stop", stop});
  CHECK(plain.out == before + "\n");
}

TEST_CASE("gpt2 generate: the end of the context stops generation; a prompt too long is an error",
          "[cli][generate]") {
  // " x" is one token: a prompt of 250 tokens leaves 6 of the tiny model's 256 positions.
  std::string prompt = "x";
  for (int i = 1; i < 250; ++i) prompt += " x";
  REQUIRE(gpt2::Tokenizer::builtin().encode(prompt).size() == 250);
  const Run r = generate({"-m", kTiny, "-p", prompt, "-n", "50", "--greedy", "--json", "--ignore-eos"});
  const json j = parse_json(r);
  CHECK(j["samples"][0].at("tokens").size() == 6);
  CHECK(j["samples"][0].at("finish_reason") == "length");
  CHECK(r.err.find("end of the model's context") != std::string::npos);

  std::string too_long = prompt;
  for (int i = 0; i < 10; ++i) too_long += " x";
  const Run e = generate({"-m", kTiny, "-p", too_long, "-n", "5"});
  CHECK(e.exit_code == 1);
  CHECK(e.out.empty());  // not even the echo of the prompt
  CHECK(e.err.rfind("error: the prompt is 260 tokens", 0) == 0);
  CHECK(e.err.find("255 tokens or fewer") != std::string::npos);
}

TEST_CASE("gpt2 generate: an empty prompt starts from <|endoftext|>; -f reads a file", "[cli][generate]") {
  const json j = parse_json(generate({"-m", kTiny, "-p", "", "-n", "3", "--greedy", "--json"}));
  CHECK(j.at("prompt_tokens") == json::array({50256}));
  CHECK(j["samples"][0].at("tokens").size() == 3);

  const json exp = expected();
  const TempFile prompt_file(exp.at("prompt_text").get<std::string>());
  const json f = parse_json(generate({"-m", kTiny, "-f", prompt_file.path, "-n", "4", "--greedy", "--json"}));
  CHECK(f.at("prompt_tokens") == exp.at("prompt"));
  const std::vector<int32_t> reference = exp.at("greedy").get<std::vector<int32_t>>();
  CHECK(f["samples"][0].at("tokens").get<std::vector<int32_t>>() ==
        std::vector<int32_t>(reference.begin(), reference.begin() + 4));
}

TEST_CASE("gpt2 generate: several samples print one after another", "[cli][generate]") {
  const json exp = expected();
  const std::string prompt = exp.at("prompt_text");
  const std::vector<int32_t> reference = exp.at("greedy").get<std::vector<int32_t>>();
  const std::string continuation =
      gpt2::to_valid_utf8(gpt2::Tokenizer::builtin().decode({reference.begin(), reference.begin() + 3}));
  const Run r = generate({"-m", kTiny, "-p", prompt, "-n", "3", "--greedy", "--num-samples", "2"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "--- sample 1/2 ---\n" + prompt + continuation + "\n--- sample 2/2 ---\n" + prompt + continuation + "\n");
}

// Regression: output that could not be written (a full disk, a closed stdout) ended with exit
// code 0 and no message for generate, score and bench (tokenize already reported it).
TEST_CASE("gpt2: stdout that cannot be written is an error, exit 1", "[cli][generate]") {
  const std::vector<std::vector<std::string>> commands = {
      {"generate", "-m", kTiny, "--device", "cpu", "-p", "Hello", "-n", "3", "--greedy"},
      {"generate", "-m", kTiny, "--device", "cpu", "-p", "Hello", "-n", "3", "--greedy", "--json"},
      {"score", "-m", kTiny, "--device", "cpu", "-p", "Hello world"},
      {"bench", "-m", kTiny, "--device", "cpu", "--reps", "1", "--prompt-tokens", "4", "--gen-tokens", "2",
       "--batch", "1"},
      {"tokenize", "-p", "Hello"},
  };
  for (const auto& args : commands) {
    for (const char* target : {"/dev/full", "&-"}) {
      const Run r = gpt2::test::run_gpt2_stdout_to(args, target);
      INFO(args[0] << " >" << target << "\nstderr: " << r.err);
      CHECK(r.exit_code == 1);
      CHECK(r.err == "error: cannot write to stdout\n");
    }
  }
}

// Regression: --temperature 1e-38 overflowed logit / T and printed garbage; in the limit of a
// tiny temperature the text is the greedy one.
TEST_CASE("gpt2 generate: a tiny temperature gives the greedy text", "[cli][generate]") {
  const json greedy = parse_json(generate({"-m", kTiny, "-p", "Hello world", "-n", "8", "--greedy", "--json"}));
  for (const char* t : {"1e-38", "1e-45"}) {
    const json tiny = parse_json(
        generate({"-m", kTiny, "-p", "Hello world", "-n", "8", "--temperature", t, "--seed", "3", "--json"}));
    INFO("temperature " << t);
    CHECK(tiny["samples"][0]["tokens"] == greedy["samples"][0]["tokens"]);
  }
}

// Regression: a prompt longer than the context was only rejected after the weights were
// loaded: for random:gpt2-xl, minutes and 6 GB of host memory before the one-line error.
TEST_CASE("gpt2 generate: a prompt too long for the context is rejected before loading", "[cli][generate]") {
  std::string prompt = "a";
  for (int i = 1; i < 1024; ++i) prompt += " a";  // 1024 tokens: "a" then " a" x 1023
  const Run r = generate({"-m", "random:gpt2-xl", "--device", "cpu", "-p", prompt, "-n", "1"});
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.empty());
  CHECK(r.err.rfind("error: the prompt is 1024 tokens but the model's context is 1024 tokens", 0) == 0);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

TEST_CASE("gpt2 generate --prompts: every prompt at once, results in input order", "[cli][generate]") {
  const json exp = expected();
  const std::string prompt = exp.at("prompt_text");
  const std::vector<int32_t> reference = exp.at("greedy").get<std::vector<int32_t>>();
  // The reference prompt among others of other lengths; a seed per line; n_predict per line.
  const std::string lines = json("Hello").dump() + "\n" + json{{"prompt", prompt}, {"n_predict", 6}}.dump() +
                            "\n\n" + json{{"prompt", "Once upon a time there was"}, {"seed", 5}}.dump() + "\n" +
                            json("").dump() + "\n";
  const TempFile file(lines);
  const Run r = generate({"-m", kTiny, "--prompts", file.path, "-n", "9", "--greedy", "--json", "--parallel", "2"});
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  std::vector<json> out;
  size_t at = 0;
  while (at < r.out.size()) {
    const size_t end = r.out.find('\n', at);
    REQUIRE(end != std::string::npos);
    out.push_back(json::parse(r.out.substr(at, end - at)));
    at = end + 1;
  }
  REQUIRE(out.size() == 4);
  for (size_t i = 0; i < 4; ++i) CHECK(out[i].at("index") == i);
  CHECK(out[1].at("prompt_tokens") == exp.at("prompt"));
  CHECK(out[1]["samples"][0].at("tokens").get<std::vector<int32_t>>() ==
        std::vector<int32_t>(reference.begin(), reference.begin() + 6));
  CHECK(out[2].at("seed") == 5);
  CHECK(out[3].at("prompt_tokens") == json::array({50256}));
  // Each equals the prompt generated on its own.
  for (const json& o : out) {
    if (o.at("index") == 1) continue;
    const std::vector<std::string> single_prompt = {"Hello", "", "Once upon a time there was", ""};
    const json alone = parse_json(generate({"-m", kTiny, "-p", single_prompt[o.at("index").get<size_t>()], "-n", "9",
                                            "--greedy", "--json"}));
    CHECK(o.at("samples") == alone.at("samples"));
  }
  // Without --json: one block per prompt, in order.
  const Run plain = generate({"-m", kTiny, "--prompts", file.path, "-n", "3", "--greedy", "--no-echo"});
  REQUIRE(plain.exit_code == 0);
  const size_t p1 = plain.out.find("--- prompt 1/4 ---"), p4 = plain.out.find("--- prompt 4/4 ---");
  CHECK(p1 == 0);
  CHECK(p4 != std::string::npos);
  // Bad lines name the file and line; --prompts does not go with -p.
  const TempFile bad("\"ok\"\n{\"prompt\": 3}\n");
  const Run e = generate({"-m", kTiny, "--prompts", bad.path});
  CHECK(e.exit_code == 1);
  CHECK(e.err.find(bad.path + ":2:") != std::string::npos);
  const Run both = generate({"-m", kTiny, "--prompts", bad.path, "-p", "x"});
  CHECK(both.exit_code == 2);
}
