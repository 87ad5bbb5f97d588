// gpt2 attention: the attention weights softmax(q k^T / sqrt(head_dim)) of chosen heads on a text,
// from the q and k of the real forward pass (one observed step; inspect/heads.h recomputes the
// weights head by head, so memory grows with the heads asked for, never with T^2 per head of
// the model).
//
// Views: one head as a heatmap (rows = queries, columns = keys, the masked upper triangle blank);
// several heads compactly (for each query the key it attends to most, and the weight); --summary
// classifies every head by the pattern its attention mass falls on (inspect/heads.h); --json
// streams the weights head by head; --html writes a page to explore them (cli/html.h).
#include <algorithm>
#include <charconv>
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
#include "common/memory.h"
#include "common/thread_pool.h"
#include "inspect/heads.h"
#include "inspect/observers.h"

namespace gpt2::cli {
namespace {

using inspect::HeadRef;

struct AttentionOptions {
  ModelOptions model;
  TextInput input;
  std::vector<int> layers;  // empty: all
  std::vector<int> heads;   // empty: all
  bool summary = false;
  bool json = false;
  std::string html;
  std::string color;
};

// Heatmaps wider than this many tokens would wrap in a terminal: the rest is left to --json/--html.
constexpr int kMaxHeatmapTokens = 80;

std::vector<HeadRef> chosen_heads(const AttentionOptions& opt, const Config& config) {
  for (int l : opt.layers)
    if (l < 0 || l >= config.n_layer)
      throw UsageError("--layer " + std::to_string(l) + " is not a layer of this model: it has " +
                       std::to_string(config.n_layer) + " (0 to " + std::to_string(config.n_layer - 1) + ")");
  for (int h : opt.heads)
    if (h < 0 || h >= config.n_head)
      throw UsageError("--head " + std::to_string(h) + " is not a head of this model: each layer has " +
                       std::to_string(config.n_head) + " (0 to " + std::to_string(config.n_head - 1) + ")");
  std::vector<HeadRef> out;
  for (int l = 0; l < config.n_layer; ++l) {
    if (!opt.layers.empty() && std::find(opt.layers.begin(), opt.layers.end(), l) == opt.layers.end()) continue;
    for (int h = 0; h < config.n_head; ++h) {
      if (!opt.heads.empty() && std::find(opt.heads.begin(), opt.heads.end(), h) == opt.heads.end()) continue;
      out.push_back(HeadRef{l, h});
    }
  }
  return out;
}

std::string head_name(const HeadRef& h) { return std::to_string(h.layer) + "." + std::to_string(h.head); }

// Rows [t0, t1) of a head's weights as JSON arrays "[w00],[w10,w11],..." (shortest round-trip
// fp32 digits), appended to `out`.
void append_rows_json(std::string& out, const float* w, int t0, int t1) {
  char buf[32];
  for (int t = t0; t < t1; ++t) {
    if (t > 0) out += ',';
    out += '[';
    const float* row = w + inspect::tri_row(t);
    for (int j = 0; j <= t; ++j) {
      if (j > 0) out += ',';
      const auto r = std::to_chars(buf, buf + sizeof buf, row[j]);
      out.append(buf, r.ptr);
    }
    out += ']';
  }
}

// One head's weights as JSON, formatted in blocks of rows on the pool and written in order.
void write_head_json(std::ostream& os, const HeadRef& h, const float* w, int T, ThreadPool& pool, bool first) {
  constexpr int kRowsPerBlock = 32;
  const int n_blocks = (T + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<std::string> blocks(static_cast<size_t>(n_blocks));
  pool.parallel_for(n_blocks, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const int t0 = static_cast<int>(b) * kRowsPerBlock;
      append_rows_json(blocks[static_cast<size_t>(b)], w, t0, std::min(T, t0 + kRowsPerBlock));
    }
  });
  os << (first ? "" : ",") << "{\"layer\":" << h.layer << ",\"head\":" << h.head << ",\"weights\":[";
  for (const std::string& b : blocks) os << b;
  os << "]}";
}

nlohmann::ordered_json scores_json(const inspect::HeadScores& s) {
  return {{"previous_token", s.previous_token},
          {"duplicate_token", s.duplicate_token},
          {"induction", s.induction},
          {"first_token", s.first_token}};
}

// The key each query attends to most (ties: the earlier key), and its weight.
struct TopKey {
  int key = 0;
  float weight = 0;
};
std::vector<TopKey> top_keys(const float* w, int T) {
  std::vector<TopKey> out(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) {
    const float* row = w + inspect::tri_row(t);
    TopKey best{0, row[0]};
    for (int j = 1; j <= t; ++j)
      if (row[j] > best.weight) best = TopKey{j, row[j]};
    out[static_cast<size_t>(t)] = best;
  }
  return out;
}

std::string row_label(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, int t, size_t width) {
  std::string s = std::to_string(t);
  s = std::string(s.size() < 4 ? 4 - s.size() : 0, ' ') + s + " ";
  return s + fit(quoted(tokenizer.token_bytes(ids[static_cast<size_t>(t)])), width);
}

// Weight -> a two-column cell: characters from light to dense (readable without colour), or with
// colour a background from a dark-blue-to-yellow ramp of the 256-colour palette.
std::string heat_cell(float w, bool color) {
  if (color) {
    static const int ramp[] = {17, 18, 19, 20, 26, 32, 38, 44, 49, 84, 120, 155, 190, 226};
    const int n = static_cast<int>(sizeof ramp / sizeof ramp[0]);
    const int i = std::clamp(static_cast<int>(w * n), 0, n - 1);
    return ansi_bg(ramp[i]) + "  " + ansi_reset();
  }
  if (w < 0.05f) return "\xC2\xB7 ";                    // "· "
  if (w < 0.2f) return "\xE2\x96\x91\xE2\x96\x91";      // "░░"
  if (w < 0.4f) return "\xE2\x96\x92\xE2\x96\x92";      // "▒▒"
  if (w < 0.7f) return "\xE2\x96\x93\xE2\x96\x93";      // "▓▓"
  return "\xE2\x96\x88\xE2\x96\x88";                    // "██"
}

void print_heatmap(std::ostream& out, const HeadRef& h, const float* w, const std::vector<int32_t>& ids,
                   const Tokenizer& tokenizer, bool color) {
  const int T = static_cast<int>(ids.size());
  const int shown = std::min(T, kMaxHeatmapTokens);
  constexpr size_t kLabel = 14;
  out << "layer " << h.layer << " head " << h.head
      << ": attention weights (rows: queries, columns: keys; blank: masked, a key after its query)\n";
  // Column indices, one digit per line, each above its two-column cell.
  int digits = 1;
  for (int v = shown - 1; v >= 10; v /= 10) ++digits;
  for (int d = digits - 1; d >= 0; --d) {
    std::string line(5 + kLabel + 1, ' ');
    int p = 1;
    for (int k = 0; k < d; ++k) p *= 10;
    for (int j = 0; j < shown; ++j) {
      const bool leading = j < p && d > 0;
      line += leading ? ' ' : static_cast<char>('0' + (j / p) % 10);
      line += ' ';
    }
    out << line << "\n";
  }
  for (int t = 0; t < shown; ++t) {
    out << row_label(tokenizer, ids, t, kLabel) << " ";
    const float* row = w + inspect::tri_row(t);
    for (int j = 0; j < shown; ++j) out << (j <= t ? heat_cell(row[j], color) : std::string("  "));
    out << "\n";
  }
  if (shown < T)
    out << "(the first " << shown << " of " << T << " tokens; --json or --html FILE show them all)\n";
  out << "weight:";
  const float marks[] = {0.0f, 0.1f, 0.3f, 0.5f, 0.9f};
  const char* names[] = {" <0.05 ", " <0.2 ", " <0.4 ", " <0.7 ", " >=0.7"};
  for (int i = 0; i < 5; ++i) out << " " << heat_cell(marks[i], color) << names[i];
  out << "\n";
}

void print_compact(std::ostream& out, const std::vector<HeadRef>& heads, const std::vector<std::vector<TopKey>>& top,
                   const std::vector<int32_t>& ids, const Tokenizer& tokenizer) {
  const int T = static_cast<int>(ids.size());
  constexpr size_t kLabel = 14;
  out << "for each query (row): the key it attends to most, and that weight, per head\n";
  size_t i = 0;
  while (i < heads.size()) {
    size_t end = i;
    while (end < heads.size() && heads[end].layer == heads[i].layer) ++end;
    out << "\nlayer " << heads[i].layer << "\n" << std::string(5 + kLabel, ' ');
    for (size_t k = i; k < end; ++k) {
      const std::string name = "h" + std::to_string(heads[k].head);
      out << std::string(name.size() < 10 ? 10 - name.size() : 0, ' ') << name;
    }
    out << "\n";
    for (int t = 0; t < T; ++t) {
      out << row_label(tokenizer, ids, t, kLabel);
      for (size_t k = i; k < end; ++k) {
        const TopKey& tk = top[k][static_cast<size_t>(t)];
        const std::string key = std::to_string(tk.key);
        out << std::string(key.size() < 5 ? 5 - key.size() : 0, ' ') << key << " " << fixed(tk.weight, 2);
      }
      out << "\n";
    }
    i = end;
  }
}

struct SummaryLine {
  HeadRef head;
  inspect::HeadScores scores;
  inspect::HeadClass cls;
};

std::vector<SummaryLine> sorted_summary(std::vector<SummaryLine> lines) {
  std::stable_sort(lines.begin(), lines.end(),
                   [](const SummaryLine& a, const SummaryLine& b) { return a.cls.score > b.cls.score; });
  return lines;
}

void print_summary(std::ostream& out, const std::vector<SummaryLine>& lines, bool repeats) {
  auto right = [](const std::string& v, size_t w) { return std::string(v.size() < w ? w - v.size() : 0, ' ') + v; };
  out << "heads by the pattern their attention mass falls on (TransformerLens's head detector scores), best first\n";
  out << right("head", 5) << "   " << pad("pattern", 16) << right("score", 7) << right("previous", 10) << right("duplicate", 11)
      << right("induction", 11) << right("first", 8) << "\n";
  for (const SummaryLine& s : lines) {
    out << right(head_name(s.head), 5) << "   " << pad(inspect::head_kind_name(s.cls.kind), 16) << right(fixed(s.cls.score, 3), 7)
        << right(fixed(s.scores.previous_token, 3), 10) << right(fixed(s.scores.duplicate_token, 3), 11)
        << right(fixed(s.scores.induction, 3), 11) << right(fixed(s.scores.first_token, 3), 8) << "\n";
  }
  if (!repeats)
    out << "(no token repeats in this text, so the duplicate-token and induction scores are 0: repeat a random\n"
           " sequence of tokens to find induction heads)\n";
}

void run_attention(const AttentionOptions& opt) {
  const ColorWhen color = color_when(opt.color);
  const ModelSource source = ModelSource::parse(opt.model.model);
  const Config config = source.config();
  const std::vector<HeadRef> heads = chosen_heads(opt, config);
  const Tokenizer tokenizer = load_tokenizer(source, opt.model.verbose);
  const std::vector<int32_t> ids = inspect_ids(tokenizer, read_text(opt.input), config.n_ctx, "the text");
  const int T = static_cast<int>(ids.size());

  LoadedModel loaded = load(opt.model, source, inspect_limits({ids}));
  Gpt2& model = *loaded.model;
  inspect::QkRecorder recorder(config, heads, 0, T);
  observe_step(model, {ids}, recorder);

  ThreadPool pool(host_threads(opt.model));
  std::unique_ptr<HtmlPage> page;
  nlohmann::ordered_json meta = {{"model", model.name()}, {"tokens", tokens_json(tokenizer, ids)}};
  if (!opt.html.empty()) {
    page = std::make_unique<HtmlPage>(opt.html, PageKind::attention, "gpt2 attention: " + model.name());
    nlohmann::ordered_json data = meta;
    data["n_layer"] = config.n_layer;
    data["n_head"] = config.n_head;
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const HeadRef& h : heads) list.push_back({h.layer, h.head});
    data["heads"] = list;
    page->data(data);
  }
  const bool stream_json = opt.json && !opt.summary;
  if (stream_json) {
    const std::string prefix = meta.dump();  // {"model":...,"tokens":[...]}
    std::cout << prefix.substr(0, prefix.size() - 1) << ",\"heads\":[";
  }

  // One head at a time: its T x T weights, then everything that needs them.
  const HostMemory w_counted(mul_sizes({inspect::tri_size(T), sizeof(float)}), "one head's attention weights");
  std::vector<float> w(inspect::tri_size(T));
  std::vector<SummaryLine> summary;
  std::vector<std::vector<TopKey>> top;
  const bool heatmap = heads.size() == 1;
  std::vector<float> kept;  // the one head of a heatmap
  for (size_t i = 0; i < heads.size(); ++i) {
    inspect::attention_weights(recorder.q(i), recorder.k_t(i), T, recorder.head_dim(), w.data(), &pool);
    const bool need_scores = opt.summary || page;
    inspect::HeadScores scores;
    if (need_scores) scores = inspect::head_scores(w.data(), ids);
    if (opt.summary) summary.push_back(SummaryLine{heads[i], scores, inspect::classify(scores)});
    if (stream_json) write_head_json(std::cout, heads[i], w.data(), T, pool, i == 0);
    if (page) {
      const inspect::HeadClass cls = inspect::classify(scores);
      nlohmann::ordered_json blob = {{"kind", inspect::head_kind_name(cls.kind)}, {"scores", scores_json(scores)},
                                     {"weights", weights_base64(w.data(), w.size())}};
      page->blob(head_name(heads[i]), blob.dump());
    }
    if (!opt.json && !opt.summary) {
      if (heatmap) kept = w;
      else top.push_back(top_keys(w.data(), T));
    }
  }
  if (stream_json) std::cout << "]}\n";
  if (page) {
    page->finish();
    std::cerr << "wrote " << opt.html << "\n";
  }
  if (opt.summary) {
    summary = sorted_summary(std::move(summary));
    if (opt.json) {
      nlohmann::ordered_json list = nlohmann::ordered_json::array();
      for (const SummaryLine& s : summary)
        list.push_back({{"layer", s.head.layer},
                        {"head", s.head.head},
                        {"kind", inspect::head_kind_name(s.cls.kind)},
                        {"score", s.cls.score},
                        {"scores", scores_json(s.scores)}});
      meta["heads"] = list;
      std::cout << meta.dump() << "\n";
    } else {
      print_summary(std::cout, summary, inspect::has_repeats(ids));
    }
    return;
  }
  if (opt.json) return;
  if (heatmap) print_heatmap(std::cout, heads[0], kept.data(), ids, tokenizer, stdout_color(color));
  else print_compact(std::cout, heads, top, ids, tokenizer);
}

}  // namespace

void add_attention_command(CLI::App& app) {
  auto opt = std::make_shared<AttentionOptions>();
  CLI::App* cmd = app.add_subcommand(
      "attention", "the attention weights of chosen heads on a text: a heatmap, each query's strongest key, or head patterns");
  add_model_options(cmd, opt->model);
  add_text_input(cmd, opt->input);
  cmd->add_option("--layer", opt->layers, "layers to show, from 0 (default: all; a list: --layer 5,6)")->delimiter(',');
  cmd->add_option("--head", opt->heads, "heads of each layer to show, from 0 (default: all)")->delimiter(',');
  cmd->add_flag("--summary", opt->summary,
                "one line per head: the pattern its attention follows (previous token, duplicate token, induction, "
                "first token), best first");
  cmd->add_flag("--json", opt->json, "print JSON instead (see below)");
  cmd->add_option("--html", opt->html, "also write a page to explore the heads in a browser (self-contained)");
  add_color_option(cmd, opt->color, "colour the heatmap: --color[=auto|always|never] (default auto: on a terminal)");
  cmd->footer(
      "The weights are softmax(q k^T / sqrt(head_dim)) of each chosen head, from the q and k of the model's own\n"
      "forward pass; causal: query t sees keys 0..t. One head gives a heatmap; several give, for each query, the\n"
      "key it attends to most. --summary scores each head by the fraction of its attention mass on a pattern:\n"
      "previous token (key t-1), duplicate token (earlier keys holding the same token), induction (the key after\n"
      "such an earlier copy), first token (key 0); a head is of its best pattern when that reaches 0.3.\n"
      "--json prints {\"model\", \"tokens\": [{\"id\", \"text\"}], \"heads\": [{\"layer\", \"head\", \"weights\"}]}, where\n"
      "weights[t] lists the t + 1 weights of query t over keys 0..t; with --summary each head has \"kind\",\n"
      "\"score\" and \"scores\" instead of \"weights\", best first. The text must fit in the model's context.");
  cmd->callback([opt] { run_attention(*opt); });
}

}  // namespace gpt2::cli
