#include "common/log.h"

#include <iostream>
#include <mutex>
#include <utility>

namespace gpt2 {
namespace {

std::mutex& log_mutex() {
  static std::mutex m;
  return m;
}

LogSink& current_sink() {
  static LogSink sink;
  return sink;
}

}  // namespace

LogSink set_log_sink(LogSink sink) {
  std::lock_guard<std::mutex> lock(log_mutex());
  return std::exchange(current_sink(), std::move(sink));
}

namespace {

void log_line(LogLevel level, const std::string& line) {
  std::lock_guard<std::mutex> lock(log_mutex());
  if (current_sink()) current_sink()(level, line);
  else std::cerr << (level == LogLevel::note ? "note: " : "warning: ") << line << "\n" << std::flush;
}

}  // namespace

void log_note(const std::string& line) { log_line(LogLevel::note, line); }
void log_warning(const std::string& line) { log_line(LogLevel::warning, line); }

}  // namespace gpt2
