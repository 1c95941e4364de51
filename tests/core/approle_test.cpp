// The AppRole auth method against an in-memory barrier (no dispatcher): every endpoint, each
// accept path with its reject twins (wrong, expired, used-up, address-bound secret IDs, deleted
// roles).
#include "core/auth/approle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <functional>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "core/barrier.h"
#include "core/view.h"
#include "storage/backend.h"

namespace custos::core {
namespace {

namespace json = boost::json;
using Op = Operation;

std::string str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return "<missing " + std::string(key) + ">";
  return std::string(v->as_string());
}
int64_t num(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_int64() ? v->as_int64() : -1;
}

constexpr char kLocal[] = "127.0.0.1:40000";

class AppRoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = storage::open_inmem();
    barrier_ = std::make_unique<Barrier>(*backend_, clock_);
    ASSERT_TRUE(barrier_->initialize().ok());
    mount_.path = "approle/";
    mount_.type = "approle";
    mount_.uuid = "0000-approle";
    EngineContext ctx{View(*barrier_, "auth/0000-approle/"), clock_, mount_};
    auto e = make_approle_auth(ctx, mount_);
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    engine_ = std::move(*e);
  }

  Request request(Op op, const std::string& path, json::object data,
                  const std::string& remote = kLocal) {
    Request req;
    req.op = op;
    req.path = "auth/approle/" + path;
    req.mount_point = "auth/approle/";
    req.mount_type = "approle";
    req.rel_path = path;
    req.remote_addr = remote;
    req.data = std::move(data);
    return req;
  }

  Result<Response> call(Op op, const std::string& path, json::object data = {},
                        const std::string& remote = kLocal) {
    Request req = request(op, path, std::move(data), remote);
    return engine_->handle(req);
  }

  json::object ok(Op op, const std::string& path, json::object data = {}) {
    auto r = call(op, path, std::move(data));
    EXPECT_TRUE(r.ok()) << path << ": " << r.status().to_string();
    if (!r.ok() || !r->data) return {};
    return *r->data;
  }

  Status fail(Op op, const std::string& path, json::object data = {}) {
    auto r = call(op, path, std::move(data));
    EXPECT_FALSE(r.ok()) << path << " unexpectedly succeeded";
    return r.ok() ? ok_status() : r.status();
  }

  void create_role(const std::string& name, json::object params = {}) {
    ok(Op::kUpdate, "role/" + name, std::move(params));
  }
  std::string role_id(const std::string& name) {
    return str(ok(Op::kRead, "role/" + name + "/role-id"), "role_id");
  }
  json::object new_secret(const std::string& name, json::object params = {}) {
    return ok(Op::kUpdate, "role/" + name + "/secret-id", std::move(params));
  }
  Result<Response> login(const std::string& rid, const std::string& sid,
                         const std::string& remote = kLocal) {
    return call(Op::kUpdate, "login", {{"role_id", rid}, {"secret_id", sid}}, remote);
  }
  void expect_login_ok(const std::string& rid, const std::string& sid,
                       const std::string& remote = kLocal) {
    auto r = login(rid, sid, remote);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_TRUE(r->auth.has_value());
  }
  void expect_login_refused(const std::string& rid, const std::string& sid,
                            const std::string& remote = kLocal) {
    auto r = login(rid, sid, remote);
    ASSERT_FALSE(r.ok()) << "login unexpectedly succeeded";
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(r.status().message(), "invalid role or secret ID");
  }

  // Every key and decrypted value below the mount's storage, recursively.
  void dump(const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
    auto keys = barrier_->list(prefix);
    ASSERT_TRUE(keys.ok());
    for (const auto& k : *keys) {
      if (!k.empty() && k.back() == '/') {
        dump(prefix + k, out);
        continue;
      }
      auto v = barrier_->get(prefix + k);
      ASSERT_TRUE(v.ok());
      out.emplace_back(prefix + k, *v ? std::string((*v)->view()) : "");
    }
  }

  FakeClock clock_{from_unix_seconds(1700000000)};
  std::unique_ptr<storage::Backend> backend_;
  std::unique_ptr<Barrier> barrier_;
  MountEntry mount_;
  std::unique_ptr<Engine> engine_;
};

void expect_invalid(const Status& st, std::string_view fragment) {
  EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find(fragment), std::string::npos)
      << "\"" << st.message() << "\" lacks \"" << fragment << "\"";
}

// --- roles ----------------------------------------------------------------------------------

TEST_F(AppRoleTest, RoleCreateReadListDelete) {
  create_role("app", {{"token_policies", "Read-KV, other"},
                      {"token_ttl", "1h"},
                      {"token_max_ttl", 7200},
                      {"secret_id_num_uses", 3},
                      {"secret_id_ttl", "10m"},
                      {"secret_id_bound_cidrs", json::array{"10.0.0.0/8"}}});
  create_role("web");
  auto r = ok(Op::kRead, "role/app");
  EXPECT_EQ(r.at("token_policies"), (json::array{"other", "read-kv"}));
  EXPECT_EQ(r.at("policies"), (json::array{"other", "read-kv"}));
  EXPECT_EQ(num(r, "token_ttl"), 3600);
  EXPECT_EQ(num(r, "token_max_ttl"), 7200);
  EXPECT_EQ(num(r, "secret_id_num_uses"), 3);
  EXPECT_EQ(num(r, "secret_id_ttl"), 600);
  EXPECT_EQ(r.at("bind_secret_id"), true);
  EXPECT_EQ(r.at("secret_id_bound_cidrs"), (json::array{"10.0.0.0/8"}));
  EXPECT_EQ(str(r, "token_type"), "default");
  EXPECT_FALSE(r.contains("role_id")) << "role read must not carry the role ID";

  auto keys = ok(Op::kList, "role");
  EXPECT_EQ(keys.at("keys"), (json::array{"app", "web"}));

  // An update changes only the fields it names.
  create_role("app", {{"token_ttl", 60}});
  r = ok(Op::kRead, "role/app");
  EXPECT_EQ(num(r, "token_ttl"), 60);
  EXPECT_EQ(num(r, "secret_id_num_uses"), 3);

  // Legacy "policies" is accepted.
  create_role("legacy", {{"policies", json::array{"a", "b"}}});
  EXPECT_EQ(ok(Op::kRead, "role/legacy").at("token_policies"), (json::array{"a", "b"}));

  ok(Op::kDelete, "role/app");
  EXPECT_EQ(fail(Op::kRead, "role/app").code(), Code::kNotFound);
  EXPECT_EQ(ok(Op::kList, "role").at("keys"), (json::array{"legacy", "web"}));
  ok(Op::kDelete, "role/app");  // deleting twice is fine
  ok(Op::kDelete, "role/web");
  ok(Op::kDelete, "role/legacy");
  EXPECT_EQ(fail(Op::kList, "role").code(), Code::kNotFound);
}

TEST_F(AppRoleTest, RoleNamesAreCaseInsensitive) {
  create_role("MyApp", {{"token_policies", "p"}});
  EXPECT_EQ(ok(Op::kRead, "role/myapp").at("token_policies"), (json::array{"p"}));
  EXPECT_EQ(role_id("MYAPP"), role_id("myapp"));
}

TEST_F(AppRoleTest, RoleRejectsBadInput) {
  expect_invalid(fail(Op::kUpdate, "role/bad!name"), "invalid role name");
  expect_invalid(fail(Op::kUpdate, "role/" + std::string(5000, 'a')), "invalid role name");
  expect_invalid(fail(Op::kUpdate, "role/r", {{"bind_secret_id", false}}),
                 "at least one constraint");
  expect_invalid(fail(Op::kUpdate, "role/r", {{"secret_id_bound_cidrs", "10.0.0.0/33"}}),
                 "invalid CIDR");
  expect_invalid(fail(Op::kUpdate, "role/r", {{"token_bound_cidrs", "not-an-ip"}}), "invalid CIDR");
  expect_invalid(fail(Op::kUpdate, "role/r", {{"token_ttl", "2h"}, {"token_max_ttl", "1h"}}),
                 "token_ttl");
  expect_invalid(fail(Op::kUpdate, "role/r", {{"token_ttl", "soon"}}), "token_ttl");
  expect_invalid(fail(Op::kUpdate, "role/r", {{"token_type", "weird"}}), "token_type");
  expect_invalid(fail(Op::kUpdate, "role/r", {{"secret_id_num_uses", -1}}), "secret_id_num_uses");
  expect_invalid(fail(Op::kUpdate, "role/r", {{"token_num_uses", "x"}}), "token_num_uses");
  expect_invalid(fail(Op::kUpdate, "role/r", {{"token_type", "batch"}, {"token_period", 60}}),
                 "batch");
  expect_invalid(fail(Op::kUpdate, "role/r", {{"bind_secret_id", "maybe"}}), "bind_secret_id");
  expect_invalid(fail(Op::kUpdate, "role/r", {{"token_policies", 5}}), "token_policies");
  // None of the failures created the role.
  EXPECT_EQ(fail(Op::kRead, "role/r").code(), Code::kNotFound);
  EXPECT_EQ(fail(Op::kList, "role").code(), Code::kNotFound);
  EXPECT_EQ(fail(Op::kRead, "role").code(), Code::kUnimplemented);
  EXPECT_EQ(fail(Op::kUpdate, "nothing/here").code(), Code::kNotFound);
}

TEST_F(AppRoleTest, ExistenceCheckAndUnauthenticatedPaths) {
  Request req = request(Op::kUpdate, "role/app", {});
  auto e = engine_->exists(req);
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(*e);
  create_role("app");
  e = engine_->exists(req);
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(*e);
  EXPECT_TRUE(engine_->unauthenticated(request(Op::kUpdate, "login", {})));
  EXPECT_FALSE(engine_->unauthenticated(request(Op::kUpdate, "role/app", {})));
  EXPECT_FALSE(engine_->unauthenticated(request(Op::kUpdate, "role/app/secret-id", {})));
  EXPECT_FALSE(engine_->unauthenticated(request(Op::kUpdate, "login/extra", {})));
}

// --- role IDs -------------------------------------------------------------------------------

TEST_F(AppRoleTest, RoleIdReadAndSet) {
  create_role("app");
  create_role("other");
  std::string first = role_id("app");
  EXPECT_EQ(first.size(), 36u);
  EXPECT_NE(first, role_id("other"));
  std::string sid = str(new_secret("app"), "secret_id");
  expect_login_ok(first, sid);

  ok(Op::kUpdate, "role/app/role-id", {{"role_id", "custom-role-id"}});
  EXPECT_EQ(role_id("app"), "custom-role-id");
  expect_login_ok("custom-role-id", sid);
  expect_login_refused(first, sid);  // the old role ID no longer names the role

  // Reject twins.
  expect_invalid(fail(Op::kUpdate, "role/other/role-id", {{"role_id", "custom-role-id"}}),
                 "already in use");
  expect_invalid(fail(Op::kUpdate, "role/app/role-id", {}), "missing role_id");
  expect_invalid(fail(Op::kUpdate, "role/ghost/role-id", {{"role_id", "x"}}), "does not exist");
  EXPECT_EQ(fail(Op::kRead, "role/ghost/role-id").code(), Code::kNotFound);
  EXPECT_EQ(fail(Op::kRead, "role/ghost").code(), Code::kNotFound);

  // A role ID given at creation.
  create_role("chosen", {{"role_id", "my-id"}});
  EXPECT_EQ(role_id("chosen"), "my-id");
  expect_invalid(fail(Op::kUpdate, "role/dup", {{"role_id", "my-id"}}), "already in use");
}

// --- secret IDs and login -------------------------------------------------------------------

TEST_F(AppRoleTest, LoginReturnsAuthForCoreToMint) {
  create_role("app", {{"token_policies", "kv-read"},
                      {"token_ttl", "20m"},
                      {"token_max_ttl", "1h"},
                      {"token_num_uses", 5}});
  auto s = new_secret("app", {{"metadata", R"({"env":"prod","role_name":"spoofed"})"}});
  EXPECT_EQ(str(s, "secret_id").size(), 36u);
  EXPECT_EQ(str(s, "secret_id_accessor").size(), 36u);
  EXPECT_EQ(num(s, "secret_id_ttl"), 0);
  EXPECT_EQ(num(s, "secret_id_num_uses"), 0);

  auto r = login(role_id("app"), str(s, "secret_id"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_TRUE(r->auth.has_value());
  const Auth& a = *r->auth;
  EXPECT_TRUE(a.client_token.empty()) << "core mints the token";
  EXPECT_EQ(a.policies, (std::vector<std::string>{"kv-read"}));
  EXPECT_EQ(a.lease_duration, 1200);
  EXPECT_TRUE(a.renewable);
  EXPECT_EQ(a.num_uses, 5);
  EXPECT_EQ(a.token_type, "service");
  EXPECT_EQ(a.explicit_max_ttl, 3600) << "token_max_ttl caps the token's life";
  EXPECT_EQ(str(a.metadata, "role_name"), "app") << "secret ID metadata cannot spoof role_name";
  EXPECT_EQ(str(a.metadata, "env"), "prod");
  // Unlimited uses: a second login works too.
  expect_login_ok(role_id("app"), str(s, "secret_id"));
}

TEST_F(AppRoleTest, BatchAndPeriodicTokens) {
  create_role("batch", {{"token_type", "batch"}, {"token_ttl", 60}});
  auto r = login(role_id("batch"), str(new_secret("batch"), "secret_id"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->auth->token_type, "batch");
  EXPECT_FALSE(r->auth->renewable);
  create_role("periodic", {{"token_period", "1h"}, {"token_max_ttl", "2h"}});
  r = login(role_id("periodic"), str(new_secret("periodic"), "secret_id"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->auth->period, 3600);
  EXPECT_EQ(r->auth->explicit_max_ttl, 0) << "periodic tokens are not bounded by token_max_ttl";
}

TEST_F(AppRoleTest, LoginRejectsWrongCredentials) {
  create_role("app");
  create_role("other");
  std::string rid = role_id("app");
  std::string sid = str(new_secret("app"), "secret_id");
  std::string other_sid = str(new_secret("other"), "secret_id");
  expect_login_ok(rid, sid);
  expect_login_refused(rid, "00000000-0000-0000-0000-000000000000");
  expect_login_refused(rid, sid + "x");
  expect_login_refused(rid, other_sid);  // a secret ID of another role
  expect_login_refused("not-a-role-id", sid);
  expect_login_refused(rid + " ", sid);
  expect_login_refused(rid, std::string(5000, 'x'));
  expect_invalid(login("", sid).status(), "missing role_id");
  expect_invalid(login(rid, "").status(), "missing secret_id");
  EXPECT_EQ(fail(Op::kRead, "login").code(), Code::kUnimplemented);
}

TEST_F(AppRoleTest, ExpiredSecretIdIsRefused) {
  create_role("app", {{"secret_id_ttl", 120}});
  std::string rid = role_id("app");
  auto s = new_secret("app");
  EXPECT_EQ(num(s, "secret_id_ttl"), 120) << "the role's TTL applies by default";
  auto shorter = new_secret("app", {{"ttl", 30}});
  EXPECT_EQ(num(shorter, "secret_id_ttl"), 30);
  expect_invalid(fail(Op::kUpdate, "role/app/secret-id", {{"ttl", 121}}), "ttl cannot be longer");
  expect_invalid(fail(Op::kUpdate, "role/app/secret-id", {{"ttl", "never"}}), "ttl");

  clock_.advance(std::chrono::seconds(31));
  expect_login_refused(rid, str(shorter, "secret_id"));
  expect_login_ok(rid, str(s, "secret_id"));
  clock_.advance(std::chrono::seconds(90));
  expect_login_refused(rid, str(s, "secret_id"));
  // Expired entries are gone (login removed them).
  auto look = call(Op::kUpdate, "role/app/secret-id/lookup", {{"secret_id", str(s, "secret_id")}});
  ASSERT_TRUE(look.ok());
  EXPECT_FALSE(look->data.has_value());
}

TEST_F(AppRoleTest, UsedUpSecretIdIsRefused) {
  create_role("app", {{"secret_id_num_uses", 2}});
  std::string rid = role_id("app");
  auto s = new_secret("app");
  EXPECT_EQ(num(s, "secret_id_num_uses"), 2);
  std::string sid = str(s, "secret_id");
  expect_login_ok(rid, sid);
  auto look = ok(Op::kUpdate, "role/app/secret-id/lookup", {{"secret_id", sid}});
  EXPECT_EQ(num(look, "secret_id_num_uses"), 1);
  expect_login_ok(rid, sid);
  expect_login_refused(rid, sid);
  // The role's limit is a ceiling for per-secret num_uses.
  expect_invalid(fail(Op::kUpdate, "role/app/secret-id", {{"num_uses", 3}}), "num_uses");
  expect_invalid(fail(Op::kUpdate, "role/app/secret-id", {{"num_uses", -1}}), "num_uses");
  auto once = new_secret("app", {{"num_uses", 1}});
  expect_login_ok(rid, str(once, "secret_id"));
  expect_login_refused(rid, str(once, "secret_id"));
}

TEST_F(AppRoleTest, SingleUseSecretIdSurvivesOneOfManyConcurrentLogins) {
  create_role("app", {{"secret_id_num_uses", 1}});
  std::string rid = role_id("app");
  std::string sid = str(new_secret("app"), "secret_id");
  std::atomic<int> wins{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (login(rid, sid).ok()) ++wins;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wins.load(), 1);
}

TEST_F(AppRoleTest, CidrBindings) {
  create_role("app", {{"secret_id_bound_cidrs", "10.0.0.0/8, 2001:db8::/32"}});
  std::string rid = role_id("app");
  std::string sid = str(new_secret("app"), "secret_id");
  expect_login_ok(rid, sid, "10.1.2.3:5555");
  expect_login_ok(rid, sid, "[2001:db8::1]:443");
  expect_login_ok(rid, sid, "[::ffff:10.9.9.9]:443");  // IPv4-mapped from a dual-stack socket
  expect_login_refused(rid, sid, "192.168.1.1:1234");
  expect_login_refused(rid, sid, "11.0.0.1:1");
  expect_login_refused(rid, sid, "[2001:db9::1]:443");
  expect_login_refused(rid, sid, "");
  expect_login_refused(rid, sid, "garbage");

  // A secret ID narrows the role's blocks, never widens them.
  auto narrow = new_secret("app", {{"cidr_list", "10.1.0.0/16"}});
  expect_login_ok(rid, str(narrow, "secret_id"), "10.1.200.1:80");
  expect_login_refused(rid, str(narrow, "secret_id"), "10.2.0.1:80");
  expect_invalid(fail(Op::kUpdate, "role/app/secret-id", {{"cidr_list", "192.168.0.0/16"}}),
                 "cidr_list");
  expect_invalid(fail(Op::kUpdate, "role/app/secret-id", {{"cidr_list", "0.0.0.0/0"}}),
                 "cidr_list");
  expect_invalid(fail(Op::kUpdate, "role/app/secret-id", {{"cidr_list", "bad"}}), "CIDR");

  // A secret ID's token_bound_cidrs, and the role's, also bind the login.
  auto bound = new_secret("app", {{"token_bound_cidrs", "10.5.5.5"}});
  auto minted = login(rid, str(bound, "secret_id"), "10.5.5.5:1");
  ASSERT_TRUE(minted.ok()) << minted.status().to_string();
  EXPECT_EQ(minted->auth->bound_cidrs, (std::vector<std::string>{"10.5.5.5"}))
      << "the token is bound to the secret ID's blocks";
  expect_login_refused(rid, str(bound, "secret_id"), "10.5.5.6:1");
  create_role("tok", {{"token_bound_cidrs", json::array{"127.0.0.0/8"}}});
  std::string tsid = str(new_secret("tok"), "secret_id");
  auto role_bound = login(role_id("tok"), tsid, "127.0.0.5:9");
  ASSERT_TRUE(role_bound.ok()) << role_bound.status().to_string();
  EXPECT_EQ(role_bound->auth->bound_cidrs, (std::vector<std::string>{"127.0.0.0/8"}))
      << "without its own, the role's";
  expect_login_refused(role_id("tok"), tsid, "10.0.0.1:9");
}

TEST_F(AppRoleTest, RoleWithoutSecretIdBindsOnAddress) {
  create_role("cidr-only", {{"bind_secret_id", false}, {"secret_id_bound_cidrs", "127.0.0.1/32"}});
  std::string rid = role_id("cidr-only");
  expect_login_ok(rid, "");
  expect_login_refused(rid, "", "127.0.0.2:1");
  expect_login_refused("other", "");
  expect_invalid(fail(Op::kUpdate, "role/cidr-only/secret-id"), "bind_secret_id");
  // Turning bind_secret_id off needs a constraint to remain.
  create_role("app");
  expect_invalid(fail(Op::kUpdate, "role/app", {{"bind_secret_id", false}}), "constraint");
}

TEST_F(AppRoleTest, DeletedRoleTakesItsSecretIdsAlong) {
  create_role("app");
  std::string rid = role_id("app");
  std::string sid = str(new_secret("app"), "secret_id");
  expect_login_ok(rid, sid);
  ok(Op::kDelete, "role/app");
  expect_login_refused(rid, sid);
  // Re-created under the same name (and even the same role ID): the old secret ID stays dead.
  create_role("app", {{"role_id", rid}});
  expect_login_refused(rid, sid);
  EXPECT_EQ(fail(Op::kList, "role/app/secret-id").code(), Code::kNotFound);
  expect_invalid(fail(Op::kUpdate, "role/ghost/secret-id"), "does not exist");
  expect_invalid(fail(Op::kList, "role/ghost/secret-id"), "does not exist");
}

TEST_F(AppRoleTest, SecretIdLookupListDestroy) {
  create_role("app");
  std::string rid = role_id("app");
  auto a = new_secret("app", {{"metadata", json::object{{"host", "web-1"}}},
                              {"cidr_list", "127.0.0.0/8"},
                              {"ttl", "1h"},
                              {"num_uses", 4}});
  auto b = new_secret("app");
  std::string sid_a = str(a, "secret_id");
  std::string sid_b = str(b, "secret_id");

  auto list = ok(Op::kList, "role/app/secret-id");
  json::array accessors = list.at("keys").as_array();
  EXPECT_EQ(accessors.size(), 2u);
  EXPECT_NE(
      std::find(accessors.begin(), accessors.end(), json::value(str(a, "secret_id_accessor"))),
      accessors.end());
  for (const auto& acc : accessors) EXPECT_NE(acc, json::value(sid_a)) << "list shows accessors";

  auto look = ok(Op::kUpdate, "role/app/secret-id/lookup", {{"secret_id", sid_a}});
  EXPECT_EQ(str(look, "secret_id_accessor"), str(a, "secret_id_accessor"));
  EXPECT_EQ(num(look, "secret_id_num_uses"), 4);
  EXPECT_EQ(num(look, "secret_id_ttl"), 3600);
  EXPECT_EQ(look.at("metadata"), (json::object{{"host", "web-1"}}));
  EXPECT_EQ(look.at("cidr_list"), (json::array{"127.0.0.0/8"}));
  EXPECT_EQ(str(look, "creation_time"), "2023-11-14T22:13:20.000000000Z");
  EXPECT_EQ(str(look, "expiration_time"), "2023-11-14T23:13:20.000000000Z");
  EXPECT_FALSE(look.contains("secret_id"));

  auto by_acc = ok(Op::kUpdate, "role/app/secret-id-accessor/lookup",
                   {{"secret_id_accessor", str(b, "secret_id_accessor")}});
  EXPECT_EQ(str(by_acc, "expiration_time"), "0001-01-01T00:00:00Z");

  // Unknown secret ID: no data (Vault's 204); unknown accessor: 400.
  auto none = call(Op::kUpdate, "role/app/secret-id/lookup", {{"secret_id", "nope"}});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->data.has_value());
  expect_invalid(fail(Op::kUpdate, "role/app/secret-id/lookup"), "missing secret_id");
  expect_invalid(
      fail(Op::kUpdate, "role/app/secret-id-accessor/lookup", {{"secret_id_accessor", "nope"}}),
      "failed to find accessor");
  expect_invalid(fail(Op::kUpdate, "role/app/secret-id-accessor/lookup"), "missing");
  // An accessor of another role's secret ID is not found through this role.
  create_role("other");
  auto c = new_secret("other");
  expect_invalid(fail(Op::kUpdate, "role/app/secret-id-accessor/lookup",
                      {{"secret_id_accessor", str(c, "secret_id_accessor")}}),
                 "failed to find accessor");

  // Destroy by secret ID (POST and DELETE) and by accessor.
  ok(Op::kUpdate, "role/app/secret-id/destroy", {{"secret_id", sid_a}});
  expect_login_refused(rid, sid_a);
  ok(Op::kUpdate, "role/app/secret-id/destroy", {{"secret_id", sid_a}});  // idempotent
  ok(Op::kUpdate, "role/app/secret-id-accessor/destroy",
     {{"secret_id_accessor", str(b, "secret_id_accessor")}});
  expect_login_refused(rid, sid_b);
  expect_invalid(fail(Op::kUpdate, "role/app/secret-id-accessor/destroy",
                      {{"secret_id_accessor", str(b, "secret_id_accessor")}}),
                 "failed to find accessor");
  EXPECT_EQ(fail(Op::kList, "role/app/secret-id").code(), Code::kNotFound);
  auto d = new_secret("app");
  ok(Op::kDelete, "role/app/secret-id/destroy", {{"secret_id", str(d, "secret_id")}});
  expect_login_refused(rid, str(d, "secret_id"));
}

TEST_F(AppRoleTest, CustomSecretId) {
  create_role("app");
  std::string rid = role_id("app");
  auto s = ok(Op::kUpdate, "role/app/custom-secret-id", {{"secret_id", "my-chosen-secret"}});
  EXPECT_EQ(str(s, "secret_id"), "my-chosen-secret");
  expect_login_ok(rid, "my-chosen-secret");
  expect_login_refused(rid, "my-chosen-secreT");
  expect_invalid(
      fail(Op::kUpdate, "role/app/custom-secret-id", {{"secret_id", "my-chosen-secret"}}),
      "already registered");
  expect_invalid(fail(Op::kUpdate, "role/app/custom-secret-id", {}), "missing secret_id");
  expect_invalid(fail(Op::kUpdate, "role/app/secret-id", {{"metadata", "{not json"}}), "metadata");
  expect_invalid(fail(Op::kUpdate, "role/app/secret-id", {{"metadata", R"({"n":1})"}}), "metadata");
}

TEST_F(AppRoleTest, SecretIdsAreNeverStoredInPlaintext) {
  create_role("app", {{"secret_id_num_uses", 5}});
  std::string rid = role_id("app");
  std::string sid = str(new_secret("app"), "secret_id");
  ok(Op::kUpdate, "role/app/custom-secret-id", {{"secret_id", "custom-plaintext-canary"}});
  expect_login_ok(rid, sid);  // a use rewrites the entry: still no plaintext
  std::vector<std::pair<std::string, std::string>> all;
  dump("auth/0000-approle/", all);
  ASSERT_FALSE(all.empty());
  for (const auto& [k, v] : all) {
    EXPECT_EQ(k.find(sid), std::string::npos) << k;
    EXPECT_EQ(v.find(sid), std::string::npos) << k;
    EXPECT_EQ(v.find("custom-plaintext-canary"), std::string::npos) << k;
  }
}

TEST_F(AppRoleTest, StateSurvivesANewEngineInstance) {
  create_role("app");
  std::string rid = role_id("app");
  std::string sid = str(new_secret("app"), "secret_id");
  // A re-mount after unseal builds a fresh engine: the HMAC key must come back from storage.
  EngineContext ctx{View(*barrier_, "auth/0000-approle/"), clock_, mount_};
  auto e = make_approle_auth(ctx, mount_);
  ASSERT_TRUE(e.ok());
  engine_ = std::move(*e);
  expect_login_ok(rid, sid);
}

TEST_F(AppRoleTest, TidyRemovesExpiredAndDanglingEntries) {
  create_role("app");
  auto short_lived = new_secret("app", {{"ttl", 10}});
  auto keeper = new_secret("app");
  clock_.advance(std::chrono::seconds(11));
  auto r = call(Op::kUpdate, "tidy/secret-id");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 202);
  auto list = ok(Op::kList, "role/app/secret-id");
  EXPECT_EQ(list.at("keys"), (json::array{str(keeper, "secret_id_accessor")}));
  expect_invalid(fail(Op::kUpdate, "role/app/secret-id-accessor/lookup",
                      {{"secret_id_accessor", str(short_lived, "secret_id_accessor")}}),
                 "failed to find accessor");

  // Entries left behind by an interrupted role delete: tidy removes them.
  std::vector<std::pair<std::string, std::string>> before;
  dump("auth/0000-approle/", before);
  ASSERT_TRUE(barrier_->put("auth/0000-approle/secret_id/dead-uuid/abc", as_bytes("{}")).ok());
  ASSERT_TRUE(barrier_->put("auth/0000-approle/accessor/dead-uuid/def", as_bytes("{}")).ok());
  ASSERT_TRUE(call(Op::kUpdate, "tidy/secret-id").ok());
  std::vector<std::pair<std::string, std::string>> after;
  dump("auth/0000-approle/", after);
  EXPECT_EQ(before.size(), after.size());
  EXPECT_EQ(fail(Op::kRead, "tidy/secret-id").code(), Code::kUnimplemented);
}

}  // namespace
}  // namespace custos::core
