#include "support/postgres.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "support/ports.h"

namespace custos::testing {
namespace {

std::string random_password() {
  static constexpr char kAlnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::random_device rd;
  std::string s;
  for (int i = 0; i < 24; ++i) s += kAlnum[rd() % (sizeof(kAlnum) - 1)];
  return s;
}

// Runs a shell command; our own paths and numbers only (no untrusted input).
bool sh(const std::string& cmd) { return std::system(cmd.c_str()) == 0; }

struct ConnFree {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResFree {
  void operator()(PGresult* r) const { PQclear(r); }
};

}  // namespace

std::string pg_bin_dir() {
  const char* dir = "/usr/lib/postgresql/15/bin";
  return std::filesystem::exists(std::string(dir) + "/initdb") ? dir : "";
}

std::unique_ptr<PgCluster> PgCluster::start(std::string& error) {
  std::string bin = pg_bin_dir();
  if (bin.empty()) {
    error = "PostgreSQL 15 is not installed (/usr/lib/postgresql/15/bin)";
    return nullptr;
  }
  passwd* pw = getpwnam("nobody");
  if (pw == nullptr) {
    error = "no 'nobody' user to run PostgreSQL as";
    return nullptr;
  }
  std::string tmpl = "/tmp/custos-pg-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    error = "mkdtemp failed";
    return nullptr;
  }
  std::unique_ptr<PgCluster> c(new PgCluster());
  c->dir_ = buf.data();
  c->admin_password_ = random_password();
  if (chown(c->dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    error = "chown of the cluster dir failed";
    return nullptr;
  }
  {
    std::ofstream f(c->dir_ + "/pwfile");
    f << c->admin_password_ << "\n";
  }
  if (chown((c->dir_ + "/pwfile").c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    error = "chown of the password file failed";
    return nullptr;
  }
  std::string as_nobody = "runuser -u nobody -- ";
  std::string initdb = as_nobody + bin + "/initdb -D " + c->dir_ + "/data -U " + c->admin_user_ +
                       " --pwfile=" + c->dir_ + "/pwfile --auth-local=trust" +
                       " --auth-host=scram-sha-256 -N -E UTF8 --locale=C > " + c->dir_ +
                       "/initdb.log 2>&1";
  if (!sh(initdb)) {
    error = "initdb failed (see " + c->dir_ + "/initdb.log)";
    c->dir_.clear();  // keep the log for the failure report
    return nullptr;
  }
  std::filesystem::remove(c->dir_ + "/pwfile");
  for (int attempt = 0; attempt < 3 && !c->running_; ++attempt) {
    c->port_ = free_tcp_port();
    if (c->port_ == 0) continue;
    c->running_ = c->run_pg_ctl("start");
  }
  if (!c->running_) {
    error = "pg_ctl start failed (see " + c->dir_ + "/server.log)";
    return nullptr;
  }
  return c;
}

bool PgCluster::run_pg_ctl(const std::string& action) const {
  std::string bin = pg_bin_dir();
  std::string opts = "-c listen_addresses=127.0.0.1 -p " + std::to_string(port_) + " -k " + dir_ +
                     " -c fsync=off -c synchronous_commit=off -c full_page_writes=off" +
                     " -c max_connections=100";
  std::string cmd = "runuser -u nobody -- " + bin + "/pg_ctl -D " + dir_ + "/data -l " + dir_ +
                    "/server.log -w -t 30 ";
  if (action == "start") return sh(cmd + "-o '" + opts + "' start > /dev/null 2>&1");
  return sh(cmd + "-m fast stop > /dev/null 2>&1");
}

bool PgCluster::stop() {
  if (!running_) return true;
  if (!run_pg_ctl("stop")) {
    // Last resort: the postmaster's pid is the first line of postmaster.pid.
    std::ifstream f(dir_ + "/data/postmaster.pid");
    long pid = 0;
    if (f >> pid && pid > 1) kill(static_cast<pid_t>(pid), SIGKILL);
    for (int i = 0; i < 50 && std::filesystem::exists(dir_ + "/data/postmaster.pid"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  running_ = false;
  return true;
}

bool PgCluster::restart() {
  if (running_) return true;
  running_ = run_pg_ctl("start");
  return running_;
}

PgCluster::~PgCluster() {
  if (dir_.empty()) return;
  stop();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string PgCluster::templated_url() const {
  return "postgresql://{{username}}:{{password}}@" + host_ + ":" + std::to_string(port_) +
         "/postgres?sslmode=disable";
}

std::optional<std::string> PgCluster::query(const std::string& sql, std::string* error) const {
  std::string info = "host=" + dir_ + " port=" + std::to_string(port_) + " user=" + admin_user_ +
                     " dbname=postgres connect_timeout=5";
  std::unique_ptr<PGconn, ConnFree> c(PQconnectdb(info.c_str()));
  if (!c || PQstatus(c.get()) != CONNECTION_OK) {
    if (error != nullptr) *error = c ? PQerrorMessage(c.get()) : "out of memory";
    return std::nullopt;
  }
  std::unique_ptr<PGresult, ResFree> r(PQexec(c.get(), sql.c_str()));
  auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    if (error != nullptr) *error = PQerrorMessage(c.get());
    return std::nullopt;
  }
  if (st == PGRES_TUPLES_OK && PQntuples(r.get()) > 0 && PQnfields(r.get()) > 0) {
    return std::string(PQgetvalue(r.get(), 0, 0));
  }
  return std::string();
}

bool PgCluster::can_login(const std::string& user, const std::string& password,
                          std::string* error) const {
  const char* keys[] = {"host", "port", "user", "password", "dbname", "connect_timeout", nullptr};
  std::string port = std::to_string(port_);
  const char* vals[] = {host_.c_str(), port.c_str(), user.c_str(), password.c_str(),
                        "postgres", "5", nullptr};
  std::unique_ptr<PGconn, ConnFree> c(PQconnectdbParams(keys, vals, 0));
  if (!c || PQstatus(c.get()) != CONNECTION_OK) {
    if (error != nullptr) *error = c ? PQerrorMessage(c.get()) : "out of memory";
    return false;
  }
  std::unique_ptr<PGresult, ResFree> r(PQexec(c.get(), "SELECT 1"));
  return r && PQresultStatus(r.get()) == PGRES_TUPLES_OK;
}

bool PgCluster::role_exists(const std::string& name) const {
  // A standard-conforming SQL literal (quotes doubled): never unquoted input in SQL.
  std::string quoted = "'";
  for (char ch : name) quoted += ch == '\'' ? std::string("''") : std::string(1, ch);
  quoted += "'";
  auto v = query("SELECT count(*) FROM pg_roles WHERE rolname = " + quoted);
  return v && *v != "0";
}

}  // namespace custos::testing
