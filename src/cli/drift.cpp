// gpt2 drift: the same word in several contexts, and how alike its vectors are layer by layer.
// Every text is one sequence of one observed forward step (all texts side by side in the batch);
// the residual stream at the word's last token is read at every layer boundary (ResidualRows,
// inspect/observers.h) and compared by cosine similarity for every pair of texts. The token
// embedding alone (wte, before any position or context) is the baseline: the same token in every
// text, so cosine 1, unless the word was split into different tokens ("mole" at the start of a
// text is not " mole").
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/html.h"
#include "cli/inspect_common.h"
#include "cli/terminal.h"
#include "common/error.h"
#include "common/files.h"
#include "inspect/observers.h"

namespace gpt2::cli {
namespace {

struct DriftOptions {
  ModelOptions model;
  std::string word;
  std::vector<std::string> prompts;
  std::vector<std::string> files;
  bool json = false;
  std::string html;
  std::string color;
};

struct DriftText {
  std::string name;   // for messages
  std::string bytes;
  std::vector<int32_t> ids;
  int position = 0;   // the token holding the word's last byte
};

bool word_byte(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c >= 0x80; }

// Start of the last occurrence of `word` in `text` that is a whole word (not inside a longer word),
// or npos.
size_t last_whole_word(const std::string& text, const std::string& word) {
  size_t at = text.rfind(word);
  while (at != std::string::npos) {
    const size_t end = at + word.size();
    const bool left = at == 0 || !word_byte(static_cast<unsigned char>(text[at - 1])) ||
                      !word_byte(static_cast<unsigned char>(word.front()));
    const bool right = end == text.size() || !word_byte(static_cast<unsigned char>(text[end])) ||
                       !word_byte(static_cast<unsigned char>(word.back()));
    if (left && right) return at;
    if (at == 0) break;
    at = text.rfind(word, at - 1);
  }
  return std::string::npos;
}

// The token that holds byte `byte` of the text (decode(encode(x)) == x, so token bytes tile it).
int token_at_byte(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, size_t byte) {
  size_t end = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    end += tokenizer.token_bytes(ids[i]).size();
    if (byte < end) return static_cast<int>(i);
  }
  return static_cast<int>(ids.size()) - 1;
}

using Matrix = std::vector<std::vector<double>>;

Matrix cosines(const std::vector<const float*>& rows, int n) {
  Matrix m(rows.size(), std::vector<double>(rows.size(), 1.0));
  for (size_t a = 0; a < rows.size(); ++a)
    for (size_t b = 0; b < rows.size(); ++b) m[a][b] = a == b ? 1.0 : inspect::cosine(rows[a], rows[b], n);
  return m;
}

nlohmann::ordered_json matrix_json(const Matrix& m) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& row : m) out.push_back(row);
  return out;
}

// Background by similarity: red (unlike) through yellow to green (alike).
std::string shade(double cos) {
  const int colour = cos >= 0.9 ? 114 : cos >= 0.7 ? 150 : cos >= 0.5 ? 186 : cos >= 0.3 ? 216 : 210;
  return "\033[30m" + ansi_bg(colour);
}

void print_drift(std::ostream& out, const std::string& word, const std::vector<DriftText>& texts, const Tokenizer& tokenizer,
                 const Matrix& embedding, const std::vector<Matrix>& layers, bool color) {
  out << "the word " << quoted(word) << " in " << texts.size() << " texts (its last token):\n";
  for (size_t i = 0; i < texts.size(); ++i) {
    const DriftText& t = texts[i];
    out << std::string(i < 10 ? 4 : 3, ' ') << i << "  token " << t.position << " "
        << pad(quoted(tokenizer.token_bytes(t.ids[static_cast<size_t>(t.position)])), 12) << "  " << quoted(t.bytes) << "\n";
  }
  std::vector<std::pair<size_t, size_t>> pairs;
  for (size_t a = 0; a < texts.size(); ++a)
    for (size_t b = a + 1; b < texts.size(); ++b) pairs.emplace_back(a, b);
  out << "\ncosine similarity of its vectors, for each pair of texts, by layer (layer 0: token + position "
         "embedding entering block 0; embed: the token embedding alone)\n";
  out << "layer ";
  for (const auto& [a, b] : pairs) {
    const std::string name = std::to_string(a) + "-" + std::to_string(b);
    out << std::string(name.size() < 8 ? 8 - name.size() : 0, ' ') << name;
  }
  out << "\n";
  auto row = [&](const std::string& name, const Matrix& m) {
    out << std::string(name.size() < 5 ? 5 - name.size() : 0, ' ') << name << " ";
    for (const auto& [a, b] : pairs) {
      const std::string v = fixed(m[a][b], 3);
      const std::string cell = std::string(8 - v.size(), ' ') + v;
      out << (color ? shade(m[a][b]) + cell + ansi_reset() : cell);
    }
    out << "\n";
  };
  row("embed", embedding);
  for (size_t l = 0; l < layers.size(); ++l) row(std::to_string(l), layers[l]);
}

void run_drift(const DriftOptions& opt) {
  const ColorWhen color = color_when(opt.color);
  if (opt.word.empty()) throw UsageError("--word needs a word (got an empty one)");
  std::vector<DriftText> texts;
  for (const std::string& p : opt.prompts) texts.push_back(DriftText{"", p, {}, 0});
  for (const std::string& f : opt.files) {
    if (f.empty()) throw UsageError("-f needs a file name (got an empty one)");
    texts.push_back(DriftText{f, read_file(f), {}, 0});
  }
  if (texts.size() < 2)
    throw UsageError("drift compares the word in two texts or more: give -p TEXT (or -f FILE) at least twice");

  const ModelSource source = ModelSource::parse(opt.model.model);
  const Config config = source.config();
  const Tokenizer tokenizer = load_tokenizer(source, opt.model.verbose);
  std::vector<std::vector<int32_t>> seqs;
  for (size_t i = 0; i < texts.size(); ++i) {
    DriftText& t = texts[i];
    if (t.name.empty()) t.name = text_name(static_cast<int>(i), t.bytes);
    t.ids = inspect_ids(tokenizer, t.bytes, config.n_ctx, t.name);
    const size_t at = last_whole_word(t.bytes, opt.word);
    if (at == std::string::npos)
      throw UsageError("--word " + quoted(opt.word) + " is not in " + t.name + " (as a whole word, case as given)");
    t.position = token_at_byte(tokenizer, t.ids, at + opt.word.size() - 1);
    seqs.push_back(t.ids);
  }

  // The word's token embedding rows, from the host weights before they go to the backend.
  std::vector<std::vector<float>> embedding_rows(texts.size());
  auto copy_embeddings = [&](const HostModel& host) {
    const Tensor& wte = host.weights.wte;
    for (size_t i = 0; i < texts.size(); ++i) {
      const int32_t id = texts[i].ids[static_cast<size_t>(texts[i].position)];
      const float* row = wte.f32() + static_cast<int64_t>(id) * wte.cols;
      embedding_rows[i].assign(row, row + wte.cols);
    }
  };
  LoadedModel loaded = load(opt.model, source, inspect_limits(seqs), copy_embeddings);
  Gpt2& model = *loaded.model;

  std::vector<int> rows;
  int first = 0;
  for (const DriftText& t : texts) {
    rows.push_back(first + t.position);
    first += static_cast<int>(t.ids.size());
  }
  inspect::ResidualRows residual(config.n_layer, config.n_embd, rows);
  observe_step(model, seqs, residual);

  std::vector<const float*> emb;
  for (const auto& r : embedding_rows) emb.push_back(r.data());
  const Matrix embedding = cosines(emb, config.n_embd);
  std::vector<Matrix> layers;
  for (int l = 0; l <= config.n_layer; ++l) {
    std::vector<const float*> at;
    for (size_t i = 0; i < texts.size(); ++i) at.push_back(residual.row(l, i));
    layers.push_back(cosines(at, config.n_embd));
  }

  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const DriftText& t : texts) {
    const int32_t id = t.ids[static_cast<size_t>(t.position)];
    list.push_back({{"text", to_valid_utf8(t.bytes)},
                    {"position", t.position},
                    {"token", {{"id", id}, {"text", to_valid_utf8(tokenizer.token_bytes(id))}}}});
  }
  nlohmann::ordered_json layer_list = nlohmann::ordered_json::array();
  for (size_t l = 0; l < layers.size(); ++l) layer_list.push_back({{"layer", l}, {"cosine", matrix_json(layers[l])}});
  nlohmann::ordered_json j = {{"model", model.name()},
                              {"word", to_valid_utf8(opt.word)},
                              {"texts", list},
                              {"embedding", {{"cosine", matrix_json(embedding)}}},
                              {"layers", layer_list}};
  if (!opt.html.empty()) {
    HtmlPage page(opt.html, PageKind::drift, "gpt2 drift: " + opt.word);
    nlohmann::ordered_json data = j;
    nlohmann::ordered_json toks = nlohmann::ordered_json::array();
    for (const DriftText& t : texts) toks.push_back(tokens_json(tokenizer, t.ids));
    data["text_tokens"] = toks;
    page.data(data);
    page.finish();
    std::cerr << "wrote " << opt.html << "\n";
  }
  if (opt.json) {
    std::cout << j.dump() << "\n";
    return;
  }
  print_drift(std::cout, opt.word, texts, tokenizer, embedding, layers, stdout_color(color));
}

}  // namespace

void add_drift_command(CLI::App& app) {
  auto opt = std::make_shared<DriftOptions>();
  CLI::App* cmd = app.add_subcommand(
      "drift", "one word in several texts: how alike its vectors are at every layer (cosine similarity)");
  add_model_options(cmd, opt->model);
  cmd->add_option("--word", opt->word, "the word to follow (its last token, at its last whole-word occurrence)")->required();
  cmd->add_option("-p,--prompt", opt->prompts, "a text holding the word; give it again for each context");
  cmd->add_option("-f,--file", opt->files, "a file holding a text (bytes exactly as they are); may be repeated");
  cmd->add_flag("--json", opt->json, "print JSON instead (see below)");
  cmd->add_option("--html", opt->html, "also write a page with the curves and matrices to explore in a browser");
  add_color_option(cmd, opt->color, "shade the table by similarity: --color[=auto|always|never] (default auto)");
  cmd->footer(
      "In each text the word is its last whole-word occurrence (case as given), and its vector is the residual\n"
      "stream at the word's last token: layer 0 is the token + position embedding entering block 0, layer n_layer\n"
      "the stream after the last block; \"embed\" is the token embedding alone. Texts are -p's in order, then -f's.\n"
      "--json prints {\"model\", \"word\", \"texts\": [{\"text\", \"position\", \"token\"}], \"embedding\": {\"cosine\"},\n"
      "\"layers\": [{\"layer\", \"cosine\"}]}, each cosine the matrix over the texts.");
  cmd->callback([opt] { run_drift(*opt); });
}

}  // namespace gpt2::cli
