// Subcommand registration for the lowbit CLI: each apps/cmd_*.cpp adds its subcommands to the
// app and returns what to run when that subcommand was given. main() (apps/lowbit.cpp) parses,
// runs the chosen command and turns every lowbit::Error into one "lowbit: error: ..." line.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace lowbit::cli {

struct Command {
  CLI::App* sub = nullptr;
  std::function<int()> run;  // exit status; throws lowbit::Error on bad input
};

using Commands = std::vector<Command>;

// apps/cmd_analysis.cpp: `bounds` (error-bound propositions).
void add_analysis_commands(CLI::App& app, Commands& out);
// apps/cmd_linear.cpp: `algorithms`, and the algorithm mode of `error`.
void add_linear_commands(CLI::App& app, Commands& out);
int run_error_algorithms(const std::string& in, const std::string& weight, const std::string& algos,
                         const std::string& wq, const std::string& aq, bool json);
// apps/cmd_mixprec.cpp: `mixprec` (mixed-precision assignment on captured layers).
void add_mixprec_commands(CLI::App& app, Commands& out);
// apps/cmd_crosscheck.cpp: `crosscheck` (GPU kernels vs the CPU reference).
void add_crosscheck_commands(CLI::App& app, Commands& out);
// apps/cmd_sweep.cpp: `sweep FILE`.
void add_sweep_commands(CLI::App& app, Commands& out);
// apps/cmd_e2e.cpp: `generate`, `evaluate` (the DiT end to end under a recipe).
void add_e2e_commands(CLI::App& app, Commands& out);

}  // namespace lowbit::cli
