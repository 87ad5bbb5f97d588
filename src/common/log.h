// The log sink: library code reports notes (a fallback taken, a capture refused, a tokenizer
// that differs) through log_note(), never by writing to stderr itself. The program decides
// where they go: the CLI keeps the default (stderr, "note: " first), a server or a test may
// collect them. Thread-safe: calls are serialized.
#pragma once

#include <functional>
#include <string>

namespace gpt2 {

enum class LogLevel { note, warning };

// Receives one line, without a trailing newline.
using LogSink = std::function<void(LogLevel level, const std::string& line)>;

// Replaces the sink (an empty one restores the default: "note: <line>" or "warning: <line>" on
// stderr); returns the previous one.
LogSink set_log_sink(LogSink sink);

// Sends one line to the sink.
void log_note(const std::string& line);
void log_warning(const std::string& line);

}  // namespace gpt2
