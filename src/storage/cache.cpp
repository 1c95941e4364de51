#include "storage/cache.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <list>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace custos::storage {
namespace {

constexpr size_t kShards = 16;
constexpr size_t kMaxCachedValue = 256 << 10;             // larger values pass through
constexpr size_t kMaxShardBytes = (128 << 20) / kShards;  // 128 MiB of values in all

class CachingBackend final : public Backend {
 public:
  CachingBackend(std::unique_ptr<Backend> inner, size_t capacity)
      : inner_(std::move(inner)), per_shard_(std::max<size_t>(1, capacity / kShards)) {}

  Result<std::optional<Bytes>> get(std::string_view key) override {
    // A backend that can no longer be trusted (etcd without its lock) answers nothing from
    // memory either.
    RETURN_IF_ERROR(inner_->usable());
    // An HA standby caches nothing; a new lock term drops what an earlier one cached.
    const uint64_t epoch = inner_->cache_epoch();
    if (epoch == 0) return inner_->get(key);
    Shard& s = shard(key);
    uint64_t gen = 0;
    bool uncertain = false;
    {
      std::lock_guard lock(s.mu);
      enter_epoch_locked(s, epoch);
      if (s.uncertain.contains(std::string(key))) uncertain = true;
      auto it = s.index.find(std::string(key));
      if (it != s.index.end()) {
        s.lru.splice(s.lru.begin(), s.lru, it->second);  // most recently used first
        hits_.fetch_add(1, std::memory_order_relaxed);
        return it->second->value;
      }
      gen = s.generation;
    }
    misses_.fetch_add(1, std::memory_order_relaxed);
    if (uncertain) return inner_->get(key);
    ASSIGN_OR_RETURN(std::optional<Bytes> value, inner_->get(key));
    if (value && value->size() > kMaxCachedValue) return value;
    std::lock_guard lock(s.mu);
    // A write to this shard since the look-up may have made `value` stale: do not keep it.
    // Nor when the lock term changed meanwhile.
    if (s.generation == gen && inner_->cache_epoch() == epoch) {
      store_locked(s, std::string(key), value);
    }
    return value;
  }

  Status put(std::string_view key, ByteSpan value) override {
    Status st = inner_->put(key, value);
    invalidate(key, st.ok());
    return st;
  }

  Status del(std::string_view key) override {
    Status st = inner_->del(key);
    invalidate(key, st.ok());
    return st;
  }

  Result<std::vector<std::string>> list(std::string_view prefix) override {
    return inner_->list(prefix);
  }

  Status transaction(std::span<const Op> ops) override {
    Status st = inner_->transaction(ops);
    for (const Op& op : ops) invalidate(op.key, st.ok());
    return st;
  }

  std::string_view name() const override { return inner_->name(); }
  bool calls_block() const override { return inner_->calls_block(); }
  size_t max_transaction_ops() const override { return inner_->max_transaction_ops(); }
  Status usable() const override { return inner_->usable(); }
  uint64_t cache_epoch() const override { return inner_->cache_epoch(); }
  HaLock* ha_lock() override { return inner_->ha_lock(); }
  uint64_t sync_point() override { return inner_->sync_point(); }
  void on_durable(uint64_t ticket, std::function<void(Status)> done) override {
    inner_->on_durable(ticket, std::move(done));
  }

  CacheStats stats() const {
    CacheStats c;
    c.hits = hits_.load(std::memory_order_relaxed);
    c.misses = misses_.load(std::memory_order_relaxed);
    for (const Shard& s : shards_) {
      std::lock_guard lock(s.mu);
      c.entries += s.index.size();
    }
    return c;
  }

 private:
  struct Entry {
    std::string key;
    std::optional<Bytes> value;  // nullopt: the key is known to be missing
  };
  struct Shard {
    mutable std::mutex mu;
    std::list<Entry> lru;
    std::unordered_map<std::string, std::list<Entry>::iterator> index;
    // Keys of failed writes in this epoch: a write whose answer was lost may still land (etcd
    // can apply a transaction after a timeout), so these are never answered from memory.
    std::unordered_set<std::string> uncertain;
    uint64_t generation = 0;
    uint64_t epoch = 0;  // the backend's cache_epoch() the entries were read under
    size_t bytes = 0;  // keys and values held
  };

  // Entries read under an earlier epoch (an earlier lock term) are dropped.
  static void enter_epoch_locked(Shard& s, uint64_t epoch) {
    if (s.epoch == epoch) return;
    s.lru.clear();
    s.index.clear();
    s.uncertain.clear();
    s.bytes = 0;
    s.epoch = epoch;
    ++s.generation;
  }

  static size_t size_of(const Entry& e) { return e.key.size() + (e.value ? e.value->size() : 0); }

  Shard& shard(std::string_view key) { return shards_[std::hash<std::string_view>{}(key) % kShards]; }

  void store_locked(Shard& s, std::string key, std::optional<Bytes> value) {
    if (s.index.contains(key)) return;  // another reader filled it from the same generation
    s.lru.push_front(Entry{key, std::move(value)});
    s.bytes += size_of(s.lru.front());
    s.index.emplace(std::move(key), s.lru.begin());
    while (s.index.size() > per_shard_ || s.bytes > kMaxShardBytes) {
      s.bytes -= size_of(s.lru.back());
      s.index.erase(s.lru.back().key);
      s.lru.pop_back();
    }
  }

  // After a write, whatever its outcome: the key is forgotten and the shard's generation moves
  // on, so reads in flight do not fill the cache. The next read fetches what the backend
  // committed. (Storing the written value instead would be wrong when two writers race on one
  // key: their commits and these calls may come in different orders.) After a failed write
  // the key is not cached again in this epoch.
  void invalidate(std::string_view key, bool written) {
    Shard& s = shard(key);
    const uint64_t epoch = inner_->cache_epoch();
    std::lock_guard lock(s.mu);
    enter_epoch_locked(s, epoch);
    ++s.generation;
    if (!written) s.uncertain.emplace(key);
    if (auto it = s.index.find(std::string(key)); it != s.index.end()) {
      s.bytes -= size_of(*it->second);
      s.lru.erase(it->second);
      s.index.erase(it);
    }
  }

  std::unique_ptr<Backend> inner_;
  const size_t per_shard_;
  std::array<Shard, kShards> shards_;
  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> misses_{0};
};

}  // namespace

std::unique_ptr<Backend> with_read_cache(std::unique_ptr<Backend> inner, size_t capacity) {
  if (capacity == 0) return inner;
  return std::make_unique<CachingBackend>(std::move(inner), capacity);
}

CacheStats read_cache_stats(const Backend& backend) {
  const auto* c = dynamic_cast<const CachingBackend*>(&backend);
  return c ? c->stats() : CacheStats{};
}

}  // namespace custos::storage
