// The server's counters, for GET /metrics in Prometheus' text format (version 0.0.4):
//   gpt2_http_requests_total{code}            responses sent, by status
//   gpt2_completion_requests_total            /v1/completions requests accepted
//   gpt2_completions_total{finish_reason}     choices ended: stop, length, cancelled
//   gpt2_requests_rejected_total              503s for a full queue
//   gpt2_prompt_tokens_total, gpt2_generated_tokens_total
//   gpt2_queue_length, gpt2_slots_busy, gpt2_slots_total, gpt2_model_loaded   gauges
//   gpt2_time_to_first_token_seconds          histogram: submit -> first token, per choice
//   gpt2_inter_token_latency_seconds          histogram: between consecutive tokens of a choice
//   process_resident_memory_bytes             the server's RSS (from /proc/self/statm)
// Thread-safe: one mutex, taken briefly.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/scheduler.h"

namespace gpt2::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);  // upper bounds, increasing; +Inf is implied
  void observe(double v);
  // `name`_bucket{le="..."}, _sum, _count lines.
  void write(std::string& out, const std::string& name) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // [bounds + 1], not cumulative
  double sum_ = 0;
  uint64_t count_ = 0;
};

struct Gauges {
  int queue_length = 0;
  int slots_busy = 0;
  int slots_total = 0;
  bool model_loaded = false;
};

class Metrics {
 public:
  Metrics();
  void http_response(int status);
  void completion_accepted(int64_t prompt_tokens);
  void rejected();
  // A choice has ended: its tokens, finish reason and timings (Completion::token_s).
  void choice_done(const Completion& c);
  std::string prometheus(const Gauges& gauges) const;

 private:
  mutable std::mutex mutex_;
  std::map<int, uint64_t> http_;
  uint64_t accepted_ = 0, rejected_ = 0;
  std::map<std::string, uint64_t> finished_;
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  Histogram ttft_, itl_;
};

// The process's resident set in bytes (0 when /proc is not there).
int64_t resident_memory_bytes();

}  // namespace gpt2::server
