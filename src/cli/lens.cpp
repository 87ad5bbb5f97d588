// gpt2 lens: the logit lens. ln_f and the LM head applied to the residual stream after each block
// (inspect/lens.h, on the backend, inside one observed forward step), so that a person sees the
// prediction form layer by layer: for every position, each layer's most likely next tokens and
// how likely the text's actual next token already is.
#include <algorithm>
#include <cmath>
#include <cstdint>
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
#include "common/thread_pool.h"
#include "inspect/lens.h"

namespace gpt2::cli {
namespace {

struct LensOptions {
  ModelOptions model;
  TextInput input;
  int top = 5;
  bool json = false;
  std::string html;
  std::string color;
};

// Layer columns in the terminal table at most; deeper models show evenly spaced layers.
constexpr int kMaxLayerColumns = 13;

nlohmann::ordered_json lens_json(const std::vector<std::vector<inspect::LensRow>>& layers, const Tokenizer& tokenizer) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (size_t l = 0; l < layers.size(); ++l) {
    nlohmann::ordered_json positions = nlohmann::ordered_json::array();
    for (const inspect::LensRow& row : layers[l]) {
      nlohmann::ordered_json top = nlohmann::ordered_json::array();
      for (const inspect::LensCandidate& c : row.top)
        top.push_back({{"id", c.id}, {"text", to_valid_utf8(tokenizer.token_bytes(c.id))}, {"logprob", c.logprob}});
      positions.push_back({{"top", top},
                           {"target_logprob", row.has_target ? nlohmann::ordered_json(row.target_logprob) : nullptr},
                           {"target_rank", row.has_target ? nlohmann::ordered_json(row.target_rank) : nullptr}});
    }
    out.push_back({{"layer", l}, {"positions", positions}});
  }
  return out;
}

std::vector<int> shown_layers(int n_layer) {
  std::vector<int> out;
  const int n = n_layer + 1;
  if (n <= kMaxLayerColumns) {
    for (int l = 0; l < n; ++l) out.push_back(l);
    return out;
  }
  for (int i = 0; i < kMaxLayerColumns; ++i) out.push_back(static_cast<int>(std::lround(static_cast<double>(i) * n_layer / (kMaxLayerColumns - 1))));
  return out;
}

// Background of a cell by the probability of what it shows (as score's shading).
std::string shade(double prob) {
  const int colour = prob >= 0.5 ? 114 : prob >= 0.1 ? 186 : prob >= 0.01 ? 216 : 210;
  return "\033[30m" + ansi_bg(colour);
}

void print_lens(std::ostream& out, const std::vector<std::vector<inspect::LensRow>>& layers, const std::vector<int32_t>& ids,
                const Tokenizer& tokenizer, int top, bool color) {
  const int T = static_cast<int>(ids.size());
  const int n_layer = static_cast<int>(layers.size()) - 1;
  const std::vector<int> cols = shown_layers(n_layer);
  constexpr size_t kLabel = 12, kCell = 10;
  auto text = [&](int32_t id) { return quoted(tokenizer.token_bytes(id)); };
  out << "logit lens: each layer's most likely next token after each token (layer 0: the embeddings; layer "
      << n_layer << ": the model's output)\n";
  out << "*: it is the text's next token";
  if (color) out << "; background: its probability (" << shade(0.9) << " >=0.5 " << ansi_reset() << " " << shade(0.2)
                 << " >=0.1 " << ansi_reset() << " " << shade(0.02) << " >=0.01 " << ansi_reset() << " " << shade(0.001)
                 << " <0.01 " << ansi_reset() << ")";
  out << "\n";
  if (static_cast<int>(cols.size()) < n_layer + 1) out << "(every few layers; --json or --html FILE show them all)\n";
  out << "\n    #  " << pad("token", kLabel) << " " << pad("next", kLabel);
  for (int l : cols) {
    const std::string name = "L" + std::to_string(l);
    out << " " << std::string(kCell - name.size(), ' ') << name;
  }
  out << "   next: rank by layer\n";
  for (int t = 0; t < T; ++t) {
    const std::string idx = std::to_string(t);
    out << std::string(idx.size() < 5 ? 5 - idx.size() : 0, ' ') << idx << "  " << fit(text(ids[static_cast<size_t>(t)]), kLabel)
        << " " << (t + 1 < T ? fit(text(ids[static_cast<size_t>(t + 1)]), kLabel) : pad("-", kLabel));
    for (int l : cols) {
      const inspect::LensRow& row = layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
      const inspect::LensCandidate& best = row.top.front();
      const bool hit = t + 1 < T && best.id == ids[static_cast<size_t>(t + 1)];
      const std::string cell = fit((hit ? "*" : "") + text(best.id), kCell);
      out << " " << (color ? shade(std::exp(best.logprob)) + cell + ansi_reset() : cell);
    }
    if (t + 1 < T) {
      out << "   ";
      for (size_t c = 0; c < cols.size(); ++c) {
        const inspect::LensRow& row = layers[static_cast<size_t>(cols[c])][static_cast<size_t>(t)];
        out << (c ? " " : "") << row.target_rank;
      }
    }
    out << "\n";
  }
  out << "\nafter the last token, the top " << top << " by layer:\n";
  for (int l = 0; l <= n_layer; ++l) {
    const inspect::LensRow& row = layers[static_cast<size_t>(l)][static_cast<size_t>(T - 1)];
    const std::string name = "L" + std::to_string(l);
    out << std::string(name.size() < 5 ? 5 - name.size() : 0, ' ') << name;
    for (const inspect::LensCandidate& c : row.top) out << "  " << fit(text(c.id), kLabel) << " " << fixed(std::exp(c.logprob), 3);
    out << "\n";
  }
}

void run_lens(const LensOptions& opt) {
  const ColorWhen color = color_when(opt.color);
  if (opt.top < 1) throw UsageError("--top must be at least 1 (got " + std::to_string(opt.top) + ")");
  const ModelSource source = ModelSource::parse(opt.model.model);
  const Config config = source.config();
  const Tokenizer tokenizer = load_tokenizer(source, opt.model.verbose);
  const std::vector<int32_t> ids = inspect_ids(tokenizer, read_text(opt.input), config.n_ctx, "the text");
  const int T = static_cast<int>(ids.size());
  const int n_listable = std::min(config.n_vocab, tokenizer.n_vocab());
  const int top = std::min(opt.top, n_listable);

  LoadedModel loaded = load(opt.model, source, inspect_limits({ids}));
  Gpt2& model = *loaded.model;
  std::vector<int32_t> targets(ids.begin() + 1, ids.end());
  targets.push_back(-1);
  ThreadPool pool(host_threads(opt.model));
  inspect::LogitLens lens(config, model.weights(), model.backend(), 0, T, targets, top, n_listable, &pool);
  observe_step(model, {ids}, lens);

  nlohmann::ordered_json meta = {{"model", model.name()}, {"tokens", tokens_json(tokenizer, ids)}};
  const nlohmann::ordered_json layers = lens_json(lens.layers(), tokenizer);
  if (!opt.html.empty()) {
    HtmlPage page(opt.html, PageKind::lens, "gpt2 lens: " + model.name());
    nlohmann::ordered_json data = meta;
    data["layers"] = layers;
    page.data(data);
    page.finish();
    std::cerr << "wrote " << opt.html << "\n";
  }
  if (opt.json) {
    meta["layers"] = layers;
    std::cout << meta.dump() << "\n";
    return;
  }
  print_lens(std::cout, lens.layers(), ids, tokenizer, top, stdout_color(color));
}

}  // namespace

void add_lens_command(CLI::App& app) {
  auto opt = std::make_shared<LensOptions>();
  CLI::App* cmd = app.add_subcommand(
      "lens", "the logit lens: the next-token prediction read from the residual stream after every block");
  add_model_options(cmd, opt->model);
  add_text_input(cmd, opt->input);
  cmd->add_option("--top", opt->top, "how many most likely tokens to keep per position and layer")->capture_default_str();
  cmd->add_flag("--json", opt->json, "print JSON instead (see below)");
  cmd->add_option("--html", opt->html, "also write a page of layers x positions to explore in a browser (self-contained)");
  add_color_option(cmd, opt->color, "shade the table by probability: --color[=auto|always|never] (default auto)");
  cmd->footer(
      "The model's final LayerNorm (ln_f) and LM head are applied to the residual stream at every layer\n"
      "boundary: layer 0 is the stream entering block 0 (token + position embeddings), layer n_layer the stream\n"
      "after the last block, whose lens is the model's output (the log-probabilities `gpt2 score` reports).\n"
      "The target of a position is the text's next token (none after the last).\n"
      "--json prints {\"model\", \"tokens\": [{\"id\", \"text\"}], \"layers\": [{\"layer\", \"positions\": [{\"top\":\n"
      "[{\"id\", \"text\", \"logprob\"}], \"target_logprob\", \"target_rank\"}]}]} (rank 1 = most likely; null at the last\n"
      "position). The text must fit in the model's context.");
  cmd->callback([opt] { run_lens(*opt); });
}

}  // namespace gpt2::cli
