// The scheduler (see scheduler.h for the step's data flow).
#include "engine/scheduler.h"

#include "common/order.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace gpt2 {

// ---- stop strings ---------------------------------------------------------------------------

StopMatcher::StopMatcher(std::vector<std::string> stop) : stop_(std::move(stop)) {
  for (const std::string& s : stop_) {
    if (s.empty()) throw UsageError("--stop must not be empty");
  }
}

std::string StopMatcher::push(const std::string& text) {
  if (stopped_) return {};
  held_ += text;
  // The earliest complete stop string wins. A match can only start inside the held text:
  // everything released before could not begin one.
  size_t cut = std::string::npos;
  for (const std::string& s : stop_) cut = std::min(cut, held_.find(s));
  if (cut != std::string::npos) {
    std::string out = held_.substr(0, cut);
    held_.clear();
    stopped_ = true;
    return out;
  }
  // Hold back the longest end of the text that is the beginning of some stop string.
  size_t hold = 0;
  for (const std::string& s : stop_) {
    for (size_t k = std::min(s.size() - 1, held_.size()); k > hold; --k) {
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return out;
}

std::string StopMatcher::finish() {
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::length: return "length";
    case FinishReason::stop: return "stop";
    case FinishReason::eos: return "eos";
    case FinishReason::cancelled: return "cancelled";
  }
  return "?";
}

void check_prompt_fits(int n_prompt, int n_ctx) {
  if (n_prompt < n_ctx) return;
  throw Error("the prompt is " + std::to_string(n_prompt) + " tokens but the model's context is " +
              std::to_string(n_ctx) + " tokens with at least one needed for generation: shorten the prompt to " +
              std::to_string(n_ctx - 1) + " tokens or fewer (drop at least " + std::to_string(n_prompt - n_ctx + 1) +
              ")");
}

// ---- the scheduler --------------------------------------------------------------------------

struct Scheduler::Sequence {
  Sequence(uint64_t id_, Request r, const TokenText& text)
      : id(id_), request(std::move(r)), sampler(request.params.sampler, request.params.seed),
        stream(text.stream()), stop(request.params.stop), submitted(Clock::now()) {
    history = request.prompt;
    result.id = id;
    result.prompt_tokens = static_cast<int>(request.prompt.size());
  }
  double since_submit() const { return std::chrono::duration<double>(Clock::now() - submitted).count(); }
  int prompt_length() const { return static_cast<int>(request.prompt.size()); }

  uint64_t id;
  Request request;
  Sampler sampler;
  std::unique_ptr<TokenStream> stream;
  StopMatcher stop;
  Clock::time_point submitted;
  std::vector<int32_t> history;  // prompt + sampled tokens (the penalty window's source)
  int slot = -1;
  int n_fed = 0;                 // tokens of history in the KV cache
  int budget = 0;                // tokens it may sample: min(n_predict, room in the context)
  bool done = false;
  Completion result;
};

Scheduler::Scheduler(StepModel& model, const TokenText& text, const SchedulerOptions& options)
    : model_(model), text_(text), options_(options) {
  if (options_.max_queue < 0) throw UsageError("the queue size must be 0 or more");
  if (options_.prefill_chunk < 1) throw UsageError("the prefill chunk must be at least 1 token");
  n_vocab_ = options_.n_vocab > 0 ? std::min(options_.n_vocab, model_.n_vocab()) : model_.n_vocab();
}

Scheduler::~Scheduler() = default;

uint64_t Scheduler::submit(Request request) {
  const GenerationParams& p = request.params;
  if (p.n_predict < (p.prompt_logprobs ? 0 : 1))
    throw UsageError("-n must be 1 or more (got " + std::to_string(p.n_predict) + ")");
  if (p.logprobs < -1 || p.logprobs > kMaxLogprobs)
    throw UsageError("logprobs must be from 0 to " + std::to_string(kMaxLogprobs) + " (got " + std::to_string(p.logprobs) + ")");
  p.sampler.validate();
  if (request.prompt.empty()) throw Error("internal: an empty prompt (start it with <|endoftext|>)");
  check_prompt_fits(static_cast<int>(request.prompt.size()), model_.n_ctx());
  for (int32_t id : request.prompt) {
    if (id < 0 || id >= model_.n_vocab())
      throw Error("token id " + std::to_string(id) + " is outside the model's vocabulary of " +
                  std::to_string(model_.n_vocab()));
  }
  StopMatcher(p.stop);  // an empty stop string is a usage error here, not later
  std::lock_guard<std::mutex> lock(mutex_);
  if (static_cast<int>(waiting_.size()) >= options_.max_queue)
    throw QueueFull("the queue is full (" + std::to_string(options_.max_queue) + " requests waiting)");
  const uint64_t id = next_id_++;
  waiting_.push_back(std::make_unique<Sequence>(id, std::move(request), text_));
  return id;
}

void Scheduler::cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  cancelled_.insert(id);
}

int Scheduler::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(waiting_.size());
}

int Scheduler::running() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return n_running_;
}

void Scheduler::run_until_idle() {
  while (step()) {
  }
}

void Scheduler::emit(Sequence& s, const std::string& text) {
  if (text.empty()) return;
  s.result.text += text;
  if (s.request.on_text) s.request.on_text(text);
}

void Scheduler::finish(Sequence& s, FinishReason reason) {
  if (reason != FinishReason::cancelled) {
    // Bytes held back as an incomplete character, then text held back as a possible stop string;
    // a stop string can also complete in those last bytes.
    if (reason != FinishReason::stop) emit(s, s.stop.push(s.stream->finish()));
    if (!s.stop.stopped()) emit(s, s.stop.finish());
    if (s.stop.stopped()) reason = FinishReason::stop;
  }
  s.result.finish_reason = reason;
  s.result.context_full = reason == FinishReason::length && s.request.params.n_predict > s.budget;
  s.done = true;
  if (s.slot >= 0) {
    model_.kv().release(s.slot);
    s.slot = -1;
  }
  if (s.request.on_done) s.request.on_done(s.result);
}

// Cancellations first (a cancelled request never takes a slot, a cancelled sequence frees its
// own), then waiting requests into free slots, oldest first.
void Scheduler::admit() {
  std::vector<std::unique_ptr<Sequence>> dropped;
  std::set<uint64_t> cancelled;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cancelled.swap(cancelled_);
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (cancelled.count((*it)->id)) {
        dropped.push_back(std::move(*it));
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& s : dropped) finish(*s, FinishReason::cancelled);
  for (auto& s : running_)
    if (!s->done && cancelled.count(s->id)) finish(*s, FinishReason::cancelled);

  std::vector<std::unique_ptr<Sequence>> admitted;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!waiting_.empty()) {
      const int slot = model_.kv().acquire();
      if (slot < 0) break;
      waiting_.front()->slot = slot;
      admitted.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
    n_running_ += static_cast<int>(admitted.size());
  }
  for (auto& s : admitted) {
    s->result.admitted_s = s->since_submit();
    s->budget = std::min(s->request.params.n_predict, model_.n_ctx() - s->prompt_length());
    running_.push_back(std::move(s));
  }
}

void Scheduler::build_batch() {
  batch_.clear();
  seq_owner_.clear();
  logit_rows_.clear();
  int rows_left = model_.max_rows();
  int seqs_left = model_.max_sequences();
  int logits_left = model_.max_logit_rows();
  // Decode rows: every sequence whose prompt is in the cache feeds its last sampled token.
  for (auto& s : running_) {
    if (s->done || s->n_fed < s->prompt_length() || rows_left == 0 || seqs_left == 0 || logits_left == 0) continue;
    batch_.add(s->slot, s->n_fed, &s->history[static_cast<size_t>(s->n_fed)], 1, Logits::last);
    seq_owner_.push_back(s.get());
    logit_rows_.push_back({s.get(), -1});
    --rows_left;
    --seqs_left;
    --logits_left;
  }
  // Prefill chunks with the rows left, oldest first. A prompt whose log-probabilities are asked
  // for brings the logits of every row (row p predicts prompt token p + 1).
  for (auto& s : running_) {
    if (s->done || s->n_fed >= s->prompt_length() || rows_left == 0 || seqs_left == 0 || logits_left == 0) continue;
    const bool all = s->request.params.prompt_logprobs;
    int n = std::min({s->prompt_length() - s->n_fed, options_.prefill_chunk, rows_left});
    if (all) n = std::min(n, logits_left);
    const bool completes = s->n_fed + n == s->prompt_length();
    batch_.add(s->slot, s->n_fed, &s->history[static_cast<size_t>(s->n_fed)], n,
               all ? Logits::all : completes ? Logits::last : Logits::none);
    seq_owner_.push_back(s.get());
    if (all) {
      for (int p = s->n_fed; p < s->n_fed + n; ++p) logit_rows_.push_back({s.get(), p + 1 < s->prompt_length() ? p + 1 : -1});
      logits_left -= n;
    } else if (completes) {
      logit_rows_.push_back({s.get(), -1});
      --logits_left;
    }
    rows_left -= n;
    --seqs_left;
  }
}

// log-softmax(row)[id] over the model's whole vocabulary in double (the row maximum subtracted,
// as `gpt2 score` computes it), and the `top` most likely of the ids the sampler may choose.
TokenLogprob Scheduler::logprob_of(const float* row, int32_t id, int top) const {
  const int V = model_.n_vocab();
  float m = -std::numeric_limits<float>::infinity();
  for (int j = 0; j < V; ++j) m = std::max(m, row[j]);
  double sum = 0;
  for (int j = 0; j < V; ++j) sum += std::exp(static_cast<double>(row[j]) - m);
  const double log_sum = std::log(sum);
  auto lp = [&](int32_t j) { return static_cast<double>(row[j]) - m - log_sum; };
  TokenLogprob t;
  t.id = id;
  t.logprob = lp(id);
  if (top > 0) {
    std::vector<int32_t> ids(static_cast<size_t>(n_vocab_));
    for (int j = 0; j < n_vocab_; ++j) ids[static_cast<size_t>(j)] = j;
    const int k = std::min(top, n_vocab_);
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                      [&](int32_t a, int32_t b) { return most_likely_first(row[a], a, row[b], b); });
    for (int i = 0; i < k; ++i) t.top.emplace_back(ids[static_cast<size_t>(i)], lp(ids[static_cast<size_t>(i)]));
  }
  return t;
}

// One token for every sequence whose row produced logits, and the prompt log-probabilities of
// the rows that predict prompt tokens. Each step either copies every logit (when any row needs
// a whole row: log-probabilities, or a sampler that must see every logit) or each row's m most
// likely (the most any row's sampler needs); a row those cannot decide exactly
// (Sampler::sample_top) fetches the step's logits after all.
void Scheduler::sample_all() {
  const int R = static_cast<int>(logit_rows_.size());
  if (R == 0) return;
  const int V = model_.n_vocab();
  auto banned_id = [&](const Sequence& s) {
    return s.request.params.ignore_eos && options_.eot >= 0 && options_.eot < n_vocab_ ? options_.eot : -1;
  };
  int m = 0;
  bool need_all = false;
  for (const LogitRow& row : logit_rows_) {
    const Sequence& s = *row.seq;
    if (row.predicts >= 0 || s.request.params.logprobs >= 0) {
      need_all = true;
      continue;
    }
    const int need = s.sampler.top_needed(s.history.size(), banned_id(s) >= 0);
    if (need == 0) need_all = true;
    m = std::max(m, need);
  }
  const bool use_top = !need_all && m > 0 && m <= model_.max_top_k() && m < n_vocab_;
  bool have_logits = false;
  auto fetch_logits = [&] {
    if (have_logits) return;
    model_.logits(logits_);
    if (logits_.size() != static_cast<size_t>(R) * V)
      throw Error("internal: the model returned " + std::to_string(logits_.size()) + " logits for " +
                  std::to_string(R) + " rows of " + std::to_string(V));
    have_logits = true;
  };
  if (use_top) {
    model_.top_k(n_vocab_, m, top_);
    if (top_.k != m || top_.ids.size() != static_cast<size_t>(R) * m || top_.invalid.size() != static_cast<size_t>(R))
      throw Error("internal: the model returned a malformed top-" + std::to_string(m));
  } else {
    fetch_logits();
  }
  for (int r = 0; r < R; ++r) {
    Sequence& s = *logit_rows_[static_cast<size_t>(r)].seq;
    const int predicts = logit_rows_[static_cast<size_t>(r)].predicts;
    if (s.done) continue;
    const GenerationParams& p = s.request.params;
    if (predicts >= 0) {  // a prompt token's log-probability
      if (s.result.prompt_logprobs.empty()) {
        s.result.prompt_logprobs.push_back(TokenLogprob{s.history[0], std::numeric_limits<double>::quiet_NaN(), {}});
      }
      s.result.prompt_logprobs.push_back(
          logprob_of(logits_.data() + static_cast<size_t>(r) * V, s.history[static_cast<size_t>(predicts)], std::max(0, p.logprobs)));
      continue;
    }
    if (p.prompt_logprobs && s.result.prompt_logprobs.empty())  // a one-token prompt
      s.result.prompt_logprobs.push_back(TokenLogprob{s.history[0], std::numeric_limits<double>::quiet_NaN(), {}});
    if (s.budget == 0) {  // the prompt alone was asked for (n_predict 0)
      finish(s, FinishReason::length);
      continue;
    }
    const int32_t banned = banned_id(s);
    const int step = static_cast<int>(s.result.tokens.size());
    int32_t id = -1;
    if (use_top && !top_.invalid[static_cast<size_t>(r)]) {
      const size_t at = static_cast<size_t>(r) * m;
      id = s.sampler.sample_top(top_.ids.data() + at, top_.logits.data() + at, m, n_vocab_, s.history, banned,
                                p.sample_index, step);
    }
    if (id < 0) {
      fetch_logits();
      float* row = logits_.data() + static_cast<size_t>(r) * V;
      const float raw = banned >= 0 ? row[banned] : 0.0f;
      if (banned >= 0) row[banned] = -std::numeric_limits<float>::infinity();
      id = s.sampler.sample(row, n_vocab_, s.history, p.sample_index, step);
      if (banned >= 0) row[banned] = raw;  // log-probabilities come from the raw row
    }
    TokenLogprob lp;
    if (p.logprobs >= 0) lp = logprob_of(logits_.data() + static_cast<size_t>(r) * V, id, p.logprobs);
    if (id == options_.eot && !p.ignore_eos) {
      finish(s, FinishReason::eos);
      continue;
    }
    s.history.push_back(id);
    s.result.tokens.push_back(id);
    s.result.token_s.push_back(s.since_submit());
    if (p.logprobs >= 0) s.result.token_logprobs.push_back(std::move(lp));
    emit(s, s.stop.push(s.stream->push(id)));
    if (s.stop.stopped()) finish(s, FinishReason::stop);
    else if (static_cast<int>(s.result.tokens.size()) == s.budget) finish(s, FinishReason::length);
  }
}

bool Scheduler::step() {
  admit();
  running_.erase(std::remove_if(running_.begin(), running_.end(), [](const auto& s) { return s->done; }),
                 running_.end());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    n_running_ = static_cast<int>(running_.size());
  }
  if (running_.empty()) return waiting() > 0;
  build_batch();
  model_.forward(batch_);
  for (int q = 0; q < batch_.sequences(); ++q) seq_owner_[static_cast<size_t>(q)]->n_fed += batch_.seq_tokens(q);
  sample_all();
  running_.erase(std::remove_if(running_.begin(), running_.end(), [](const auto& s) { return s->done; }),
                 running_.end());
  std::lock_guard<std::mutex> lock(mutex_);
  n_running_ = static_cast<int>(running_.size());
  return true;
}

}  // namespace gpt2
