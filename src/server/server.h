// `custos server`: reads the configuration (or builds the dev one), opens storage, builds the
// core and the HTTP API, starts the listeners and serves until SIGINT/SIGTERM.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "config/config.h"
#include "storage/backend.h"

namespace custos::server {

struct ServerArgs {
  std::string config_path;
  bool dev = false;
  std::string dev_root_token_id;
  std::string dev_listen_address = "127.0.0.1:8200";
  // Dev mode trusts a simulated TEE platform kept here (created if empty; default: a new
  // temporary directory, printed at start).
  std::string dev_sim_dir;
  std::string log_level;  // overrides the config's
  // Called once every listener is up, with the first listener's address (tests, the demo).
  std::function<void(const std::string& addr)> on_ready;
};

// Returns the process exit code.
int run_server(const ServerArgs& args);

// Opens the storage a configuration names, without the read cache. `on_lock_lost`: called
// once if an etcd backend loses its lock (etcd::EtcdOptions::on_lock_lost). `ha`: honour the
// stanza's ha_enabled (a server); otherwise (a migration) the lock is taken at open.
Result<std::unique_ptr<storage::Backend>> open_storage(const config::StorageConfig& config,
                                                       std::function<void()> on_lock_lost = {},
                                                       bool ha = false);

// Process hygiene: no core dumps, memory locked (unless disabled). Errors are reported, and
// fatal only for mlock when it was asked for.
Status harden_process(bool lock_memory);

}  // namespace custos::server
