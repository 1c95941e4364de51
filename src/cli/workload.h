// Workload-side commands (issue #5): `custos agent fetch`, `custos run`, `custos bench release`.
// `agent` and `bench` are looked up on the app and created only when absent, so these commands
// join whatever other `agent` / `bench` subcommands are registered (before or after this call,
// provided the other registration also looks its parent up instead of adding it twice).
#pragma once

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace custos::cli {

void register_workload_commands(CLI::App& app, Globals& g);

}  // namespace custos::cli
