// The client commands of the `custos` CLI (Vault-compatible spellings), registered on the app.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace custos::cli {

struct Globals {
  std::string format = "table";
  int exit_code = 0;
};

void register_client_commands(CLI::App& app, Globals& g);

}  // namespace custos::cli
