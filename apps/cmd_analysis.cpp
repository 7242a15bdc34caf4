// Subcommands of apps/cmd_analysis.cpp (scaffold: registers nothing yet).
#include "apps/commands.hpp"

namespace lowbit::cli {
void add_analysis_commands(CLI::App&, Commands&) {}
}  // namespace lowbit::cli
