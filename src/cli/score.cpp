// PLACEHOLDER: `gpt2 score` is being written.
#include "cli/commands.h"
#include "common/error.h"

namespace gpt2::cli {

void add_score_command(CLI::App& app) {
  app.add_subcommand("score", "(not built yet)")->callback([] { throw Error("score is not built yet"); });
}

}  // namespace gpt2::cli
