// The database secrets engine against a real, throwaway PostgreSQL 15 cluster (tests/support/
// postgres.h), with the lease manager wired as core wires it: credentials log in with their
// password over TCP, renew keeps them alive past the first TTL, revoke and expiry drop the role,
// a restart mid-lease still revokes, an outage is retried, and injection attempts stay data.
// Template rendering and name/password generation are also tested without a database.
#include "core/engines/database.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <thread>

#include "base/clock.h"
#include "core/barrier.h"
#include "core/leases.h"
#include "core/tokens.h"
#include "core/view.h"
#include "storage/backend.h"
// The shared helper has no library target of its own yet; compile it into this test.
#include "support/postgres.cpp"  // NOLINT(bugprone-suspicious-include)

namespace custos::core {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using database_internal::render_statement;
using database_internal::TemplateValues;

// Mimics PQescapeIdentifier/PQescapeLiteral (quotes doubled) for tests without a server.
std::string fake_escape(void*, std::string_view v, bool identifier) {
  char q = identifier ? '"' : '\'';
  std::string out(1, q);
  for (char c : v) {
    if (c == q) out += q;
    out += c;
  }
  return out + q;
}

TEST(DatabaseTemplate, QuotedPlaceholdersAreReplacedWithEscapedValues) {
  TemplateValues v{"v-root-ro-abc", "pa'ss", "2030-01-01 00:00:00+0000"};
  auto r = render_statement(
      "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';", v,
      fake_escape, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r,
            "CREATE ROLE \"v-root-ro-abc\" WITH LOGIN PASSWORD 'pa''ss' VALID UNTIL "
            "'2030-01-01 00:00:00+0000';");
}

TEST(DatabaseTemplate, InjectionAttemptStaysInsideTheQuotes) {
  TemplateValues v{"x\"; DROP ROLE postgres; --", "p", ""};
  auto r = render_statement("DROP ROLE \"{{name}}\"", v, fake_escape, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "DROP ROLE \"x\"\"; DROP ROLE postgres; --\"");
  auto bare = render_statement("ALTER ROLE {{username}} NOLOGIN", v, fake_escape, nullptr);
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(*bare, "ALTER ROLE \"x\"\"; DROP ROLE postgres; --\" NOLOGIN");
  auto lit = render_statement("SELECT '{{name}}'", v, fake_escape, nullptr);
  ASSERT_TRUE(lit.ok());
  EXPECT_EQ(*lit, "SELECT 'x\"; DROP ROLE postgres; --'");
}

TEST(DatabaseTemplate, RejectsUnknownAndUnterminatedFields) {
  TemplateValues v{"n", "p", "e"};
  EXPECT_FALSE(render_statement("SELECT {{nope}}", v, fake_escape, nullptr).ok());
  EXPECT_FALSE(render_statement("SELECT {{name", v, fake_escape, nullptr).ok());
  auto plain = render_statement("SELECT 1", v, fake_escape, nullptr);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, "SELECT 1");
}

TEST(DatabaseNames, UsernameAndPasswordShapes) {
  std::string u = database_internal::make_username("root\"; --", "a-very-long-role-name", 1700000000);
  EXPECT_LE(u.size(), 63u);
  EXPECT_EQ(u.rfind("v-root___--a-very-l-", 0), 0u) << u;
  for (char c : u) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << u;
  std::string long_name = database_internal::make_username(std::string(100, 'd'), std::string(100, 'r'), 1);
  EXPECT_LE(long_name.size(), 63u);
  for (int i = 0; i < 20; ++i) {
    std::string p = database_internal::make_password();
    ASSERT_EQ(p.size(), 24u);
    EXPECT_TRUE(std::isalpha(static_cast<unsigned char>(p[0])));
    for (char c : p) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)));
  }
  EXPECT_NE(database_internal::make_password(), database_internal::make_password());
}

// ---------------------------------------------------------------------------------------------
// Against PostgreSQL

class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err;
    pg_ = testing::PgCluster::start(err);
    if (!pg_) GTEST_FAIL() << "could not start PostgreSQL: " << err;
    backend_ = storage::open_inmem();
    barrier_ = std::make_unique<Barrier>(*backend_, clock_);
    ASSERT_TRUE(barrier_->initialize().ok());
    mount_.path = "database/";
    mount_.type = "database";
    mount_.uuid = "0000-database";
    token_.hash = "roothash";
    token_.display_name = "root";
    EngineContext ctx{View(*barrier_, "logical/0000-database/"), clock_, mount_, 3600, 7200};
    auto e = make_database_engine(ctx, mount_);
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    engine_ = std::shared_ptr<Engine>(std::move(*e));
    leases_ = make_leases();
  }

  void TearDown() override {
    if (leases_) leases_->stop();
    if (engine_) engine_->shutdown();
  }

  std::unique_ptr<LeaseManager> make_leases() {
    auto m = std::make_unique<LeaseManager>(View(*barrier_, "sys/expire/"), clock_,
                                            [this](const std::string& p) {
                                              return p == "database/" ? engine_ : nullptr;
                                            });
    LeaseRetryPolicy policy;
    policy.initial_backoff = 200ms;
    policy.max_backoff = 400ms;
    policy.max_attempts = 2;
    m->set_retry_policy(policy);
    return m;
  }

  Result<Response> call(Operation op, const std::string& path, json::object data = {}) {
    Request req;
    req.op = op;
    req.path = "database/" + path;
    req.mount_point = "database/";
    req.mount_type = "database";
    req.rel_path = path;
    req.data = std::move(data);
    req.token = &token_;
    auto r = engine_->handle(req);
    if (r.ok() && r->secret) {
      // What core's finish_response does.
      auto lease = leases_->register_secret(req, *r->secret, 3600, 7200);
      if (!lease.ok()) return lease.status();
      r->lease_id = lease->lease_id;
      r->lease_duration = lease->expire_time - lease->issue_time;
      r->renewable = lease->renewable;
      r->secret.reset();
    }
    return r;
  }

  void configure(const std::string& roles = "*") {
    auto c = call(Operation::kUpdate, "config/pg",
                  {{"plugin_name", "postgresql-database-plugin"},
                   {"connection_url", pg_->templated_url()},
                   {"username", pg_->admin_user()},
                   {"password", pg_->admin_password()},
                   {"allowed_roles", roles}});
    ASSERT_TRUE(c.ok()) << c.status().to_string();
  }

  void make_role(const std::string& name, const std::string& ttl, const std::string& max_ttl) {
    auto r = call(Operation::kUpdate, "roles/" + name,
                  {{"db_name", "pg"},
                   {"creation_statements",
                    json::array{"CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
                                "VALID UNTIL '{{expiration}}';",
                                "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";"}},
                   {"default_ttl", ttl},
                   {"max_ttl", max_ttl}});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }

  struct Creds {
    std::string username, password, lease_id;
  };
  Creds creds(const std::string& role) {
    auto r = call(Operation::kRead, "creds/" + role);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok()) return {};
    return {std::string(r->data->at("username").as_string()),
            std::string(r->data->at("password").as_string()), r->lease_id};
  }

  // Bounded polling: true once `pred` holds.
  template <typename P>
  bool eventually(P pred, std::chrono::milliseconds limit = 15s) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (pred()) return true;
      std::this_thread::sleep_for(100ms);
    }
    return pred();
  }

  const Clock& clock_ = SystemClock::instance();
  std::unique_ptr<testing::PgCluster> pg_;
  std::unique_ptr<storage::Backend> backend_;
  std::unique_ptr<Barrier> barrier_;
  MountEntry mount_;
  TokenEntry token_;
  std::shared_ptr<Engine> engine_;
  std::unique_ptr<LeaseManager> leases_;
};

TEST_F(DatabaseTest, ConfigVerifiesAndNeverReturnsThePassword) {
  auto bad = call(Operation::kUpdate, "config/pg",
                  {{"plugin_name", "postgresql-database-plugin"},
                   {"connection_url", pg_->templated_url()},
                   {"username", pg_->admin_user()},
                   {"password", "wrong"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(bad.status().message().find("wrong"), std::string::npos);
  auto other = call(Operation::kUpdate, "config/x", {{"plugin_name", "mysql-database-plugin"},
                                                     {"connection_url", "x"}});
  EXPECT_FALSE(other.ok());

  configure("readonly,app-*");
  auto r = call(Operation::kRead, "config/pg");
  ASSERT_TRUE(r.ok());
  std::string body = json::serialize(*r->data);
  EXPECT_EQ(body.find(pg_->admin_password()), std::string::npos) << body;
  EXPECT_EQ(r->data->at("plugin_name").as_string(), "postgresql-database-plugin");
  EXPECT_EQ(r->data->at("connection_details").as_object().at("username").as_string(),
            pg_->admin_user());
  EXPECT_EQ(r->data->at("allowed_roles").as_array().size(), 2u);
  auto list = call(Operation::kList, "config/");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->data->at("keys").as_array()[0].as_string(), "pg");

  // A password written into the URL is masked on read.
  auto literal = call(Operation::kUpdate, "config/lit",
                      {{"plugin_name", "postgresql-database-plugin"},
                       {"connection_url", "postgresql://" + pg_->admin_user() + ":" +
                                              pg_->admin_password() + "@127.0.0.1:" +
                                              std::to_string(pg_->port()) + "/postgres"}});
  ASSERT_TRUE(literal.ok()) << literal.status().to_string();
  EXPECT_EQ(literal->warnings.size(), 1u);
  auto lit_read = call(Operation::kRead, "config/lit");
  ASSERT_TRUE(lit_read.ok());
  EXPECT_EQ(json::serialize(*lit_read->data).find(pg_->admin_password()), std::string::npos);
}

TEST_F(DatabaseTest, DynamicCredentialsLoginRenewRevoke) {
  configure("readonly");
  make_role("readonly", "3s", "1h");
  auto role = call(Operation::kRead, "roles/readonly");
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(role->data->at("default_ttl").as_int64(), 3);
  auto roles = call(Operation::kList, "roles/");
  ASSERT_TRUE(roles.ok());

  Creds c = creds("readonly");
  ASSERT_FALSE(c.username.empty());
  EXPECT_EQ(c.lease_id.rfind("database/creds/readonly/", 0), 0u);
  EXPECT_LE(c.username.size(), 63u);
  std::string err;
  EXPECT_TRUE(pg_->can_login(c.username, c.password, &err)) << err;
  EXPECT_FALSE(pg_->can_login(c.username, "wrong-password"));

  // Renew to 8 s, then log in after the original 3 s TTL has passed.
  auto renewed = leases_->renew(c.lease_id, 8);
  ASSERT_TRUE(renewed.ok()) << renewed.status().to_string();
  EXPECT_EQ(renewed->lease_duration, 8);
  std::this_thread::sleep_for(4s);
  EXPECT_TRUE(pg_->can_login(c.username, c.password, &err)) << "after renew: " << err;

  ASSERT_TRUE(leases_->revoke(c.lease_id, true).ok());
  EXPECT_FALSE(pg_->role_exists(c.username));
  EXPECT_FALSE(pg_->can_login(c.username, c.password));
  EXPECT_EQ(leases_->renew(c.lease_id, 0).status().message(), "lease not found");

  // A role that is not allowed by the config.
  make_role("other", "1h", "1h");
  auto denied = call(Operation::kRead, "creds/other");
  EXPECT_FALSE(denied.ok());
}

TEST_F(DatabaseTest, WithoutRenewTheRoleStopsWorkingAndExpiryDropsIt) {
  configure();
  make_role("short", "2s", "1h");
  ASSERT_TRUE(leases_->start().ok());
  Creds c = creds("short");
  ASSERT_TRUE(pg_->can_login(c.username, c.password));
  // The scheduler revokes at expiry: the role disappears from pg_roles.
  EXPECT_TRUE(eventually([&] { return !pg_->role_exists(c.username); }))
      << c.username << " still exists";
  EXPECT_FALSE(leases_->lookup(c.lease_id)->has_value());
}

TEST_F(DatabaseTest, RevokeTerminatesOpenSessionsAndDropsOwnedObjects) {
  configure();
  auto role = call(Operation::kUpdate, "roles/owner",
                   {{"db_name", "pg"},
                    {"creation_statements",
                     "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL "
                     "'{{expiration}}'; GRANT CREATE ON SCHEMA public TO \"{{name}}\";"},
                    {"default_ttl", "1h"}});
  ASSERT_TRUE(role.ok()) << role.status().to_string();
  Creds c = creds("owner");
  // The user opens a session and creates a table it owns.
  const char* keys[] = {"host", "port", "user", "password", "dbname", nullptr};
  std::string port = std::to_string(pg_->port());
  const char* vals[] = {"127.0.0.1", port.c_str(), c.username.c_str(), c.password.c_str(),
                        "postgres", nullptr};
  PGconn* session = PQconnectdbParams(keys, vals, 0);
  ASSERT_EQ(PQstatus(session), CONNECTION_OK) << PQerrorMessage(session);
  PQclear(PQexec(session, "CREATE TABLE owned_by_dynamic (x int)"));
  ASSERT_TRUE(leases_->revoke(c.lease_id, true).ok());
  EXPECT_FALSE(pg_->role_exists(c.username));
  PGresult* after = PQexec(session, "SELECT 1");
  EXPECT_NE(PQresultStatus(after), PGRES_TUPLES_OK);  // the session was terminated
  PQclear(after);
  PQfinish(session);
}

TEST_F(DatabaseTest, RestartMidLeaseStillRevokes) {
  configure();
  make_role("restart", "2s", "1h");
  ASSERT_TRUE(leases_->start().ok());
  Creds c = creds("restart");
  leases_->stop();
  leases_.reset();  // "server down" past the expiry
  std::this_thread::sleep_for(3s);
  EXPECT_TRUE(pg_->role_exists(c.username));
  leases_ = make_leases();
  ASSERT_TRUE(leases_->start().ok());
  EXPECT_TRUE(eventually([&] { return !pg_->role_exists(c.username); }));
}

TEST_F(DatabaseTest, OutageIsRetriedMarkedIrrevocableAndRevokedWhenBack) {
  configure();
  make_role("outage", "1s", "1h");
  Creds c = creds("outage");
  ASSERT_TRUE(pg_->stop());
  ASSERT_TRUE(leases_->start().ok());
  bool irrevocable = eventually([&] {
    Request req;
    req.op = Operation::kUpdate;
    req.data = {{"lease_id", c.lease_id}};
    bool handled = false;
    auto r = leases_->handle_sys(req, "leases/lookup", handled);
    return r.ok() && r->data->contains("irrevocable") && r->data->at("irrevocable").as_bool();
  });
  EXPECT_TRUE(irrevocable);
  ASSERT_TRUE(pg_->restart());
  EXPECT_TRUE(eventually([&] { return !pg_->role_exists(c.username); }));
  EXPECT_TRUE(eventually([&] { return !leases_->lookup(c.lease_id)->has_value(); }));
}

TEST_F(DatabaseTest, InjectionAttemptsStayData) {
  configure();
  ASSERT_TRUE(pg_->query("CREATE TABLE canary (x int)").has_value());
  // Role names are restricted.
  auto bad_role = call(Operation::kUpdate, "roles/x\"; DROP TABLE canary; --",
                       {{"db_name", "pg"}, {"creation_statements", "SELECT 1"}});
  EXPECT_EQ(bad_role.status().code(), Code::kInvalidArgument);
  // A static account whose username is an injection attempt: quoted as one identifier.
  std::string evil = "evil\"; DROP TABLE canary; --";
  auto stat = call(Operation::kUpdate, "static-roles/evil",
                   {{"db_name", "pg"}, {"username", evil}, {"rotation_period", "1h"}});
  EXPECT_FALSE(stat.ok());  // the role does not exist: ALTER ROLE fails, nothing else runs
  // Create it for real: rotation then works on that exact (odd) name.
  std::string err;
  ASSERT_TRUE(pg_->query("CREATE ROLE \"evil\"\"; DROP TABLE canary; --\" LOGIN", &err)) << err;
  auto stat2 = call(Operation::kUpdate, "static-roles/evil",
                    {{"db_name", "pg"}, {"username", evil}, {"rotation_period", "1h"}});
  ASSERT_TRUE(stat2.ok()) << stat2.status().to_string();
  auto sc = call(Operation::kRead, "static-creds/evil");
  ASSERT_TRUE(sc.ok());
  EXPECT_TRUE(pg_->can_login(evil, std::string(sc->data->at("password").as_string()), &err)) << err;
  EXPECT_EQ(pg_->query("SELECT count(*) FROM canary").value_or("gone"), "0");
  EXPECT_TRUE(pg_->role_exists(pg_->admin_user()));
}

TEST_F(DatabaseTest, StaticRolesRotate) {
  configure();
  ASSERT_TRUE(pg_->query("CREATE ROLE app_static LOGIN PASSWORD 'initial-pass'").has_value());
  auto r = call(Operation::kUpdate, "static-roles/app",
                {{"db_name", "pg"}, {"username", "app_static"}, {"rotation_period", "5s"}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_FALSE(pg_->can_login("app_static", "initial-pass"));  // rotated at creation
  auto c1 = call(Operation::kRead, "static-creds/app");
  ASSERT_TRUE(c1.ok());
  std::string p1(c1->data->at("password").as_string());
  EXPECT_TRUE(pg_->can_login("app_static", p1));
  EXPECT_LE(c1->data->at("ttl").as_int64(), 5);
  auto read = call(Operation::kRead, "static-roles/app");
  ASSERT_TRUE(read.ok());
  EXPECT_FALSE(read->data->contains("password"));

  ASSERT_TRUE(call(Operation::kUpdate, "rotate-role/app").ok());
  auto c2 = call(Operation::kRead, "static-creds/app");
  std::string p2(c2->data->at("password").as_string());
  EXPECT_NE(p1, p2);
  EXPECT_TRUE(pg_->can_login("app_static", p2));
  EXPECT_FALSE(pg_->can_login("app_static", p1));
  // The background rotation changes it again after the period (bounded wait).
  EXPECT_TRUE(eventually([&] {
    auto c3 = call(Operation::kRead, "static-creds/app");
    return c3.ok() && c3->data->at("password").as_string() != p2;
  }));
  auto bad = call(Operation::kUpdate, "static-roles/app2",
                  {{"db_name", "pg"}, {"username", "app_static"}, {"rotation_period", "1s"}});
  EXPECT_FALSE(bad.ok());
}

TEST_F(DatabaseTest, RotateRootKeepsTheEngineWorking) {
  configure();
  make_role("ro", "1h", "1h");
  ASSERT_TRUE(call(Operation::kUpdate, "rotate-root/pg").ok());
  EXPECT_FALSE(pg_->can_login(pg_->admin_user(), pg_->admin_password()));  // old root password
  Creds c = creds("ro");
  EXPECT_TRUE(pg_->can_login(c.username, c.password));
  ASSERT_TRUE(leases_->revoke(c.lease_id, true).ok());
  EXPECT_FALSE(pg_->role_exists(c.username));
}

}  // namespace
}  // namespace custos::core
