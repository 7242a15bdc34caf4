// Subcommands of apps/cmd_sweep.cpp (scaffold: registers nothing yet).
#include "apps/commands.hpp"

namespace lowbit::cli {
void add_sweep_commands(CLI::App&, Commands&) {}
}  // namespace lowbit::cli
