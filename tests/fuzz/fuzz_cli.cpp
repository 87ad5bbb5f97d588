// Fuzz target: the command line's option parsing (src/cli/: make_app, every subcommand's options
// and their checks) on an argv split from the input at NUL bytes. Nothing runs: the root app's
// parse-complete callback, which CLI11 calls once every option is parsed, converted and checked
// and before any subcommand's callback, throws. (Replacing the subcommands' callbacks instead
// would free the options they own while CLI11 still writes into them.)
// Each argv parses, or throws what main() turns into an exit code (CLI::ParseError, including
// --help, whose text is rendered as main would print it; gpt2::Error); anything else, or a
// crash, is a finding.
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "common/error.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args = {"gpt2"};
  std::string arg;
  for (size_t i = 0; i < size && args.size() < 64; ++i) {
    if (data[i] == 0) {
      args.push_back(arg);
      arg.clear();
    } else {
      arg += static_cast<char>(data[i]);
    }
  }
  if (!arg.empty() || (size > 0 && data[size - 1] != 0)) args.push_back(arg);
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());

  struct Parsed {};  // every option parsed and checked; the command would run now
  const std::unique_ptr<CLI::App> app = gpt2::cli::make_app();
  app->parse_complete_callback([] { throw Parsed{}; });
  try {
    app->parse(static_cast<int>(argv.size()), argv.data());
    gpt2::fuzz::fail("parse returned without its parse-complete callback");
  } catch (const Parsed&) {
  } catch (const CLI::ParseError& e) {
    std::ostringstream out, err;
    (void)app->exit(e, out, err);  // main's --help and error output, into a buffer
  } catch (const gpt2::Error&) {
  }
  return 0;
}
