// PLACEHOLDER: `gpt2 generate` is being written.
#include "cli/commands.h"
#include "common/error.h"

namespace gpt2::cli {

void add_generate_command(CLI::App& app) {
  app.add_subcommand("generate", "(not built yet)")->callback([] { throw Error("generate is not built yet"); });
}

}  // namespace gpt2::cli
