#include "server/metrics.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "server/completion_response.h"

namespace gpt2::server {

namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void header(std::string& out, const std::string& name, const std::string& type, const std::string& help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void line(std::string& out, const std::string& name, double v) { out += name + " " + number(v) + "\n"; }

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t b = 0;
  while (b < bounds_.size() && v > bounds_[b]) ++b;
  ++counts_[b];
  sum_ += v;
  ++count_;
}

void Histogram::write(std::string& out, const std::string& name) const {
  uint64_t cumulative = 0;
  for (size_t b = 0; b < bounds_.size(); ++b) {
    cumulative += counts_[b];
    out += name + "_bucket{le=\"" + number(bounds_[b]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  out += name + "_sum " + number(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : ttft_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      itl_({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}) {}

void Metrics::http_response(int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++http_[status];
}

void Metrics::completion_accepted(int64_t prompt_tokens) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++accepted_;
  prompt_tokens_ += static_cast<uint64_t>(prompt_tokens);
}

void Metrics::rejected() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++rejected_;
}

void Metrics::choice_done(const Completion& c) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++finished_[c.finish_reason == FinishReason::cancelled ? "cancelled" : openai_finish_reason(c.finish_reason)];
  generated_tokens_ += c.tokens.size();
  if (!c.token_s.empty()) ttft_.observe(c.token_s.front());
  for (size_t i = 1; i < c.token_s.size(); ++i) itl_.observe(c.token_s[i] - c.token_s[i - 1]);
}

std::string Metrics::prometheus(const Gauges& g) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  header(out, "gpt2_http_requests_total", "counter", "HTTP responses sent, by status code.");
  for (const auto& [code, n] : http_) out += "gpt2_http_requests_total{code=\"" + std::to_string(code) + "\"} " + std::to_string(n) + "\n";
  header(out, "gpt2_completion_requests_total", "counter", "Completion requests accepted.");
  line(out, "gpt2_completion_requests_total", static_cast<double>(accepted_));
  header(out, "gpt2_completions_total", "counter", "Choices ended, by finish reason (stop, length, cancelled).");
  for (const char* reason : {"stop", "length", "cancelled"}) {
    const auto it = finished_.find(reason);
    out += std::string("gpt2_completions_total{finish_reason=\"") + reason + "\"} " +
           std::to_string(it == finished_.end() ? 0 : it->second) + "\n";
  }
  header(out, "gpt2_requests_rejected_total", "counter", "Completion requests refused with 503 because the slots and the queue were full.");
  line(out, "gpt2_requests_rejected_total", static_cast<double>(rejected_));
  header(out, "gpt2_prompt_tokens_total", "counter", "Prompt tokens of accepted requests.");
  line(out, "gpt2_prompt_tokens_total", static_cast<double>(prompt_tokens_));
  header(out, "gpt2_generated_tokens_total", "counter", "Tokens generated.");
  line(out, "gpt2_generated_tokens_total", static_cast<double>(generated_tokens_));
  header(out, "gpt2_queue_length", "gauge", "Sequences waiting for a slot.");
  line(out, "gpt2_queue_length", g.queue_length);
  header(out, "gpt2_slots_busy", "gauge", "KV slots holding a sequence.");
  line(out, "gpt2_slots_busy", g.slots_busy);
  header(out, "gpt2_slots_total", "gauge", "KV slots (--parallel).");
  line(out, "gpt2_slots_total", g.slots_total);
  header(out, "gpt2_model_loaded", "gauge", "1 once the model is loaded and serving.");
  line(out, "gpt2_model_loaded", g.model_loaded ? 1 : 0);
  header(out, "gpt2_time_to_first_token_seconds", "histogram", "From a choice's submission to its first token.");
  ttft_.write(out, "gpt2_time_to_first_token_seconds");
  header(out, "gpt2_inter_token_latency_seconds", "histogram", "Between consecutive tokens of a choice (decode latency).");
  itl_.write(out, "gpt2_inter_token_latency_seconds");
  header(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  line(out, "process_resident_memory_bytes", static_cast<double>(resident_memory_bytes()));
  return out;
}

int64_t resident_memory_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace gpt2::server
