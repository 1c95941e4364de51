// Core pipeline tests with in-memory storage and an injected clock: barrier integrity, seal
// lifecycle, tokens (TTL, tree revocation, uses, batch), ACL enforcement, kv v2 versioning.
#include "core/core.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "base/encoding.h"
#include "core/barrier.h"
#include "core_fixture.h"
#include "forwarding_backend.h"
#include "storage/backend.h"
#include "storage/cache.h"

namespace custos::core {
namespace {

using boost::json::object;

TEST_F(CoreTest, InitLeavesServerSealedAndUnsealNeedsThreshold) {
  auto init = core_->initialize(5, 3);
  ASSERT_TRUE(init.ok());
  EXPECT_EQ(init->shares.size(), 5u);
  EXPECT_TRUE(core_->sealed());
  EXPECT_EQ(core_->initialize(5, 3).status().code(), Code::kInvalidArgument);
  auto s1 = core_->unseal(hex_encode(init->shares[4].span()), false);
  ASSERT_TRUE(s1.ok());
  EXPECT_EQ(s1->progress, 1);
  auto again = core_->unseal(hex_encode(init->shares[4].span()), false);  // same share twice
  EXPECT_EQ(again->progress, 1);
  core_->unseal(hex_encode(init->shares[0].span()), false).status().ok();
  auto s3 = core_->unseal(base64_encode(init->shares[2].span()), false);  // base64 accepted too
  ASSERT_TRUE(s3.ok());
  EXPECT_FALSE(s3->sealed);
}

// never_blocks decides which requests the transport may run on its I/O thread (their writes
// do not wait for an fsync there: http::Api defers durability to the answer).
TEST_F(CoreTest, OnlyKvRequestsAndSealStatusNeverBlock) {
  init_unseal();
  ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/kv1", object{{"type", "kv"}}).ok());
  ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/kv2",
                   object{{"type", "kv"}, {"options", object{{"version", "2"}}}})
                  .ok());
  ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/transit", object{{"type", "transit"}}).ok());
  EXPECT_TRUE(core_->never_blocks("kv1/app", Operation::kRead));
  EXPECT_TRUE(core_->never_blocks("kv2/data/app", Operation::kRead));
  EXPECT_TRUE(core_->never_blocks("kv2/metadata/", Operation::kList));
  EXPECT_TRUE(core_->never_blocks("kv2/data/app", Operation::kUpdate));
  EXPECT_TRUE(core_->never_blocks("kv2/data/app", Operation::kPatch));
  EXPECT_TRUE(core_->never_blocks("kv1/app", Operation::kDelete));
  EXPECT_TRUE(core_->never_blocks("sys/health", Operation::kRead));
  EXPECT_TRUE(core_->never_blocks("sys/seal-status", Operation::kRead));
  // Other engines and system paths may call out or spend long on the CPU.
  EXPECT_FALSE(core_->never_blocks("transit/keys/k", Operation::kRead));
  EXPECT_FALSE(core_->never_blocks("transit/keys/k", Operation::kUpdate));
  EXPECT_FALSE(core_->never_blocks("sys/mounts", Operation::kRead));
  EXPECT_FALSE(core_->never_blocks("sys/seal-status", Operation::kUpdate));
  EXPECT_FALSE(core_->never_blocks("auth/token/lookup-self", Operation::kRead));
  EXPECT_FALSE(core_->never_blocks("nomount/x", Operation::kRead));
  ASSERT_TRUE(core_->seal().ok());
  EXPECT_FALSE(core_->never_blocks("kv1/app", Operation::kRead));  // no mount table while sealed
}

// Storage behind a network round trip (etcd) blocks every request that touches it.
TEST(CoreNeverBlocks, NothingWhenTheStorageBlocks) {
  class Networked final : public ForwardingBackend {
   public:
    bool calls_block() const override { return true; }
  };
  FakeClock clock(from_unix_seconds(1'800'000'000));
  auto cached = storage::with_read_cache(std::make_unique<Networked>(), 16);
  EXPECT_TRUE(cached->calls_block());  // the read cache in front says so too
  Core core(*cached, clock, CoreConfig{});
  auto init = core.initialize(1, 1);
  ASSERT_TRUE(init.ok());
  ASSERT_TRUE(core.unseal(hex_encode(init->shares[0].span()), false).ok());
  ASSERT_TRUE(core.mount("kv2", "kv", object{{"version", "2"}}).ok());
  EXPECT_FALSE(core.never_blocks("kv2/data/app", Operation::kRead));
  EXPECT_FALSE(core.never_blocks("kv2/data/app", Operation::kUpdate));
  EXPECT_FALSE(core.never_blocks("sys/seal-status", Operation::kRead));
}

// While an unseal is still loading the token store, mounts and leases, the barrier is already
// open: a request arriving then gets "sealed" (503), not a half-built core.
TEST(CoreServing, RequestsDuringPostUnsealLoadingAreRefusedAsSealed) {
  class Pausing final : public ForwardingBackend {
   public:
    Result<std::optional<Bytes>> get(std::string_view k) override {
      if (k == "core/mounts") {
        std::unique_lock lock(mu);
        if (armed) {
          paused = true;
          cv.notify_all();
          cv.wait(lock, [&] { return !armed; });
        }
      }
      return ForwardingBackend::get(k);
    }
    std::mutex mu;
    std::condition_variable cv;
    bool armed = false;
    bool paused = false;
  };
  FakeClock clock(from_unix_seconds(1'800'000'000));
  Pausing backend;
  Core core(backend, clock, CoreConfig{});
  auto init = core.initialize(1, 1);
  ASSERT_TRUE(init.ok());
  std::string key = hex_encode(init->shares[0].span());
  {
    std::lock_guard lock(backend.mu);
    backend.armed = true;
  }
  std::thread unsealer([&] { EXPECT_TRUE(core.unseal(key, false).ok()); });
  {
    std::unique_lock lock(backend.mu);
    ASSERT_TRUE(
        backend.cv.wait_for(lock, std::chrono::seconds(10), [&] { return backend.paused; }));
  }
  EXPECT_FALSE(core.sealed());   // the barrier is open...
  EXPECT_FALSE(core.serving());  // ...but the core is not ready
  Request r;
  r.op = Operation::kRead;
  r.path = "auth/token/lookup-self";
  r.client_token = init->root_token;
  auto during = core.handle(r);
  ASSERT_FALSE(during.ok());
  EXPECT_EQ(during.status().code(), Code::kUnavailable);
  {
    std::lock_guard lock(backend.mu);
    backend.armed = false;
  }
  backend.cv.notify_all();
  unsealer.join();
  EXPECT_TRUE(core.serving());
  Request again;
  again.op = Operation::kRead;
  again.path = "auth/token/lookup-self";
  again.client_token = init->root_token;
  EXPECT_TRUE(core.handle(again).ok());
}

TEST_F(CoreTest, SealedServerRefusesEverythingButSealEndpoints) {
  init_unseal();
  ASSERT_TRUE(core_->seal().ok());
  auto r = call(Operation::kRead, "sys/mounts");
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_TRUE(call(Operation::kRead, "sys/seal-status").ok());
  EXPECT_TRUE(call(Operation::kRead, "sys/health").ok());
}

TEST_F(CoreTest, WithoutHaTheLeaderEndpointSaysSoAndStepDownIsANoOp) {
  init_unseal();
  auto r = call(Operation::kRead, "sys/leader", {}, "no-token-needed");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const auto& o = r->raw->as_object();
  EXPECT_FALSE(o.at("ha_enabled").as_bool());  // as Vault answers without HA
  EXPECT_FALSE(o.at("is_self").as_bool());
  EXPECT_EQ(o.at("leader_address").as_string(), "");
  EXPECT_FALSE(core_->standby());
  EXPECT_TRUE(call(Operation::kUpdate, "sys/step-down").ok());
  EXPECT_TRUE(core_->serving());
  // step-down needs sudo, as every root-protected path.
  auto token = call(Operation::kUpdate, "auth/token/create",
                    object{{"policies", boost::json::array{"default"}}});
  ASSERT_TRUE(token.ok());
  std::string t(token->auth->client_token);
  EXPECT_EQ(call(Operation::kUpdate, "sys/step-down", {}, t).status().code(),
            Code::kPermissionDenied);
}

TEST_F(CoreTest, BarrierDetectsTamperingAndSwappedCiphertexts) {
  init_unseal();
  Barrier& b = core_->barrier();
  ASSERT_TRUE(b.put("test/a", as_bytes("alpha")).ok());
  ASSERT_TRUE(b.put("test/b", as_bytes("bravo")).ok());
  auto raw_a = backend_->get("test/a");
  ASSERT_TRUE(raw_a.ok() && raw_a->has_value());
  EXPECT_EQ(as_string_view(**raw_a).find("alpha"), std::string_view::npos);
  // The same ciphertext under another key fails: the path is authenticated.
  ASSERT_TRUE(backend_->put("test/b", **raw_a).ok());
  EXPECT_EQ(b.get("test/b").status().code(), Code::kDataLoss);
  // A flipped byte fails.
  Bytes flipped = **raw_a;
  flipped.back() ^= 1;
  ASSERT_TRUE(backend_->put("test/a", flipped).ok());
  EXPECT_EQ(b.get("test/a").status().code(), Code::kDataLoss);
}

TEST_F(CoreTest, RotateKeepsOldTermsReadable) {
  init_unseal();
  Barrier& b = core_->barrier();
  ASSERT_TRUE(b.put("test/old", as_bytes("v1")).ok());
  auto term = b.rotate();
  ASSERT_TRUE(term.ok());
  EXPECT_EQ(*term, 2u);
  ASSERT_TRUE(b.put("test/new", as_bytes("v2")).ok());
  EXPECT_EQ((*b.get("test/old"))->view(), "v1");
  EXPECT_EQ((*b.get("test/new"))->view(), "v2");
  auto raw = backend_->get("test/new");
  EXPECT_EQ((**raw)[4], 2);  // term 2 in the header
  // Survives seal/unseal.
  ASSERT_TRUE(core_->seal().ok());
  for (const auto& k : keys_) ASSERT_TRUE(core_->unseal(k, false).ok());
  EXPECT_EQ((*b.get("test/old"))->view(), "v1");
  EXPECT_EQ(b.key_status()->term, 2u);
}

TEST_F(CoreTest, WrongSharesDoNotUnseal) {
  auto init = core_->initialize(3, 2);
  ASSERT_TRUE(init.ok());
  Bytes bad(init->shares[0].span().begin(), init->shares[0].span().end());
  bad[0] ^= 0x5a;
  ASSERT_TRUE(core_->unseal(hex_encode(bad), false).ok());
  auto r = core_->unseal(hex_encode(init->shares[1].span()), false);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(core_->sealed());
  EXPECT_EQ(core_->seal_status()->progress, 0);
}

TEST_F(CoreTest, TokenTtlExpiryTreeRevocationAndUses) {
  init_unseal();
  auto parent = call(Operation::kUpdate, "auth/token/create", object{{"ttl", "1h"}});
  ASSERT_TRUE(parent.ok()) << parent.status().to_string();
  std::string p = parent->auth->client_token;
  auto child = call(Operation::kUpdate, "auth/token/create", object{{"ttl", "2h"}}, p);
  ASSERT_TRUE(child.ok()) << child.status().to_string();
  std::string c = child->auth->client_token;
  // A child never outlives its parent.
  EXPECT_LE(child->auth->lease_duration, 3600);
  EXPECT_TRUE(call(Operation::kRead, "auth/token/lookup-self", {}, c).ok());
  ASSERT_TRUE(call(Operation::kUpdate, "auth/token/revoke", object{{"token", p}}).ok());
  EXPECT_EQ(call(Operation::kRead, "auth/token/lookup-self", {}, c).status().code(), Code::kPermissionDenied);

  auto ttl = call(Operation::kUpdate, "auth/token/create", object{{"ttl", "10m"}});
  std::string t = ttl->auth->client_token;
  clock_.advance(std::chrono::minutes(9));
  EXPECT_TRUE(call(Operation::kRead, "auth/token/lookup-self", {}, t).ok());
  clock_.advance(std::chrono::minutes(2));
  EXPECT_EQ(call(Operation::kRead, "auth/token/lookup-self", {}, t).status().code(), Code::kPermissionDenied);

  auto uses = call(Operation::kUpdate, "auth/token/create", object{{"num_uses", 2}});
  std::string u = uses->auth->client_token;
  // lookup-self shows the uses left after its own, as Vault does.
  for (int64_t left : {1, 0}) {
    auto self = call(Operation::kRead, "auth/token/lookup-self", {}, u);
    ASSERT_TRUE(self.ok());
    EXPECT_EQ(self->data->at("num_uses").as_int64(), left);
  }
  EXPECT_EQ(call(Operation::kRead, "auth/token/lookup-self", {}, u).status().code(), Code::kPermissionDenied);

  // A refused request uses the token up as well (Vault's rule): probing is not free.
  auto limited = call(Operation::kUpdate, "auth/token/create",
                      object{{"num_uses", 2}, {"policies", boost::json::array{"default"}}});
  ASSERT_TRUE(limited.ok());
  std::string l = limited->auth->client_token;
  EXPECT_EQ(call(Operation::kRead, "sys/mounts", {}, l).status().code(), Code::kPermissionDenied);
  EXPECT_TRUE(call(Operation::kRead, "auth/token/lookup-self", {}, l).ok());
  EXPECT_EQ(call(Operation::kRead, "auth/token/lookup-self", {}, l).status().code(),
            Code::kPermissionDenied);
}

// A token's uses are taken one at a time from its stored entry, before each request runs:
// concurrent requests never share a use, a renewal does not hand a use back, and the last use
// revokes the token once its request is done.
TEST_F(CoreTest, TokenUsesAreTakenOneAtATime) {
  init_unseal();
  auto five = call(Operation::kUpdate, "auth/token/create", object{{"num_uses", 5}});
  ASSERT_TRUE(five.ok());
  const std::string t = five->auth->client_token;
  const std::string accessor = five->auth->accessor;
  std::atomic<int> ok{0}, denied{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      auto r = call(Operation::kRead, "auth/token/lookup-self", {}, t);
      if (r.ok()) {
        ok.fetch_add(1);
      } else if (r.status().code() == Code::kPermissionDenied) {
        denied.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 5);
  EXPECT_EQ(denied.load(), 11);
  EXPECT_EQ(call(Operation::kUpdate, "auth/token/lookup-accessor", object{{"accessor", accessor}})
                .status()
                .code(),
            Code::kInvalidArgument)
      << "the last use revoked the token";

  auto three =
      call(Operation::kUpdate, "auth/token/create", object{{"num_uses", 3}, {"ttl", "1h"}});
  ASSERT_TRUE(three.ok());
  const std::string u = three->auth->client_token;
  EXPECT_TRUE(call(Operation::kUpdate, "auth/token/renew-self", {}, u).ok());
  EXPECT_TRUE(call(Operation::kRead, "auth/token/lookup-self", {}, u).ok());
  EXPECT_TRUE(call(Operation::kRead, "auth/token/lookup-self", {}, u).ok());
  EXPECT_EQ(call(Operation::kRead, "auth/token/lookup-self", {}, u).status().code(),
            Code::kPermissionDenied)
      << "the renewal kept the use it was made with";
}

// Token roles (auth/token/roles/:name, auth/token/create/:name), as Vault documents them.
TEST_F(CoreTest, TokenRolesBoundWhatTokensCreatedAgainstThemGet) {
  init_unseal();
  for (const char* name : {"app", "ops", "admin"}) {
    ASSERT_TRUE(call(Operation::kUpdate, std::string("sys/policies/acl/") + name,
                     object{{"policy", "path \"kv/*\" { capabilities = [\"read\"] }"}})
                    .ok());
  }
  // A caller that may use the role but holds none of its policies.
  ASSERT_TRUE(
      call(Operation::kUpdate, "sys/policies/acl/creator",
           object{{"policy", "path \"auth/token/create/*\" { capabilities = [\"update\"] }"}})
          .ok());
  auto creator = call(Operation::kUpdate, "auth/token/create",
                      object{{"policies", boost::json::array{"creator"}}});
  ASSERT_TRUE(creator.ok());
  const std::string c = creator->auth->client_token;

  EXPECT_EQ(call(Operation::kList, "auth/token/roles").status().code(), Code::kNotFound)
      << "an empty LIST is a 404, as in Vault";
  ASSERT_TRUE(call(Operation::kUpdate, "auth/token/roles/deployer",
                   object{{"allowed_policies", "app,ops"},
                          {"disallowed_policies", boost::json::array{"admin"}},
                          {"orphan", true},
                          {"renewable", false},
                          {"path_suffix", "ci"},
                          {"token_explicit_max_ttl", "1h"},
                          {"token_num_uses", 5}})
                  .ok());
  auto role = call(Operation::kRead, "auth/token/roles/deployer");
  ASSERT_TRUE(role.ok()) << role.status().to_string();
  EXPECT_EQ(role->data->at("allowed_policies"), (boost::json::array{"app", "ops"}));
  EXPECT_EQ(role->data->at("token_explicit_max_ttl").as_int64(), 3600);
  EXPECT_EQ(role->data->at("token_type").as_string(), "default-service");
  auto roles = call(Operation::kList, "auth/token/roles");
  ASSERT_TRUE(roles.ok());
  EXPECT_EQ(roles->data->at("keys"), (boost::json::array{"deployer"}));

  // No policies asked for: the role's allowed ones, though the creator holds neither.
  auto made = call(Operation::kUpdate, "auth/token/create/deployer", object{{"num_uses", 9}}, c);
  ASSERT_TRUE(made.ok()) << made.status().to_string();
  auto look = call(Operation::kRead, "auth/token/lookup-self", {}, made->auth->client_token);
  ASSERT_TRUE(look.ok());
  const object& d = *look->data;
  EXPECT_EQ(d.at("policies"), (boost::json::array{"app", "default", "ops"}));
  EXPECT_TRUE(d.at("orphan").as_bool());
  EXPECT_FALSE(d.at("renewable").as_bool());
  EXPECT_EQ(d.at("path").as_string(), "auth/token/create/deployer/ci");
  EXPECT_EQ(d.at("explicit_max_ttl").as_int64(), 3600);
  EXPECT_EQ(made->auth->num_uses, 5) << "the role caps the 9 uses asked for";
  EXPECT_EQ(d.at("num_uses").as_int64(), 4) << "lookup-self shows the uses left after its own";

  auto refused = [&](object body) {
    auto r = call(Operation::kUpdate, "auth/token/create/deployer", std::move(body), c);
    return r.status().code() == Code::kInvalidArgument;
  };
  EXPECT_TRUE(refused(object{{"policies", boost::json::array{"admin"}}})) << "disallowed";
  EXPECT_TRUE(refused(object{{"policies", boost::json::array{"creator"}}})) << "not allowed";
  EXPECT_TRUE(call(Operation::kUpdate, "auth/token/create/deployer",
                   object{{"policies", boost::json::array{"ops"}}}, c)
                  .ok());
  // Without the role, the creator may only hand out what it holds.
  EXPECT_EQ(call(Operation::kUpdate, "auth/token/create",
                 object{{"policies", boost::json::array{"ops"}}}, c)
                .status()
                .code(),
            Code::kPermissionDenied)
      << "the creator's policy does not even reach auth/token/create";

  // An orphan from the role outlives the creator.
  ASSERT_TRUE(call(Operation::kUpdate, "auth/token/revoke", object{{"token", c}}).ok());
  EXPECT_TRUE(call(Operation::kRead, "auth/token/lookup-self", {}, made->auth->client_token).ok());

  // Policy globs: '*' matches any run of characters.
  ASSERT_TRUE(call(Operation::kUpdate, "auth/token/roles/globbed",
                   object{{"allowed_policies_glob", "a*"}, {"disallowed_policies_glob", "ad*"}})
                  .ok());
  EXPECT_TRUE(call(Operation::kUpdate, "auth/token/create/globbed",
                   object{{"policies", boost::json::array{"app"}}}, c)
                  .status()
                  .code() == Code::kPermissionDenied)
      << "the creator was revoked above";
  EXPECT_TRUE(call(Operation::kUpdate, "auth/token/create/globbed",
                   object{{"policies", boost::json::array{"app"}}})
                  .ok());
  for (const char* name : {"ops", "admin"}) {  // not allowed; allowed but disallowed
    EXPECT_EQ(call(Operation::kUpdate, "auth/token/create/globbed",
                   object{{"policies", boost::json::array{name}}})
                  .status()
                  .code(),
              Code::kInvalidArgument)
        << name;
  }

  // A role that fixes the type; an unknown role; a deleted role.
  ASSERT_TRUE(call(Operation::kUpdate, "auth/token/roles/batcher",
                   object{{"token_type", "batch"}, {"allowed_policies", "app"}})
                  .ok());
  auto batch = call(Operation::kUpdate, "auth/token/create/batcher", object{{"ttl", "10m"}});
  ASSERT_TRUE(batch.ok()) << batch.status().to_string();
  EXPECT_EQ(batch->auth->client_token.rfind("hvb.", 0), 0u);
  EXPECT_EQ(call(Operation::kUpdate, "auth/token/create/batcher", object{{"type", "service"}})
                .status()
                .code(),
            Code::kInvalidArgument);
  EXPECT_EQ(call(Operation::kUpdate, "auth/token/create/nosuch", {}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(
      call(Operation::kUpdate, "auth/token/roles/bad", object{{"token_bound_cidrs", "10.0.0.0/33"}})
          .status()
          .code(),
      Code::kInvalidArgument);
  ASSERT_TRUE(call(Operation::kDelete, "auth/token/roles/batcher").ok());
  EXPECT_EQ(call(Operation::kRead, "auth/token/roles/batcher").status().code(), Code::kNotFound);
  EXPECT_EQ(call(Operation::kUpdate, "auth/token/roles/x/y", {}).status().code(),
            Code::kInvalidArgument);
}

// token_bound_cidrs (from a token role here; logins carry their role's or user's) binds every
// request the token makes, and the key broker's admin calls, to the source address.
TEST_F(CoreTest, TokenBoundCidrsAreCheckedOnEveryRequest) {
  init_unseal();
  ASSERT_TRUE(call(Operation::kUpdate, "auth/token/roles/ci",
                   object{{"token_bound_cidrs", boost::json::array{"10.0.0.0/8", "2001:db8::/32"}},
                          {"token_type", "default-service"}})
                  .ok());
  auto role = call(Operation::kRead, "auth/token/roles/ci");
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(role->data->at("token_bound_cidrs"),
            (boost::json::array{"10.0.0.0/8", "2001:db8::/32"}));
  auto from = [&](const std::string& token, const std::string& remote) {
    Request r;
    r.op = Operation::kRead;
    r.path = "auth/token/lookup-self";
    r.client_token = token;
    r.remote_addr = remote;
    return core_->handle(r);
  };
  for (const char* type : {"service", "batch"}) {
    auto made = call(Operation::kUpdate, "auth/token/create/ci",
                     object{{"type", type}, {"policies", boost::json::array{"default"}}});
    ASSERT_TRUE(made.ok()) << made.status().to_string();
    const std::string t = made->auth->client_token;
    auto inside = from(t, "10.1.2.3:5000");
    ASSERT_TRUE(inside.ok()) << type << ": " << inside.status().to_string();
    EXPECT_EQ(inside->data->at("bound_cidrs"), (boost::json::array{"10.0.0.0/8", "2001:db8::/32"}));
    EXPECT_TRUE(from(t, "[2001:db8::7]:443").ok()) << type;
    EXPECT_TRUE(from(t, "[::ffff:10.0.0.9]:443").ok()) << type << ": IPv4-mapped";
    EXPECT_EQ(from(t, "192.168.0.1:5000").status().code(), Code::kPermissionDenied) << type;
    EXPECT_EQ(from(t, "").status().code(), Code::kPermissionDenied) << type << ": fail closed";
  }
  // Tokens without a binding are unaffected.
  EXPECT_TRUE(from(root_, "192.168.0.1:5000").ok());
}

TEST_F(CoreTest, TokensAreStoredHashedAndBatchTokensAreNotStored) {
  init_unseal();
  auto svc = call(Operation::kUpdate, "auth/token/create", {});
  std::string tok = svc->auth->client_token;
  ASSERT_EQ(tok.rfind("hvs.", 0), 0u);
  auto keys = backend_->list("sys/token/id/");
  ASSERT_TRUE(keys.ok());
  for (const auto& k : *keys) EXPECT_EQ(k.find(tok), std::string::npos);
  auto batch = call(Operation::kUpdate, "auth/token/create", object{{"type", "batch"}, {"ttl", "5m"}, {"policies", boost::json::array{"default"}}});
  ASSERT_TRUE(batch.ok()) << batch.status().to_string();
  std::string b = batch->auth->client_token;
  ASSERT_EQ(b.rfind("hvb.", 0), 0u);
  EXPECT_EQ(backend_->list("sys/token/id/")->size(), keys->size());
  auto bl = call(Operation::kRead, "auth/token/lookup-self", {}, b);
  EXPECT_TRUE(bl.ok()) << bl.status().to_string();
  std::string forged = b;
  forged[10] = forged[10] == 'A' ? 'B' : 'A';
  EXPECT_EQ(call(Operation::kRead, "auth/token/lookup-self", {}, forged).status().code(), Code::kPermissionDenied);
  clock_.advance(std::chrono::minutes(6));
  EXPECT_EQ(call(Operation::kRead, "auth/token/lookup-self", {}, b).status().code(), Code::kPermissionDenied);
}

TEST_F(CoreTest, AclEnforcedWithDenyAndCreateVsUpdate) {
  init_unseal();
  ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/kv", object{{"type", "kv"}}).ok());
  ASSERT_TRUE(call(Operation::kUpdate, "sys/policies/acl/app",
                   object{{"policy", "path \"kv/app/*\" { capabilities = [\"create\", \"read\"] }\n"
                                     "path \"kv/app/secret\" { capabilities = [\"deny\"] }"}})
                  .ok());
  auto tok = call(Operation::kUpdate, "auth/token/create", object{{"policies", boost::json::array{"app"}}});
  std::string t = tok->auth->client_token;
  EXPECT_TRUE(call(Operation::kUpdate, "kv/app/a", object{{"x", "1"}}, t).ok());  // create
  EXPECT_EQ(call(Operation::kUpdate, "kv/app/a", object{{"x", "2"}}, t).status().code(),
            Code::kPermissionDenied);  // now it exists: update is not granted
  EXPECT_TRUE(call(Operation::kRead, "kv/app/a", {}, t).ok());
  EXPECT_EQ(call(Operation::kRead, "kv/app/secret", {}, t).status().code(), Code::kPermissionDenied);
  EXPECT_EQ(call(Operation::kRead, "kv/other", {}, t).status().code(), Code::kPermissionDenied);
  EXPECT_EQ(call(Operation::kUpdate, "sys/rotate", {}, t).status().code(), Code::kPermissionDenied);
  // Policy changes apply to existing tokens at once.
  ASSERT_TRUE(call(Operation::kDelete, "sys/policies/acl/app").ok());
  EXPECT_EQ(call(Operation::kRead, "kv/app/a", {}, t).status().code(), Code::kPermissionDenied);
}

// A policy's parameter constraints are enforced on the request's body (and, for reads, its
// query parameters), not just parsed: a restriction an operator wrote is never silently dropped.
TEST_F(CoreTest, PolicyParameterConstraintsAreEnforced) {
  init_unseal();
  ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/kv", object{{"type", "kv"}}).ok());
  ASSERT_TRUE(call(Operation::kUpdate, "sys/policies/acl/params", object{{"policy", R"(
path "kv/app" {
  capabilities = ["create", "read", "update", "delete"]
  allowed_parameters = { "env" = ["dev", "test-*"], "owner" = [] }
  denied_parameters = { "owner" = ["root"] }
  required_parameters = ["owner"]
})"}}).ok());
  auto tok = call(Operation::kUpdate, "auth/token/create",
                  object{{"policies", boost::json::array{"params"}}});
  ASSERT_TRUE(tok.ok());
  const std::string t = tok->auth->client_token;
  auto denied = [](const Result<Response>& r) {
    return r.status().code() == Code::kPermissionDenied;
  };
  EXPECT_TRUE(denied(call(Operation::kUpdate, "kv/app", object{{"env", "dev"}}, t)))
      << "owner is required";
  EXPECT_TRUE(denied(call(Operation::kUpdate, "kv/app", object{{"owner", "root"}}, t)));
  EXPECT_TRUE(
      denied(call(Operation::kUpdate, "kv/app", object{{"owner", "a"}, {"env", "prod"}}, t)));
  EXPECT_TRUE(
      denied(call(Operation::kUpdate, "kv/app", object{{"owner", "a"}, {"extra", "x"}}, t)));
  EXPECT_TRUE(denied(
      call(Operation::kUpdate, "kv/app", object{{"owner", "a"}, {"env", "test-1,prod"}}, t)));
  // Nothing was written by the refused requests (a read needs owner too, as a query parameter).
  EXPECT_EQ(call(Operation::kRead, "kv/app", object{{"owner", "a"}}, t).status().code(),
            Code::kNotFound);
  ASSERT_TRUE(
      call(Operation::kUpdate, "kv/app", object{{"owner", "a"}, {"env", "test-1"}}, t).ok());
  // Reads are checked as Vault checks them: with their query parameters.
  EXPECT_TRUE(denied(call(Operation::kRead, "kv/app", {}, t)));
  auto read = call(Operation::kRead, "kv/app", object{{"owner", "a"}}, t);
  ASSERT_TRUE(read.ok()) << read.status().to_string();
  ASSERT_TRUE(read->data.has_value());
  EXPECT_EQ(read->data->at("env").as_string(), "test-1");
  // Deletes are not.
  EXPECT_TRUE(call(Operation::kDelete, "kv/app", {}, t).ok());
}

// A write to a new path is a create, to an existing one an update (Vault's existence check), and
// the audit log records which.
TEST_F(CoreTest, AuditRecordsCreateThenUpdateForWrites) {
  init_unseal();
  ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/secret", object{{"type", "kv-v2"}}).ok());
  const std::string log = enable_file_audit("custos-core-audit");
  ASSERT_FALSE(log.empty());
  ASSERT_TRUE(call(Operation::kUpdate, "secret/data/new", object{{"data", object{{"v", 1}}}}).ok());
  ASSERT_TRUE(call(Operation::kUpdate, "secret/data/new", object{{"data", object{{"v", 2}}}}).ok());
  std::ifstream in(log);
  std::vector<std::string> ops;
  for (std::string line; std::getline(in, line);) {
    auto v = boost::json::parse(line);
    const auto& req = v.at("request").as_object();
    if (v.at("type") == "request" && req.at("path") == "secret/data/new") {
      ops.emplace_back(req.at("operation").as_string());
    }
  }
  EXPECT_EQ(ops, (std::vector<std::string>{"create", "update"}));
  std::filesystem::remove(log);
}

// Refused requests are audited, as Vault audits them: a bad or missing token and an ACL denial
// each leave a request and a response entry that carry the refusal, with the token HMAC-ed.
TEST_F(CoreTest, AuditRecordsRefusedRequests) {
  init_unseal();
  ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/kv", object{{"type", "kv"}}).ok());
  const std::string log = enable_file_audit("custos-core-refusals");
  ASSERT_FALSE(log.empty());
  auto tok = call(Operation::kUpdate, "auth/token/create",
                  object{{"policies", boost::json::array{"default"}}});
  ASSERT_TRUE(tok.ok());
  const std::string t = tok->auth->client_token;
  const std::string bogus = "hvs.not-a-token-at-all";
  EXPECT_EQ(call(Operation::kRead, "kv/a", {}, bogus).status().code(), Code::kPermissionDenied);
  Request anonymous;
  anonymous.op = Operation::kRead;
  anonymous.path = "kv/b";
  EXPECT_EQ(core_->handle(anonymous).status().code(), Code::kPermissionDenied);
  EXPECT_EQ(call(Operation::kUpdate, "kv/c", object{{"password", "hunter2"}}, t).status().code(),
            Code::kPermissionDenied);

  std::ifstream in(log);
  std::stringstream whole;
  whole << in.rdbuf();
  EXPECT_EQ(whole.str().find(bogus), std::string::npos) << "tokens are HMAC-ed";
  EXPECT_EQ(whole.str().find("hunter2"), std::string::npos) << "so are values";
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> by_path;  // type, error
  std::istringstream lines(whole.str());
  for (std::string line; std::getline(lines, line);) {
    auto v = boost::json::parse(line).as_object();
    const auto* err = v.if_contains("error");
    by_path[std::string(v.at("request").at("path").as_string())].emplace_back(
        std::string(v.at("type").as_string()), err ? std::string(err->as_string()) : "");
  }
  using Entries = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(by_path["kv/a"],
            (Entries{{"request", "permission denied"}, {"response", "permission denied"}}));
  EXPECT_EQ(by_path["kv/b"], (Entries{{"request", "permission denied (missing client token)"},
                                      {"response", "permission denied (missing client token)"}}));
  EXPECT_EQ(by_path["kv/c"],
            (Entries{{"request", "permission denied"}, {"response", "permission denied"}}));
  std::filesystem::remove(log);
}

TEST_F(CoreTest, KvV2TrimsVersionsAndHonoursDeleteVersionAfter) {
  init_unseal();
  ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/secret", object{{"type", "kv-v2"}}).ok());
  ASSERT_TRUE(call(Operation::kUpdate, "secret/metadata/app", object{{"max_versions", 2}}).ok());
  for (int i = 1; i <= 4; ++i) {
    auto w = call(Operation::kUpdate, "secret/data/app", object{{"data", object{{"v", i}}}});
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    EXPECT_EQ(w->data->at("version").as_int64(), i);
  }
  auto meta = call(Operation::kRead, "secret/metadata/app");
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->data->at("versions").as_object().size(), 2u);
  EXPECT_EQ(meta->data->at("oldest_version").as_int64(), 3);
  EXPECT_EQ(call(Operation::kRead, "secret/data/app", object{{"version", "1"}}).status().code(), Code::kNotFound);

  ASSERT_TRUE(call(Operation::kUpdate, "secret/metadata/tmp", object{{"delete_version_after", "30s"}}).ok());
  ASSERT_TRUE(call(Operation::kUpdate, "secret/data/tmp", object{{"data", object{{"v", 1}}}}).ok());
  EXPECT_TRUE(call(Operation::kRead, "secret/data/tmp").ok());
  clock_.advance(std::chrono::seconds(31));
  EXPECT_EQ(call(Operation::kRead, "secret/data/tmp").status().code(), Code::kNotFound);

  // cas_required on the mount config.
  ASSERT_TRUE(call(Operation::kUpdate, "secret/config", object{{"cas_required", true}}).ok());
  EXPECT_EQ(call(Operation::kUpdate, "secret/data/app", object{{"data", object{{"v", 9}}}}).status().code(),
            Code::kInvalidArgument);
  EXPECT_TRUE(call(Operation::kUpdate, "secret/data/app",
                   object{{"data", object{{"v", 9}}}, {"options", object{{"cas", 4}}}})
                  .ok());
}

TEST_F(CoreTest, KvV2PatchMergesAndSubkeysHideValues) {
  init_unseal();
  ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/secret", object{{"type", "kv-v2"}}).ok());
  ASSERT_TRUE(call(Operation::kUpdate, "secret/data/a",
                   object{{"data", object{{"user", "u"}, {"nested", object{{"x", 1}, {"y", 2}}}}}})
                  .ok());
  ASSERT_TRUE(call(Operation::kPatch, "secret/data/a",
                   object{{"data", object{{"nested", object{{"y", nullptr}, {"z", 3}}}}}})
                  .ok());
  auto r = call(Operation::kRead, "secret/data/a");
  ASSERT_TRUE(r.ok());
  const auto& d = r->data->at("data").as_object();
  EXPECT_EQ(d.at("user").as_string(), "u");
  EXPECT_FALSE(d.at("nested").as_object().contains("y"));
  EXPECT_EQ(d.at("nested").as_object().at("z").as_int64(), 3);
  auto sk = call(Operation::kRead, "secret/subkeys/a");
  ASSERT_TRUE(sk.ok());
  EXPECT_TRUE(sk->data->at("subkeys").as_object().at("user").is_null());
  EXPECT_EQ(call(Operation::kPatch, "secret/data/missing", object{{"data", object{{"a", 1}}}}).status().code(),
            Code::kNotFound);
}

TEST_F(CoreTest, MountTableSurvivesSealAndUnmountDeletesData) {
  init_unseal();
  ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/kv", object{{"type", "kv"}}).ok());
  ASSERT_TRUE(call(Operation::kUpdate, "kv/a", object{{"x", "1"}}).ok());
  EXPECT_EQ(call(Operation::kUpdate, "sys/mounts/kv/sub", object{{"type", "kv"}}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(call(Operation::kUpdate, "sys/mounts/sys2", object{{"type", "nope"}}).status().code(),
            Code::kInvalidArgument);
  ASSERT_TRUE(core_->seal().ok());
  for (const auto& k : keys_) ASSERT_TRUE(core_->unseal(k, false).ok());
  EXPECT_TRUE(call(Operation::kRead, "kv/a").ok());
  ASSERT_TRUE(call(Operation::kDelete, "sys/mounts/kv").ok());
  EXPECT_EQ(call(Operation::kRead, "kv/a").status().code(), Code::kNotFound);
  ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/kv", object{{"type", "kv"}}).ok());
  EXPECT_EQ(call(Operation::kRead, "kv/a").status().code(), Code::kNotFound);  // fresh storage
}

}  // namespace
}  // namespace custos::core

namespace custos::core {
namespace {

TEST_F(CoreTest, SysMetricsNeedsReadOnItAndServesPrometheusTextOrVaultJson) {
  init_unseal();
  auto limited = call(Operation::kUpdate, "auth/token/create",
                      object{{"policies", boost::json::array{"default"}}});
  ASSERT_TRUE(limited.ok()) << limited.status().to_string();
  EXPECT_EQ(call(Operation::kRead, "sys/metrics", {}, limited->auth->client_token).status().code(),
            Code::kPermissionDenied);

  auto text = call(Operation::kRead, "sys/metrics", object{{"format", "prometheus"}});
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  ASSERT_TRUE(text->raw_body.has_value());
  EXPECT_EQ(text->raw_content_type.rfind("text/plain; version=0.0.4", 0), 0u);
  EXPECT_NE(text->raw_body->find("# TYPE vault_core_unsealed gauge\n"), std::string::npos);
  EXPECT_NE(text->raw_body->find("\nvault_core_unsealed 1\n"), std::string::npos)
      << *text->raw_body;

  auto json = call(Operation::kRead, "sys/metrics");
  ASSERT_TRUE(json.ok()) << json.status().to_string();
  ASSERT_TRUE(json->raw.has_value());
  const auto& o = json->raw->as_object();
  ASSERT_TRUE(o.contains("Gauges") && o.contains("Counters") && o.contains("Samples"));
  bool unsealed = false;
  for (const auto& g : o.at("Gauges").as_array()) {
    if (g.as_object().at("Name") == "vault_core_unsealed")
      unsealed = g.as_object().at("Value") == 1;
  }
  EXPECT_TRUE(unsealed) << boost::json::serialize(*json->raw);
  EXPECT_EQ(call(Operation::kRead, "sys/metrics", object{{"format", "xml"}}).status().code(),
            Code::kInvalidArgument);

  ASSERT_TRUE(core_->seal().ok());
  auto metrics_text = metrics::Registry::global().prometheus();
  EXPECT_NE(metrics_text.find("\nvault_core_unsealed 0\n"), std::string::npos) << metrics_text;
}

}  // namespace
}  // namespace custos::core

namespace custos::core {
namespace {

// sys/internal/ui/mounts as Vault answers it: any token may ask, and sees the mounts it can
// reach (the Vault CLI's kv commands and the web UI depend on it).
TEST_F(CoreTest, UiMountsAreFilteredToWhatTheTokenCanReach) {
  init_unseal();
  ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/secret", object{{"type", "kv"}}).ok());
  ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/transit", object{{"type", "transit"}}).ok());
  ASSERT_TRUE(call(Operation::kUpdate, "sys/policies/acl/app",
                   object{{"policy", "path \"secret/app/*\" { capabilities = [\"read\"] }"}})
                  .ok());
  auto t = call(Operation::kUpdate, "auth/token/create",
                object{{"policies", boost::json::array{"app"}}});
  ASSERT_TRUE(t.ok());
  const std::string token = t->auth->client_token;
  auto all = call(Operation::kRead, "sys/internal/ui/mounts", {}, token);
  ASSERT_TRUE(all.ok()) << all.status().to_string();
  const auto& secret = all->data->at("secret").as_object();
  EXPECT_TRUE(secret.contains("secret/"));
  EXPECT_FALSE(secret.contains("transit/"));
  EXPECT_TRUE(call(Operation::kRead, "sys/internal/ui/mounts/secret", {}, token).ok());
  EXPECT_EQ(call(Operation::kRead, "sys/internal/ui/mounts/transit", {}, token).status().code(),
            Code::kPermissionDenied);
  // Root sees everything; no token, nothing.
  auto root_view = call(Operation::kRead, "sys/internal/ui/mounts");
  ASSERT_TRUE(root_view.ok());
  EXPECT_TRUE(root_view->data->at("secret").as_object().contains("transit/"));
  Request anon;
  anon.op = Operation::kRead;
  anon.path = "sys/internal/ui/mounts";
  EXPECT_EQ(core_->handle(anon).status().code(), Code::kPermissionDenied);
}

}  // namespace
}  // namespace custos::core
