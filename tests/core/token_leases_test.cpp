// Token expiry through the lease manager (core/token_leases.cpp), as Vault's expiration manager
// does it: each service token with a TTL has a lease of its own that revokes the token, its
// children, its leases and its cubbyhole when due, whether or not anyone presents it; renewals
// move it; revocation deletes it; revoking the lease revokes the token; disabling an auth method
// revokes what it issued.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <thread>

#include "core_fixture.h"
#include "crypto/hash.h"

namespace custos::core {
namespace {

using std::chrono::seconds;

class TokenLeasesTest : public CoreTest {
 protected:
  void SetUp() override {
    init_unseal();
    ASSERT_TRUE(call(Operation::kUpdate, "sys/policies/acl/creator",
                     object{{"policy",
                             "path \"auth/token/create\" { capabilities = [\"update\"] }\n"
                             "path \"auth/token/renew-self\" { capabilities = [\"update\"] }"}})
                    .ok());
  }

  Auth make(const std::string& ttl, const std::string& parent = "",
            const std::string& policy = "creator") {
    auto t = call(Operation::kUpdate, "auth/token/create",
                  object{{"policies", boost::json::array{policy}}, {"ttl", ttl}}, parent);
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    return t.ok() ? *t->auth : Auth{};
  }

  std::string lease_of(const std::string& token) {
    auto e = core_->tokens()->lookup(token);
    EXPECT_TRUE(e.ok() && e->has_value());
    return e.ok() && e->has_value() ? token_lease_id(**e) : "";
  }

  bool valid(const std::string& token) {
    return call(Operation::kRead, "auth/token/lookup-self", {}, token).ok();
  }

  bool stored(const std::string& token) {
    return core_->tokens()->stored(token_hash(token)).value();
  }

  // The server's own scheduler thread may take a due lease first: run passes (bounded) until
  // `done` holds.
  template <typename F>
  bool expire_until(F done) {
    for (int i = 0; i < 500 && !done(); ++i) {
      core_->leases()->process_due();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return done();
  }

  int64_t lease_count() {
    auto c = call(Operation::kRead, "sys/leases/count");
    EXPECT_TRUE(c.ok()) << c.status().to_string();
    return c.ok() ? c->data->at("lease_count").as_int64() : -1;
  }
};

TEST_F(TokenLeasesTest, AnExpiredTokenIsRevokedOnTimeWithItsTreeLeasesAndCubbyhole) {
  const Auth parent = make("60s");
  const Auth child = make("60s", parent.client_token);
  const Auth other = make("1h");
  ASSERT_TRUE(
      call(Operation::kUpdate, "cubbyhole/k", object{{"v", "x"}}, parent.client_token).ok());
  // A dynamic secret's lease obtained with the parent (any engine's lease is revoked alike).
  ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/secret", object{{"type", "kv-v2"}}).ok());
  auto entry = core_->tokens()->lookup(parent.client_token);
  ASSERT_TRUE(entry.ok() && entry->has_value());
  Request obtained;
  obtained.mount_point = "secret/";
  obtained.rel_path = "creds/app";
  obtained.token = &**entry;
  Secret secret;
  secret.ttl = 3600;
  auto dynamic = core_->leases()->register_secret(obtained, secret, 3600, 86400);
  ASSERT_TRUE(dynamic.ok()) << dynamic.status().to_string();

  // Each token's lease is listed under its creation path and expires with it.
  const std::string parent_lease = lease_of(parent.client_token);
  EXPECT_EQ(parent_lease.rfind("auth/token/create/h", 0), 0u) << parent_lease;
  EXPECT_EQ(parent_lease.find(token_hash(parent.client_token)), std::string::npos)
      << "a lease ID must not reveal the token's hash";
  auto look = call(Operation::kUpdate, "sys/leases/lookup", object{{"lease_id", parent_lease}});
  ASSERT_TRUE(look.ok()) << look.status().to_string();
  EXPECT_EQ(look->data->at("ttl").as_int64(), 60);
  EXPECT_EQ(look->data->at("renewable"), false);
  auto listed = call(Operation::kList, "sys/leases/lookup/auth/token/create/");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->data->at("keys").as_array().size(), 3u);

  // The child renews past its parent's expiry; renewals move its lease.
  clock_.advance(seconds(50));
  auto renewed = call(Operation::kUpdate, "auth/token/renew-self", object{{"increment", "60s"}},
                      child.client_token);
  ASSERT_TRUE(renewed.ok()) << renewed.status().to_string();
  auto child_look = call(Operation::kUpdate, "sys/leases/lookup",
                         object{{"lease_id", lease_of(child.client_token)}});
  ASSERT_TRUE(child_look.ok());
  EXPECT_EQ(child_look->data->at("ttl").as_int64(), 60);

  // Nobody presents the parent again: its lease revokes it at its expiry, and with it the
  // child, the lease obtained with it and its cubbyhole.
  EXPECT_EQ(core_->leases()->process_due(), 0u);
  clock_.advance(seconds(11));
  EXPECT_TRUE(expire_until([&] { return !stored(parent.client_token); }));
  EXPECT_FALSE(stored(child.client_token)) << "a child does not outlive its expired parent";
  EXPECT_FALSE(valid(child.client_token));
  auto gone = core_->leases()->lookup(dynamic->lease_id);
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value()) << "a lease does not outlive the token that obtained it";
  auto boxes = core_->barrier().list("logical/");
  ASSERT_TRUE(boxes.ok());
  for (const auto& k : *boxes) {
    auto below = core_->barrier().list("logical/" + k);
    ASSERT_TRUE(below.ok());
    EXPECT_TRUE(below->empty()) << "cubbyhole left behind in logical/" << k;
  }
  // What is left: the unexpired token's lease, nothing of the revoked ones.
  EXPECT_TRUE(valid(other.client_token));
  EXPECT_EQ(lease_count(), 1);
}

TEST_F(TokenLeasesTest, RenewalMovesTheLeaseSoARenewedTokenIsNotRevokedEarly) {
  const Auth t = make("60s");
  clock_.advance(seconds(50));
  ASSERT_TRUE(call(Operation::kUpdate, "auth/token/renew-self", object{{"increment", "60s"}},
                   t.client_token)
                  .ok());
  clock_.advance(seconds(20));  // past the first expiry, before the renewed one
  core_->leases()->process_due();
  EXPECT_TRUE(valid(t.client_token));
  clock_.advance(seconds(41));
  EXPECT_TRUE(expire_until([&] { return !stored(t.client_token); }));
  EXPECT_EQ(lease_count(), 0);
}

TEST_F(TokenLeasesTest, RevokingTheTokenDeletesItsLeaseAndRevokingTheLeaseRevokesTheToken) {
  const Auth a = make("1h");
  const Auth b = make("1h");
  const Auth b_child = make("1h", b.client_token);
  ASSERT_EQ(lease_count(), 3);
  ASSERT_TRUE(
      call(Operation::kUpdate, "auth/token/revoke", object{{"token", a.client_token}}).ok());
  EXPECT_EQ(lease_count(), 2) << "no lease outlives its token";

  const std::string lease = lease_of(b.client_token);
  ASSERT_TRUE(call(Operation::kUpdate, "sys/leases/revoke", object{{"lease_id", lease}}).ok());
  EXPECT_FALSE(stored(b.client_token));
  EXPECT_FALSE(stored(b_child.client_token));
  EXPECT_EQ(lease_count(), 0);

  // Tokens renew through auth/token/renew*, not sys/leases/renew.
  const Auth c = make("1h");
  auto renew =
      call(Operation::kUpdate, "sys/leases/renew", object{{"lease_id", lease_of(c.client_token)}});
  EXPECT_EQ(renew.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(valid(c.client_token));
}

TEST_F(TokenLeasesTest, AuthMethodsTokensGoWithTheMethodAndByLeasePrefix) {
  ASSERT_TRUE(call(Operation::kUpdate, "sys/auth/up", object{{"type", "userpass"}}).ok());
  ASSERT_TRUE(call(Operation::kUpdate, "auth/up/users/alice",
                   object{{"password", "correct horse"}, {"token_ttl", "15m"}})
                  .ok());
  auto login = [&] {
    auto r = call(Operation::kUpdate, "auth/up/login/alice", object{{"password", "correct horse"}});
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? r->auth->client_token : "";
  };
  const std::string first = login();
  const std::string second = login();
  const Auth unrelated = make("1h");
  EXPECT_EQ(lease_of(first).rfind("auth/up/login/alice/h", 0), 0u) << lease_of(first);

  // Revoking by lease prefix revokes every token the method issued, and only those.
  ASSERT_TRUE(call(Operation::kUpdate, "sys/leases/revoke-prefix/auth/up/login/").ok());
  EXPECT_FALSE(valid(first));
  EXPECT_FALSE(valid(second));
  EXPECT_TRUE(valid(unrelated.client_token));

  // Disabling the method revokes its tokens too.
  const std::string third = login();
  ASSERT_TRUE(valid(third));
  ASSERT_TRUE(call(Operation::kDelete, "sys/auth/up").ok());
  EXPECT_FALSE(stored(third));
  EXPECT_TRUE(valid(unrelated.client_token));
  EXPECT_TRUE(valid(root_));
  EXPECT_EQ(lease_count(), 1);
}

TEST_F(TokenLeasesTest, TidyGivesALeaseToATokenThatHasNone) {
  // A token stored before tokens had leases: its lease record is missing.
  const Auth t = make("10m");
  const std::string lease = lease_of(t.client_token);
  ASSERT_TRUE(core_->barrier().del("sys/expire/id/" + lease).ok());
  ASSERT_EQ(lease_count(), 0);
  auto tidy = call(Operation::kUpdate, "auth/token/tidy");
  ASSERT_TRUE(tidy.ok()) << tidy.status().to_string();
  EXPECT_EQ(lease_count(), 1);
  clock_.advance(seconds(601));
  EXPECT_TRUE(expire_until([&] { return !stored(t.client_token); }));
}

TEST_F(TokenLeasesTest, ATreeWhoseLeasesAllFallDueTogetherIsRevokedWithoutDeadlock) {
  // Parent and children expire in one scheduler pass; each child's lease is reached both on its
  // own and through the parent's tree, from the test thread and the server's scheduler thread.
  const Auth parent = make("30s");
  std::vector<std::string> children;
  for (int i = 0; i < 40; ++i) children.push_back(make("30s", parent.client_token).client_token);
  clock_.advance(seconds(31));
  std::thread other([&] { core_->leases()->process_due(); });
  EXPECT_TRUE(expire_until([&] { return lease_count() == 0; }));
  other.join();
  EXPECT_FALSE(stored(parent.client_token));
  for (const auto& c : children) EXPECT_FALSE(stored(c));
}

}  // namespace
}  // namespace custos::core
