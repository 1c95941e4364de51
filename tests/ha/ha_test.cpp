// High availability in the core (core/ha.cpp, docs/ha.md): two Cores on one etcd prefix, each
// with its own backend, as two servers would be, against a real etcd member started here. The
// standby/active life: the first unsealed becomes active, the other waits; step-down, seal and a
// lost lease hand over; a keyring term added by one active server is read by the next.
// tests/integration/ha.sh runs the same with two server processes, and request forwarding.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/clock.h"
#include "base/encoding.h"
#include "core/core.h"
#include "core/core_fixture.h"
#include "etcd/backend.h"
#include "net/http.h"
#include "support/etcd.cpp"  // NOLINT(bugprone-suspicious-include)

namespace custos::core {
namespace {

using boost::json::object;

class HaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    etcd_ = testing::EtcdServer::start(error);
    ASSERT_NE(etcd_, nullptr) << error;
  }

  std::unique_ptr<storage::Backend> open_backend() {
    etcd::EtcdOptions o;
    o.endpoints = {etcd_->url()};
    o.prefix = "/ha/";
    o.ha_enabled = true;
    o.lock_ttl = std::chrono::seconds(2);
    o.ha_poll = std::chrono::milliseconds(100);
    auto b = etcd::open_etcd(o);
    EXPECT_TRUE(b.ok()) << b.status().to_string();
    return b.ok() ? std::move(*b) : nullptr;
  }

  std::unique_ptr<Core> make_core(storage::Backend& b, const std::string& addr) {
    CoreConfig cfg;
    cfg.api_addr = addr;
    cfg.storage_type = "etcd";
    cfg.step_down_wait = std::chrono::milliseconds(300);
    return std::make_unique<Core>(b, SystemClock::instance(), cfg);
  }

  static Result<Response> call(Core& core, Operation op, const std::string& path, object data = {},
                               const std::string& token = "") {
    return handle_as(core, op, path, std::move(data), token);
  }

  // Bounded wait (10 s) for a condition the HA thread brings about.
  static bool eventually(const std::function<bool()>& f) {
    for (int i = 0; i < 200; ++i) {
      if (f()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return f();
  }

  void unseal(Core& core) {
    for (size_t i = 0; i < 2; ++i) ASSERT_TRUE(core.unseal(keys_[i], false).ok());
    ASSERT_FALSE(core.sealed());
  }

  std::string read_secret(Core& core) {
    auto r = call(core, Operation::kRead, "secret/app", {}, root_);
    if (!r.ok()) return "error: " + r.status().message();
    if (!r->data) return "no data";
    return std::string(r->data->at("v").as_string());
  }

  std::unique_ptr<testing::EtcdServer> etcd_;
  std::vector<std::string> keys_;
  std::string root_;
};

TEST_F(HaTest, OneActiveServerAtATimeAndHandovers) {
  auto ba = open_backend();
  auto bb = open_backend();
  ASSERT_TRUE(ba && bb);
  auto a = make_core(*ba, "http://a.example:8200");
  auto b = make_core(*bb, "http://b.example:8200");
  ASSERT_TRUE(a->ha_enabled());

  auto init = a->initialize(3, 2);
  ASSERT_TRUE(init.ok()) << init.status().to_string();
  for (const auto& s : init->shares) keys_.push_back(hex_encode(s.span()));
  root_ = init->root_token;
  EXPECT_TRUE(a->sealed());  // Shamir init leaves it sealed, and gives the lock back
  EXPECT_FALSE(b->initialize(3, 2).ok());

  unseal(*a);
  ASSERT_TRUE(eventually([&] { return a->serving(); }));
  EXPECT_FALSE(a->standby());
  unseal(*b);
  // Several polls of the lock later, b still waits.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(b->standby());
  EXPECT_FALSE(b->serving());
  EXPECT_FALSE(bb->ha_lock()->held());
  auto led = b->leader();
  ASSERT_TRUE(led.ok()) << led.status().to_string();
  EXPECT_TRUE(led->ha_enabled);
  EXPECT_FALSE(led->is_self);
  EXPECT_EQ(led->leader_address, "http://a.example:8200");
  EXPECT_TRUE(a->leader()->is_self);

  ASSERT_TRUE(
      call(*a, Operation::kUpdate, "sys/mounts/secret", object{{"type", "kv"}}, root_).ok());
  ASSERT_TRUE(call(*a, Operation::kUpdate, "secret/app", object{{"v", "one"}}, root_).ok());
  // The standby answers nothing from the store itself.
  auto refused = call(*b, Operation::kRead, "secret/app", {}, root_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kUnavailable);
  EXPECT_NE(refused.status().message().find("standby"), std::string::npos);

  // A keyring term added on the active server; the next active one must read it.
  ASSERT_TRUE(call(*a, Operation::kUpdate, "sys/rotate", {}, root_).ok());
  ASSERT_TRUE(call(*a, Operation::kUpdate, "secret/app", object{{"v", "two"}}, root_).ok());

  // Step down: b takes over and reads what a wrote under the new term.
  a->step_down();
  ASSERT_TRUE(eventually([&] { return b->serving(); }));
  EXPECT_EQ(read_secret(*b), "two");
  EXPECT_TRUE(eventually([&] { return a->standby(); }));
  EXPECT_TRUE(eventually([&] {
    auto l = a->leader();
    return l.ok() && l->leader_address == "http://b.example:8200";
  }));

  // Sealing the active server hands over too (its lock is given up at once).
  ASSERT_TRUE(b->seal().ok());
  ASSERT_TRUE(eventually([&] { return a->serving(); }));
  EXPECT_EQ(read_secret(*a), "two");
  EXPECT_EQ(b->leader().status().code(), Code::kUnavailable);  // sealed

  // The lease revoked under the active server: it steps down, and (alone now) takes the lock
  // again in a new term, with its data.
  const SysTime first_term = a->leader()->active_time;
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  net::HttpClient client;
  auto lock = client.request(
      "POST", etcd_->url() + "/v3/kv/range", {{"Content-Type", "application/json"}},
      boost::json::serialize(object{{"key", base64_encode(as_bytes(std::string("/ha.lock")))}}));
  ASSERT_TRUE(lock.ok());
  auto kvs = boost::json::parse(lock->body).as_object().at("kvs").as_array();
  std::string lease(kvs.at(0).as_object().at("lease").as_string());
  ASSERT_TRUE(client
                  .request("POST", etcd_->url() + "/v3/lease/revoke",
                           {{"Content-Type", "application/json"}},
                           boost::json::serialize(object{{"ID", lease}}))
                  .ok());
  // A new term: it became active again, later (too quick a turn to catch it standing by).
  ASSERT_TRUE(eventually([&] {
    auto l = a->leader();
    return a->serving() && l.ok() && l->is_self && l->active_time > first_term;
  }));
  EXPECT_EQ(read_secret(*a), "two");
  ASSERT_TRUE(call(*a, Operation::kUpdate, "secret/app", object{{"v", "three"}}, root_).ok());
  EXPECT_EQ(read_secret(*a), "three");
  // Destroying a Core whose HA thread runs stops it (ASan/TSan builds check the teardown).
}

TEST_F(HaTest, AnyUnsealedServerMayBecomeActiveAfterInit) {
  // Init takes the lock for its writes and gives it back (a Shamir seal leaves the server
  // sealed): another server, unsealed first, becomes active over the same data.
  auto ba = open_backend();
  auto bb = open_backend();
  auto a = make_core(*ba, "http://a.example:8200");
  auto b = make_core(*bb, "http://b.example:8200");
  auto init = a->initialize(1, 1);
  ASSERT_TRUE(init.ok());
  const std::string key = hex_encode(init->shares[0].span());
  ASSERT_TRUE(b->unseal(key, false).ok());
  ASSERT_TRUE(eventually([&] { return b->serving(); }));
  auto lookup = call(*b, Operation::kRead, "auth/token/lookup-self", {}, init->root_token);
  EXPECT_TRUE(lookup.ok()) << lookup.status().to_string();
  ASSERT_TRUE(a->unseal(key, false).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(a->standby());
  EXPECT_FALSE(a->serving());
  EXPECT_FALSE(ba->ha_lock()->held());
}

TEST_F(HaTest, InitialisingNeedsTheLock) {
  auto ba = open_backend();
  auto other = open_backend();
  auto a = make_core(*ba, "http://a.example:8200");
  // Another server holds the lock (it would be initialising the same store).
  ASSERT_TRUE(other->ha_lock()->try_acquire("someone-else", [] {}).ok());
  auto refused = a->initialize(1, 1);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("initializing needs the HA lock"), std::string::npos)
      << refused.status().message();
  EXPECT_NE(refused.status().message().find("(someone-else)"), std::string::npos);
  EXPECT_FALSE(a->seal_status()->initialized);  // nothing written
  other->ha_lock()->release();
  auto init = a->initialize(1, 1);
  ASSERT_TRUE(init.ok()) << init.status().to_string();
  EXPECT_FALSE(ba->ha_lock()->held());  // given back: the Shamir server is left sealed
  EXPECT_TRUE(a->seal_status()->initialized);
}

}  // namespace
}  // namespace custos::core
