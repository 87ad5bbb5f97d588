// The root CLI11 app with every subcommand registered. main() parses argv with it, which runs
// the chosen subcommand's callback; tests/fuzz/fuzz_cli.cpp parses with it and stops before any
// callback runs, so option parsing is exercised without running a command.
#include "cli/commands.h"

namespace gpt2::cli {

std::unique_ptr<CLI::App> make_app() {
  auto app = std::make_unique<CLI::App>(
      "gpt2: run GPT-2 (124M to 1.5B) from the terminal: generate, score, bench, tokenize; attention, lens, drift");
  app->require_subcommand(1);
  add_generate_command(*app);
  add_score_command(*app);
  add_bench_command(*app);
  add_tokenize_command(*app);
  add_attention_command(*app);
  add_lens_command(*app);
  add_drift_command(*app);
  add_serve_command(*app);
  return app;
}

}  // namespace gpt2::cli
