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
#include "cli/score_windows.h"
#include "common/error.h"
#include "common/files.h"

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
};

struct ScoredToken {
  int32_t id = 0;
  bool scored = false;
  double logprob = 0;
};

struct NextToken {
  int32_t id = 0;
  double logprob = 0;
};

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

ScoreResult score_tokens(Gpt2& model, const std::vector<int32_t>& seq, int n_prefix, int window, int stride,
                         int top, int n_listable) {
  const int n = static_cast<int>(seq.size());
  const int n_vocab = model.config().n_vocab;
  const std::vector<ScoreWindow> plan = plan_score_windows(n, window, stride);

  std::vector<ScoredToken> scored(seq.size());
  for (size_t i = 0; i < seq.size(); ++i) scored[i].id = seq[i];

  ScoreResult result;
  ProgressBar progress(static_cast<int>(plan.size()), isatty(STDERR_FILENO) != 0);
  std::vector<float> logits;
  for (size_t w = 0; w < plan.size(); ++w) {
    const ScoreWindow& win = plan[w];
    model.reset();  // every window starts from an empty cache: positions 0..len-1
    model.forward(seq.data() + win.begin, 1, win.end - win.begin, Logits::all, logits);  // [len, V]
    for (int i = win.first_scored; i < win.end; ++i) {
      const float* row = logits.data() + static_cast<size_t>(i - 1 - win.begin) * n_vocab;
      const LogSoftmaxRow lsm = checked_log_softmax(row, n_vocab, i - 1);
      scored[static_cast<size_t>(i)].logprob = lsm.logprob(row, seq[static_cast<size_t>(i)]);
      scored[static_cast<size_t>(i)].scored = true;
    }
    if (w + 1 == plan.size()) {  // the last window ends at the last token: what comes next
      const float* row = logits.data() + static_cast<size_t>(win.end - 1 - win.begin) * n_vocab;
      const LogSoftmaxRow lsm = checked_log_softmax(row, n_vocab, win.end - 1);
      // Only ids the tokenizer can show: a model may pad its vocabulary past the tokenizer's
      // (50304 rows for GPT-2's 50257 tokens); those rows are never real tokens.
      for (int32_t id : top_ids(row, std::min(n_vocab, n_listable), top))
        result.next.push_back(NextToken{id, lsm.logprob(row, id)});
    }
    progress.update(static_cast<int>(w + 1));
  }

  result.tokens.assign(scored.begin() + n_prefix, scored.end());
  for (const ScoredToken& t : result.tokens) {
    if (!t.scored) continue;
    result.total_logprob += t.logprob;
    ++result.n_scored;
  }
  return result;
}

double perplexity(const ScoreResult& r) { return std::exp(-r.total_logprob / r.n_scored); }

std::string token_text(const Tokenizer& tokenizer, int32_t id) { return to_valid_utf8(tokenizer.token_bytes(id)); }

// A token as a quoted, one-line string for the table: control characters are escaped, so that
// "\n" or "\t" tokens keep the table aligned, and so are the non-ASCII bytes of a token that
// holds part of a UTF-8 character (GPT-2 splits many CJK characters and emoji over two or three
// tokens), so that the table shows its bytes rather than U+FFFD.
std::string quoted(const std::string& bytes) {
  const bool valid_utf8 = to_valid_utf8(bytes) == bytes;
  std::string out = "\"";
  for (unsigned char c : bytes) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      default:
        if (c < 0x20 || c == 0x7f || (c >= 0x80 && !valid_utf8)) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// Terminal columns of a UTF-8 string, for padding the table: East Asian wide characters and
// emoji take two columns, combining marks none, everything else one (a short form of wcwidth).
size_t display_width(const std::string& s) {
  size_t width = 0;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;  // valid UTF-8 (to_valid_utf8)
    uint32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
    for (int k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    i += static_cast<size_t>(len);
    if (cp >= 0x300 && cp <= 0x36F) continue;  // combining diacritical marks
    const bool wide = (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) ||
                      (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
                      (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
                      (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1FAFF) ||
                      (cp >= 0x20000 && cp <= 0x3FFFD);
    width += wide ? 2 : 1;
  }
  return width;
}

std::string pad(const std::string& s, size_t width) {
  const size_t w = display_width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

// Background colour of a token by its probability (ANSI 256-colour palette): green for
// likely tokens through yellow and orange to red for surprising ones.
const char* shade(double prob) {
  if (prob >= 0.5) return "\033[30;48;5;114m";
  if (prob >= 0.1) return "\033[30;48;5;186m";
  if (prob >= 0.01) return "\033[30;48;5;216m";
  return "\033[30;48;5;210m";
}

// The text with each token's background shaded by its probability. Tokens that together make up
// one UTF-8 character are printed as one group (an escape sequence inside a character would
// break it), shaded by the probability of the whole group.
void print_shaded_text(std::ostream& out, const ScoreResult& r, const Tokenizer& tokenizer) {
  const char* reset = "\033[0m";
  std::string pending;          // bytes of the current group
  double pending_logprob = 0;   // sum over its scored tokens
  bool pending_scored = false;  // whether any of them was scored
  auto flush = [&] {
    if (pending.empty()) return;
    const std::string text = to_valid_utf8(pending);
    if (pending_scored) out << shade(std::exp(pending_logprob)) << text << reset;
    else out << text;
    pending.clear();
    pending_logprob = 0;
    pending_scored = false;
  };
  for (const ScoredToken& t : r.tokens) {
    pending += tokenizer.token_bytes(t.id);
    if (t.scored) {
      pending_logprob += t.logprob;
      pending_scored = true;
    }
    // Complete characters, or bytes that no continuation can make valid (longer than a character).
    if (to_valid_utf8(pending) == pending || pending.size() > 8) flush();
  }
  flush();
  out << "\n" << shade(0.9) << " p>=0.5 " << reset << " " << shade(0.2) << " p>=0.1 " << reset << " " << shade(0.02)
      << " p>=0.01 " << reset << " " << shade(0.001) << " p<0.01 " << reset << "\n\n";
}

void print_table(std::ostream& out, const ScoreResult& r, const Tokenizer& tokenizer, const std::string& model_name,
                 int top) {
  out << "model: " << model_name << "   tokens: " << r.tokens.size() << " (" << r.n_scored << " scored)\n\n";
  out << "     #      id  token                     logprob       prob\n";
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    const ScoredToken& t = r.tokens[i];
    out << std::setw(6) << i << std::setw(8) << t.id << "  " << pad(quoted(tokenizer.token_bytes(t.id)), 22);
    if (t.scored) out << std::setw(12) << fixed(t.logprob, 4) << std::setw(11) << fixed(std::exp(t.logprob), 6);
    else out << std::setw(12) << "-" << std::setw(11) << "-";
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

void run_score(const ScoreOptions& opt) {
  if (opt.top < 0) throw UsageError("--top must be 0 or more (got " + std::to_string(opt.top) + ")");
  if (opt.window < 0 || opt.window == 1)
    throw UsageError("--window must be at least 2 tokens (got " + std::to_string(opt.window) + ")");
  if (opt.stride < 0) throw UsageError("--stride must be at least 1 token (got " + std::to_string(opt.stride) + ")");

  const Config config = peek_config(opt.model.model);
  const int window = opt.window > 0 ? opt.window : config.n_ctx;
  if (window > config.n_ctx)
    throw UsageError("--window " + std::to_string(window) + " exceeds the model's context of " +
                     std::to_string(config.n_ctx) + " tokens");
  const int stride = opt.stride > 0 ? opt.stride : std::max(1, window / 2);
  if (stride > window)
    throw UsageError("--stride " + std::to_string(stride) + " exceeds --window " + std::to_string(window));

  const std::string text = read_text(opt.input);
  if (text.empty()) throw Error("nothing to score: the text is empty");

  // The text is tokenized before the weights are loaded, so that the step limits fit it.
  const Tokenizer tokenizer = load_tokenizer(opt.model.model);
  std::vector<int32_t> seq;
  if (opt.bos) seq.push_back(tokenizer.eot());
  const std::vector<int32_t> ids = tokenizer.encode(text);
  seq.insert(seq.end(), ids.begin(), ids.end());
  const int n_prefix = opt.bos ? 1 : 0;

  RunLimits limits;
  limits.max_batch = 1;
  limits.max_tokens = std::min(window, static_cast<int>(seq.size()));
  limits.all_logits = true;
  LoadedModel loaded = load(opt.model, limits, tokenizer);
  Gpt2& model = *loaded.model;
  const int top = std::min({opt.top, model.config().n_vocab, loaded.tokenizer.n_vocab()});

  const ScoreResult result = score_tokens(model, seq, n_prefix, window, stride, top, loaded.tokenizer.n_vocab());
  if (opt.json) {
    std::cout << to_json(result, loaded.tokenizer, model.name()).dump() << "\n";
    return;
  }
  if (isatty(STDOUT_FILENO)) print_shaded_text(std::cout, result, loaded.tokenizer);
  print_table(std::cout, result, loaded.tokenizer, model.name(), top);
}

}  // namespace

void add_score_command(CLI::App& app) {
  auto opt = std::make_shared<ScoreOptions>();
  CLI::App* cmd = app.add_subcommand(
      "score", "per-token log-probabilities, the most likely next tokens, and the perplexity of a text");
  add_model_options(cmd, opt->model);
  add_text_input(cmd, opt->input);
  cmd->add_option("--top", opt->top, "how many most likely next tokens to list (after the last token)")
      ->capture_default_str();
  cmd->add_flag("--bos", opt->bos,
                "prepend <|endoftext|>, so that the first token is scored too (as the start of a document)");
  cmd->add_flag("--json", opt->json, "print one JSON object instead of the table");
  cmd->add_option("--window", opt->window, "tokens per forward pass (default: the model's context, 1024 for GPT-2)");
  cmd->add_option("--stride", opt->stride, "tokens between the starts of consecutive windows (default: window / 2)");
  cmd->footer(
      "Texts longer than --window tokens are scored with a sliding window (Hugging Face's strided\n"
      "perplexity): windows of --window tokens start every --stride tokens, and each window scores only\n"
      "the tokens no earlier window scored, so every token sees up to window - stride tokens of left\n"
      "context. With --stride equal to --window the windows do not overlap and the first token of each\n"
      "window is left unscored (as if each chunk were scored on its own). The first token of the text is\n"
      "scored only with --bos. perplexity = exp(-total_logprob / scored tokens).\n"
      "--json prints {\"model\", \"n_tokens\", \"tokens\": [{\"id\", \"text\", \"logprob\"}],\n"
      "\"next\": [{\"id\", \"text\", \"logprob\", \"prob\"}], \"total_logprob\", \"perplexity\"}.");
  cmd->callback([opt] { run_score(*opt); });
}

}  // namespace gpt2::cli
