// `custos attest ...`: local attestation tools that need no server.
//   custos attest verify --type sgx|tdx|snp|tpm|sim --evidence FILE [--at RFC3339] [collateral
//       flags] [--nonce HEX] [--policy F] [--sim-dir DIR] [-format=json]
//     exit 0 genuine (and passes --policy), 1 rejected, 2 usage error
//   custos attest collateral import DIR|BUNDLE [--cache-dir DIR]
//   custos attest collateral list [--cache-dir DIR]
//   custos attest sim init DIR          (cli/agent.h: a simulated platform for --type sim)
// Contract and output fields: docs/attestation.md ("CLI").
#pragma once

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace custos::cli {

void register_attest_commands(CLI::App& app, Globals& g);

}  // namespace custos::cli
