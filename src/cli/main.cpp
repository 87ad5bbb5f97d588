// gpt2: GPT-2 inference from the command line. The one place that turns errors into exit
// codes: 0 success, 1 runtime error, 2 usage error; errors are one line starting "error:".
#include <exception>
#include <iostream>
#include <new>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "common/error.h"

namespace {

// Messages quote what the user typed (paths, option values), which may hold a newline: the
// error must stay one line, so line breaks and other control characters are escaped.
std::string one_line(const std::string& message) {
  std::string out;
  out.reserve(message.size());
  for (char c : message) {
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) out += '?';
    else out += c;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const std::unique_ptr<CLI::App> root = gpt2::cli::make_app();
  CLI::App& app = *root;
  try {
    app.parse(argc, argv);  // runs the chosen subcommand's callback
    // Output that never arrived (a full disk, a closed stdout) is a failure, not success.
    std::cout.flush();
    if (!std::cout) throw gpt2::Error("cannot write to stdout");
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << one_line(e.what()) << " (see --help)\n";
    return 2;
  } catch (const gpt2::UsageError& e) {
    std::cerr << "error: " << one_line(e.what()) << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of host memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << one_line(e.what()) << "\n";
    return 1;
  }
  return 0;
}
