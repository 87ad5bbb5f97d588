// PLACEHOLDER: `gpt2 tokenize` is being written.
#include "cli/commands.h"
#include "common/error.h"

namespace gpt2::cli {

void add_tokenize_command(CLI::App& app) {
  app.add_subcommand("tokenize", "(not built yet)")->callback([] { throw Error("tokenize is not built yet"); });
}

}  // namespace gpt2::cli
