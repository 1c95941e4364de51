// A throwaway PostgreSQL 15 cluster for tests: initdb + pg_ctl from /usr/lib/postgresql/15/bin,
// listening on 127.0.0.1 (a free port) with its unix socket in the cluster's temp dir. The admin
// user is trusted on the unix socket and needs its password over TCP (scram-sha-256), so roles
// created by the database engine must log in with their passwords. Tests run as root and initdb
// refuses root, so the cluster runs as `nobody` (runuser) in a temp dir owned by it.
// Bash twin: tests/integration/pg.sh.
#pragma once

#include <memory>
#include <optional>
#include <string>

namespace custos::testing {

class PgCluster {
 public:
  // Starts a cluster; on failure returns null and sets `error` (the caller skips or fails).
  static std::unique_ptr<PgCluster> start(std::string& error);
  ~PgCluster();  // stops the server (bounded waits, SIGKILL as the last resort), removes the dir
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  const std::string& host() const { return host_; }
  int port() const { return port_; }
  const std::string& admin_user() const { return admin_user_; }
  const std::string& admin_password() const { return admin_password_; }
  const std::string& dir() const { return dir_; }
  // Vault-style templated URL for database/config: postgresql://{{username}}:{{password}}@...
  std::string templated_url() const;

  // Runs SQL as the admin over the unix socket; the first column of the first row ("" if none),
  // or nullopt with `error` set.
  std::optional<std::string> query(const std::string& sql, std::string* error = nullptr) const;
  // Whether `user` can log in over TCP with `password` (and run SELECT 1).
  bool can_login(const std::string& user, const std::string& password,
                 std::string* error = nullptr) const;
  bool role_exists(const std::string& name) const;
  // Stops the server (kill -STOP style outage tests use stop()/restart()).
  bool stop();
  bool restart();

 private:
  PgCluster() = default;
  bool run_pg_ctl(const std::string& args) const;

  std::string dir_;
  std::string host_ = "127.0.0.1";
  int port_ = 0;
  std::string admin_user_ = "custos_admin";
  std::string admin_password_;
  bool running_ = false;
};

// Where the PostgreSQL 15 server binaries are ("" if not installed).
std::string pg_bin_dir();

}  // namespace custos::testing
