#include "cli/terminal.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <iomanip>
#include <sstream>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace gpt2::cli {

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

namespace {

// The code point starting at s[i] (valid UTF-8 assumed, as quoted() and to_valid_utf8 give) and
// its length in bytes.
uint32_t code_point(const std::string& s, size_t i, int& len) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  uint32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
  for (int k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

int columns(uint32_t cp) {
  if (cp >= 0x300 && cp <= 0x36F) return 0;  // combining diacritical marks
  const bool wide = (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) ||
                    (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
                    (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
                    (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1FAFF) ||
                    (cp >= 0x20000 && cp <= 0x3FFFD);
  return wide ? 2 : 1;
}

}  // namespace

size_t display_width(const std::string& s) {
  size_t width = 0;
  for (size_t i = 0; i < s.size();) {
    int len = 1;
    width += static_cast<size_t>(columns(code_point(s, i, len)));
    i += static_cast<size_t>(len);
  }
  return width;
}

std::string pad(const std::string& s, size_t width) {
  const size_t w = display_width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

std::string fit(const std::string& s, size_t width) {
  if (display_width(s) <= width) return pad(s, width);
  std::string out;
  size_t w = 0;
  for (size_t i = 0; i < s.size();) {
    int len = 1;
    const int c = columns(code_point(s, i, len));
    if (w + static_cast<size_t>(c) + 1 > width) break;  // room for the "…"
    out.append(s, i, static_cast<size_t>(len));
    w += static_cast<size_t>(c);
    i += static_cast<size_t>(len);
  }
  return pad(out + "\xE2\x80\xA6", width);
}

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

CLI::Option* add_color_option(CLI::App* cmd, std::string& when, const std::string& help) {
  return cmd->add_flag("--color{auto}", when, help);
}

ColorWhen color_when(const std::string& when) {
  if (when.empty()) return ColorWhen::unset;
  if (when == "auto") return ColorWhen::auto_select;
  if (when == "always") return ColorWhen::always;
  if (when == "never") return ColorWhen::never;
  throw UsageError("--color must be auto, always or never (got '" + when + "'; write --color=WHEN)");
}

bool stdout_color(ColorWhen when) {
  if (when == ColorWhen::always) return true;
  if (when == ColorWhen::never) return false;
  return isatty(STDOUT_FILENO) != 0;
}

std::string ansi_bg(int colour) { return "\033[48;5;" + std::to_string(colour) + "m"; }
std::string ansi_fg(int colour) { return "\033[38;5;" + std::to_string(colour) + "m"; }

}  // namespace gpt2::cli
