// gpt2 score: how likely the model finds a text. For every token, log p(token | tokens before
// it); after the last token, the most likely next tokens; in total, the log-probability of the
// text and its perplexity exp(-total / n_scored).
//
// A text longer than the window is scored with overlapping windows (see plan_score_windows in
// score_windows.h): every window is one prefill from an empty KV cache with logits of every
// position, and log-softmax is taken in double after subtracting the row maximum.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/html.h"
#include "cli/score_windows.h"
#include "cli/terminal.h"
#include "common/error.h"
#include "common/files.h"
#include "common/memory.h"
#include "inspect/lens.h"

namespace gpt2::cli {
namespace {

struct ScoreOptions {
  ModelOptions model;
  TextInput input;
  int top = 10;
  bool bos = false;
  bool json = false;
  int window = 0;  // 0: the model's n_ctx
  int stride = 0;  // 0: window / 2
  std::string color;  // --color[=WHEN]: colour by rank (GLTR); "" = today's probability shading
  std::string html;
};

struct ScoredToken {
  int32_t id = 0;
  bool scored = false;
  double logprob = 0;
  int64_t rank = 0;  // 1 = the model's most likely token there (only with ranks wanted)
};

struct NextToken {
  int32_t id = 0;
  double logprob = 0;
};

// Sequences per scoring step at most: each holds a KV slot of a whole context.
constexpr int kMaxScoreSlots = 8;

struct ScoreResult {
  std::vector<ScoredToken> tokens;  // the text's tokens (without the --bos token)
  std::vector<NextToken> next;      // most likely first
  double total_logprob = 0;
  int n_scored = 0;
};


// "[#####     ] 3/10 windows" redrawn in place on stderr; only when stderr is a terminal, so
// that logs and pipes never see carriage returns.
class ProgressBar {
 public:
  ProgressBar(int total, bool enabled) : total_(total), enabled_(enabled && total > 1) {}
  ~ProgressBar() {
    if (shown_) std::cerr << "\r\033[K" << std::flush;  // erase the bar
  }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(int done) {
    if (!enabled_) return;
    constexpr int width = 30;
    const int filled = total_ > 0 ? done * width / total_ : width;
    std::cerr << "\rscoring [" << std::string(static_cast<size_t>(filled), '#')
              << std::string(static_cast<size_t>(width - filled), ' ') << "] " << done << "/" << total_
              << " windows" << std::flush;
    shown_ = true;
  }

 private:
  int total_;
  bool enabled_;
  bool shown_ = false;
};

// log-softmax of the logits after token `pos`; NaN or infinite logits (corrupt or overflowing
// weights) are an error rather than NaN log-probabilities.
LogSoftmaxRow checked_log_softmax(const float* row, int n_vocab, int pos) {
  const LogSoftmaxRow lsm = log_softmax_row(row, n_vocab);
  if (!std::isfinite(lsm.max) || !std::isfinite(lsm.log_sum))
    throw Error("the model produced NaN or infinite logits after token " + std::to_string(pos) +
                ": its weights are corrupt or overflow");
  return lsm;
}

// One text to score: its tokens (with the --bos token), its windows, and what they found.
struct ScoreJob {
  std::vector<int32_t> seq;
  int n_prefix = 0;  // leading tokens that are not the text's (--bos)
  std::vector<ScoreWindow> plan;
  std::vector<ScoredToken> scored;
  ScoreResult result;
};

// Every window of every text is one sequence of its own, from position 0 of a fresh KV slot,
// with the logits of all its rows; windows of several texts share a step while its rows and
// slots last, so many short files cost a few steps, not one each.
void score_jobs(Gpt2& model, std::vector<ScoreJob>& jobs, int top, int n_listable, int n_slots, bool want_rank) {
  const int n_vocab = model.config().n_vocab;
  const int max_rows = model.limits().max_rows;
  struct Pending {
    size_t job, window;
  };
  std::vector<Pending> queue;
  for (size_t j = 0; j < jobs.size(); ++j) {
    ScoreJob& job = jobs[j];
    job.scored.resize(job.seq.size());
    for (size_t i = 0; i < job.seq.size(); ++i) job.scored[i].id = job.seq[i];
    for (size_t w = 0; w < job.plan.size(); ++w) queue.push_back({j, w});
  }
  KvCache kv = model.make_kv_cache(n_slots);
  const HostMemory logits_counted(mul_sizes({static_cast<size_t>(model.limits().max_logit_rows),
                                             static_cast<size_t>(n_vocab), sizeof(float)}),
                                  "the logits read back");
  ProgressBar progress(static_cast<int>(queue.size()), isatty(STDERR_FILENO) != 0);
  std::vector<float> logits;
  Batch batch;
  std::vector<std::pair<Pending, int>> members;  // window and its slot, in batch order
  size_t next = 0;
  while (next < queue.size()) {
    batch.clear();
    members.clear();
    while (next < queue.size()) {
      const ScoreWindow& win = jobs[queue[next].job].plan[queue[next].window];
      const int len = win.end - win.begin;
      if (!members.empty() && (batch.rows() + len > max_rows || kv.free_slots() == 0)) break;
      const int slot = kv.acquire();
      batch.add(slot, 0, jobs[queue[next].job].seq.data() + win.begin, len, Logits::all);
      members.push_back({queue[next], slot});
      ++next;
    }
    Outputs out;
    model.forward(batch, kv, out);
    logits.resize(static_cast<size_t>(out.logits.numel()));
    model.backend().read(logits.data(), out.logits);  // [R, V]: every row of every member, in order
    size_t row0 = 0;
    for (const auto& [pending, slot] : members) {
      ScoreJob& job = jobs[pending.job];
      const ScoreWindow& win = job.plan[pending.window];
      const float* base = logits.data() + row0 * n_vocab;
      for (int i = win.first_scored; i < win.end; ++i) {
        const float* row = base + static_cast<size_t>(i - 1 - win.begin) * n_vocab;
        const LogSoftmaxRow lsm = checked_log_softmax(row, n_vocab, i - 1);
        job.scored[static_cast<size_t>(i)].logprob = lsm.logprob(row, job.seq[static_cast<size_t>(i)]);
        job.scored[static_cast<size_t>(i)].scored = true;
        if (want_rank)
          job.scored[static_cast<size_t>(i)].rank =
              inspect::logit_rank(row, std::min(n_vocab, n_listable), job.seq[static_cast<size_t>(i)]);
      }
      if (pending.window + 1 == job.plan.size()) {  // the last window ends at the last token: what comes next
        const float* row = base + static_cast<size_t>(win.end - 1 - win.begin) * n_vocab;
        const LogSoftmaxRow lsm = checked_log_softmax(row, n_vocab, win.end - 1);
        // Only ids the tokenizer can show: a model may pad its vocabulary past the tokenizer's
        // (50304 rows for GPT-2's 50257 tokens); those rows are never real tokens.
        for (int32_t id : top_ids(row, std::min(n_vocab, n_listable), top))
          job.result.next.push_back(NextToken{id, lsm.logprob(row, id)});
      }
      row0 += static_cast<size_t>(win.end - win.begin);
      kv.release(slot);
    }
    progress.update(static_cast<int>(next));
  }
  for (ScoreJob& job : jobs) {
    ScoreResult& r = job.result;
    r.tokens.assign(job.scored.begin() + job.n_prefix, job.scored.end());
    for (const ScoredToken& t : r.tokens) {
      if (!t.scored) continue;
      r.total_logprob += t.logprob;
      ++r.n_scored;
    }
  }
}

double perplexity(const ScoreResult& r) { return std::exp(-r.total_logprob / r.n_scored); }

std::string token_text(const Tokenizer& tokenizer, int32_t id) { return to_valid_utf8(tokenizer.token_bytes(id)); }

// Background colour of a token by its probability (ANSI 256-colour palette): green for
// likely tokens through yellow and orange to red for surprising ones.
const char* shade(double prob) {
  if (prob >= 0.5) return "\033[30;48;5;114m";
  if (prob >= 0.1) return "\033[30;48;5;186m";
  if (prob >= 0.01) return "\033[30;48;5;216m";
  return "\033[30;48;5;210m";
}

// GLTR's colours (Gehrmann et al. 2019, "GLTR: Statistical Detection and Visualization of
// Generated Text"): green for a token among the model's top 10 there, yellow top 100, red top
// 1000, purple beyond.
const char* rank_shade(int64_t rank) {
  if (rank <= 10) return "\033[30;48;5;114m";
  if (rank <= 100) return "\033[30;48;5;222m";
  if (rank <= 1000) return "\033[30;48;5;210m";
  return "\033[30;48;5;183m";
}

enum class Shading { probability, rank };

// The text with each token's background shaded by its probability or its rank. Tokens that
// together make up one UTF-8 character are printed as one group (an escape sequence inside a
// character would break it), shaded by the probability of the whole group, or by its worst rank.
void print_shaded_text(std::ostream& out, const ScoreResult& r, const Tokenizer& tokenizer, Shading shading) {
  const char* reset = "\033[0m";
  std::string pending;          // bytes of the current group
  double pending_logprob = 0;   // sum over its scored tokens
  int64_t pending_rank = 0;     // the largest rank among them
  bool pending_scored = false;  // whether any of them was scored
  auto flush = [&] {
    if (pending.empty()) return;
    const std::string text = to_valid_utf8(pending);
    if (pending_scored)
      out << (shading == Shading::rank ? rank_shade(pending_rank) : shade(std::exp(pending_logprob))) << text << reset;
    else out << text;
    pending.clear();
    pending_logprob = 0;
    pending_rank = 0;
    pending_scored = false;
  };
  for (const ScoredToken& t : r.tokens) {
    pending += tokenizer.token_bytes(t.id);
    if (t.scored) {
      pending_logprob += t.logprob;
      pending_rank = std::max(pending_rank, t.rank);
      pending_scored = true;
    }
    // Complete characters, or bytes that no continuation can make valid (longer than a character).
    if (to_valid_utf8(pending) == pending || pending.size() > 8) flush();
  }
  flush();
  out << "\n";
  if (shading == Shading::rank)
    out << "rank under the model: " << rank_shade(1) << " top 10 " << reset << " " << rank_shade(11) << " top 100 "
        << reset << " " << rank_shade(101) << " top 1000 " << reset << " " << rank_shade(1001) << " beyond " << reset
        << "\n\n";
  else
    out << shade(0.9) << " p>=0.5 " << reset << " " << shade(0.2) << " p>=0.1 " << reset << " " << shade(0.02)
        << " p>=0.01 " << reset << " " << shade(0.001) << " p<0.01 " << reset << "\n\n";
}

// With ranks (--color) the table has a "rank" column: 1 = the model's most likely token there.
void print_table(std::ostream& out, const ScoreResult& r, const Tokenizer& tokenizer, const std::string& model_name,
                 int top, bool ranks) {
  out << "model: " << model_name << "   tokens: " << r.tokens.size() << " (" << r.n_scored << " scored)\n\n";
  out << "     #      id  token                     logprob       prob" << (ranks ? "     rank" : "") << "\n";
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    const ScoredToken& t = r.tokens[i];
    out << std::setw(6) << i << std::setw(8) << t.id << "  " << pad(quoted(tokenizer.token_bytes(t.id)), 22);
    if (t.scored) out << std::setw(12) << fixed(t.logprob, 4) << std::setw(11) << fixed(std::exp(t.logprob), 6);
    else out << std::setw(12) << "-" << std::setw(11) << "-";
    if (ranks) {
      if (t.scored) out << std::setw(9) << t.rank;
      else out << std::setw(9) << "-";
    }
    out << "\n";
  }
  out << "\nnext token (top " << top << "):\n";
  for (size_t i = 0; i < r.next.size(); ++i) {
    const NextToken& t = r.next[i];
    out << std::setw(6) << i + 1 << std::setw(8) << t.id << "  " << pad(quoted(tokenizer.token_bytes(t.id)), 22)
        << std::setw(12) << fixed(t.logprob, 4) << std::setw(11) << fixed(std::exp(t.logprob), 6) << "\n";
  }
  out << "\ntotal logprob: " << fixed(r.total_logprob, 4) << "   perplexity: ";
  if (r.n_scored > 0) out << fixed(perplexity(r), 4) << " (over " << r.n_scored << " tokens)\n";
  else out << "- (no token has a predecessor to be scored against; try --bos)\n";
}

nlohmann::ordered_json to_json(const ScoreResult& r, const Tokenizer& tokenizer, const std::string& model_name) {
  nlohmann::ordered_json tokens = nlohmann::ordered_json::array();
  for (const ScoredToken& t : r.tokens) {
    tokens.push_back({{"id", t.id},
                      {"text", token_text(tokenizer, t.id)},
                      {"logprob", t.scored ? nlohmann::ordered_json(t.logprob) : nlohmann::ordered_json(nullptr)}});
  }
  nlohmann::ordered_json next = nlohmann::ordered_json::array();
  for (const NextToken& t : r.next) {
    next.push_back({{"id", t.id},
                    {"text", token_text(tokenizer, t.id)},
                    {"logprob", t.logprob},
                    {"prob", std::exp(t.logprob)}});
  }
  return {{"model", model_name},
          {"n_tokens", r.tokens.size()},
          {"tokens", tokens},
          {"next", next},
          {"total_logprob", r.total_logprob},
          {"perplexity", r.n_scored > 0 ? nlohmann::ordered_json(perplexity(r)) : nlohmann::ordered_json(nullptr)}};
}

// --html: the texts coloured by rank (cli/html.h), every token with its rank and log-prob.
void write_score_page(const std::string& path, const std::vector<ScoreJob>& jobs, const std::vector<NamedText>& texts,
                      const Tokenizer& tokenizer, const std::string& model_name) {
  nlohmann::ordered_json docs = nlohmann::ordered_json::array();
  for (size_t d = 0; d < jobs.size(); ++d) {
    const ScoreResult& r = jobs[d].result;
    nlohmann::ordered_json tokens = nlohmann::ordered_json::array();
    for (const ScoredToken& t : r.tokens)
      tokens.push_back({{"id", t.id},
                        {"text", token_text(tokenizer, t.id)},
                        {"logprob", t.scored ? nlohmann::ordered_json(t.logprob) : nullptr},
                        {"rank", t.scored ? nlohmann::ordered_json(t.rank) : nullptr}});
    docs.push_back({{"name", texts[d].name.empty() ? std::string("the text") : texts[d].name},
                    {"tokens", tokens},
                    {"n_scored", r.n_scored},
                    {"perplexity", r.n_scored > 0 ? nlohmann::ordered_json(perplexity(r)) : nullptr}});
  }
  HtmlPage page(path, PageKind::score, "gpt2 score: " + model_name);
  page.data({{"model", model_name}, {"docs", docs}});
  page.finish();
  std::cerr << "wrote " << path << "\n";
}

void run_score(const ScoreOptions& opt) {
  if (opt.top < 0) throw UsageError("--top must be 0 or more (got " + std::to_string(opt.top) + ")");
  if (opt.window < 0 || opt.window == 1)
    throw UsageError("--window must be at least 2 tokens (got " + std::to_string(opt.window) + ")");
  if (opt.stride < 0) throw UsageError("--stride must be at least 1 token (got " + std::to_string(opt.stride) + ")");

  const ModelSource source = ModelSource::parse(opt.model.model);
  const Config config = source.config();
  const int window = opt.window > 0 ? opt.window : config.n_ctx;
  if (window > config.n_ctx)
    throw UsageError("--window " + std::to_string(window) + " exceeds the model's context of " +
                     std::to_string(config.n_ctx) + " tokens");
  const int stride = opt.stride > 0 ? opt.stride : std::max(1, window / 2);
  if (stride > window)
    throw UsageError("--stride " + std::to_string(stride) + " exceeds --window " + std::to_string(window));

  const std::vector<NamedText> texts = read_texts(opt.input);
  // The texts are tokenized before the weights are loaded, so that the step limits fit them.
  const Tokenizer tokenizer = load_tokenizer(source, opt.model.verbose);
  std::vector<ScoreJob> jobs(texts.size());
  int longest_window = 1;
  int64_t total_rows = 0;
  for (size_t t = 0; t < texts.size(); ++t) {
    if (texts[t].bytes.empty())
      throw Error(texts[t].name.empty() ? std::string("nothing to score: the text is empty")
                                        : "nothing to score: " + texts[t].name + " is empty");
    ScoreJob& job = jobs[t];
    if (opt.bos) job.seq.push_back(tokenizer.eot());
    const std::vector<int32_t> ids = tokenizer.encode(texts[t].bytes);
    job.seq.insert(job.seq.end(), ids.begin(), ids.end());
    job.n_prefix = opt.bos ? 1 : 0;
    job.plan = plan_score_windows(static_cast<int>(job.seq.size()), window, stride);
    for (const ScoreWindow& w : job.plan) {
      longest_window = std::max(longest_window, w.end - w.begin);
      total_rows += w.end - w.begin;
    }
  }

  // Every text's tokens and per-token results live until the end (many large files add up).
  size_t job_bytes = 0;
  for (const ScoreJob& job : jobs)
    job_bytes = add_sizes(job_bytes, add_sizes(mul_sizes({job.seq.size(), sizeof(int32_t) + sizeof(ScoredToken)}),
                                               mul_sizes({job.plan.size(), sizeof(ScoreWindow)})));
  const HostMemory jobs_counted(job_bytes, "the tokens of " + std::to_string(jobs.size()) +
                                               (jobs.size() == 1 ? " text" : " texts"));

  // A step holds the longest window, or several shorter ones up to a full context's rows.
  RunLimits limits;
  limits.max_rows = static_cast<int>(std::min<int64_t>(total_rows, std::max(longest_window, config.n_ctx)));
  limits.max_sequences = std::min<int>(kMaxScoreSlots, limits.max_rows);
  limits.max_logit_rows = limits.max_rows;
  LoadedModel loaded = load(opt.model, source, limits);
  Gpt2& model = *loaded.model;
  const int top = std::min({opt.top, model.config().n_vocab, tokenizer.n_vocab()});

  const ColorWhen color = color_when(opt.color);
  const bool ranks = color != ColorWhen::unset || !opt.html.empty();
  score_jobs(model, jobs, top, tokenizer.n_vocab(), limits.max_sequences, ranks);
  if (!opt.html.empty()) write_score_page(opt.html, jobs, texts, tokenizer, model.name());
  for (size_t t = 0; t < jobs.size(); ++t) {
    const ScoreResult& result = jobs[t].result;
    if (opt.json) {
      nlohmann::ordered_json j = to_json(result, tokenizer, model.name());
      if (texts.size() > 1) j["file"] = texts[t].name;
      std::cout << j.dump() << "\n";
      continue;
    }
    if (texts.size() > 1) std::cout << "=== " << texts[t].name << " ===\n";
    // Without --color: probability shading on a terminal (as before); with it: ranks (GLTR), in
    // colour when stdout_color says so, and a rank column in the table either way.
    if (color == ColorWhen::unset) {
      if (isatty(STDOUT_FILENO)) print_shaded_text(std::cout, result, tokenizer, Shading::probability);
    } else if (stdout_color(color)) {
      print_shaded_text(std::cout, result, tokenizer, Shading::rank);
    }
    print_table(std::cout, result, tokenizer, model.name(), top, ranks && color != ColorWhen::unset);
    if (t + 1 < jobs.size()) std::cout << "\n";
  }
}

}  // namespace

void add_score_command(CLI::App& app) {
  auto opt = std::make_shared<ScoreOptions>();
  CLI::App* cmd = app.add_subcommand(
      "score", "per-token log-probabilities, the most likely next tokens, and the perplexity of a text");
  add_model_options(cmd, opt->model);
  add_text_input(cmd, opt->input, Files::many);
  cmd->add_option("--top", opt->top, "how many most likely next tokens to list (after the last token)")
      ->capture_default_str();
  cmd->add_flag("--bos", opt->bos,
                "prepend <|endoftext|>, so that the first token is scored too (as the start of a document)");
  cmd->add_flag("--json", opt->json, "print one JSON object instead of the table (with several -f, one per line with \"file\")");
  cmd->add_option("--window", opt->window, "tokens per forward pass (default: the model's context, 1024 for GPT-2)");
  cmd->add_option("--stride", opt->stride, "tokens between the starts of consecutive windows (default: window / 2)");
  add_color_option(cmd, opt->color,
                   "colour each token by its rank under the model (top 10/100/1000/beyond, as GLTR) and add a rank "
                   "column: --color[=auto|always|never] (auto: colour only on a terminal)");
  cmd->add_option("--html", opt->html, "also write a page of the text coloured by rank to open in a browser (self-contained)");
  cmd->footer(
      "Texts longer than --window tokens are scored with a sliding window (Hugging Face's strided\n"
      "perplexity): windows of --window tokens start every --stride tokens, and each window scores only\n"
      "the tokens no earlier window scored, so every token sees up to window - stride tokens of left\n"
      "context. With --stride equal to --window the windows do not overlap and the first token of each\n"
      "window is left unscored (as if each chunk were scored on its own). The first token of the text is\n"
      "scored only with --bos. perplexity = exp(-total_logprob / scored tokens).\n"
      "On a terminal the text is shown shaded by each token's probability; --color shows each token's rank\n"
      "under the model instead (GLTR's buckets: top 10, top 100, top 1000, beyond) with a legend, in colour on a\n"
      "terminal (--color=always: also into a pipe; --color=never: no colour), and a rank column in the table.\n"
      "--json prints {\"model\", \"n_tokens\", \"tokens\": [{\"id\", \"text\", \"logprob\"}],\n"
      "\"next\": [{\"id\", \"text\", \"logprob\", \"prob\"}], \"total_logprob\", \"perplexity\"}.");
  cmd->callback([opt] { run_score(*opt); });
}

}  // namespace gpt2::cli
