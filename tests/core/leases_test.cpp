// The lease manager against an in-memory barrier and a scripted engine (no dispatcher, no
// database): registration, lookup, renew caps, expiry with a FakeClock, retries with backoff and
// the irrevocable mark, token and prefix revocation, persistence across a restart, sys/ paths.
#include "core/leases.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "base/clock.h"
#include "core/barrier.h"
#include "core/tokens.h"
#include "core/view.h"
#include "forwarding_backend.h"
#include "storage/backend.h"

namespace custos::core {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// Records revocations and renewals; fails them while `fail` is set.
class ScriptedEngine : public Engine {
 public:
  Result<Response> handle(Request&) override { return Response::empty(); }
  Status revoke_secret(const json::object& internal) override {
    std::lock_guard lock(mu);
    ++revoke_calls;
    if (fail) return unavailable("backend unreachable");
    revoked.insert(std::string(internal.at("user").as_string()));
    return ok_status();
  }
  Status renew_secret(const json::object& internal, SysTime expiry) override {
    std::lock_guard lock(mu);
    if (fail) return unavailable("backend unreachable");
    renewed[std::string(internal.at("user").as_string())] = to_unix_seconds(expiry);
    return ok_status();
  }
  bool is_revoked(const std::string& u) {
    std::lock_guard lock(mu);
    return revoked.count(u) != 0;
  }
  std::mutex mu;
  std::atomic<bool> fail{false};
  int revoke_calls = 0;
  std::set<std::string> revoked;
  std::map<std::string, int64_t> renewed;
};

class LeasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = storage::open_inmem();
    barrier_ = std::make_unique<Barrier>(*backend_, clock_);
    ASSERT_TRUE(barrier_->initialize().ok());
    engine_ = std::make_shared<ScriptedEngine>();
    token_.hash = "tokenhash1";
    manager_ = make_manager();
  }

  std::unique_ptr<LeaseManager> make_manager() {
    auto m = std::make_unique<LeaseManager>(View(*barrier_, "sys/expire/"), clock_,
                                            [this](const std::string& mount) {
                                              return mount == "database/"
                                                         ? std::shared_ptr<Engine>(engine_)
                                                         : std::shared_ptr<Engine>();
                                            });
    LeaseRetryPolicy p;
    p.initial_backoff = 1000ms;
    p.max_backoff = 4000ms;
    p.max_attempts = 3;
    m->set_retry_policy(p);
    return m;
  }

  LeaseEntry issue(const std::string& user, int64_t ttl, int64_t max_ttl = 0,
                   const TokenEntry* token = nullptr) {
    Request req;
    req.mount_point = "database/";
    req.rel_path = "creds/readonly";
    req.token = token != nullptr ? token : &token_;
    Secret s;
    s.internal = {{"user", user}};
    s.ttl = ttl;
    s.max_ttl = max_ttl;
    auto e = manager_->register_secret(req, s, 3600, 7200);
    EXPECT_TRUE(e.ok()) << e.status().to_string();
    return e.ok() ? *e : LeaseEntry{};
  }

  Result<Response> sys(Operation op, const std::string& rest, json::object data = {}) {
    Request req;
    req.op = op;
    req.path = "sys/" + rest;
    req.data = std::move(data);
    bool handled = false;
    auto r = manager_->handle_sys(req, rest, handled);
    EXPECT_TRUE(handled) << rest;
    return r;
  }

  std::vector<std::string> keys(const std::string& prefix) {
    auto k = barrier_->list("sys/expire/" + prefix);
    return k.ok() ? *k : std::vector<std::string>{};
  }

  FakeClock clock_{from_unix_seconds(1'700'000'000)};
  std::unique_ptr<storage::Backend> backend_;
  std::unique_ptr<Barrier> barrier_;
  std::shared_ptr<ScriptedEngine> engine_;
  TokenEntry token_;
  std::unique_ptr<LeaseManager> manager_;
};

TEST_F(LeasesTest, RegisterGivesVaultShapedIdAndIndexes) {
  LeaseEntry e = issue("u1", 60);
  ASSERT_EQ(e.lease_id.rfind("database/creds/readonly/", 0), 0u) << e.lease_id;
  EXPECT_EQ(e.lease_id.size(), std::string("database/creds/readonly/").size() + 24);
  EXPECT_EQ(e.expire_time - e.issue_time, 60);
  EXPECT_EQ(e.max_expire_time - e.issue_time, 7200);
  EXPECT_EQ(e.token_hash, "tokenhash1");
  EXPECT_EQ(keys("exp/").size(), 1u);
  EXPECT_EQ(keys("exp/" + keys("exp/")[0]).size(), 1u);
  EXPECT_EQ(keys("token/tokenhash1/").size(), 1u);
  EXPECT_EQ(keys("id/database/creds/readonly/").size(), 1u);
}

TEST_F(LeasesTest, TtlDefaultsAndCaps) {
  LeaseEntry dflt = issue("u", 0);  // the mount default
  EXPECT_EQ(dflt.expire_time - dflt.issue_time, 3600);
  LeaseEntry capped = issue("u", 100000);  // above the mount max
  EXPECT_EQ(capped.expire_time - capped.issue_time, 7200);
  LeaseEntry role_max = issue("u", 50, 100);
  EXPECT_EQ(role_max.max_expire_time - role_max.issue_time, 100);
}

TEST_F(LeasesTest, LookupAnswersVaultFields) {
  LeaseEntry e = issue("u1", 60);
  clock_.advance(10s);
  auto r = sys(Operation::kUpdate, "leases/lookup", {{"lease_id", e.lease_id}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const json::object& d = *r->data;
  EXPECT_EQ(d.at("id").as_string(), e.lease_id);
  EXPECT_EQ(d.at("ttl").as_int64(), 50);
  EXPECT_TRUE(d.at("renewable").as_bool());
  EXPECT_TRUE(d.at("last_renewal").is_null());
  EXPECT_TRUE(d.contains("issue_time"));
  EXPECT_TRUE(d.contains("expire_time"));
  EXPECT_FALSE(d.contains("irrevocable"));

  auto unknown = sys(Operation::kUpdate, "leases/lookup", {{"lease_id", "database/creds/x/nope"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(unknown.status().message(), "invalid lease");
  EXPECT_FALSE(sys(Operation::kUpdate, "leases/lookup", {}).ok());
}

TEST_F(LeasesTest, ListByPrefix) {
  issue("a", 60);
  issue("b", 60);
  auto r = sys(Operation::kList, "leases/lookup/database/creds/readonly/");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->data->at("keys").as_array().size(), 2u);
  auto top = sys(Operation::kList, "leases/lookup/database/");
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(top->data->at("keys").as_array()[0].as_string(), "creds/");
  auto none = sys(Operation::kList, "leases/lookup/nothing/");
  EXPECT_EQ(none.status().code(), Code::kNotFound);
}

TEST_F(LeasesTest, RenewExtendsCallsEngineAndCapsAtMaxTtl) {
  LeaseEntry e = issue("u1", 60, 100);
  clock_.advance(30s);
  auto r = sys(Operation::kUpdate, "leases/renew", {{"lease_id", e.lease_id}, {"increment", 50}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->lease_id, e.lease_id);
  EXPECT_TRUE(r->renewable);
  EXPECT_EQ(r->lease_duration, 50);
  EXPECT_TRUE(r->warnings.empty());
  EXPECT_EQ(engine_->renewed["u1"], e.issue_time + 80);

  // Beyond max TTL (issue + 100): capped with a warning.
  auto capped = sys(Operation::kUpdate, "leases/renew/" + e.lease_id, {{"increment", "1h"}});
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->lease_duration, 70);
  EXPECT_EQ(capped->warnings.size(), 1u);

  // Without an increment the lease's own TTL is used (legacy path sys/renew).
  auto legacy = sys(Operation::kUpdate, "renew", {{"lease_id", e.lease_id}});
  ASSERT_TRUE(legacy.ok());
  EXPECT_EQ(legacy->lease_duration, 60);

  auto look = sys(Operation::kUpdate, "leases/lookup", {{"lease_id", e.lease_id}});
  ASSERT_TRUE(look.ok());
  EXPECT_FALSE(look->data->at("last_renewal").is_null());
  EXPECT_EQ(keys("exp/").size(), 1u);  // the old time bucket was replaced
}

TEST_F(LeasesTest, RenewRejections) {
  auto unknown = sys(Operation::kUpdate, "leases/renew", {{"lease_id", "database/creds/x/none"}});
  EXPECT_EQ(unknown.status().message(), "lease not found");
  EXPECT_EQ(sys(Operation::kUpdate, "leases/renew", {}).status().code(), Code::kInvalidArgument);
  LeaseEntry e = issue("u1", 10);
  engine_->fail = true;
  auto failed = sys(Operation::kUpdate, "leases/renew", {{"lease_id", e.lease_id}});
  EXPECT_FALSE(failed.ok());
  engine_->fail = false;
  clock_.advance(11s);
  auto expired = sys(Operation::kUpdate, "leases/renew", {{"lease_id", e.lease_id}});
  EXPECT_EQ(expired.status().message(), "lease expired");
  auto neg = sys(Operation::kUpdate, "leases/renew", {{"lease_id", e.lease_id}, {"increment", "x"}});
  EXPECT_FALSE(neg.ok());
}

TEST_F(LeasesTest, ExpiryRevokesOnTime) {
  LeaseEntry a = issue("a", 10);
  LeaseEntry b = issue("b", 100);
  EXPECT_EQ(manager_->process_due(), 0u);
  clock_.advance(11s);
  EXPECT_EQ(manager_->process_due(), 1u);
  EXPECT_TRUE(engine_->is_revoked("a"));
  EXPECT_FALSE(engine_->is_revoked("b"));
  auto gone = manager_->lookup(a.lease_id);
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  EXPECT_EQ(keys("token/tokenhash1/").size(), 1u);
  EXPECT_EQ(keys("exp/").size(), 1u);
}

TEST_F(LeasesTest, RenewedLeaseIsNotRevokedAtItsOldExpiry) {
  LeaseEntry a = issue("a", 10);
  clock_.advance(5s);
  ASSERT_TRUE(manager_->renew(a.lease_id, 100).ok());
  clock_.advance(10s);
  manager_->process_due();
  EXPECT_FALSE(engine_->is_revoked("a"));
  clock_.advance(100s);
  manager_->process_due();
  EXPECT_TRUE(engine_->is_revoked("a"));
}

TEST_F(LeasesTest, FailedRevocationRetriesWithBackoffThenIrrevocableNeverDropped) {
  LeaseEntry a = issue("a", 10);
  engine_->fail = true;
  clock_.advance(11s);
  EXPECT_EQ(manager_->process_due(), 1u);  // attempt 1 fails
  EXPECT_EQ(manager_->process_due(), 0u);  // backoff: not due yet
  clock_.advance(1100ms);
  EXPECT_EQ(manager_->process_due(), 1u);  // attempt 2 after 1 s
  clock_.advance(1100ms);
  EXPECT_EQ(manager_->process_due(), 0u);  // next backoff is 2 s
  clock_.advance(1000ms);
  EXPECT_EQ(manager_->process_due(), 1u);  // attempt 3 -> irrevocable
  auto look = sys(Operation::kUpdate, "leases/lookup", {{"lease_id", a.lease_id}});
  ASSERT_TRUE(look.ok());
  EXPECT_TRUE(look->data->at("irrevocable").as_bool());
  EXPECT_EQ(look->data->at("revoke_attempts").as_int64(), 3);
  EXPECT_EQ(look->data->at("revoke_error").as_string(), "backend unreachable");
  auto count = sys(Operation::kRead, "leases/count", {{"type", "irrevocable"}});
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->data->at("lease_count").as_int64(), 1);
  // Renewing a lease whose revocation is pending is refused.
  EXPECT_FALSE(manager_->renew(a.lease_id, 10).ok());

  // Still retried (capped backoff) and revoked once the backend is back.
  engine_->fail = false;
  clock_.advance(4100ms);
  EXPECT_EQ(manager_->process_due(), 1u);
  EXPECT_TRUE(engine_->is_revoked("a"));
  EXPECT_FALSE(manager_->lookup(a.lease_id)->has_value());
}

TEST_F(LeasesTest, ExplicitRevokeAnswers204AndFailureKeepsTheLease) {
  LeaseEntry a = issue("a", 100);
  auto r = sys(Operation::kUpdate, "leases/revoke", {{"lease_id", a.lease_id}});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->data.has_value());
  EXPECT_EQ(r->status, 0);  // no body: the envelope writer answers 204
  EXPECT_TRUE(engine_->is_revoked("a"));
  // Unknown lease: not an error (Vault).
  EXPECT_TRUE(sys(Operation::kUpdate, "revoke/database/creds/readonly/nope").ok());

  LeaseEntry b = issue("b", 100);
  engine_->fail = true;
  auto failed = sys(Operation::kUpdate, "leases/revoke/" + b.lease_id);
  EXPECT_FALSE(failed.ok());
  EXPECT_TRUE(manager_->lookup(b.lease_id)->has_value());
  engine_->fail = false;
  clock_.advance(2s);
  manager_->process_due();  // the failure made it due: retried by the scheduler
  EXPECT_TRUE(engine_->is_revoked("b"));
}

TEST_F(LeasesTest, AsyncRevokeIsDoneByTheScheduler) {
  LeaseEntry a = issue("a", 100);
  auto r = sys(Operation::kUpdate, "leases/revoke", {{"lease_id", a.lease_id}, {"sync", false}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 202);
  EXPECT_FALSE(engine_->is_revoked("a"));
  manager_->process_due();
  EXPECT_TRUE(engine_->is_revoked("a"));
}

TEST_F(LeasesTest, TokenRevocationRevokesOnlyItsLeases) {
  TokenEntry other;
  other.hash = "tokenhash2";
  issue("t1a", 100);
  issue("t1b", 100);
  LeaseEntry keep = issue("t2", 100, 0, &other);
  ASSERT_TRUE(manager_->revoke_token_leases("tokenhash1").ok());
  EXPECT_TRUE(engine_->is_revoked("t1a"));
  EXPECT_TRUE(engine_->is_revoked("t1b"));
  EXPECT_FALSE(engine_->is_revoked("t2"));
  EXPECT_TRUE(manager_->lookup(keep.lease_id)->has_value());
  EXPECT_TRUE(keys("token/tokenhash1/").empty());

  // A failing engine does not block the token's revocation; the lease is retried later.
  LeaseEntry pending = issue("t1c", 100);
  engine_->fail = true;
  EXPECT_TRUE(manager_->revoke_token_leases("tokenhash1").ok());
  EXPECT_TRUE(manager_->lookup(pending.lease_id)->has_value());
  engine_->fail = false;
  clock_.advance(2s);
  manager_->process_due();
  EXPECT_TRUE(engine_->is_revoked("t1c"));
}

// A backend with a transaction limit (etcd's --max-txn-ops) gets revocation batches that fit.
TEST_F(LeasesTest, RevocationBatchesFitTheBackendsTransactionLimit) {
  class Limited final : public ForwardingBackend {
   public:
    Status transaction(std::span<const storage::Op> ops) override {
      largest = std::max(largest, ops.size());
      if (ops.size() > 7) return invalid_argument("too many ops (test limit 7)");
      return ForwardingBackend::transaction(ops);
    }
    size_t max_transaction_ops() const override { return 7; }
    size_t largest = 0;
  };
  manager_.reset();
  barrier_.reset();
  auto limited = std::make_unique<Limited>();
  Limited* lim = limited.get();
  backend_ = std::move(limited);
  barrier_ = std::make_unique<Barrier>(*backend_, clock_);
  ASSERT_TRUE(barrier_->initialize().ok());
  manager_ = make_manager();
  auto count = [&] {
    auto r = sys(Operation::kList, "leases/lookup/database/creds/readonly/");
    return r.ok() ? r->data->at("keys").as_array().size() : 0u;
  };
  for (int i = 0; i < 40; ++i) issue("u" + std::to_string(i), 3600);
  ASSERT_EQ(count(), 40u);
  lim->largest = 0;
  ASSERT_TRUE(sys(Operation::kUpdate, "leases/revoke-prefix/database/creds").ok());
  EXPECT_EQ(count(), 0u);
  EXPECT_GT(lim->largest, 0u);
  EXPECT_LE(lim->largest, 7u);
}

TEST_F(LeasesTest, RevokePrefixAndForce) {
  issue("a", 100);
  issue("b", 100);
  ASSERT_TRUE(sys(Operation::kUpdate, "leases/revoke-prefix/database/creds").ok());
  EXPECT_TRUE(engine_->is_revoked("a"));
  EXPECT_TRUE(engine_->is_revoked("b"));
  EXPECT_TRUE(keys("id/database/").empty());

  LeaseEntry c = issue("c", 100);
  engine_->fail = true;
  EXPECT_FALSE(manager_->revoke_prefix("database/", false).ok());
  EXPECT_TRUE(manager_->lookup(c.lease_id)->has_value());
  ASSERT_TRUE(sys(Operation::kUpdate, "leases/revoke-force/database/").ok());
  EXPECT_FALSE(manager_->lookup(c.lease_id)->has_value());
  EXPECT_TRUE(keys("exp/").empty());
  EXPECT_TRUE(keys("token/").empty());
}

TEST_F(LeasesTest, CountAndTidy) {
  LeaseEntry a = issue("a", 100);
  issue("b", 100);
  auto count = sys(Operation::kRead, "leases/count");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->data->at("lease_count").as_int64(), 2);
  EXPECT_EQ(count->data->at("counts").as_object().at("database/").as_int64(), 2);
  // A dangling index entry (crash between writes of an older version) is removed by tidy.
  ASSERT_TRUE(barrier_->put("sys/expire/exp/00000000000000000001/ghost", ByteSpan()).ok());
  auto t = sys(Operation::kUpdate, "leases/tidy");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->status, 202);
  EXPECT_EQ(keys("exp/00000000000000000001/").size(), 0u);
  EXPECT_TRUE(manager_->lookup(a.lease_id)->has_value());
}

TEST_F(LeasesTest, ExpiredWhileDownIsRevokedAfterRestart) {
  LeaseEntry a = issue("a", 10);
  LeaseEntry b = issue("b", 1000);
  ASSERT_TRUE(manager_->start().ok());
  manager_->stop();
  manager_.reset();
  clock_.advance(60s);  // "down" past a's expiry
  manager_ = make_manager();
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(manager_->start().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);  // start() never waits for the load
  ASSERT_TRUE(manager_->wait_loaded(5s));
  for (int i = 0; i < 50 && !engine_->is_revoked("a"); ++i) std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(engine_->is_revoked("a"));
  EXPECT_FALSE(engine_->is_revoked("b"));
  EXPECT_TRUE(manager_->lookup(b.lease_id)->has_value());
  auto t1 = std::chrono::steady_clock::now();
  manager_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 1500ms);  // bounded waits: prompt stop
}

TEST_F(LeasesTest, ConcurrentRegisterRenewRevoke) {
  ASSERT_TRUE(manager_->start().ok());
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        LeaseEntry e = issue("c" + std::to_string(t) + "-" + std::to_string(i), 100);
        if (!manager_->renew(e.lease_id, 50).ok()) ++errors;
        if (i % 2 == 0 && !manager_->revoke(e.lease_id, true).ok()) ++errors;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  std::vector<std::string> ids;
  auto count = sys(Operation::kRead, "leases/count");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->data->at("lease_count").as_int64(), 100);
  manager_->stop();
}

TEST_F(LeasesTest, UnknownSysPathsAreNotHandled) {
  Request req;
  bool handled = true;
  auto r = manager_->handle_sys(req, "mounts", handled);
  EXPECT_FALSE(handled);
}

}  // namespace
}  // namespace custos::core
