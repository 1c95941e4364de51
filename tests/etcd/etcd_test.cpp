// The etcd backend beyond the storage contract (which tests/storage/conformance_test.cpp runs
// against it too): the one-server lock and its fence, etcd's limits, endpoint failover and
// authentication, each against a real etcd member started by the test.
#include "support/etcd.cpp"  // NOLINT(bugprone-suspicious-include)

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "base/encoding.h"
#include "etcd/backend.h"
#include "net/http.h"
#include "storage/cache.h"

namespace custos::etcd {
namespace {

namespace json = boost::json;
using storage::Op;

class EtcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    server_ = testing::EtcdServer::start(error);
    ASSERT_NE(server_, nullptr) << error;
  }

  EtcdOptions options(const std::string& prefix = "/custos/") {
    EtcdOptions o;
    o.endpoints = {server_->url()};
    o.prefix = prefix;
    return o;
  }

  // A raw call to etcd's gateway, as another client (or server) would make it.
  json::object raw(const std::string& api, const json::object& body) {
    net::HttpClient c;
    auto r = c.request("POST", server_->url() + api, {{"Content-Type", "application/json"}},
                       json::serialize(body));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok()) return {};
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body).as_object();
  }
  static std::string b64(std::string_view s) { return base64_encode(as_bytes(s)); }

  // Revokes the lease of the lock key (what etcd does when renewals stop for a TTL: the key
  // goes with it) and waits (5 s at most) until the holder says it lost the lock, once.
  void revoke_lock_lease_and_wait(const std::atomic<int>& lost) {
    auto lock = raw("/v3/kv/range", {{"key", b64("/custos.lock")}});
    std::string lease(lock.at("kvs").as_array()[0].as_object().at("lease").as_string());
    raw("/v3/lease/revoke", {{"ID", lease}});
    for (int i = 0; i < 50 && lost.load() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(lost.load(), 1);
  }

  std::unique_ptr<testing::EtcdServer> server_;
};

TEST_F(EtcdTest, OneServerAtATimeHoldsAPrefix) {
  auto first = open_etcd(options());
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  ASSERT_TRUE((*first)->put("k", as_bytes("v")).ok());

  auto second = open_etcd(options());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("is in use by"), std::string::npos);
  EXPECT_NE(second.status().message().find(" pid "), std::string::npos);  // names the holder

  // Another prefix is another store.
  EXPECT_TRUE(open_etcd(options("/other/")).ok());

  // Closing releases the lock at once (the lease is revoked, not left to expire).
  first->reset();
  auto third = open_etcd(options());
  ASSERT_TRUE(third.ok()) << third.status().to_string();
  auto got = (*third)->get("k");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(as_string_view(**got), "v");
  EXPECT_EQ(lock_key_for("/custos/"), "/custos.lock");
}

TEST_F(EtcdTest, AServerWhoseLockWasTakenOverCanNoLongerWrite) {
  std::atomic<int> lost{0};
  EtcdOptions o = options();
  o.on_lock_lost = [&] { ++lost; };
  auto b = open_etcd(o);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE((*b)->put("before", as_bytes("1")).ok());
  // What a successor does once this server's lease lapsed: the lock key is gone and created
  // anew, by someone else.
  raw("/v3/kv/deleterange", {{"key", b64("/custos.lock")}});
  raw("/v3/kv/put", {{"key", b64("/custos.lock")}, {"value", b64("successor")}});

  Status st = (*b)->put("after", as_bytes("2"));
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("lost its storage lock"), std::string::npos);
  Op ops[] = {{Op::Kind::kPut, "x", to_bytes("1")}, {Op::Kind::kDelete, "before", {}}};
  EXPECT_EQ((*b)->transaction(ops).code(), Code::kUnavailable);
  EXPECT_EQ(lost.load(), 1);  // told once
  // Reads are refused too: what this server would answer may be stale now.
  EXPECT_EQ((*b)->get("before").status().code(), Code::kUnavailable);
  EXPECT_EQ((*b)->list("").status().code(), Code::kUnavailable);
  // Nothing of it reached etcd.
  auto after = raw("/v3/kv/range", {{"key", b64("/custos/after")}});
  EXPECT_FALSE(after.contains("kvs"));
  auto before = raw("/v3/kv/range", {{"key", b64("/custos/before")}});
  EXPECT_TRUE(before.contains("kvs"));
}

TEST_F(EtcdTest, TheReadCacheAnswersNothingOnceTheLockIsLost) {
  auto b = open_etcd(options());
  ASSERT_TRUE(b.ok());
  auto cached = storage::with_read_cache(std::move(*b), 64);
  ASSERT_TRUE(cached->put("k", as_bytes("v")).ok());
  ASSERT_TRUE(cached->get("k").ok());  // now in memory
  raw("/v3/kv/deleterange", {{"key", b64("/custos.lock")}});
  raw("/v3/kv/put", {{"key", b64("/custos.lock")}, {"value", b64("successor")}});
  raw("/v3/kv/put", {{"key", b64("/custos/k")}, {"value", b64("changed by the successor")}});
  EXPECT_EQ(cached->put("other", as_bytes("x")).code(), Code::kUnavailable);  // fenced off
  auto stale = cached->get("k");
  ASSERT_FALSE(stale.ok());  // not the cached "v"
  EXPECT_EQ(stale.status().code(), Code::kUnavailable);
  EXPECT_EQ(cached->max_transaction_ops(), 128u);
}

TEST_F(EtcdTest, APartitionLongerThanTheLeaseIsNoticedWithoutEtcd) {
  std::atomic<int> lost{0};
  EtcdOptions o = options();
  o.lock_ttl = std::chrono::seconds(2);
  o.request_timeout = std::chrono::seconds(1);
  o.on_lock_lost = [&] { ++lost; };
  auto b = open_etcd(o);
  ASSERT_TRUE(b.ok());
  auto cached = storage::with_read_cache(std::move(*b), 64);
  ASSERT_TRUE(cached->put("k", as_bytes("v")).ok());
  ASSERT_TRUE(cached->get("k").ok());
  // etcd stops answering (a partition as this server sees it): renewals fail, and before the
  // lease can have run out at etcd (5/6 of the TTL after the last good renewal was sent), the
  // backend gives up the lock on its own and the cache stops answering.
  server_->freeze();
  for (int i = 0; i < 40 && lost.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(lost.load(), 1);
  EXPECT_EQ(cached->get("k").status().code(), Code::kUnavailable);
  server_->thaw();
}

TEST_F(EtcdTest, ALapsedLeaseIsNoticedByTheRenewalThread) {
  std::atomic<int> lost{0};
  EtcdOptions o = options();
  o.lock_ttl = std::chrono::seconds(2);
  o.on_lock_lost = [&] { ++lost; };
  auto b = open_etcd(o);
  ASSERT_TRUE(b.ok());
  // The lease revoked under the server (what etcd does when renewals stop for a TTL): the lock
  // key goes with it, and the next renewal, within a third of the TTL, finds the lease gone.
  revoke_lock_lease_and_wait(lost);
  EXPECT_EQ((*b)->put("k", as_bytes("v")).code(), Code::kUnavailable);
}

// High availability: servers compete for the lock; the holder writes, the others only read.
TEST_F(EtcdTest, HaServersTakeTurnsHoldingTheLock) {
  EtcdOptions o = options();
  o.ha_enabled = true;
  o.ha_poll = std::chrono::milliseconds(100);
  auto a = open_etcd(o);
  auto b = open_etcd(o);  // no lock taken at open: both start as standbys
  ASSERT_TRUE(a.ok() && b.ok());
  storage::HaLock* la = (*a)->ha_lock();
  storage::HaLock* lb = (*b)->ha_lock();
  ASSERT_NE(la, nullptr);
  ASSERT_NE(lb, nullptr);
  EXPECT_EQ(open_etcd(options()).value()->ha_lock(), nullptr);  // not without ha_enabled

  // A standby reads but cannot write, and nothing may be cached for it.
  EXPECT_EQ((*a)->put("k", as_bytes("v")).code(), Code::kUnavailable);
  EXPECT_EQ((*a)->cache_epoch(), 0u);
  auto none = la->holder();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  std::atomic<int> a_lost{0};
  ASSERT_TRUE(la->try_acquire("node-a", [&] { ++a_lost; }).ok());
  EXPECT_TRUE(la->held());
  EXPECT_NE((*a)->cache_epoch(), 0u);
  ASSERT_TRUE((*a)->put("k", as_bytes("from a")).ok());
  Status refused = lb->try_acquire("node-b", [] {});
  EXPECT_EQ(refused.code(), Code::kFailedPrecondition);
  EXPECT_NE(refused.message().find("(node-a)"), std::string::npos) << refused.message();
  EXPECT_EQ(lb->holder().value(), std::optional<std::string>("node-a"));
  auto read = (*b)->get("k");  // the standby reads what the holder wrote
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ(as_string_view(**read), "from a");
  EXPECT_EQ((*b)->put("k", as_bytes("from b")).code(), Code::kUnavailable);

  // b waits; a gives the lock up; b takes it within a few polls and writes; a cannot.
  std::atomic<bool> b_has{false};
  std::thread waiter([&] {
    b_has = lb->acquire(
                  "node-b", [] { return false; }, [] {})
                .ok();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(b_has.load());  // still held by a
  la->release();
  waiter.join();
  EXPECT_TRUE(b_has.load());
  EXPECT_EQ(a_lost.load(), 0);  // given up, not lost
  EXPECT_FALSE(la->held());
  EXPECT_EQ(la->holder().value(), std::optional<std::string>("node-b"));
  ASSERT_TRUE((*b)->put("k", as_bytes("from b")).ok());
  EXPECT_EQ((*a)->put("k", as_bytes("from a again")).code(), Code::kUnavailable);

  // Waiting can be cancelled.
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  Status st = la->acquire(
      "node-a", [&] { return cancel.load(); }, [] {});
  canceller.join();
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_FALSE(la->held());
}

// Range requests etcd has answered so far (its own Prometheus counter), to see which reads
// reached it.
int64_t ranges_served(const std::string& url) {
  net::HttpClient c;
  auto r = c.request("GET", url + "/metrics", {}, "");
  if (!r.ok() || r->status != 200) return -1;
  int64_t n = 0;
  std::istringstream lines(r->body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("grpc_server_handled_total{", 0) == 0 &&
        line.find("grpc_method=\"Range\"") != std::string::npos) {
      n += std::stoll(line.substr(line.rfind(' ') + 1));
    }
  }
  return n;
}

// Reads until one of a key never written no longer reaches etcd: the term's key filter, built in
// the background from the first read, is ready (5 s at most).
bool wait_for_key_filter(storage::Backend& b, const std::string& url) {
  for (int i = 0; i < 50; ++i) {
    const int64_t before = ranges_served(url);
    if (before < 0) return false;  // no metrics: nothing to tell a ready filter by
    if (!b.get("probe/" + std::to_string(i)).ok()) return false;
    if (ranges_served(url) == before) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// The key filter (docs/storage-etcd.md, "Key filter"): reads of keys never written are answered
// without a round trip, and each lock term builds its own, so a key the other server wrote in
// its term is never hidden by a filter from this server's earlier term.
TEST_F(EtcdTest, TheKeyFilterSparesReadsOfNewKeysAndIsRebuiltEachTerm) {
  EtcdOptions o = options();
  o.ha_enabled = true;
  auto a = open_etcd(o);
  auto b = open_etcd(o);
  ASSERT_TRUE(a.ok() && b.ok());
  storage::HaLock* la = (*a)->ha_lock();
  storage::HaLock* lb = (*b)->ha_lock();
  ASSERT_TRUE(la->try_acquire("node-a", [] {}).ok());
  ASSERT_TRUE((*a)->put("from-a", as_bytes("1")).ok());
  ASSERT_TRUE(wait_for_key_filter(**a, server_->url()));
  const int64_t before = ranges_served(server_->url());
  ASSERT_GE(before, 0);
  for (int i = 1; i <= 100; ++i) {
    auto r = (*a)->get("absent/" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_FALSE(r->has_value());
  }
  auto found = (*a)->get("from-a");
  ASSERT_TRUE(found.ok() && found->has_value());
  // 100 absent keys and one present: the present one reaches etcd, nearly no absent one does.
  const int64_t served = ranges_served(server_->url()) - before;
  EXPECT_GE(served, 1);
  EXPECT_LE(served, 3);

  // b's term: it reads what a wrote, and writes a key of its own.
  la->release();
  ASSERT_TRUE(lb->try_acquire("node-b", [] {}).ok());
  auto seen = (*b)->get("from-a");
  ASSERT_TRUE(seen.ok() && seen->has_value());
  ASSERT_TRUE((*b)->put("from-b", as_bytes("2")).ok());
  // a, a standby now, asks etcd (no filter without the lock)...
  auto standby = (*a)->get("from-b");
  ASSERT_TRUE(standby.ok() && standby->has_value());
  // ...and after taking the lock again, its new term's filter has b's key.
  lb->release();
  ASSERT_TRUE(la->try_acquire("node-a", [] {}).ok());
  ASSERT_TRUE(wait_for_key_filter(**a, server_->url()));
  auto again = (*a)->get("from-b");
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  ASSERT_TRUE(again->has_value()) << "a key written in another server's term was hidden";
  EXPECT_EQ(as_string_view(**again), "2");
  auto still_absent = (*a)->get("absent/1");
  ASSERT_TRUE(still_absent.ok());
  EXPECT_FALSE(still_absent->has_value());
}

// A term's filter is built from every key under the prefix, across the scan's pages (1,000
// keys each): none of 2,500 keys written by an earlier server reads as absent.
TEST_F(EtcdTest, TheKeyFilterScansEveryPage) {
  {
    auto first = open_etcd(options());
    ASSERT_TRUE(first.ok()) << first.status().to_string();
    for (int i = 0; i < 2500; i += 100) {
      std::vector<Op> ops;
      for (int j = i; j < i + 100; ++j) {
        ops.push_back({Op::Kind::kPut, "k/" + std::to_string(j), to_bytes("v")});
      }
      ASSERT_TRUE((*first)->transaction(ops).ok());
    }
  }  // gives the lock up
  auto second = open_etcd(options());
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  ASSERT_TRUE(wait_for_key_filter(**second, server_->url()));
  for (int i = 0; i < 2500; ++i) {
    auto r = (*second)->get("k/" + std::to_string(i));
    ASSERT_TRUE(r.ok() && r->has_value()) << "k/" << i;
  }
  auto absent = (*second)->get("k/2500");
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());
}

TEST_F(EtcdTest, AnHaServerThatLosesTheLockIsToldAndMayTakeItAgain) {
  EtcdOptions o = options();
  o.ha_enabled = true;
  o.lock_ttl = std::chrono::seconds(2);
  o.ha_poll = std::chrono::milliseconds(100);
  auto a = open_etcd(o);
  ASSERT_TRUE(a.ok());
  auto cached = storage::with_read_cache(std::move(*a), 64);
  storage::HaLock* la = cached->ha_lock();  // the cache passes the lock through
  ASSERT_NE(la, nullptr);
  std::atomic<int> lost{0};
  ASSERT_TRUE(la->try_acquire("node-a", [&] { ++lost; }).ok());
  ASSERT_TRUE(cached->put("k", as_bytes("first term")).ok());
  ASSERT_TRUE(cached->get("k").ok());  // cached in this term
  const uint64_t first_epoch = cached->cache_epoch();

  // The lease revoked under it (its renewals stopped for a TTL, as etcd sees it).
  revoke_lock_lease_and_wait(lost);
  EXPECT_FALSE(la->held());
  EXPECT_EQ(cached->put("k", as_bytes("x")).code(), Code::kUnavailable);
  // Meanwhile another server changed the key; a standby reads it as it is now.
  raw("/v3/kv/put", {{"key", b64("/custos/k")}, {"value", b64("changed meanwhile")}});
  auto now = cached->get("k");
  ASSERT_TRUE(now.ok() && now->has_value());
  EXPECT_EQ(as_string_view(**now), "changed meanwhile");

  // A new term: writes work again, and nothing cached in the first term is answered.
  ASSERT_TRUE(la->try_acquire("node-a", [&] { ++lost; }).ok());
  EXPECT_NE(cached->cache_epoch(), first_epoch);
  auto fresh = cached->get("k");
  ASSERT_TRUE(fresh.ok() && fresh->has_value());
  EXPECT_EQ(as_string_view(**fresh), "changed meanwhile");
  EXPECT_TRUE(cached->put("k", as_bytes("second term")).ok());
  EXPECT_EQ(lost.load(), 1);
}

TEST_F(EtcdTest, TransactionsRespectEtcdsLimitsAndRepeatedKeys) {
  EtcdOptions o = options();
  o.max_txn_ops = 3;
  auto b = open_etcd(o);
  ASSERT_TRUE(b.ok());
  Op too_many[] = {{Op::Kind::kPut, "a", to_bytes("1")},
                   {Op::Kind::kPut, "b", to_bytes("1")},
                   {Op::Kind::kPut, "c", to_bytes("1")},
                   {Op::Kind::kPut, "d", to_bytes("1")}};
  Status st = (*b)->transaction(too_many);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("max_txn_ops (3)"), std::string::npos);
  auto a = (*b)->get("a");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->has_value());  // refused whole

  // etcd refuses a transaction naming one key twice; the backend sends each key's last op.
  Op repeated[] = {{Op::Kind::kPut, "a", to_bytes("1")}, {Op::Kind::kPut, "a", to_bytes("2")},
                   {Op::Kind::kPut, "b", to_bytes("1")}, {Op::Kind::kDelete, "b", {}},
                   {Op::Kind::kDelete, "c", {}},         {Op::Kind::kPut, "c", to_bytes("3")}};
  ASSERT_TRUE((*b)->transaction(repeated).ok());
  EXPECT_EQ(as_string_view(**(*b)->get("a")), "2");
  EXPECT_FALSE((*b)->get("b")->has_value());
  EXPECT_EQ(as_string_view(**(*b)->get("c")), "3");
}

TEST_F(EtcdTest, ConcurrentWritesShareTransactions) {
  auto b = open_etcd(options());
  ASSERT_TRUE(b.ok());
  auto revision = [&] {
    auto r = raw("/v3/kv/range", {{"key", b64("/custos.lock")}});
    return std::stoll(std::string(r.at("header").as_object().at("revision").as_string()));
  };
  const long long before = revision();
  constexpr int kThreads = 16, kEach = 25;
  std::vector<std::thread> writers;
  std::atomic<int> failed{0};
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::string k = "w" + std::to_string(t) + "/" + std::to_string(i);
        // Two keys per write, like a KV v2 write (metadata and version together).
        Op ops[] = {{Op::Kind::kPut, k + "/meta", to_bytes("m")},
                    {Op::Kind::kPut, k + "/ver", to_bytes("v")}};
        if (!(*b)->transaction(ops).ok()) ++failed;
      }
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(failed.load(), 0);
  // Every write landed, whole.
  for (int t = 0; t < kThreads; ++t) {
    auto l = (*b)->list("w" + std::to_string(t) + "/");
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(l->size(), static_cast<size_t>(kEach));
  }
  // Each etcd transaction moves the revision by one: fewer transactions than writes.
  const long long used = revision() - before;
  EXPECT_LT(used, kThreads * kEach) << "no write shared a transaction";
  EXPECT_GE(used, 1);
}

TEST_F(EtcdTest, OneWritersRefusalIsNotItsNeighbours) {
  // etcd refuses a request over --max-request-bytes (48 MiB on the test member): a write that
  // large fails alone, and the writes sent at the same moment succeed, whether or not they were
  // batched with it (a refused batch is retried write by write).
  auto b = open_etcd(options());
  ASSERT_TRUE(b.ok());
  std::atomic<bool> go{false};
  std::vector<std::thread> writers;
  std::vector<Status> results(8);
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      Bytes value(t == 0 ? size_t{60} << 20 : size_t{16}, 'x');
      results[static_cast<size_t>(t)] = (*b)->put("k" + std::to_string(t), value);
    });
  }
  go = true;
  for (auto& w : writers) w.join();
  EXPECT_FALSE(results[0].ok());  // 60 MiB: over the limit
  for (int t = 1; t < 8; ++t) EXPECT_TRUE(results[static_cast<size_t>(t)].ok()) << t;
}

TEST_F(EtcdTest, AnUnreachableEndpointIsSkipped) {
  EtcdOptions o = options();
  // A port nothing listens on (the member's own peer-less neighbour is not guaranteed free, so
  // use port 1, which needs root to bind and is never an etcd).
  o.endpoints = {"http://127.0.0.1:1", server_->url()};
  auto b = open_etcd(o);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  ASSERT_TRUE((*b)->put("k", as_bytes("v")).ok());
  auto l = (*b)->list("");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, std::vector<std::string>{"k"});

  o.endpoints = {"http://127.0.0.1:1"};
  o.prefix = "/nowhere/";
  auto none = open_etcd(o);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Code::kUnavailable);
}

TEST_F(EtcdTest, AuthenticationWithEtcdUsers) {
  raw("/v3/auth/role/add", {{"name", "root"}});
  raw("/v3/auth/user/add", {{"name", "root"}, {"password", "root-pw"}});
  raw("/v3/auth/user/grant", {{"user", "root"}, {"role", "root"}});
  raw("/v3/auth/enable", {});

  // Without credentials, and with a wrong password: refused, the password not echoed.
  auto anonymous = open_etcd(options());
  ASSERT_FALSE(anonymous.ok());
  EtcdOptions o = options();
  o.username = "root";
  o.password = "wrong-pw";
  auto wrong = open_etcd(o);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().message().find("wrong-pw"), std::string::npos);

  o.password = "root-pw";
  auto b = open_etcd(o);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  ASSERT_TRUE((*b)->put("k", as_bytes("v")).ok());
  EXPECT_EQ(as_string_view(**(*b)->get("k")), "v");
}

TEST_F(EtcdTest, ListingPagesThroughLargeFoldersAndSkipsSubtrees) {
  auto b = open_etcd(options());
  ASSERT_TRUE(b.ok());
  // More keys than one page (1,000), in a folder with a large sub-tree in the middle.
  std::vector<Op> ops;
  for (int i = 0; i < 2500; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "f/k%04d", i);
    ops.push_back({Op::Kind::kPut, name, to_bytes("v")});
    if (ops.size() == 100) {
      ASSERT_TRUE((*b)->transaction(ops).ok());
      ops.clear();
    }
  }
  for (int i = 0; i < 1500; ++i) {
    ops.push_back({Op::Kind::kPut, "f/k1000x/" + std::to_string(i), to_bytes("v")});
    if (ops.size() == 100) {
      ASSERT_TRUE((*b)->transaction(ops).ok());
      ops.clear();
    }
  }
  auto l = (*b)->list("f/");
  ASSERT_TRUE(l.ok()) << l.status().to_string();
  ASSERT_EQ(l->size(), 2501u);
  EXPECT_EQ((*l)[0], "k0000");
  EXPECT_EQ((*l)[1000], "k1000");
  EXPECT_EQ((*l)[1001], "k1000x/");
  EXPECT_EQ((*l)[1002], "k1001");
  EXPECT_EQ(l->back(), "k2499");
}

}  // namespace
}  // namespace custos::etcd
