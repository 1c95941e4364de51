// The client commands of the `custos` CLI (Vault-compatible spellings), registered on the app.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace custos::cli {

struct Globals {
  std::string format = "table";
  // -wrap-ttl (or CUSTOS_WRAP_TTL / VAULT_WRAP_TTL): ask for the response to be wrapped.
  std::string wrap_ttl;
  int exit_code = 0;
};

void register_client_commands(CLI::App& app, Globals& g);

}  // namespace custos::cli
