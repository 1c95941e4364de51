// The physical storage interface: opaque bytes under string keys. Everything above core/barrier
// is encrypted before it reaches a Backend, so backends never see plaintext secrets.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/status.h"

namespace custos::storage {

// High availability (docs/ha.md): a lock that several servers sharing one store compete for;
// the one holding it is the active server, the others are standbys that only read. Backends
// that support it return one from Backend::ha_lock(). Thread-safe.
class HaLock {
 public:
  virtual ~HaLock() = default;
  // Takes the lock once if it is free: OK, or FailedPrecondition naming the holder. `id` names
  // this server to the others (holder()). `on_lost` is called at most once, from any thread,
  // if the lock is later lost without release() (its lease lapsed, another server took it);
  // it must not block (signal a thread). Writes are refused unless the lock is held.
  virtual Status try_acquire(std::string_view id, std::function<void()> on_lost) = 0;
  // Blocks until the lock is taken (OK) or `cancelled` returns true (Unavailable), trying again
  // every poll period. Other errors (the store unreachable) are retried, not returned.
  virtual Status acquire(std::string_view id, const std::function<bool()>& cancelled,
                         std::function<void()> on_lost) = 0;
  // Gives the lock up at once (no on_lost). A no-op when it is not held.
  virtual void release() = 0;
  virtual bool held() const = 0;
  // The id of the server that holds the lock now, or nullopt when no one does.
  virtual Result<std::optional<std::string>> holder() = 0;
};

struct Op {
  enum class Kind { kPut, kDelete };
  Kind kind = Kind::kPut;
  std::string key;
  Bytes value;  // kPut only
};

// All methods are thread-safe. A put/delete/transaction that returns OK is durable (on disk
// backends it survives kill -9 and power loss, subject to the device honouring fsync) unless
// the calling thread is inside a DeferDurability scope (durability.h): then it is visible to
// every later read, and sync_point()/on_durable() tell when it is durable too.
class Backend {
 public:
  virtual ~Backend() = default;

  virtual Result<std::optional<Bytes>> get(std::string_view key) = 0;
  virtual Status put(std::string_view key, ByteSpan value) = 0;
  virtual Status del(std::string_view key) = 0;  // deleting a missing key is OK
  // Vault's list semantics: the immediate children of `prefix`, sorted; a child that has
  // children of its own ends with '/'. "a/b", "a/c/d" listed under "a/" -> ["b", "c/"].
  virtual Result<std::vector<std::string>> list(std::string_view prefix) = 0;
  // Applies every op or none.
  virtual Status transaction(std::span<const Op> ops) = 0;
  // Name for sys/ and logs: "inmem", "sqlite", "etcd".
  virtual std::string_view name() const = 0;
  // True when calls wait on the network (etcd), even reads and deferred writes: the server must
  // then not run requests on its I/O threads (Core::never_blocks).
  virtual bool calls_block() const { return false; }
  // The most ops one transaction() may hold (0: no limit). etcd has one (--max-txn-ops);
  // callers that batch many small writes size their batches to it.
  virtual size_t max_transaction_ops() const { return 0; }
  // OK while the backend's answers can be trusted; an error once they cannot (etcd that lost
  // its lock: another server may be changing the data). The read cache checks it before
  // answering from memory.
  virtual Status usable() const { return ok_status(); }
  // A read cache may answer from memory while this is nonzero, and only what it cached under
  // the same value: it changes whenever what was read before may have gone stale (HA: each
  // time this server takes the lock), and is 0 while nothing may be cached (an HA standby,
  // whose store the active server changes).
  virtual uint64_t cache_epoch() const { return 1; }
  // Non-null when several servers may share this store, one active at a time (HaLock).
  virtual HaLock* ha_lock() { return nullptr; }

  // Deferred durability (durability.h). sync_point(): 0 when every write visible so far is
  // durable, else a ticket for all of them. on_durable(ticket, done): calls done(OK) once the ticket is
  // durable, or done(error) if it never will be; at once if that is already known. Backends
  // whose writes are durable on return (in-memory) keep these defaults.
  virtual uint64_t sync_point() { return 0; }
  virtual void on_durable(uint64_t /*ticket*/, std::function<void(Status)> done) {
    done(ok_status());
  }
};

std::unique_ptr<Backend> open_inmem();

struct SqliteOptions {
  std::string path;
  // Batched commits: at most this many queued writes (puts, deletes or transactions) go into one
  // transaction. 0 means 1.
  size_t max_batch = 1024;
  // A checkpoint runs once this many WAL pages (frames) are not yet copied into the database
  // file (SQLite's own auto-checkpoint default is 1000).
  size_t checkpoint_pages = 1000;
  // Writers wait while the writes queued for the committer hold more than this many bytes of
  // keys and values (one write always gets in).
  size_t max_queued_bytes = 64 << 20;
  // A lone writer (nothing else queued) commits on its own thread and, while fsyncs are quick,
  // runs its fsync there too: no thread hand-off. Once the running average of recent fsyncs
  // reaches this limit, it leaves the fsync to the syncer thread, so that a slow disk does not
  // hold a server I/O thread (and every connection it serves) for the length of an fsync.
  // 0: always leave it to the syncer.
  std::chrono::microseconds inline_sync_limit{1000};
  // The key filter (docs/formats/storage-sqlite.md, "Key filter") is rebuilt from the file's
  // keys once it has taken twice as many keys as it was built with, and at least this many; the
  // rebuild reads this many keys at a time, between batches.
  size_t key_filter_rebuild_min = size_t{1} << 16;
  size_t key_filter_rebuild_page = 4096;
};
Result<std::unique_ptr<Backend>> open_sqlite(const SqliteOptions& options);

}  // namespace custos::storage
