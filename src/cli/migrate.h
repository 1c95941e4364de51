// `custos operator migrate`: a stopped server's store copied to another backend.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace custos::cli {

void register_migrate_command(CLI::App& op, Globals& g);

}  // namespace custos::cli
