// PLACEHOLDER: `gpt2 bench` is being written.
#include "cli/commands.h"
#include "common/error.h"

namespace gpt2::cli {

void add_bench_command(CLI::App& app) {
  app.add_subcommand("bench", "(not built yet)")->callback([] { throw Error("bench is not built yet"); });
}

}  // namespace gpt2::cli
