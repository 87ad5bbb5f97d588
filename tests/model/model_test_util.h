// Helpers shared by the model tests: temporary directories, file edits, tensor statistics, and
// the log lines (common/log.h) a load sends.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "common/log.h"
#include "runtime/tensor.h"

namespace gpt2 {

// A fresh directory under $TMPDIR (or /tmp), removed with its files on destruction.
struct TempDir {
  std::string path;
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/gpt2-test-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    const std::string cmd = "rm -rf '" + path + "'";
    if (std::system(cmd.c_str()) != 0) {
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct Stats {
  double mean = 0, stddev = 0, max_abs = 0;
};

inline Stats stats(const Tensor& t) {
  Stats s;
  double sum = 0, sum2 = 0;
  const float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) {
    sum += p[i];
    sum2 += static_cast<double>(p[i]) * p[i];
    s.max_abs = std::max(s.max_abs, static_cast<double>(std::abs(p[i])));
  }
  s.mean = sum / static_cast<double>(t.numel());
  s.stddev = std::sqrt(std::max(0.0, sum2 / static_cast<double>(t.numel()) - s.mean * s.mean));
  return s;
}

// Sends the log to `sink` while alive, then restores the sink before it (an empty sink: the
// default, "warning: ..." on stderr).
class ScopedLogSink {
 public:
  explicit ScopedLogSink(LogSink sink) : previous_(set_log_sink(std::move(sink))) {}
  ~ScopedLogSink() { set_log_sink(std::move(previous_)); }
  ScopedLogSink(const ScopedLogSink&) = delete;
  ScopedLogSink& operator=(const ScopedLogSink&) = delete;

 private:
  LogSink previous_;
};

// Every line logged while alive, with its level.
struct LogCapture {
  std::vector<std::pair<LogLevel, std::string>> lines;
  ScopedLogSink sink{[this](LogLevel level, const std::string& line) { lines.emplace_back(level, line); }};
};

}  // namespace gpt2
