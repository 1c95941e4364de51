// `custos ledger append|verify`: the client side of the ledger engine (docs/ledger.md). `verify`
// checks a log's signed tree head and, given a head saved earlier, that the log only grew since,
// with the proofs checked here rather than trusted from the server.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace custos::cli {

void register_ledger_commands(CLI::App& app, Globals& g);

}  // namespace custos::cli
