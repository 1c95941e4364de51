#include "cli/main.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "base/encoding.h"
#include "cli/agent.h"
#include "cli/attest.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/ledger.h"
#include "cli/workload.h"
#include "server/server.h"

namespace custos::cli {
namespace {

// Vault's CLI takes single-dash long flags (-format=json, -dev); CLI11 wants two dashes.
std::vector<std::string> normalize_args(int argc, char** argv) {
  std::vector<std::string> out;
  bool after_double_dash = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (after_double_dash) {
      out.push_back(a);
      continue;
    }
    if (a == "--") {
      after_double_dash = true;
      out.push_back(a);
      continue;
    }
    if (a.size() > 2 && a[0] == '-' && a[1] != '-' && std::isalpha(static_cast<unsigned char>(a[1]))) {
      a = "-" + a;
    }
    out.push_back(a);
  }
  return out;
}

}  // namespace

int run_main(int argc, char** argv) {
  // `custos run ... -- PROGRAM ARGS`: everything after "--" belongs to the program.
  CLI::App app{"Custos: attested secrets. One binary: server, client and workload tools.\n"
               "Client commands read CUSTOS_ADDR/CUSTOS_TOKEN (or VAULT_ADDR/VAULT_TOKEN)."};
  app.name("custos");
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");
  app.fallthrough();  // -format may follow any subcommand, as in the vault CLI

  Globals g;
  app.add_option("--format", g.format, "Output format: table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->default_val("table");
  app.add_option("--wrap-ttl", g.wrap_ttl,
                 "Wrap the response in a single-use token valid this long (e.g. 5m); "
                 "`custos unwrap` opens it (docs/wrapping.md)");

  // server
  server::ServerArgs sargs;
  auto* srv = app.add_subcommand("server", "Run the Custos server");
  srv->add_option("--config", sargs.config_path, "Configuration file (HCL, docs/configuration.md)");
  srv->add_flag("--dev", sargs.dev, "Dev mode: in-memory storage, initialized and unsealed, root token printed");
  srv->add_option("--dev-root-token-id", sargs.dev_root_token_id, "Root token to use in dev mode");
  srv->add_option("--dev-listen-address", sargs.dev_listen_address, "Dev listener address")
      ->default_val("127.0.0.1:8200");
  srv->add_option("--log-level", sargs.log_level, "trace, debug, info, warn, error");
  srv->add_option("--dev-sim-dir", sargs.dev_sim_dir,
                  "Dev mode: directory of the simulated TEE platform (created if empty)");

  register_client_commands(app, g);
  register_attest_commands(app, g);
  register_agent_commands(app, g);
  register_workload_commands(app, g);  // after agent: it extends the `agent` command
  register_ledger_commands(app, g);

  auto args = normalize_args(argc, argv);
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (srv->parsed()) return server::run_server(sargs);
  return g.exit_code;
}

}  // namespace custos::cli
