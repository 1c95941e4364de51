// The userpass auth method against an in-memory barrier (no dispatcher): every endpoint, each
// accept path with its reject twins; PBKDF2 against RFC 7914's vectors.
#include "core/auth/userpass.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <vector>

#include "base/clock.h"
#include "base/encoding.h"
#include "core/barrier.h"
#include "core/view.h"
#include "storage/backend.h"

namespace custos::core {
namespace {

namespace json = boost::json;
using Op = Operation;

// Tests use few iterations so they stay fast; one test runs the production count.
constexpr uint32_t kTestIterations = 10;

std::string str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return "<missing " + std::string(key) + ">";
  return std::string(v->as_string());
}
int64_t num(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_int64() ? v->as_int64() : -1;
}
std::string pbkdf2_hex(std::string_view pw, std::string_view salt, uint32_t c, size_t len) {
  return hex_encode(pbkdf2_hmac_sha256(pw, as_bytes(salt), c, len).span());
}

class UserpassTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = storage::open_inmem();
    barrier_ = std::make_unique<Barrier>(*backend_, clock_);
    ASSERT_TRUE(barrier_->initialize().ok());
    mount_.path = "userpass/";
    mount_.type = "userpass";
    mount_.uuid = "0000-userpass";
    engine_ = new_engine(kTestIterations);
  }

  std::unique_ptr<Engine> new_engine(uint32_t iterations) {
    EngineContext ctx{View(*barrier_, "auth/0000-userpass/"), clock_, mount_};
    auto e = make_userpass_auth_with_iterations(ctx, mount_, iterations);
    EXPECT_TRUE(e.ok()) << e.status().to_string();
    return e.ok() ? std::move(*e) : nullptr;
  }

  Request request(Op op, const std::string& path, json::object data) {
    Request req;
    req.op = op;
    req.path = "auth/userpass/" + path;
    req.mount_point = "auth/userpass/";
    req.mount_type = "userpass";
    req.rel_path = path;
    req.remote_addr = "127.0.0.1:40000";
    req.data = std::move(data);
    return req;
  }
  Result<Response> call(Op op, const std::string& path, json::object data = {}) {
    Request req = request(op, path, std::move(data));
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
  Result<Response> login(const std::string& user, const std::string& password,
                         const std::string& remote = "127.0.0.1:40000") {
    Request req = request(Op::kUpdate, "login/" + user, {{"password", password}});
    req.remote_addr = remote;
    return engine_->handle(req);
  }
  void expect_login_refused(const std::string& user, const std::string& password) {
    auto r = login(user, password);
    ASSERT_FALSE(r.ok()) << "login unexpectedly succeeded";
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(r.status().message(), "invalid username or password");
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

TEST(Pbkdf2, MatchesPublishedVectors) {
  // RFC 7914 section 11 and the widely used RFC 6070-style SHA-256 vectors.
  EXPECT_EQ(pbkdf2_hex("password", "salt", 1, 32),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
  EXPECT_EQ(pbkdf2_hex("password", "salt", 4096, 32),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
  EXPECT_EQ(pbkdf2_hex("passwd", "salt", 1, 64),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
            "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
  // A key longer than the hash block (pre-hashed once, as HMAC does) and a partial last block.
  EXPECT_EQ(pbkdf2_hex(std::string(100, 'p'), "saltSALT", 3, 40),
            "490ee26aa7ca03293cc987e79e00fefeaefc8422b4922265552fcd914d9f011e972cd07b69489382");
  EXPECT_EQ(pbkdf2_hex("", "salt", 2, 32),
            "62384466264daadc4144018c6bd864648272b34da8980d31521ffcce92ae003b");
}

TEST_F(UserpassTest, UserCreateReadListDelete) {
  ok(Op::kUpdate, "users/Alice",
     {{"password", "correct horse"},
      {"token_policies", "dev, Ops"},
      {"token_ttl", "30m"},
      {"token_max_ttl", "2h"}});
  ok(Op::kUpdate, "users/bob", {{"password", "pw"}, {"policies", json::array{"legacy"}}});
  auto u = ok(Op::kRead, "users/alice");
  EXPECT_EQ(u.at("token_policies"), (json::array{"dev", "ops"}));
  EXPECT_EQ(num(u, "token_ttl"), 1800);
  EXPECT_EQ(num(u, "token_max_ttl"), 7200);
  EXPECT_FALSE(u.contains("password"));
  EXPECT_FALSE(u.contains("password_hash"));
  EXPECT_EQ(ok(Op::kRead, "users/bob").at("policies"), (json::array{"legacy"}));
  EXPECT_EQ(ok(Op::kList, "users").at("keys"), (json::array{"alice", "bob"}));

  // An update without a password keeps the old one.
  ok(Op::kUpdate, "users/alice", {{"token_ttl", 60}});
  EXPECT_EQ(num(ok(Op::kRead, "users/alice"), "token_ttl"), 60);
  EXPECT_TRUE(login("alice", "correct horse").ok());

  ok(Op::kDelete, "users/alice");
  EXPECT_EQ(fail(Op::kRead, "users/alice").code(), Code::kNotFound);
  expect_login_refused("alice", "correct horse");
  ok(Op::kDelete, "users/bob");
  EXPECT_EQ(fail(Op::kList, "users").code(), Code::kNotFound);
}

TEST_F(UserpassTest, UserRejectsBadInput) {
  expect_invalid(fail(Op::kUpdate, "users/carol", {}), "missing password");
  expect_invalid(fail(Op::kUpdate, "users/carol", {{"password", ""}}), "missing password");
  expect_invalid(fail(Op::kUpdate, "users/carol", {{"password", std::string(5000, 'x')}}),
                 "longer than");
  expect_invalid(fail(Op::kUpdate, "users/bad!name", {{"password", "x"}}), "invalid username");
  expect_invalid(fail(Op::kUpdate, "users/carol", {{"password", "x"}, {"token_ttl", "soon"}}),
                 "token_ttl");
  expect_invalid(fail(Op::kUpdate, "users/carol",
                      {{"password", "x"}, {"token_ttl", "2h"}, {"token_max_ttl", "1h"}}),
                 "token_max_ttl");
  expect_invalid(fail(Op::kUpdate, "users/carol", {{"password", "x"}, {"token_type", "odd"}}),
                 "token_type");
  expect_invalid(
      fail(Op::kUpdate, "users/carol", {{"password", "x"}, {"token_bound_cidrs", "10.0.0.0/33"}}),
      "token_bound_cidrs");
  expect_invalid(fail(Op::kUpdate, "users/carol", {{"password", 5.5}}), "password");
  EXPECT_EQ(fail(Op::kRead, "users/carol").code(), Code::kNotFound);
  EXPECT_EQ(fail(Op::kRead, "users").code(), Code::kUnimplemented);
  EXPECT_EQ(fail(Op::kRead, "nothing").code(), Code::kNotFound);
}

TEST_F(UserpassTest, ExistenceCheckAndUnauthenticatedPaths) {
  Request req = request(Op::kUpdate, "users/dave", {});
  auto e = engine_->exists(req);
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(*e);
  ok(Op::kUpdate, "users/dave", {{"password", "x"}});
  e = engine_->exists(req);
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(*e);
  EXPECT_TRUE(engine_->unauthenticated(request(Op::kUpdate, "login/dave", {})));
  EXPECT_FALSE(engine_->unauthenticated(request(Op::kUpdate, "users/dave", {})));
  EXPECT_FALSE(engine_->unauthenticated(request(Op::kUpdate, "users/dave/password", {})));
}

TEST_F(UserpassTest, LoginReturnsAuthForCoreToMint) {
  ok(Op::kUpdate, "users/erin",
     {{"password", "s3cret!"},
      {"token_policies", "kv-read"},
      {"token_ttl", "15m"},
      {"token_max_ttl", "1h"}});
  auto r = login("Erin", "s3cret!");  // usernames are case-insensitive
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_TRUE(r->auth.has_value());
  const Auth& a = *r->auth;
  EXPECT_TRUE(a.client_token.empty());
  EXPECT_EQ(a.policies, (std::vector<std::string>{"kv-read"}));
  EXPECT_EQ(a.lease_duration, 900);
  EXPECT_TRUE(a.renewable);
  EXPECT_EQ(a.explicit_max_ttl, 3600);
  EXPECT_EQ(a.display_name, "erin");
  EXPECT_EQ(str(a.metadata, "username"), "erin");
}

TEST_F(UserpassTest, LoginRejectsWrongPasswordAndUnknownUsersAlike) {
  ok(Op::kUpdate, "users/frank", {{"password", "right"}});
  ASSERT_TRUE(login("frank", "right").ok());
  expect_login_refused("frank", "wrong");
  expect_login_refused("frank", "Right");
  expect_login_refused("frank", "right ");
  expect_login_refused("nobody", "right");  // same message: no user enumeration
  expect_login_refused("bad!name", "right");
  expect_login_refused("frank", std::string(5000, 'x'));
  expect_invalid(login("frank", "").status(), "missing password");
  EXPECT_EQ(fail(Op::kRead, "login/frank").code(), Code::kUnimplemented);
}

TEST_F(UserpassTest, PasswordAndPolicyUpdates) {
  ok(Op::kUpdate, "users/gina", {{"password", "old"}, {"token_policies", "a"}});
  ok(Op::kUpdate, "users/gina/password", {{"password", "new"}});
  expect_login_refused("gina", "old");
  ASSERT_TRUE(login("gina", "new").ok());
  expect_invalid(fail(Op::kUpdate, "users/gina/password", {}), "missing password");
  expect_invalid(fail(Op::kUpdate, "users/ghost/password", {{"password", "x"}}),
                 "username does not exist");

  ok(Op::kUpdate, "users/gina/policies", {{"token_policies", "b,c"}});
  EXPECT_EQ(ok(Op::kRead, "users/gina").at("token_policies"), (json::array{"b", "c"}));
  auto r = login("gina", "new");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->auth->policies, (std::vector<std::string>{"b", "c"}));
  ok(Op::kUpdate, "users/gina/policies", {{"policies", "d"}});
  EXPECT_EQ(ok(Op::kRead, "users/gina").at("token_policies"), (json::array{"d"}));
  expect_invalid(fail(Op::kUpdate, "users/gina/policies", {}), "missing token_policies");
  expect_invalid(fail(Op::kUpdate, "users/ghost/policies", {{"token_policies", "x"}}),
                 "username does not exist");
  EXPECT_EQ(fail(Op::kRead, "users/gina/password").code(), Code::kUnimplemented);
}

TEST_F(UserpassTest, PasswordsAreStoredAsSaltedPbkdf2) {
  ok(Op::kUpdate, "users/hank", {{"password", "plaintext-canary"}});
  ok(Op::kUpdate, "users/ivy", {{"password", "plaintext-canary"}});
  auto raw = barrier_->get("auth/0000-userpass/user/hank");
  ASSERT_TRUE(raw.ok() && raw->has_value());
  std::string text((*raw)->view());
  EXPECT_EQ(text.find("plaintext-canary"), std::string::npos);
  auto doc = json::parse(text).as_object();
  const auto& ph = doc.at("password_hash").as_object();
  EXPECT_EQ(str(ph, "alg"), "pbkdf2-sha256");
  EXPECT_EQ(num(ph, "iterations"), kTestIterations);
  auto other = json::parse(std::string((*barrier_->get("auth/0000-userpass/user/ivy"))->view()));
  EXPECT_NE(ph.at("salt"), other.as_object().at("password_hash").as_object().at("salt"));
  EXPECT_NE(ph.at("hash"), other.as_object().at("password_hash").as_object().at("hash"));

  // The stored count is honoured: an engine configured with another count still verifies it.
  engine_ = new_engine(kTestIterations * 2);
  EXPECT_TRUE(login("hank", "plaintext-canary").ok());

  // A corrupt record is data loss, not a successful or "wrong password" login.
  ASSERT_TRUE(barrier_->put("auth/0000-userpass/user/hank", as_bytes(R"({"name":"hank"})")).ok());
  EXPECT_EQ(login("hank", "plaintext-canary").status().code(), Code::kDataLoss);
}

TEST_F(UserpassTest, ProductionIterationCountAndUnknownUserCostsTheSame) {
  engine_ = new_engine(kUserpassPbkdf2Iterations);
  ok(Op::kUpdate, "users/jo", {{"password", "pw"}});
  auto raw = barrier_->get("auth/0000-userpass/user/jo");
  ASSERT_TRUE(raw.ok() && raw->has_value());
  auto doc = json::parse((*raw)->view()).as_object();
  EXPECT_EQ(num(doc.at("password_hash").as_object(), "iterations"), 100000);

  auto time = [&](const std::string& user) {
    auto start = std::chrono::steady_clock::now();
    (void)login(user, "wrong");
    return std::chrono::steady_clock::now() - start;
  };
  auto known = time("jo");
  auto unknown = time("nobody");
  // Both run one full PBKDF2: the unknown user must not answer in a fraction of the time.
  EXPECT_GT(unknown * 4, known) << "unknown-user login skipped the KDF";
  EXPECT_TRUE(login("jo", "pw").ok());
}

// token_bound_cidrs binds the login and the token it mints (core enforces the token's).
TEST_F(UserpassTest, TokenBoundCidrsBindLoginAndToken) {
  ok(Op::kUpdate, "users/gina", {{"password", "pw"}, {"token_bound_cidrs", "10.0.0.0/8, ::1"}});
  EXPECT_EQ(ok(Op::kRead, "users/gina").at("token_bound_cidrs"),
            (json::array{"10.0.0.0/8", "::1"}));
  auto in = login("gina", "pw", "10.9.8.7:1234");
  ASSERT_TRUE(in.ok()) << in.status().to_string();
  EXPECT_EQ(in->auth->bound_cidrs, (std::vector<std::string>{"10.0.0.0/8", "::1"}));
  ASSERT_TRUE(login("gina", "pw", "[::1]:1234").ok());
  auto out = login("gina", "pw", "192.168.1.1:1234");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(), "invalid username or password");
}

}  // namespace
}  // namespace custos::core
