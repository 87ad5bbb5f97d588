// One file per subcommand; each registers itself on the root app.
#pragma once

#include <CLI/CLI.hpp>

namespace gpt2::cli {

void add_tokenize_command(CLI::App& app);
void add_score_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_bench_command(CLI::App& app);

}  // namespace gpt2::cli
