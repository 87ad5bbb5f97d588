// One file per subcommand; each registers itself on the root app.
#pragma once

#include <memory>

#include <CLI/CLI.hpp>

namespace gpt2::cli {

// The root app with every subcommand below registered (app.cpp); parsing argv with it runs the
// chosen subcommand's callback.
std::unique_ptr<CLI::App> make_app();

void add_tokenize_command(CLI::App& app);
void add_score_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_bench_command(CLI::App& app);
// Seeing inside the model (src/inspect/): attention weights, the logit lens, a word's drift.
void add_attention_command(CLI::App& app);
void add_lens_command(CLI::App& app);
void add_drift_command(CLI::App& app);
void add_serve_command(CLI::App& app);

}  // namespace gpt2::cli
