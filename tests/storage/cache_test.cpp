// storage/cache.h beyond the shared contract (conformance_test.cpp runs that against it):
// hits, invalidation, and the race where a slow read must not put an old value back.
#include "storage/cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace custos::storage {
namespace {

// Counts the reads that reach the backend, and can park one read of `slow_key` after it has
// read its value, until released.
class ProbeBackend final : public Backend {
 public:
  explicit ProbeBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  Result<std::optional<Bytes>> get(std::string_view key) override {
    reads.fetch_add(1);
    auto r = inner_->get(key);
    if (key == slow_key) {
      std::unique_lock lock(mu);
      parked = true;
      cv.notify_all();
      cv.wait(lock, [&] { return released; });
    }
    return r;
  }
  Status put(std::string_view key, ByteSpan value) override {
    // As etcd after a timeout: the caller is told the write failed, and it lands later.
    if (lose_next_put_answer.exchange(false)) {
      late_key = std::string(key);
      late_value = Bytes(value.begin(), value.end());
      return unavailable("probe: the answer was lost");
    }
    return inner_->put(key, value);
  }
  Status land_late_put() { return inner_->put(late_key, late_value); }
  Status del(std::string_view key) override { return inner_->del(key); }
  Result<std::vector<std::string>> list(std::string_view prefix) override {
    return inner_->list(prefix);
  }
  Status transaction(std::span<const Op> ops) override { return inner_->transaction(ops); }
  std::string_view name() const override { return inner_->name(); }

  std::atomic<int> reads{0};
  std::atomic<bool> lose_next_put_answer{false};
  std::string late_key;
  Bytes late_value;
  std::string slow_key;
  std::mutex mu;
  std::condition_variable cv;
  bool parked = false;
  bool released = false;

 private:
  std::unique_ptr<Backend> inner_;
};

std::string str(const Result<std::optional<Bytes>>& r) {
  return r.ok() && r->has_value() ? to_string(**r) : std::string("<none>");
}

TEST(ReadCache, RepeatedReadsAndMissingKeysAreServedFromMemory) {
  auto probe = std::make_unique<ProbeBackend>(open_inmem());
  ProbeBackend* p = probe.get();
  auto cache = with_read_cache(std::move(probe), 1024);
  ASSERT_TRUE(cache->put("a", as_bytes(std::string("1"))).ok());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(str(cache->get("a")), "1");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(str(cache->get("missing")), "<none>");
  EXPECT_EQ(p->reads.load(), 2);  // one miss each, then hits
  CacheStats st = read_cache_stats(*cache);
  EXPECT_EQ(st.hits, 8U);
  EXPECT_EQ(st.misses, 2U);
  EXPECT_EQ(st.entries, 2U);
  EXPECT_EQ(cache->name(), "inmem");
}

TEST(ReadCache, EveryKindOfWriteInvalidates) {
  auto cache = with_read_cache(open_inmem(), 1024);
  ASSERT_TRUE(cache->put("a", as_bytes(std::string("1"))).ok());
  EXPECT_EQ(str(cache->get("a")), "1");
  ASSERT_TRUE(cache->put("a", as_bytes(std::string("2"))).ok());
  EXPECT_EQ(str(cache->get("a")), "2");
  ASSERT_TRUE(cache->del("a").ok());
  EXPECT_EQ(str(cache->get("a")), "<none>");
  std::vector<Op> ops = {{Op::Kind::kPut, "a", Bytes{'3'}}, {Op::Kind::kPut, "b", Bytes{'4'}}};
  EXPECT_EQ(str(cache->get("b")), "<none>");  // cached as missing
  ASSERT_TRUE(cache->transaction(ops).ok());
  EXPECT_EQ(str(cache->get("a")), "3");
  EXPECT_EQ(str(cache->get("b")), "4");
  ASSERT_TRUE(cache->transaction(std::vector<Op>{{Op::Kind::kDelete, "b", {}}}).ok());
  EXPECT_EQ(str(cache->get("b")), "<none>");
}

// A failed write may still land (etcd can apply a transaction whose answer was lost): its key is
// not answered from memory again in this epoch, so the late value is seen.
TEST(ReadCache, AKeyWhoseWriteFailedIsNotCachedAgain) {
  auto probe = std::make_unique<ProbeBackend>(open_inmem());
  ProbeBackend* p = probe.get();
  auto cache = with_read_cache(std::move(probe), 1024);
  EXPECT_EQ(str(cache->get("x")), "<none>");  // cached as missing
  p->lose_next_put_answer = true;
  EXPECT_EQ(cache->put("x", as_bytes(std::string("late"))).code(), Code::kUnavailable);
  EXPECT_EQ(str(cache->get("x")), "<none>");  // not there yet
  ASSERT_TRUE(p->land_late_put().ok());
  EXPECT_EQ(str(cache->get("x")), "late");
  const int reads = p->reads.load();
  EXPECT_EQ(str(cache->get("x")), "late");
  EXPECT_EQ(p->reads.load(), reads + 1);  // still asked every time
  // Other keys are cached as before.
  EXPECT_EQ(str(cache->get("y")), "<none>");
  EXPECT_EQ(str(cache->get("y")), "<none>");
  EXPECT_EQ(p->reads.load(), reads + 2);
}

TEST(ReadCache, ASlowReadDoesNotPutAnOldValueBack) {
  auto probe = std::make_unique<ProbeBackend>(open_inmem());
  ProbeBackend* p = probe.get();
  auto cache = with_read_cache(std::move(probe), 1024);
  ASSERT_TRUE(cache->put("k", as_bytes(std::string("old"))).ok());
  p->slow_key = "k";
  std::string seen;
  std::thread reader([&] { seen = str(cache->get("k")); });
  {
    std::unique_lock lock(p->mu);
    p->cv.wait(lock, [&] { return p->parked; });  // the reader holds "old", not yet cached
  }
  ASSERT_TRUE(cache->put("k", as_bytes(std::string("new"))).ok());
  {
    std::lock_guard lock(p->mu);
    p->released = true;
    p->slow_key.clear();
  }
  p->cv.notify_all();
  reader.join();
  EXPECT_EQ(seen, "old");                  // it read before the write finished
  EXPECT_EQ(str(cache->get("k")), "new");  // and did not cache what it read
}

TEST(ReadCache, MemoryIsBoundedAndLargeValuesPassThrough) {
  auto probe = std::make_unique<ProbeBackend>(open_inmem());
  ProbeBackend* p = probe.get();
  auto cache = with_read_cache(std::move(probe), 131072);
  const Bytes big(300 * 1024, 0x42);  // above the 256 KiB per-value limit
  ASSERT_TRUE(cache->put("big", big).ok());
  ASSERT_TRUE(cache->get("big").ok());
  ASSERT_TRUE(cache->get("big").ok());
  EXPECT_EQ(p->reads.load(), 2);  // never cached
  const Bytes medium(200 * 1024, 0x43);
  for (int i = 0; i < 1000; ++i) {
    std::string k = "m" + std::to_string(i);
    ASSERT_TRUE(cache->put(k, medium).ok());
    ASSERT_TRUE(cache->get(k).ok());
  }
  // 128 MiB of values at most: 655 of these, whatever the entry capacity says.
  EXPECT_LE(read_cache_stats(*cache).entries * medium.size(), size_t{128} << 20);
  EXPECT_GT(read_cache_stats(*cache).entries, 0U);
}

TEST(ReadCache, EvictsTheLeastRecentlyUsedAndStaysCorrectUnderConcurrency) {
  auto cache = with_read_cache(open_inmem(), 32);
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(cache->put("k" + std::to_string(i), as_bytes(std::to_string(i))).ok());
    EXPECT_EQ(str(cache->get("k" + std::to_string(i))), std::to_string(i));
  }
  EXPECT_LE(read_cache_stats(*cache).entries, 32U);
  // Writers bump counters while readers read; at the end every key reads its last value.
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int n = 1; n <= 300; ++n) {
        ASSERT_TRUE(cache->put("c" + std::to_string(w), as_bytes(std::to_string(n))).ok());
      }
    });
  }
  for (int r = 0; r < 4; ++r) {
    threads.emplace_back([&] {
      for (int n = 0; n < 1200; ++n) (void)cache->get("c" + std::to_string(n % 4));
    });
  }
  for (auto& t : threads) t.join();
  for (int w = 0; w < 4; ++w) EXPECT_EQ(str(cache->get("c" + std::to_string(w))), "300");
}

}  // namespace
}  // namespace custos::storage
