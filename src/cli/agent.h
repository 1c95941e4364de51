// Workload-side commands: `custos sim init DIR` (make a simulated TEE platform) and
// `custos agent evidence` (produce evidence bound to given report data). docs/agent.md.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace custos::cli {

// Adds `sim init DIR` and `agent evidence ...` to `app`.
void register_agent_commands(CLI::App& app, Globals& g);

// Adds `sim init DIR` below `parent` (e.g. the `attest` command, giving `custos attest sim init
// DIR`); returns the `sim` subcommand. The exit status goes to g.exit_code.
CLI::App* add_sim_init_command(CLI::App* parent, Globals& g);

}  // namespace custos::cli
