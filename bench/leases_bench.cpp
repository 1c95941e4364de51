// Lease manager at scale, on SQLite storage through the barrier (as the server runs it):
//   1. register N leases (8 threads; sqlite group commit)       -> issue/s through the manager
//   2. "unseal": a new LeaseManager over the same storage       -> start() latency, index load time
//   3. renew                                                    -> renew/s (1 and 8 threads)
//   4. revoke-prefix of all N                                    -> seconds
//   5. with PostgreSQL 15 installed: dynamic credentials through the database engine vs a bare
//      CREATE ROLE loop through libpq (the floor)               -> issue/s each
//   leases_bench [N=100000]
// Prints one line per measurement; docs/leases.md records the numbers.
#include <libpq-fe.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/log.h"
#include "core/barrier.h"
#include "core/engines/database.h"
#include "core/leases.h"
#include "core/tokens.h"
#include "core/view.h"
#include "storage/backend.h"
#include "support/postgres.cpp"  // NOLINT(bugprone-suspicious-include): no test-support library yet

namespace {

using namespace custos;
using namespace custos::core;
using Clock = std::chrono::steady_clock;

double secs_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

class NoopEngine : public Engine {
 public:
  Result<Response> handle(Request&) override { return Response::empty(); }
  Status revoke_secret(const boost::json::object&) override {
    revoked.fetch_add(1);
    return ok_status();
  }
  std::atomic<int64_t> revoked{0};
};

std::unique_ptr<LeaseManager> manager(Barrier& barrier, std::shared_ptr<Engine> engine) {
  return std::make_unique<LeaseManager>(View(barrier, "sys/expire/"), SystemClock::instance(),
                                        [engine](const std::string& m) {
                                          return m == "database/" ? engine : nullptr;
                                        });
}

Request creds_request(const TokenEntry& token) {
  Request req;
  req.mount_point = "database/";
  req.rel_path = "creds/readonly";
  req.token = &token;
  return req;
}

void lease_numbers(int64_t n) {
  std::string dir = "/tmp/custos-leases-bench-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  storage::SqliteOptions opts;
  opts.path = dir + "/bench.db";
  auto backend = storage::open_sqlite(opts);
  if (!backend.ok()) {
    std::printf("sqlite: %s\n", backend.status().to_string().c_str());
    return;
  }
  Barrier barrier(**backend, SystemClock::instance());
  if (!barrier.initialize().ok()) return;
  auto engine = std::make_shared<NoopEngine>();
  TokenEntry token;
  token.hash = "benchtoken";

  // 1. register
  std::vector<std::string> ids(static_cast<size_t>(n));
  {
    auto m = manager(barrier, engine);
    const int threads = 8;
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> errors{0};
    auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&] {
        Request req = creds_request(token);
        Secret s;
        s.internal = {{"username", "u"}};
        // Spread expiries over a day: many time buckets, none due during the bench.
        for (int64_t i = next++; i < n; i = next++) {
          s.ttl = 3600 + (i % 86400);
          auto e = m->register_secret(req, s, 3600, 200000);
          if (e.ok()) {
            ids[static_cast<size_t>(i)] = e->lease_id;
          } else {
            ++errors;
          }
        }
      });
    }
    for (auto& t : ts) t.join();
    double s = secs_since(t0);
    std::printf("register %lld leases (8 threads, sqlite): %.1f s, %.0f leases/s, %lld errors\n",
                static_cast<long long>(n), s, static_cast<double>(n) / s,
                static_cast<long long>(errors.load()));
  }

  // 2. unseal with N leases
  {
    auto m = manager(barrier, engine);
    auto t0 = Clock::now();
    if (!m->start().ok()) return;
    double start_s = secs_since(t0);
    bool loaded = m->wait_loaded(std::chrono::minutes(5));
    double load_s = secs_since(t0);
    std::printf("unseal with %lld leases: start() returned in %.3f ms; index loaded in the "
                "background in %.2f s (%s)\n",
                static_cast<long long>(n), start_s * 1000, load_s, loaded ? "ok" : "TIMEOUT");

    // 3. renew
    const int64_t renews = std::min<int64_t>(n, 2000);
    t0 = Clock::now();
    int64_t ok = 0;
    for (int64_t i = 0; i < renews; ++i) ok += m->renew(ids[static_cast<size_t>(i)], 7200).ok();
    double s = secs_since(t0);
    std::printf("renew, 1 thread: %lld in %.2f s = %.0f renew/s (%lld ok)\n",
                static_cast<long long>(renews), s, static_cast<double>(renews) / s,
                static_cast<long long>(ok));
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> ok8{0};
    const int64_t renews8 = std::min<int64_t>(n, 8000);
    t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t) {
      ts.emplace_back([&] {
        for (int64_t i = next++; i < renews8; i = next++) {
          ok8 += m->renew(ids[static_cast<size_t>(i)], 7200).ok();
        }
      });
    }
    for (auto& t : ts) t.join();
    s = secs_since(t0);
    std::printf("renew, 8 threads: %lld in %.2f s = %.0f renew/s (%lld ok)\n",
                static_cast<long long>(renews8), s, static_cast<double>(renews8) / s,
                static_cast<long long>(ok8.load()));

    // 4. revoke-prefix
    t0 = Clock::now();
    Status st = m->revoke_prefix("database/", false);
    s = secs_since(t0);
    std::printf("revoke-prefix database/ (%lld leases): %.2f s (%s), engine calls %lld\n",
                static_cast<long long>(n), s, st.ok() ? "ok" : st.to_string().c_str(),
                static_cast<long long>(engine->revoked.load()));
    m->stop();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void database_numbers(int n) {
  std::string err;
  auto pg = custos::testing::PgCluster::start(err);
  if (!pg) {
    std::printf("database: skipped (%s)\n", err.c_str());
    return;
  }
  // Floor: CREATE ROLE over one libpq connection.
  {
    std::string info = "host=127.0.0.1 port=" + std::to_string(pg->port()) + " user=" +
                       pg->admin_user() + " password=" + pg->admin_password() + " dbname=postgres";
    PGconn* c = PQconnectdb(info.c_str());
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
      std::string sql = "CREATE ROLE \"bare_" + std::to_string(i) +
                        "\" WITH LOGIN PASSWORD 'Abcdefghij0123456789abcd' VALID UNTIL "
                        "'2099-01-01 00:00:00+0000'";
      PQclear(PQexec(c, sql.c_str()));
    }
    double s = secs_since(t0);
    std::printf("bare CREATE ROLE via libpq: %d in %.2f s = %.0f/s\n", n, s, n / s);
    PQfinish(c);
  }
  auto backend = storage::open_inmem();
  Barrier barrier(*backend, SystemClock::instance());
  if (!barrier.initialize().ok()) return;
  MountEntry mount;
  mount.path = "database/";
  mount.type = "database";
  mount.uuid = "bench";
  EngineContext ctx{View(barrier, "logical/bench/"), SystemClock::instance(), mount, 3600, 7200};
  auto e = make_database_engine(ctx, mount);
  if (!e.ok()) return;
  std::shared_ptr<Engine> engine(std::move(*e));
  auto leases = manager(barrier, engine);
  TokenEntry token;
  token.hash = "benchtoken";
  token.display_name = "bench";
  auto call = [&](Operation op, const std::string& path, boost::json::object data) {
    Request req;
    req.op = op;
    req.mount_point = "database/";
    req.rel_path = path;
    req.token = &token;
    req.data = std::move(data);
    auto r = engine->handle(req);
    if (r.ok() && r->secret) {
      auto l = leases->register_secret(req, *r->secret, 3600, 7200);
      if (!l.ok()) return false;
    }
    return r.ok();
  };
  bool ok = call(Operation::kUpdate, "config/pg",
                 {{"plugin_name", "postgresql-database-plugin"},
                  {"connection_url", pg->templated_url()},
                  {"username", pg->admin_user()},
                  {"password", pg->admin_password()},
                  {"allowed_roles", "*"}}) &&
            call(Operation::kUpdate, "roles/ro",
                 {{"db_name", "pg"},
                  {"creation_statements",
                   "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL "
                   "'{{expiration}}';"},
                  {"default_ttl", "1h"}});
  if (!ok) {
    std::printf("database: setup failed\n");
    return;
  }
  for (int threads : {1, 4}) {
    std::atomic<int> next{0};
    std::atomic<int> good{0};
    auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&] {
        while (next++ < n) good += call(Operation::kRead, "creds/ro", {});
      });
    }
    for (auto& t : ts) t.join();
    double s = secs_since(t0);
    std::printf("database creds/ (engine + lease, %d threads): %d in %.2f s = %.0f/s (%d ok)\n",
                threads, n, s, n / s, good.load());
  }
  auto t0 = Clock::now();
  Status st = leases->revoke_prefix("database/", false);
  std::printf("revoke-prefix of %d dynamic PostgreSQL roles: %.2f s (%s)\n", 2 * n, secs_since(t0),
              st.ok() ? "ok" : st.to_string().c_str());
  engine->shutdown();
}

}  // namespace

int main(int argc, char** argv) {
  custos::log::set_level(custos::log::Level::kWarn);
  // `leases_bench [COUNT]`; other arguments (scripts/bench passes Google Benchmark flags to
  // every *_bench) are ignored rather than read as a count of 0.
  int64_t n = 100000;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] >= '1' && argv[i][0] <= '9') n = std::atoll(argv[i]);
  }
  lease_numbers(n);
  database_numbers(500);
  return 0;
}
