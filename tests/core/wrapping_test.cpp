// Response wrapping and the cubbyhole through the Core pipeline: each token's private store,
// wrapped responses that unwrap exactly once, lookup, rewrap, wrapped token creation, the
// policy's wrapping TTLs and the reserved response-wrapping policy.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "core_fixture.h"

namespace custos::core {
namespace {

std::string str_at(const boost::json::value& v, std::initializer_list<std::string_view> path) {
  const boost::json::value* cur = &v;
  for (std::string_view key : path) {
    if (!cur->is_object() || !cur->as_object().contains(key)) return "<missing>";
    cur = &cur->as_object().at(key);
  }
  return cur->is_string() ? std::string(cur->as_string()) : boost::json::serialize(*cur);
}

class WrappingTest : public CoreTest {
 protected:
  void SetUp() override {
    init_unseal();
    ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/secret", object{{"type", "kv-v2"}}).ok());
    ASSERT_TRUE(call(Operation::kUpdate, "secret/data/app",
                     object{{"data", object{{"password", "hunter2"}}}})
                    .ok());
  }

  std::string token_with(const std::vector<std::string>& policies) {
    boost::json::array p;
    for (const auto& x : policies) p.emplace_back(x);
    auto t = call(Operation::kUpdate, "auth/token/create", object{{"policies", p}});
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    return t.ok() ? t->auth->client_token : "";
  }

  // Reads secret/data/app wrapped for `ttl` seconds; returns the wrap info.
  WrapInfo wrapped_read(int64_t ttl = 60, const std::string& token = "") {
    auto r = call(Operation::kRead, "secret/data/app", {}, token, ttl);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok() || !r->wrap_info) return {};
    EXPECT_FALSE(r->data) << "a wrapped response carries nothing but its wrap info";
    EXPECT_FALSE(r->auth);
    return *r->wrap_info;
  }

  std::string cubbyhole_uuid() {
    auto m = call(Operation::kRead, "sys/mounts");
    EXPECT_TRUE(m.ok());
    return m.ok() ? str_at(*m->raw, {"cubbyhole/", "uuid"}) : "";
  }
};

TEST_F(WrappingTest, CubbyholeIsPrivateToEachTokenAndDiesWithIt) {
  const std::string a = token_with({"default"});
  const std::string b = token_with({"default"});
  ASSERT_TRUE(call(Operation::kUpdate, "cubbyhole/notes", object{{"k", "a-only"}}, a).ok());
  auto mine = call(Operation::kRead, "cubbyhole/notes", {}, a);
  ASSERT_TRUE(mine.ok()) << mine.status().to_string();
  EXPECT_EQ(mine->data->at("k"), "a-only");
  // Neither another token nor root can see it: the path names no token.
  EXPECT_EQ(call(Operation::kRead, "cubbyhole/notes", {}, b).status().code(), Code::kNotFound);
  EXPECT_EQ(call(Operation::kRead, "cubbyhole/notes").status().code(), Code::kNotFound);
  auto keys = call(Operation::kList, "cubbyhole/", {}, a);
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->data->at("keys"), (boost::json::array{"notes"}));
  EXPECT_EQ(call(Operation::kList, "cubbyhole/", {}, b).status().code(), Code::kNotFound);

  // Revoking the token deletes its cubbyhole from storage.
  const std::string prefix = "logical/" + cubbyhole_uuid() + "/";
  auto before = core_->barrier().list(prefix);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->size(), 1u);
  ASSERT_TRUE(call(Operation::kUpdate, "auth/token/revoke", object{{"token", a}}).ok());
  auto after = core_->barrier().list(prefix);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->empty());

  // Batch tokens have none; the mount can be neither removed nor mounted again.
  auto batch = call(Operation::kUpdate, "auth/token/create",
                    object{{"type", "batch"}, {"policies", boost::json::array{"default"}}});
  ASSERT_TRUE(batch.ok()) << batch.status().to_string();
  EXPECT_EQ(call(Operation::kUpdate, "cubbyhole/x", object{{"k", "v"}}, batch->auth->client_token)
                .status()
                .code(),
            Code::kInvalidArgument);
  EXPECT_EQ(call(Operation::kDelete, "sys/mounts/cubbyhole").status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(
      call(Operation::kUpdate, "sys/mounts/other", object{{"type", "cubbyhole"}}).status().code(),
      Code::kInvalidArgument);
}

TEST_F(WrappingTest, AWrappedResponseUnwrapsExactlyOnce) {
  const std::string audit_log = enable_file_audit("wrapping-audit");
  ASSERT_FALSE(audit_log.empty());
  WrapInfo w = wrapped_read(90);
  ASSERT_FALSE(w.token.empty());
  EXPECT_EQ(w.ttl, 90);
  EXPECT_EQ(w.creation_path, "secret/data/app");
  EXPECT_FALSE(w.accessor.empty());

  // Lookup needs no token of its own and does not use the wrapping token up.
  Request lookup;
  lookup.op = Operation::kUpdate;
  lookup.http_put_or_post = true;
  lookup.path = "sys/wrapping/lookup";
  lookup.data = object{{"token", w.token}};
  auto info = core_->handle(lookup);
  ASSERT_TRUE(info.ok()) << info.status().to_string();
  EXPECT_EQ(info->data->at("creation_path"), "secret/data/app");
  EXPECT_EQ(info->data->at("creation_ttl"), 90);

  // The wrapping token may do nothing but unwrap.
  EXPECT_EQ(call(Operation::kRead, "secret/data/app", {}, w.token).status().code(),
            Code::kPermissionDenied);
  w = wrapped_read(90);  // that refused read used the first token up
  auto un = call(Operation::kUpdate, "sys/wrapping/unwrap", {}, w.token);
  ASSERT_TRUE(un.ok()) << un.status().to_string();
  ASSERT_TRUE(un->raw);
  EXPECT_EQ(str_at(*un->raw, {"data", "data", "password"}), "hunter2");
  EXPECT_EQ(str_at(*un->raw, {"mount_type"}), "kv");
  EXPECT_FALSE(call(Operation::kUpdate, "sys/wrapping/unwrap", {}, w.token).ok());
  EXPECT_EQ(core_->handle(lookup).status().code(), Code::kInvalidArgument);

  // Any token allowed to call unwrap may present a wrapping token in the body, once.
  const std::string other = token_with({"default"});
  w = wrapped_read();
  auto by_other =
      call(Operation::kUpdate, "sys/wrapping/unwrap", object{{"token", w.token}}, other);
  ASSERT_TRUE(by_other.ok()) << by_other.status().to_string();
  EXPECT_EQ(str_at(*by_other->raw, {"data", "data", "password"}), "hunter2");
  auto again = call(Operation::kUpdate, "sys/wrapping/unwrap", object{{"token", w.token}}, other);
  EXPECT_EQ(again.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(again.status().message(), "wrapping token is not valid or does not exist");
  // An ordinary token is not a wrapping token.
  EXPECT_EQ(call(Operation::kUpdate, "sys/wrapping/unwrap", object{{"token", other}}, root_)
                .status()
                .code(),
            Code::kInvalidArgument);

  // Past its TTL its lease revokes it, and what it held is deleted, unasked.
  w = wrapped_read(30);
  const std::string held = "logical/" + cubbyhole_uuid() + "/" + token_hash(w.token) + "/";
  ASSERT_EQ(core_->barrier().list(held)->size(), 2u) << "response and wrapinfo";
  clock_.advance(std::chrono::seconds(29));
  EXPECT_EQ(core_->leases()->process_due(), 0u);
  EXPECT_EQ(core_->barrier().list(held)->size(), 2u);
  clock_.advance(std::chrono::seconds(2));
  // The server's own scheduler thread may take the lease first: wait (bounded) for either.
  for (int i = 0; i < 500 && !core_->barrier().list(held)->empty(); ++i) {
    core_->leases()->process_due();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(core_->barrier().list(held)->empty());
  EXPECT_EQ(
      call(Operation::kUpdate, "sys/wrapping/unwrap", object{{"token", w.token}}).status().code(),
      Code::kInvalidArgument);

  // The audit log shows the wrap info with the token HMAC-ed; neither the wrapping token nor
  // the wrapped secret appears in it.
  std::ifstream in(audit_log);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  EXPECT_NE(text.find("\"wrap_info\":{\"token\":\"hmac-sha256:"), std::string::npos);
  EXPECT_EQ(text.find(w.token), std::string::npos);
  EXPECT_EQ(text.find("hunter2"), std::string::npos);
  std::filesystem::remove(audit_log);
}

TEST_F(WrappingTest, WrappedTokenCreationRewrapAndSysWrappingWrap) {
  auto created = call(Operation::kUpdate, "auth/token/create",
                      object{{"policies", boost::json::array{"default"}}}, "", 120);
  ASSERT_TRUE(created.ok()) << created.status().to_string();
  ASSERT_TRUE(created->wrap_info);
  const WrapInfo first = *created->wrap_info;
  EXPECT_FALSE(first.wrapped_accessor.empty());
  EXPECT_EQ(first.creation_path, "auth/token/create");

  // Rewrap: a new token for the same response; the old one stops working.
  auto re = call(Operation::kUpdate, "sys/wrapping/rewrap", object{{"token", first.token}});
  ASSERT_TRUE(re.ok()) << re.status().to_string();
  ASSERT_TRUE(re->wrap_info);
  EXPECT_NE(re->wrap_info->token, first.token);
  EXPECT_EQ(re->wrap_info->ttl, 120);
  EXPECT_EQ(re->wrap_info->creation_path, "auth/token/create");
  EXPECT_FALSE(
      call(Operation::kUpdate, "sys/wrapping/unwrap", object{{"token", first.token}}).ok());
  auto un = call(Operation::kUpdate, "sys/wrapping/unwrap", {}, re->wrap_info->token);
  ASSERT_TRUE(un.ok()) << un.status().to_string();
  const std::string minted = str_at(*un->raw, {"auth", "client_token"});
  EXPECT_EQ(str_at(*un->raw, {"auth", "accessor"}), first.wrapped_accessor);
  auto self = call(Operation::kRead, "auth/token/lookup-self", {}, minted);
  ASSERT_TRUE(self.ok()) << "the unwrapped token works: " << self.status().to_string();

  // sys/wrapping/wrap wraps the body, and only when asked to wrap.
  EXPECT_EQ(call(Operation::kUpdate, "sys/wrapping/wrap", object{{"k", "v"}}).status().code(),
            Code::kInvalidArgument);
  auto w = call(Operation::kUpdate, "sys/wrapping/wrap", object{{"k", "v"}}, minted, 60);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  auto back = call(Operation::kUpdate, "sys/wrapping/unwrap",
                   object{{"token", w->wrap_info->token}}, minted);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(str_at(*back->raw, {"data", "k"}), "v");
}

TEST_F(WrappingTest, AWrappedAppRoleSecretIdNamesItsAccessor) {
  ASSERT_TRUE(call(Operation::kUpdate, "sys/auth/approle", object{{"type", "approle"}}).ok());
  ASSERT_TRUE(call(Operation::kUpdate, "auth/approle/role/ci", object{{"token_ttl", "10m"}}).ok());
  auto wrapped = call(Operation::kUpdate, "auth/approle/role/ci/secret-id", {}, "", 60);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();
  ASSERT_TRUE(wrapped->wrap_info);
  // As Vault: the secret ID's accessor, so an orchestrator can track (or destroy) the secret
  // ID it hands over without unwrapping it.
  const std::string accessor = wrapped->wrap_info->wrapped_accessor;
  EXPECT_FALSE(accessor.empty());
  auto un = call(Operation::kUpdate, "sys/wrapping/unwrap", {}, wrapped->wrap_info->token);
  ASSERT_TRUE(un.ok()) << un.status().to_string();
  EXPECT_EQ(str_at(*un->raw, {"data", "secret_id_accessor"}), accessor);
  auto looked = call(Operation::kUpdate, "auth/approle/role/ci/secret-id-accessor/lookup",
                     object{{"secret_id_accessor", accessor}});
  ASSERT_TRUE(looked.ok()) << looked.status().to_string();
}

TEST_F(WrappingTest, PolicyWrappingTtlsAreEnforced) {
  ASSERT_TRUE(call(Operation::kUpdate, "sys/policies/acl/wrapped",
                   object{{"policy",
                           "path \"secret/data/*\" {\n  capabilities = [\"read\"]\n"
                           "  min_wrapping_ttl = \"30s\"\n  max_wrapping_ttl = \"2m\"\n}\n"}})
                  .ok());
  const std::string t = token_with({"wrapped"});
  auto code = [&](int64_t ttl) {
    return call(Operation::kRead, "secret/data/app", {}, t, ttl).status().code();
  };
  EXPECT_EQ(code(0), Code::kPermissionDenied) << "the rule makes wrapping mandatory";
  EXPECT_EQ(code(10), Code::kPermissionDenied) << "shorter than min_wrapping_ttl";
  EXPECT_EQ(code(300), Code::kPermissionDenied) << "longer than max_wrapping_ttl";
  EXPECT_EQ(code(30), Code::kOk);
  EXPECT_EQ(code(120), Code::kOk);
}

TEST_F(WrappingTest, TheResponseWrappingPolicyCannotBeForged) {
  // Nobody can mint a token holding it, or rewrite it, so nothing else passes for a wrapping
  // token: unwrap trusts what such a token's cubbyhole holds.
  auto forged = call(Operation::kUpdate, "auth/token/create",
                     object{{"policies", boost::json::array{"Response-Wrapping"}}});
  EXPECT_EQ(forged.status().code(), Code::kInvalidArgument);
  ASSERT_TRUE(call(Operation::kUpdate, "auth/token/roles/r",
                   object{{"allowed_policies", "response-wrapping"}})
                  .ok());
  EXPECT_EQ(call(Operation::kUpdate, "auth/token/create/r",
                 object{{"policies", boost::json::array{"response-wrapping"}}})
                .status()
                .code(),
            Code::kInvalidArgument);
  EXPECT_EQ(call(Operation::kUpdate, "sys/policies/acl/response-wrapping",
                 object{{"policy", "path \"*\" { capabilities = [\"read\"] }"}})
                .status()
                .code(),
            Code::kInvalidArgument);
  EXPECT_EQ(call(Operation::kDelete, "sys/policies/acl/response-wrapping").status().code(),
            Code::kInvalidArgument);
  // A wrapping token cannot write its own cubbyhole/response.
  WrapInfo w = wrapped_read();
  EXPECT_EQ(call(Operation::kUpdate, "cubbyhole/response", object{{"response", "{}"}}, w.token)
                .status()
                .code(),
            Code::kPermissionDenied);
}

TEST_F(WrappingTest, TokenTidyCleansWhatLazyExpiryAndCutShortRevocationsLeave) {
  ASSERT_TRUE(call(Operation::kUpdate, "sys/policies/acl/creator",
                   object{{"policy", "path \"auth/token/create\" { capabilities = [\"update\"] }"}})
                  .ok());
  auto make = [&](const std::string& ttl, const std::string& policy, const std::string& parent) {
    auto t = call(Operation::kUpdate, "auth/token/create",
                  object{{"policies", boost::json::array{policy}}, {"ttl", ttl}}, parent);
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    return t.ok() ? *t->auth : Auth{};
  };
  const Auth expiring = make("1m", "default", "");
  const Auth parent = make("24h", "creator", "");
  const Auth child = make("24h", "default", parent.client_token);
  for (const Auth* a : {&expiring, &parent}) {
    ASSERT_TRUE(call(Operation::kUpdate, "cubbyhole/k", object{{"v", "x"}}, a->client_token).ok());
  }
  const std::string boxes = "logical/" + cubbyhole_uuid() + "/";
  ASSERT_EQ(core_->barrier().list(boxes)->size(), 2u);

  // The expiring token is one from before tokens had leases (its lease record is missing), so
  // once expired it stays stored until presented or tidied; the parent's revocation is cut
  // short after its entry went: its child, accessor and cubbyhole are left behind.
  auto expiring_entry = core_->tokens()->lookup(expiring.client_token);
  ASSERT_TRUE(expiring_entry.ok() && expiring_entry->has_value());
  ASSERT_TRUE(core_->barrier().del("sys/expire/id/" + token_lease_id(**expiring_entry)).ok());
  clock_.advance(std::chrono::minutes(2));
  ASSERT_TRUE(core_->tokens()->stored(token_hash(expiring.client_token)).value());
  ASSERT_TRUE(core_->barrier().del("sys/token/id/" + token_hash(parent.client_token)).ok());

  auto tidy = call(Operation::kUpdate, "auth/token/tidy");
  ASSERT_TRUE(tidy.ok()) << tidy.status().to_string();
  EXPECT_EQ(tidy->status, 202);
  ASSERT_EQ(tidy->warnings.size(), 1u);
  EXPECT_EQ(tidy->warnings[0],
            "Tidy operation completed: revoked 1 expired tokens and 1 tokens whose parent was "
            "gone; removed 1 dangling accessors and 1 orphaned cubbyholes.");
  EXPECT_FALSE(core_->tokens()->stored(token_hash(expiring.client_token)).value());
  EXPECT_FALSE(core_->tokens()->stored(token_hash(child.client_token)).value());
  EXPECT_EQ(
      call(Operation::kUpdate, "auth/token/lookup-accessor", object{{"accessor", parent.accessor}})
          .status()
          .code(),
      Code::kInvalidArgument);
  EXPECT_TRUE(core_->barrier().list(boxes)->empty());
  EXPECT_TRUE(core_->barrier().list("sys/token/parent/")->empty());

  // A second pass finds nothing left.
  auto again = call(Operation::kUpdate, "auth/token/tidy");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->warnings[0],
            "Tidy operation completed: revoked 0 expired tokens and 0 tokens whose parent was "
            "gone; removed 0 dangling accessors and 0 orphaned cubbyholes.");
}

}  // namespace
}  // namespace custos::core
