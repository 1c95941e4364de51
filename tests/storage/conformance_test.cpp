// One conformance suite, run against every Backend (STYLE.md habit 17). A backend-specific test
// belongs in its own file; anything a caller of Backend may rely on belongs here.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "etcd/backend.h"
#include "storage/backend.h"
#include "storage/cache.h"
#include "storage/durability.h"
#include "storage/temp_dir.h"
#include "support/etcd.cpp"  // NOLINT(bugprone-suspicious-include)

namespace custos::storage {
namespace {

using testing::TempDir;

struct BackendKind {
  std::string name;          // the test-name suffix
  std::string backend_name;  // what Backend::name() must say
  std::function<std::unique_ptr<Backend>(const TempDir&)> open;
};

std::unique_ptr<Backend> open_sqlite_or_die(const TempDir& dir, size_t max_batch) {
  auto r = open_sqlite({.path = dir.file("kv.db"), .max_batch = max_batch});
  if (!r.ok()) {
    ADD_FAILURE() << r.status().to_string();
    return nullptr;
  }
  return std::move(r).value();
}

// Makes every write inside a DeferDurability scope, as the HTTP API does: it returns once
// visible and becomes durable later. No reader may be able to tell the difference.
class Deferring final : public Backend {
 public:
  explicit Deferring(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}
  Result<std::optional<Bytes>> get(std::string_view key) override { return inner_->get(key); }
  Status put(std::string_view key, ByteSpan value) override {
    DeferDurability defer;
    return inner_->put(key, value);
  }
  Status del(std::string_view key) override {
    DeferDurability defer;
    return inner_->del(key);
  }
  Result<std::vector<std::string>> list(std::string_view prefix) override {
    return inner_->list(prefix);
  }
  Status transaction(std::span<const Op> ops) override {
    DeferDurability defer;
    return inner_->transaction(ops);
  }
  std::string_view name() const override { return inner_->name(); }

 private:
  std::unique_ptr<Backend> inner_;
};

// etcd: one member per test process (ctest runs each test in its own), started on first use;
// every backend gets a prefix of its own.
std::unique_ptr<Backend> open_etcd_or_die() {
  static std::unique_ptr<custos::testing::EtcdServer> server;
  static int n = 0;
  if (!server) {
    std::string error;
    server = custos::testing::EtcdServer::start(error);
    if (!server) {
      ADD_FAILURE() << error;
      return nullptr;
    }
  }
  etcd::EtcdOptions o;
  o.endpoints = {server->url()};
  o.prefix = "/conformance-" + std::to_string(++n) + "/";
  auto r = etcd::open_etcd(o);
  if (!r.ok()) {
    ADD_FAILURE() << r.status().to_string();
    return nullptr;
  }
  return std::move(r).value();
}

std::vector<BackendKind> all_backends() {
  return {
      {"inmem", "inmem", [](const TempDir&) { return open_inmem(); }},
      {"sqlite", "sqlite", [](const TempDir& dir) { return open_sqlite_or_die(dir, 1024); }},
      {"sqlite_deferred", "sqlite",
       [](const TempDir& dir) {
         return std::make_unique<Deferring>(open_sqlite_or_die(dir, 1024));
       }},
      {"sqlite_deferred_cached", "sqlite",
       [](const TempDir& dir) {
         return std::make_unique<Deferring>(with_read_cache(open_sqlite_or_die(dir, 1024), 64));
       }},
      // Batching disabled: every request commits alone; the contract must not change.
      {"sqlite_unbatched", "sqlite", [](const TempDir& dir) { return open_sqlite_or_die(dir, 0); }},
      // The read cache in front of a backend must not change the contract either; the tiny one
      // evicts all the time.
      {"sqlite_cached", "sqlite",
       [](const TempDir& dir) { return with_read_cache(open_sqlite_or_die(dir, 1024), 131072); }},
      {"inmem_cached_tiny", "inmem",
       [](const TempDir&) { return with_read_cache(open_inmem(), 16); }},
      {"etcd", "etcd", [](const TempDir&) { return open_etcd_or_die(); }},
      {"etcd_cached", "etcd",
       [](const TempDir&) { return with_read_cache(open_etcd_or_die(), 64); }},
  };
}

class Conformance : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override {
    backend_ = GetParam().open(dir_);
    ASSERT_NE(backend_, nullptr);
  }

  void must_put(std::string_view key, std::string_view value) {
    ASSERT_TRUE(backend_->put(key, as_bytes(value)).ok()) << "put " << key;
  }
  std::optional<std::string> get_string(std::string_view key) {
    auto r = backend_->get(key);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok() || !r->has_value()) return std::nullopt;
    return to_string(**r);
  }
  std::vector<std::string> must_list(std::string_view prefix) {
    auto r = backend_->list(prefix);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r : std::vector<std::string>{};
  }

  TempDir dir_;
  std::unique_ptr<Backend> backend_;
};

using Strings = std::vector<std::string>;

TEST_P(Conformance, GetMissingIsEmptyNotAnError) {
  auto r = backend_->get("nope");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
}

TEST_P(Conformance, PutGetOverwriteDelete) {
  must_put("k", "v1");
  EXPECT_EQ(get_string("k"), "v1");
  must_put("k", "v2");
  EXPECT_EQ(get_string("k"), "v2");
  ASSERT_TRUE(backend_->del("k").ok());
  EXPECT_EQ(get_string("k"), std::nullopt);
  EXPECT_TRUE(backend_->del("k").ok()) << "deleting a missing key is OK";
  EXPECT_TRUE(backend_->del("never-existed").ok());
}

TEST_P(Conformance, EmptyValueIsPresent) {
  ASSERT_TRUE(backend_->put("empty", ByteSpan{}).ok());
  auto r = backend_->get("empty");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_TRUE((*r)->empty());
}

TEST_P(Conformance, EmptyKeyIsRejected) {
  EXPECT_EQ(backend_->put("", as_bytes("v")).code(), Code::kInvalidArgument);
  EXPECT_EQ(backend_->del("").code(), Code::kInvalidArgument);
  EXPECT_EQ(backend_->get("").status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(must_list("").empty());
}

TEST_P(Conformance, ListExampleFromTheContract) {
  must_put("a/b", "1");
  must_put("a/c/d", "2");
  EXPECT_EQ(must_list("a/"), (Strings{"b", "c/"}));
}

TEST_P(Conformance, ListNestedPrefixes) {
  for (const char* k : {"a/b/c/d", "a/b/c/e", "a/b/f", "a/g", "a/h/i/j/k", "a-x", "ag", "b"}) {
    must_put(k, k);
  }
  EXPECT_EQ(must_list(""), (Strings{"a-x", "a/", "ag", "b"}));
  EXPECT_EQ(must_list("a/"), (Strings{"b/", "g", "h/"}));
  EXPECT_EQ(must_list("a/b/"), (Strings{"c/", "f"}));
  EXPECT_EQ(must_list("a/b/c/"), (Strings{"d", "e"}));
  EXPECT_EQ(must_list("a/h/"), (Strings{"i/"}));
  EXPECT_EQ(must_list("a/h/i/j/"), (Strings{"k"}));
  EXPECT_TRUE(must_list("a/g/").empty()) << "a leaf has no children";
  EXPECT_TRUE(must_list("zzz/").empty());
  EXPECT_TRUE(must_list("a/b/c/d/").empty());
  // A prefix that does not end in '/' lists what follows it literally, as Vault does.
  EXPECT_EQ(must_list("a"), (Strings{"-x", "/", "g"}));
}

TEST_P(Conformance, ListEmptyBackend) {
  EXPECT_TRUE(must_list("").empty());
  EXPECT_TRUE(must_list("a/").empty());
}

TEST_P(Conformance, ListLeafAndFolderWithTheSameName) {
  must_put("x/y", "leaf");
  must_put("x/y/z", "child");
  EXPECT_EQ(must_list("x/"), (Strings{"y", "y/"}));
}

TEST_P(Conformance, ListFolderWithManyChildrenAppearsOnce) {
  for (int i = 0; i < 300; ++i) must_put("big/sub/" + std::to_string(i), "v");
  must_put("big/after", "v");
  must_put("big/before", "v");
  must_put("big/sub0", "v");  // sorts right after every "big/sub/..." key
  must_put("big/sub.", "v");  // sorts right before them
  EXPECT_EQ(must_list("big/"), (Strings{"after", "before", "sub.", "sub/", "sub0"}));
}

TEST_P(Conformance, ListReflectsDeletes) {
  must_put("d/a/1", "v");
  must_put("d/b", "v");
  ASSERT_TRUE(backend_->del("d/a/1").ok());
  EXPECT_EQ(must_list("d/"), (Strings{"b"}));
}

TEST_P(Conformance, KeysWithOddBytes) {
  const Strings keys = {
      std::string("odd/nul\0inside", 14),
      "odd/\x01low",
      "odd/\x7f"
      "del",
      "odd/\xff\xfe high",
      "odd/spaces and\ttabs\nnewline",
      "odd/\xc3\xa9t\xc3\xa9",  // UTF-8
      "odd/'quote\"; DROP TABLE kv; --",
      "odd/%2F..%00",
  };
  for (const auto& k : keys) must_put(k, "value of " + k);
  for (const auto& k : keys) EXPECT_EQ(get_string(k), "value of " + k) << k;

  Strings expected;
  for (const auto& k : keys) expected.push_back(k.substr(4));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(must_list("odd/"), expected);

  // Prefixes made of 0xff bytes have no successor string; the range must still end correctly.
  must_put("\xff\xff/a", "1");
  must_put("\xff\xff/b/c", "2");
  must_put("\xff\xff\xff", "3");
  must_put("\xfe/z", "4");
  EXPECT_EQ(must_list("\xff\xff/"), (Strings{"a", "b/"}));
  EXPECT_EQ(must_list("\xff\xff"), (Strings{"/", "\xff"}));
  EXPECT_EQ(must_list("\xff"), (Strings{"\xff/", "\xff\xff"}));
  EXPECT_EQ(must_list("\xfe"), (Strings{"/"}));
}

TEST_P(Conformance, LargeValue) {
  Bytes big(1 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  ASSERT_TRUE(backend_->put("large", big).ok());
  auto r = backend_->get("large");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_TRUE(**r == big);
}

TEST_P(Conformance, TransactionAppliesEveryOpInOrder) {
  must_put("t/old", "x");
  std::vector<Op> ops = {
      {Op::Kind::kPut, "t/a", to_bytes("1")},      {Op::Kind::kPut, "t/b", to_bytes("first")},
      {Op::Kind::kPut, "t/b", to_bytes("second")}, {Op::Kind::kDelete, "t/old", {}},
      {Op::Kind::kPut, "t/c", to_bytes("3")},      {Op::Kind::kDelete, "t/c", {}},
      {Op::Kind::kDelete, "t/missing", {}},
  };
  ASSERT_TRUE(backend_->transaction(ops).ok());
  EXPECT_EQ(get_string("t/a"), "1");
  EXPECT_EQ(get_string("t/b"), "second");
  EXPECT_EQ(get_string("t/old"), std::nullopt);
  EXPECT_EQ(get_string("t/c"), std::nullopt);
  EXPECT_EQ(must_list("t/"), (Strings{"a", "b"}));
}

TEST_P(Conformance, EmptyTransactionIsOk) {
  EXPECT_TRUE(backend_->transaction({}).ok());
}

TEST_P(Conformance, InvalidTransactionAppliesNothing) {
  must_put("t/keep", "original");
  std::vector<Op> ops = {
      {Op::Kind::kPut, "t/new", to_bytes("1")},
      {Op::Kind::kDelete, "t/keep", {}},
      {Op::Kind::kPut, "", to_bytes("empty key")},
  };
  EXPECT_EQ(backend_->transaction(ops).code(), Code::kInvalidArgument);
  EXPECT_EQ(get_string("t/new"), std::nullopt);
  EXPECT_EQ(get_string("t/keep"), "original");
}

// A rename done as one transaction: a concurrent lister must see exactly one name, never zero
// (delete applied alone) or two (put applied alone).
TEST_P(Conformance, TransactionIsAtomicToConcurrentReaders) {
  must_put("ren/0", "v");
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&] {
      while (!done.load()) {
        auto l = backend_->list("ren/");
        if (!l.ok() || l->size() != 1) bad.fetch_add(1);
        std::this_thread::yield();  // reader-preferring rwlocks would starve the writer
      }
    });
  }
  constexpr int kRenames = 100;
  for (int i = 1; i <= kRenames; ++i) {
    std::vector<Op> ops = {
        {Op::Kind::kDelete, "ren/" + std::to_string(i - 1), {}},
        {Op::Kind::kPut, "ren/" + std::to_string(i), to_bytes("v")},
    };
    ASSERT_TRUE(backend_->transaction(ops).ok());
  }
  done.store(true);
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(must_list("ren/"), (Strings{std::to_string(kRenames)}));
}

TEST_P(Conformance, ConcurrentWritersAreAllAcknowledgedAndReadable) {
  constexpr int kThreads = 32;
  constexpr int kPerThread = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string key = "cw/" + std::to_string(t) + "/" + std::to_string(i);
        Status s;
        if (i % 5 == 4) {
          // Mix transactions into the stream so they share batches with plain puts.
          std::vector<Op> ops = {{Op::Kind::kPut, key, to_bytes(key)},
                                 {Op::Kind::kPut, key + "/tx", to_bytes("tx")}};
          s = backend_->transaction(ops);
        } else {
          s = backend_->put(key, as_bytes(key));
        }
        if (!s.ok()) failures.fetch_add(1);
        // Read-your-writes: an acknowledged put is visible at once, from any thread.
        auto r = backend_->get(key);
        if (!r.ok() || !r->has_value() || to_string(**r) != key) failures.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);

  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      std::string key = "cw/" + std::to_string(t) + "/" + std::to_string(i);
      EXPECT_EQ(get_string(key), key);
    }
  }
  auto top = must_list("cw/");
  EXPECT_EQ(top.size(), static_cast<size_t>(kThreads));
  for (const auto& child : top) EXPECT_TRUE(child.ends_with('/')) << child;
  EXPECT_EQ(must_list("cw/7/").size(), static_cast<size_t>(kPerThread + kPerThread / 5));
}

TEST_P(Conformance, ConcurrentDeletesAndPutsOnOneKeyEndConsistent) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        if ((t + i) % 3 == 0) {
          EXPECT_TRUE(backend_->del("hot").ok());
        } else {
          EXPECT_TRUE(backend_->put("hot", as_bytes("v" + std::to_string(t))).ok());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(backend_->put("hot", as_bytes("final")).ok());
  EXPECT_EQ(get_string("hot"), "final");
}

TEST_P(Conformance, Name) {
  EXPECT_EQ(backend_->name(), GetParam().backend_name);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, Conformance, ::testing::ValuesIn(all_backends()),
                         [](const ::testing::TestParamInfo<BackendKind>& p) {
                           return p.param.name;
                         });

}  // namespace
}  // namespace custos::storage
