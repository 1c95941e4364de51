// `custos operator generate-root` and `custos operator rekey`: the operations a quorum of unseal
// (or recovery) key holders authorises (docs/quorum.md), with the vault CLI's flags.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>

#include "base/status.h"
#include "cli/commands.h"

namespace custos::cli {

void register_quorum_commands(CLI::App& op, Globals& g);

// Vault's decoding of a generated root token: base64 (padding optional) XORed with the
// one-time password's characters. Fails when the lengths differ.
Result<std::string> decode_root_token(std::string_view encoded, std::string_view otp);

}  // namespace custos::cli
