// Text for the terminal, shared by the commands that print tables and colour: tokens as quoted
// one-line strings, display widths (wide characters take two columns), fixed-point numbers, and
// --color[=auto|always|never].
#pragma once

#include <cstddef>
#include <string>

#include <CLI/CLI.hpp>

namespace gpt2::cli {

// A token as a quoted, one-line string: control characters are escaped (so "\n" or "\t" tokens
// keep a table aligned), and so are the non-ASCII bytes of a token that holds part of a UTF-8
// character (GPT-2 splits many CJK characters and emoji over two or three tokens), so that the
// table shows its bytes rather than U+FFFD.
std::string quoted(const std::string& bytes);

// Terminal columns of a UTF-8 string: East Asian wide characters and emoji take two columns,
// combining marks none, everything else one (a short form of wcwidth).
size_t display_width(const std::string& s);
// s padded with spaces to `width` columns (never cut).
std::string pad(const std::string& s, size_t width);
// s cut to at most `width` columns (the cut marked with "…"), then padded to `width`.
std::string fit(const std::string& s, size_t width);
// v with `digits` digits after the point.
std::string fixed(double v, int digits);

// --color[=WHEN]: given alone it means auto. Where the option is absent the command chooses.
enum class ColorWhen { unset, auto_select, always, never };
// Registers --color on `cmd` into `when` (the raw text; parse it with color_when).
CLI::Option* add_color_option(CLI::App* cmd, std::string& when, const std::string& help);
// "" -> unset, "auto", "always", "never"; anything else: gpt2::UsageError.
ColorWhen color_when(const std::string& when);
// Whether to write ANSI colour to stdout: always, or auto/unset when stdout is a terminal.
bool stdout_color(ColorWhen when);

// ANSI 256-colour background / foreground, and the reset.
std::string ansi_bg(int colour);
std::string ansi_fg(int colour);
inline const char* ansi_reset() { return "\033[0m"; }

}  // namespace gpt2::cli
