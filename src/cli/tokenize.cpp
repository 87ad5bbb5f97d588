// gpt2 tokenize: text -> GPT-2 token ids, or ids -> text with --decode.
//
//   gpt2 tokenize [-m MODEL] (-p TEXT | -f FILE) [--json] [--count] [--no-special]
//   gpt2 tokenize [-m MODEL] --decode IDS [--json]
//
// Output: ids separated by spaces; --count the number of tokens; --json
// {"ids": [int], "tokens": [str]} (with --decode also "text"). --decode writes the exact
// bytes of the tokens to stdout (no newline added: the output is the text). JSON strings
// are valid UTF-8 always: bytes that are not (a token ending inside a character, invalid
// input) are shown as U+FFFD there.
#include <algorithm>
#include <cctype>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "common/error.h"

namespace gpt2::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  TextInput input;
  bool json = false;
  bool count = false;
  bool no_special = false;
  std::string decode;  // the ids, when --decode was given
  CLI::Option* decode_option = nullptr;
};

// "15496 11 995", "15496,11,995" or "[15496, 11, 995]" (as --json prints them).
std::vector<int32_t> parse_ids(const std::string& text, const Tokenizer& tokenizer) {
  std::vector<int32_t> ids;
  std::size_t i = 0;
  auto separator = [](char c) { return std::isspace(static_cast<unsigned char>(c)) || c == ',' || c == '[' || c == ']'; };
  while (i < text.size()) {
    if (separator(text[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && !separator(text[j])) ++j;
    const std::string word = text.substr(i, j - i);
    bool digits = true;
    for (char c : word) digits = digits && std::isdigit(static_cast<unsigned char>(c));
    if (!digits) throw UsageError("--decode: '" + to_valid_utf8(word) + "' is not a token id");
    // More than 9 digits (after leading zeros) is past any vocabulary, and past what stol takes.
    const size_t first = std::min(word.find_first_not_of('0'), word.size() - 1);
    const long id = word.size() - first <= 9 ? std::stol(word.substr(first)) : -1;
    if (id < 0 || id >= tokenizer.n_vocab())
      throw UsageError("--decode: token id " + word + " is outside the vocabulary (0.." +
                       std::to_string(tokenizer.n_vocab() - 1) + ")");
    ids.push_back(static_cast<int32_t>(id));
    i = j;
  }
  return ids;
}

nlohmann::json token_strings(const std::vector<int32_t>& ids, const Tokenizer& tokenizer) {
  nlohmann::json tokens = nlohmann::json::array();
  for (int32_t id : ids) tokens.push_back(to_valid_utf8(tokenizer.token_bytes(id)));
  return tokens;
}

void run_tokenize(const TokenizeOptions& options) {
  const bool decoding = options.decode_option->count() > 0;
  if (decoding && (options.input.prompt_option->count() > 0 || !options.input.files.empty()))
    throw UsageError("--decode takes token ids, not -p/-f text");
  if (decoding && options.count) throw UsageError("--count counts the tokens of a text; it does not go with --decode");
  if (decoding && options.no_special) throw UsageError("--no-special applies to encoding; it does not go with --decode");

  const Tokenizer tokenizer = options.model.empty() ? Tokenizer::builtin() : load_tokenizer(ModelSource::parse(options.model));

  if (decoding) {
    const std::string ids_text =
        options.decode == "-" ? read_text(TextInput{"-", {}, nullptr, nullptr}) : options.decode;
    const std::vector<int32_t> ids = parse_ids(ids_text, tokenizer);
    const std::string text = tokenizer.decode(ids);
    if (options.json) {
      nlohmann::json out = {{"ids", ids}, {"tokens", token_strings(ids, tokenizer)}, {"text", to_valid_utf8(text)}};
      std::cout << out.dump() << "\n";
    } else {
      std::cout.write(text.data(), static_cast<std::streamsize>(text.size()));
    }
    std::cout.flush();
    if (!std::cout) throw Error("cannot write to stdout");
    return;
  }

  const std::string text = read_text(options.input);
  const std::vector<int32_t> ids = tokenizer.encode(text, options.no_special ? Special::plain : Special::allow);
  if (options.count) {
    if (options.json) std::cout << nlohmann::json{{"n_tokens", ids.size()}}.dump() << "\n";
    else std::cout << ids.size() << "\n";
  } else if (options.json) {
    nlohmann::json out = {{"ids", ids}, {"tokens", token_strings(ids, tokenizer)}};
    std::cout << out.dump() << "\n";
  } else {
    std::string line;
    line.reserve(ids.size() * 6);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) line += ' ';
      line += std::to_string(ids[i]);
    }
    line += '\n';
    std::cout.write(line.data(), static_cast<std::streamsize>(line.size()));
  }
  std::cout.flush();
  if (!std::cout) throw Error("cannot write to stdout");
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "text -> GPT-2 token ids (or ids -> text with --decode)");
  cmd->add_option("-m,--model", options->model,
                  "model directory whose vocab.json + merges.txt, encoder.json + vocab.bpe or tokenizer.json to "
                  "use (default: the built-in GPT-2 vocabulary)");
  add_text_input(cmd, options->input);
  cmd->add_flag("--json", options->json, "print {\"ids\": [...], \"tokens\": [...]}");
  cmd->add_flag("--count", options->count, "print only the number of tokens");
  cmd->add_flag("--no-special", options->no_special, "treat <|endoftext|> in the text as plain text");
  options->decode_option =
      cmd->add_option("--decode", options->decode, "token ids -> text: \"IDS\" separated by spaces or commas, '-' reads stdin");
  cmd->callback([options] { run_tokenize(*options); });
}

}  // namespace gpt2::cli
