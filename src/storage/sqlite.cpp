// The SQLite backend: one database file in WAL mode, opened by a single connection in exclusive
// locking mode (no shared-memory index, no file locks per transaction, and a page cache that no
// other connection invalidates), used under a mutex by readers and by whoever commits. A write
// becomes visible at once through an overlay of writes not yet committed; the committer thread
// commits everything queued as one transaction and the syncer thread fsyncs the WAL while the
// next batch commits (a lone writer commits on its own thread, and fsyncs there too while
// fsyncs are quick); only then are those writes
// reported durable (durability.h). The on-disk format and the design are documented in
// docs/formats/storage-sqlite.md; keep the two in step.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "base/cleanup.h"
#include "base/log.h"
#include "base/metrics.h"
#include "storage/backend.h"
#include "storage/durability.h"
#include "storage/key_filter.h"
#include "storage/keys.h"
#include "storage/sqlite_testing.h"
#include "storage/sqlite_vfs.h"

namespace custos::storage {
namespace {

// docs/formats/storage-sqlite.md, "Versioning": PRAGMA user_version of a Custos database.
// Version 1 stored the table WITHOUT ROWID; version 2 is an ordinary rowid table (values of a
// few hundred bytes and more, which are most of ours, fit its leaves; see the format doc).
constexpr int kFormatVersion = 2;
constexpr const char* kCreateTable =
    "CREATE TABLE kv ("
    "  key TEXT PRIMARY KEY NOT NULL,"
    "  value BLOB NOT NULL"
    ");";
constexpr const char* kJournalSizeLimitPragma = "PRAGMA journal_size_limit=67108864";  // 64 MiB

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Cached statements are reset when each use ends, on every path: a statement left stepping
// keeps its read snapshot open, which would hide later commits from this connection and hold
// back WAL checkpoints.
auto reset_on_exit(sqlite3_stmt* stmt) {
  return Cleanup([stmt] {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
  });
}

Code code_for(int rc) {
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return Code::kDataLoss;
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_PROTOCOL:
      return Code::kUnavailable;
    case SQLITE_TOOBIG:
      return Code::kInvalidArgument;
    default:
      return Code::kInternal;
  }
}

// Every error names the file, so an operator can tell which database and what went wrong
// without a debugger. Keys and values never appear in errors (they may be sensitive paths).
Status sqlite_error(const std::string& path, std::string_view what, int rc, sqlite3* db) {
  std::string msg = "storage: sqlite database '" + path + "': ";
  msg.append(what);
  msg.append(": ");
  msg.append(db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
    msg.append(" (another process has it open: only one server may use a database file)");
  }
  return {code_for(rc), std::move(msg)};
}

// An empty view may carry a null pointer, which SQLite would bind as NULL rather than ''.
void bind_text(sqlite3_stmt* stmt, int index, std::string_view text) {
  sqlite3_bind_text64(stmt, index, text.empty() ? "" : text.data(), text.size(), SQLITE_STATIC,
                      SQLITE_UTF8);
}
void bind_blob(sqlite3_stmt* stmt, int index, ByteSpan blob) {
  if (blob.empty()) {
    sqlite3_bind_zeroblob(stmt, index, 0);  // a null data pointer would bind NULL
  } else {
    sqlite3_bind_blob64(stmt, index, blob.data(), blob.size(), SQLITE_STATIC);
  }
}

std::string_view column_text(sqlite3_stmt* stmt, int col) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
  auto n = static_cast<size_t>(sqlite3_column_bytes(stmt, col));
  return p == nullptr ? std::string_view() : std::string_view(p, n);
}

Result<DbPtr> open_connection(const std::string& path, bool create) {
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  ASSIGN_OR_RETURN(const char* vfs, internal::coalescing_vfs());
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, vfs);
  DbPtr db(raw);
  if (rc != SQLITE_OK) return sqlite_error(path, "opening", rc, db.get());
  sqlite3_extended_result_codes(db.get(), 1);
  // No busy timeout: the backend is the file's only user, so a lock held elsewhere means another
  // process has it open, and waiting would not help.
  // SQLite silently falls back to read-only when the file is write-protected; a secrets store
  // that cannot persist writes must refuse to start instead.
  if (sqlite3_db_readonly(db.get(), "main") == 1) {
    return failed_precondition("storage: sqlite database '" + path +
                               "': opening: file is read-only");
  }
  return db;
}

Status exec(const std::string& path, sqlite3* db, const char* sql, std::string_view what) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sqlite_error(path, what, rc, db);
  return ok_status();
}

// Runs a one-row pragma and returns its first column as text.
Result<std::string> pragma_value(const std::string& path, sqlite3* db, const char* sql,
                                 std::string_view what) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) return sqlite_error(path, what, rc, db);
  rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) return std::string(column_text(stmt.get(), 0));
  if (rc == SQLITE_DONE) return std::string();
  return sqlite_error(path, what, rc, db);
}

// Pragmas and schema: docs/formats/storage-sqlite.md.
Status configure(const std::string& path, sqlite3* db) {
  // Before the first WAL access, so that SQLite keeps the WAL index in this connection's memory
  // and never takes a file lock per transaction. The file stays locked while we have it open.
  ASSIGN_OR_RETURN(std::string locking, pragma_value(path, db, "PRAGMA locking_mode=EXCLUSIVE",
                                                     "setting locking_mode=EXCLUSIVE"));
  if (locking != "exclusive") {
    return unavailable("storage: sqlite database '" + path + "': locking_mode is '" + locking +
                       "', EXCLUSIVE is required");
  }
  ASSIGN_OR_RETURN(std::string mode,
                   pragma_value(path, db, "PRAGMA journal_mode=WAL", "setting journal_mode=WAL"));
  if (mode != "wal") {
    return unavailable("storage: sqlite database '" + path + "': journal_mode is '" + mode +
                       "', WAL is required");
  }
  // NORMAL: a COMMIT writes the WAL without an fsync; the committer fsyncs it right after, once
  // for the whole batch, and reports nothing durable before. WAL mode with NORMAL stays
  // consistent across a power loss, and checkpoints still sync the WAL and the database file.
  RETURN_IF_ERROR(exec(path, db, "PRAGMA synchronous=NORMAL", "setting synchronous=NORMAL"));
  // Checkpoints run on the committer thread between batches, never inside a commit.
  RETURN_IF_ERROR(exec(path, db, "PRAGMA wal_autocheckpoint=0", "setting wal_autocheckpoint"));
  // When the WAL restarts, a file that grew past this is cut back to it; below it, the file's
  // blocks are kept and overwritten in place.
  RETURN_IF_ERROR(exec(path, db, kJournalSizeLimitPragma, "setting journal_size_limit"));
  // The one connection serves every read that misses the overlay and the read cache above.
  RETURN_IF_ERROR(exec(path, db, "PRAGMA cache_size=-8192", "setting cache_size"));  // 8 MiB
  ASSIGN_OR_RETURN(std::string version,
                   pragma_value(path, db, "PRAGMA user_version", "reading user_version"));
  // user_version is an integer pragma: SQLite always answers digits.
  const int format = std::atoi(version.c_str());
  if (format == 0) {
    const std::string sql = std::string("BEGIN IMMEDIATE;") + kCreateTable +
                            "PRAGMA user_version=" + std::to_string(kFormatVersion) + ";COMMIT;";
    RETURN_IF_ERROR(exec(path, db, sql.c_str(), "creating schema"));
  } else if (format == 1) {
    // Copies the WITHOUT ROWID table into a rowid table, all in one transaction: a crash
    // leaves either format, complete, and a version-1 file is migrated again at the next open.
    const std::string sql = std::string("BEGIN IMMEDIATE;") +
                            "ALTER TABLE kv RENAME TO kv_format1;" + kCreateTable +
                            "INSERT INTO kv(key, value) SELECT key, value FROM kv_format1 ORDER BY "
                            "key;"
                            "DROP TABLE kv_format1;"
                            "PRAGMA user_version=" +
                            std::to_string(kFormatVersion) + ";COMMIT;";
    Status st = exec(path, db, sql.c_str(), "migrating from format version 1");
    if (!st.ok()) {
      (void)sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      return st;
    }
    LOG_INFO("storage", "sqlite database '" << path << "' migrated from format version 1 to "
                                            << kFormatVersion);
  } else if (format != kFormatVersion) {
    return failed_precondition("storage: sqlite database '" + path + "': format version " +
                               version + " is not supported (expected " +
                               std::to_string(kFormatVersion) + ")");
  }
  Status flushed = internal::flush_wal(db);
  if (!flushed.ok()) {
    return unavailable("storage: sqlite database '" + path + "': " + flushed.message());
  }
  return ok_status();
}

enum Stmt : size_t {
  kGet,
  kListBounded,
  kListOpen,
  kPut,
  kDelete,
  kBegin,
  kCommit,
  kRollback,
  kKeysFirst,
  kKeysAfter,
  kStmtCount
};
constexpr std::array<const char*, kStmtCount> kSql = {
    "SELECT value FROM kv WHERE key = ?1",
    "SELECT key FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key",
    // For prefixes without a successor string (empty, or all 0xff bytes).
    "SELECT key FROM kv WHERE key >= ?1 ORDER BY key",
    "INSERT INTO kv(key, value) VALUES(?1, ?2) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    "DELETE FROM kv WHERE key = ?1",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    // The key filter's rebuild: the keys in order, a page at a time.
    "SELECT key FROM kv ORDER BY key LIMIT ?1",
    "SELECT key FROM kv WHERE key > ?1 ORDER BY key LIMIT ?2",
};

// The connection with its statements, prepared once (SQLITE_PREPARE_PERSISTENT).
struct Connection {
  DbPtr db;
  std::array<StmtPtr, kStmtCount> stmts;
  sqlite3_stmt* stmt(Stmt s) const { return stmts[s].get(); }
};

Result<Connection> open_and_prepare(const std::string& path) {
  Connection conn;
  ASSIGN_OR_RETURN(conn.db, open_connection(path, /*create=*/true));
  RETURN_IF_ERROR(configure(path, conn.db.get()));
  for (size_t i = 0; i < kStmtCount; ++i) {
    sqlite3_stmt* raw = nullptr;
    int rc =
        sqlite3_prepare_v3(conn.db.get(), kSql[i], -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    conn.stmts[i].reset(raw);
    if (rc != SQLITE_OK) return sqlite_error(path, "preparing statements", rc, conn.db.get());
  }
  return conn;
}

// The key filter starts from every key the file holds, sized for twice as many as the largest
// rowid suggests (an estimate read from the index's end, not a count). Reads the covering
// index of `key` only.
Result<internal::KeyFilter> load_key_filter(const std::string& path, sqlite3* db) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, "SELECT max(rowid) FROM kv", -1, &raw, nullptr);
  StmtPtr max_rowid(raw);
  if (rc != SQLITE_OK) return sqlite_error(path, "sizing the key filter", rc, db);
  rc = sqlite3_step(raw);
  if (rc != SQLITE_ROW) return sqlite_error(path, "sizing the key filter", rc, db);
  // Rowids are only ever the largest plus one, but the file is not trusted to say so: a huge one
  // must not size a huge filter. Past the cap, sub-filters grow as keys are added.
  constexpr sqlite3_int64 kMaxEstimate = sqlite3_int64{1} << 20;
  const auto estimate =
      static_cast<size_t>(std::clamp<sqlite3_int64>(sqlite3_column_int64(raw, 0), 0, kMaxEstimate));
  internal::KeyFilter filter(2 * estimate);
  rc = sqlite3_prepare_v2(db, "SELECT key FROM kv", -1, &raw, nullptr);
  StmtPtr keys(raw);
  if (rc != SQLITE_OK) return sqlite_error(path, "loading the key filter", rc, db);
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    // The column is NOT NULL: a null pointer means SQLite could not convert it (out of memory),
    // and a key left out would read as absent.
    if (sqlite3_column_text(raw, 0) == nullptr) {
      return sqlite_error(path, "loading the key filter", SQLITE_NOMEM, nullptr);
    }
    filter.add(column_text(raw, 0));
  }
  if (rc != SQLITE_DONE) return sqlite_error(path, "loading the key filter", rc, db);
  return filter;
}

using Value = std::shared_ptr<const Bytes>;

// A put, delete or transaction() waiting for the committer. Its values are shared with the
// overlay, which serves them to readers until the commit.
struct Pending {
  struct PendingOp {
    Op::Kind kind;
    std::string key;
    Value value;  // kPut only
  };
  uint64_t seq = 0;
  std::vector<PendingOp> ops;
  size_t bytes = 0;
};

struct OverlayEntry {
  uint64_t seq = 0;  // the write that set it
  Value value;       // null: deleted
};

class SqliteBackend final : public Backend, private DeferredSync {
 public:
  SqliteBackend(std::string path, const SqliteOptions& options, Connection conn,
                internal::KeyFilter filter, SqliteTestHooks hooks)
      : path_(std::move(path)),
        max_batch_(options.max_batch == 0 ? 1 : options.max_batch),
        checkpoint_pages_(options.checkpoint_pages == 0 ? 1 : options.checkpoint_pages),
        max_queued_bytes_(options.max_queued_bytes == 0 ? 1 : options.max_queued_bytes),
        inline_sync_limit_ns_(
            std::chrono::duration_cast<std::chrono::nanoseconds>(options.inline_sync_limit)
                .count()),
        rebuild_min_(std::max<size_t>(1, options.key_filter_rebuild_min)),
        rebuild_page_(std::max<size_t>(1, options.key_filter_rebuild_page)),
        hooks_(std::move(hooks)),
        conn_(std::move(conn)),
        filter_(std::move(filter)) {
    rebuild_at_ = next_rebuild_at(filter_.keys_added());
    // Records the WAL's size after each commit, for the checkpoint decision.
    sqlite3_wal_hook(conn_.db.get(), &SqliteBackend::wal_hook, this);
    syncer_ = std::thread([this] { syncer_loop(); });
    committer_ = std::thread([this] { committer_loop(); });
  }

  ~SqliteBackend() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    space_cv_.notify_all();
    // The committer commits everything still queued before it returns, then the syncer makes
    // it durable.
    committer_.join();
    {
      std::lock_guard lock(sync_mu_);
      sync_stopping_ = true;
    }
    sync_cv_.notify_all();
    syncer_.join();
    if (wal_fd_ >= 0) ::close(wal_fd_);
  }

  SqliteBackend(const SqliteBackend&) = delete;
  SqliteBackend& operator=(const SqliteBackend&) = delete;

  Result<std::optional<Bytes>> get(std::string_view key) override {
    RETURN_IF_ERROR(internal::validate_key(key));
    {
      std::lock_guard lock(mu_);
      RETURN_IF_ERROR(usable_locked());
      // A write not yet committed: whatever SQLite holds for the key is older.
      if (auto it = overlay_.find(key); it != overlay_.end()) {
        if (!it->second.value) return std::optional<Bytes>();
        return std::optional<Bytes>(*it->second.value);
      }
      // Every key SQLite holds was in the filter at open or went through the overlay, which
      // adds it: a key the filter has never seen is in neither ("Key filter").
      if (!filter_.may_contain(key)) return std::optional<Bytes>();
    }
    // Not in the overlay: either never written since the last commit of the key, or committed
    // (the committer removes an entry only after its commit), so SQLite has the latest value.
    if (hooks_.before_read) hooks_.before_read(key);
    std::lock_guard conn_lock(conn_mu_);
    sqlite3_stmt* stmt = conn_.stmt(kGet);
    auto reset = reset_on_exit(stmt);
    bind_text(stmt, 1, key);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) return std::optional<Bytes>();
    if (rc != SQLITE_ROW) return sqlite_error(path_, "get", rc, conn_.db.get());
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(stmt, 0));
    auto n = static_cast<size_t>(sqlite3_column_bytes(stmt, 0));
    if (p == nullptr) return std::optional<Bytes>(Bytes());
    return std::optional<Bytes>(Bytes(p, p + n));
  }

  Status put(std::string_view key, ByteSpan value) override {
    RETURN_IF_ERROR(internal::validate_key(key));
    Pending p;
    p.ops.push_back({Op::Kind::kPut, std::string(key),
                     std::make_shared<const Bytes>(value.begin(), value.end())});
    return write(std::move(p));
  }

  Status del(std::string_view key) override {
    RETURN_IF_ERROR(internal::validate_key(key));
    Pending p;
    p.ops.push_back({Op::Kind::kDelete, std::string(key), nullptr});
    return write(std::move(p));
  }

  Status transaction(std::span<const Op> ops) override {
    if (ops.empty()) return ok_status();
    // Every key is checked before anything is applied: all or nothing.
    for (const Op& op : ops) RETURN_IF_ERROR(internal::validate_key(op.key));
    Pending p;
    p.ops.reserve(ops.size());
    for (const Op& op : ops) {
      p.ops.push_back(
          {op.kind, op.key,
           op.kind == Op::Kind::kPut ? std::make_shared<const Bytes>(op.value) : nullptr});
    }
    return write(std::move(p));
  }

  Result<std::vector<std::string>> list(std::string_view prefix) override {
    // A listing folds many keys into children, which the overlay cannot answer alone (a delete
    // there may or may not empty a folder): wait until everything visible now is committed.
    {
      std::unique_lock lock(mu_);
      const uint64_t want = applied_.load(std::memory_order_relaxed);
      committed_cv_.wait(lock, [&] { return committed_ >= want || !failed_.ok(); });
      RETURN_IF_ERROR(usable_locked());
    }
    // The connection is ours until the listing ends, so its seeks see one state.
    std::lock_guard conn_lock(conn_mu_);
    sqlite3* db = conn_.db.get();
    std::optional<std::string> upper = internal::prefix_successor(prefix);
    sqlite3_stmt* stmt = conn_.stmt(upper ? kListBounded : kListOpen);
    auto reset = reset_on_exit(stmt);
    std::vector<std::string> out;
    std::string lower(prefix);
    // Each pass scans leaves in key order until it meets a sub-folder, records it once, and
    // seeks past the folder's whole sub-tree: cost is O(children * log n), not O(keys below).
    for (;;) {
      sqlite3_reset(stmt);
      bind_text(stmt, 1, lower);
      if (upper) bind_text(stmt, 2, *upper);
      int rc = SQLITE_OK;
      bool reseek = false;
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        internal::Child child = internal::immediate_child(column_text(stmt, 0), prefix);
        out.emplace_back(child.name);
        if (child.folder) {
          lower = internal::skip_past_folder(prefix, child.name);
          reseek = true;
          break;
        }
      }
      if (!reseek && rc != SQLITE_DONE) return sqlite_error(path_, "list", rc, db);
      if (!reseek) break;
    }
    // Rows arrive in key order and folding preserves it, so `out` is already sorted and free
    // of duplicates (the argument is in docs/formats/storage-sqlite.md; the conformance suite
    // checks it against the in-memory backend).
    return out;
  }

  std::string_view name() const override { return "sqlite"; }

  uint64_t sync_point() override {
    uint64_t applied = applied_.load(std::memory_order_acquire);
    return applied > durable_.load(std::memory_order_acquire) ? applied : 0;
  }

  void on_durable(uint64_t ticket, DurableCallback done) override {
    tracker_.on_durable(ticket, std::move(done));
  }

 private:
  // ---- writes (docs/formats/storage-sqlite.md, "Write path") ----

  // Makes `p` visible in the overlay and queues it for the next commit. A lone writer (nothing
  // else queued, no commit running) commits and, while fsyncs are quick, fsyncs on its own
  // thread, so one client's write costs no thread hand-off; otherwise the committer and syncer
  // threads do, batching everything queued. Returns once the write is durable, or as soon as it is
  // visible inside a DeferDurability scope; there a lone writer's fsync waits for the scope's
  // end (defer_sync()).
  Status write(Pending p) {
    for (const auto& op : p.ops) p.bytes += op.key.size() + (op.value ? op.value->size() : 0);
    uint64_t seq = 0;
    bool lead = false;
    // This thread holds the fsync turn until its scope ends: its next write may lead too.
    const bool owes_sync = DeferDurability::owes(this);
    {
      std::unique_lock lock(mu_);
      // Back-pressure: writers wait while the queue holds too much (a slow disk), but the
      // queue always takes one request, however large.
      space_cv_.wait(lock, [&] {
        return !failed_.ok() || stopping_ || queued_bytes_ == 0 ||
               queued_bytes_ + p.bytes <= max_queued_bytes_;
      });
      RETURN_IF_ERROR(usable_locked());
      if (stopping_) return unavailable("storage: sqlite backend is shutting down");
      seq = applied_.load(std::memory_order_relaxed) + 1;
      p.seq = seq;
      for (const auto& op : p.ops) {
        if (op.value) {
          filter_.add(op.key);
          if (rebuilt_) rebuilt_->add(op.key);
        } else {
          ++deletes_since_build_;
        }
        overlay_.insert_or_assign(op.key, OverlayEntry{seq, op.value});
      }
      if (!filter_rebuild_due_ && filter_.keys_added() >= rebuild_at_) {
        // Worth it only when many of the keys may be gone; a store that only grows keeps the
        // filter it has, which grows with it.
        if (deletes_since_build_ >= filter_.keys_added() / 4) {
          filter_rebuild_due_ = true;  // the committer takes it up between batches
        } else {
          rebuild_at_ = next_rebuild_at(filter_.keys_added());
        }
      }
      queued_bytes_ += p.bytes;
      queue_.push_back(std::move(p));
      // Published under the lock, after the overlay holds the write: a sync_point() that
      // includes `seq` is taken after the write is visible.
      applied_.store(seq, std::memory_order_release);
      // Lone: nothing else queued, no commit, checkpoint or fsync running or due. A writer that
      // would wait for an fsync in progress anyway leaves its commit to the committer, to batch
      // (unless that fsync is its own, deferred, still to run).
      if (!committing_ && queue_.size() == 1 && !checkpoint_due_ &&
          (owes_sync || !sync_running_.load(std::memory_order_acquire))) {
        committing_ = true;
        lead = true;
      } else if (!committing_ && committer_idle_) {
        work_cv_.notify_one();
      }
    }
    if (lead) {
      Committed c = commit_queued();
      if (!c.st.ok()) return failure_status(c.st);
      const bool inline_ok = !c.more && syncs_are_quick();
      if (owes_sync) {
        note_committed(c.last);  // the fsync this thread owes covers it
      } else if (inline_ok && DeferDurability::active()) {
        defer_sync(c.last);
      } else {
        request_sync(c.last, inline_ok);
      }
    }
    if (DeferDurability::active()) return ok_status();
    Status st = tracker_.wait(seq);
    if (st.ok()) return st;
    return failure_status(st);
  }

  // mu_ held. After a failure the backend answers nothing (see failure_status()).
  Status usable_locked() const { return failed_.ok() ? ok_status() : failure_status(failed_); }

  Status failure_status(const Status& cause) const {
    return {cause.code(), "storage: sqlite database '" + path_ +
                              "' stopped after a failed write and refuses reads and writes until "
                              "the server restarts: " +
                              cause.message()};
  }

  struct Committed {
    Status st;
    uint64_t last = 0;  // the latest write committed
    bool more = false;  // more writes were queued meanwhile
  };

  // Called holding the commit turn (committing_), which it gives up: commits up to max_batch_
  // queued writes as one transaction, then drops them from the overlay (SQLite has them now).
  Committed commit_queued() {
    std::vector<Pending> batch;
    Committed c;
    {
      std::lock_guard lock(mu_);
      c.st = failed_;  // a stopped backend commits nothing more
      while (c.st.ok() && !queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (batch.empty()) {
      end_commit_turn(c);
      return c;
    }
    c.st = commit(batch);
    c.last = batch.back().seq;
    if (!c.st.ok()) {
      fail(c.st);
      end_commit_turn(c);
      return c;
    }
    {
      std::lock_guard lock(mu_);
      committed_ = c.last;
      // An entry a later write replaced stays. (If the backend stopped meanwhile, fail() has
      // emptied the overlay and the byte count already.)
      for (const Pending& p : batch) {
        if (!failed_.ok()) break;
        queued_bytes_ -= p.bytes;
        for (const auto& op : p.ops) {
          auto it = overlay_.find(op.key);
          if (it != overlay_.end() && it->second.seq <= c.last) overlay_.erase(it);
        }
      }
    }
    space_cv_.notify_all();
    committed_cv_.notify_all();
    end_commit_turn(c);
    return c;
  }

  // Gives up the commit turn; the committer thread takes over what was queued meanwhile, and
  // any checkpoint that is due.
  void end_commit_turn(Committed& c) {
    std::lock_guard lock(mu_);
    committing_ = false;
    c.more = !queue_.empty();
    if ((c.more || checkpoint_due_ || filter_rebuild_due_) && committer_idle_) {
      work_cv_.notify_one();
    }
  }

  void committer_loop() {
    bool rebuild_turn = false;  // rebuild pages and batches take turns
    for (;;) {
      bool checkpoint = false;
      bool rebuild = false;
      {
        std::unique_lock lock(mu_);
        committer_idle_ = true;
        work_cv_.wait(lock, [&] {
          return !committing_ &&
                 (!queue_.empty() || checkpoint_due_ || filter_rebuild_due_ || stopping_);
        });
        committer_idle_ = false;
        // Stopping, with everything committed (a rebuild in progress is dropped).
        if (queue_.empty() && !checkpoint_due_ && (stopping_ || !filter_rebuild_due_)) return;
        committing_ = true;
        // A due checkpoint goes before the next batch, so a steady stream of writes cannot
        // put it off for ever. A stopped backend touches the file no more.
        checkpoint = checkpoint_due_ && failed_.ok();
        if (!failed_.ok()) {
          checkpoint_due_ = false;
          filter_rebuild_due_ = false;
          rebuilt_.reset();
        }
        rebuild_turn = !rebuild_turn;
        rebuild =
            !checkpoint && filter_rebuild_due_ && !stopping_ && (queue_.empty() || rebuild_turn);
      }
      if (rebuild) {
        rebuild_filter_page();
        std::lock_guard lock(mu_);
        committing_ = false;
        continue;
      }
      if (checkpoint) {
        // The commit turn keeps writers off the connection between batches, not readers.
        checkpoint_now();
        std::lock_guard lock(mu_);
        checkpoint_due_ = false;
        committing_ = false;
        continue;
      }
      Committed c = commit_queued();
      if (c.st.ok()) request_sync(c.last, /*inline_ok=*/!c.more);
    }
  }

  // ---- the key filter's rebuild (docs/formats/storage-sqlite.md, "Key filter") ----

  size_t next_rebuild_at(size_t keys) const { return std::max(rebuild_min_, 2 * keys); }

  // One page of the rebuild, on the committer thread. The new filter starts with every key in
  // the overlay (written, perhaps not committed: a commit during the scan may land behind the
  // cursor), takes every key written from then on (write()), and every key the scan finds in
  // SQLite, page by page in key order between batches. A key in SQLite when the rebuild starts
  // and still there is found by the scan; any other key present at the end was written during
  // the rebuild or sat in the overlay when it started. The last page swaps the filters.
  void rebuild_filter_page() {
    {
      std::lock_guard lock(mu_);
      if (!rebuilt_) {
        rebuilt_.emplace(filter_.keys_added() / 2);
        deletes_since_build_ = 0;
        for (const auto& [key, entry] : overlay_) {
          if (entry.value) rebuilt_->add(key);
        }
        rebuild_cursor_.reset();
      }
    }
    std::vector<std::string> keys;
    Status st = ok_status();
    {
      std::lock_guard conn_lock(conn_mu_);
      sqlite3_stmt* stmt = conn_.stmt(rebuild_cursor_ ? kKeysAfter : kKeysFirst);
      auto reset = reset_on_exit(stmt);
      const auto page = static_cast<sqlite3_int64>(rebuild_page_);
      if (rebuild_cursor_) {
        bind_text(stmt, 1, *rebuild_cursor_);
        sqlite3_bind_int64(stmt, 2, page);
      } else {
        sqlite3_bind_int64(stmt, 1, page);
      }
      int rc = SQLITE_OK;
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (sqlite3_column_text(stmt, 0) == nullptr) {
          rc = SQLITE_NOMEM;
          break;
        }
        keys.emplace_back(column_text(stmt, 0));
      }
      if (rc != SQLITE_DONE) st = sqlite_error(path_, "rebuilding the key filter", rc, nullptr);
    }
    std::lock_guard lock(mu_);
    if (!st.ok()) {
      // Nothing is lost: the old filter stays, and the next due rebuild starts over.
      LOG_WARN("storage", st.message());
      rebuilt_.reset();
      filter_rebuild_due_ = false;
      rebuild_at_ = next_rebuild_at(filter_.keys_added());
      return;
    }
    if (!rebuilt_) return;  // the backend failed meanwhile
    for (const std::string& k : keys) rebuilt_->add(k);
    if (keys.size() == rebuild_page_) {
      rebuild_cursor_ = keys.back();
      return;
    }
    filter_ = std::move(*rebuilt_);
    rebuilt_.reset();
    filter_rebuild_due_ = false;
    rebuild_at_ = next_rebuild_at(filter_.keys_added());
    if (hooks_.after_filter_rebuild) hooks_.after_filter_rebuild(filter_.keys_added());
  }

  // ---- the WAL's fsync (docs/formats/storage-sqlite.md, "Deferred durability") ----

  // After a commit through `last`. With nothing else queued, the committing thread runs the
  // fsync itself (a lone writer then costs no thread hand-off, unless fsyncs are slow: see
  // syncs_are_quick()); otherwise the syncer thread does, while the next batch commits. An fsync
  // covers every commit that completed before it started; one running now is followed by another
  // for `last`.
  void request_sync(uint64_t last, bool inline_ok) {
    std::unique_lock lock(sync_mu_);
    sync_committed_ = std::max(sync_committed_, last);
    if (syncing_) return;
    if (inline_ok) {
      run_sync(lock);
    } else {
      sync_cv_.notify_one();
    }
  }

  // Whether a lone writer may run its fsync on its own thread: while the average of recent
  // fsyncs is under the limit (SqliteOptions::inline_sync_limit).
  bool syncs_are_quick() const {
    return sync_avg_ns_.load(std::memory_order_relaxed) < inline_sync_limit_ns_;
  }

  // A lone writer inside a DeferDurability scope: takes the fsync turn, starts the device
  // writing the WAL, and leaves the fsync for the end of the scope (run_deferred_sync()), once
  // the thread has built its answer. The device writes meanwhile, so the fsync finds less to
  // wait for; holding the turn, this thread's further writes lead too, while other threads'
  // writes batch, as during any fsync. docs/formats/storage-sqlite.md, "Deferred durability".
  void defer_sync(uint64_t last) {
    {
      std::lock_guard lock(sync_mu_);
      sync_committed_ = std::max(sync_committed_, last);
      if (syncing_) return;  // the fsync running now is followed by another (finish_sync())
      take_sync_turn();
    }
    start_writeback();
    DeferDurability::owe(this);
  }

  void run_deferred_sync() override {
    std::unique_lock lock(sync_mu_);
    finish_sync(lock);
  }

  void note_committed(uint64_t last) {
    std::lock_guard lock(sync_mu_);
    sync_committed_ = std::max(sync_committed_, last);
  }

  // Starts writing the WAL's dirty pages without waiting for them: a hint, whose errors the
  // fsync reports. Called holding the fsync turn, which owns wal_fd_.
  void start_writeback() {
    if (!open_wal_fd().ok()) return;
    (void)::sync_file_range(wal_fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
  }

  // sync_mu_ held.
  void take_sync_turn() {
    syncing_ = true;
    sync_running_.store(true, std::memory_order_release);
  }

  // sync_mu_ held on entry and on return; released during the fsync.
  void run_sync(std::unique_lock<std::mutex>& lock) {
    take_sync_turn();
    finish_sync(lock);
  }

  // Holding the fsync turn (take_sync_turn()), with sync_mu_ held on entry and on return:
  // fsyncs the WAL (sync_mu_ released meanwhile) and gives the turn up.
  void finish_sync(std::unique_lock<std::mutex>& lock) {
    const uint64_t target = sync_committed_;
    lock.unlock();
    const auto started = std::chrono::steady_clock::now();
    Status st = sync_wal();
    // An average over about the last 8 fsyncs (one runs at a time: no lost updates). One slow
    // fsync of 8x the limit is enough to send the next lone writer's fsync to the syncer.
    const int64_t took = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::steady_clock::now() - started)
                             .count();
    static metrics::Histogram& fsyncs = metrics::Registry::global().histogram(
        "custos_storage_fsync_seconds", "fdatasync of the SQLite WAL, each covering its commits");
    fsyncs.observe_ns(took);
    const int64_t avg = sync_avg_ns_.load(std::memory_order_relaxed);
    sync_avg_ns_.store(avg + (took - avg) / 8, std::memory_order_relaxed);
    if (st.ok()) {
      durable_.store(target, std::memory_order_release);
      tracker_.durable_through(target);
    } else {
      fail(st);
    }
    lock.lock();
    syncing_ = false;
    sync_running_.store(false, std::memory_order_release);
    synced_ = target;
    if (!st.ok()) sync_failed_ = true;
    // Commits that landed during this fsync need the next one. Otherwise the syncer is not
    // woken: a lone writer's fsync must not cost it a thread switch.
    if (sync_committed_ > synced_ && !sync_failed_) sync_cv_.notify_one();
  }

  void syncer_loop() {
    std::unique_lock lock(sync_mu_);
    for (;;) {
      sync_cv_.wait(lock, [&] {
        return sync_stopping_ || (!syncing_ && !sync_failed_ && sync_committed_ > synced_);
      });
      if (!syncing_ && !sync_failed_ && sync_committed_ > synced_) {
        run_sync(lock);
        continue;
      }
      if (sync_stopping_ && !syncing_) return;
    }
  }

  // One transaction for the whole batch: all of it commits, or none.
  Status commit(const std::vector<Pending>& batch) {
    static metrics::Counter& commits = metrics::Registry::global().counter(
        "custos_storage_commits_total", "SQLite transactions committed (each one batch)");
    static metrics::Counter& writes = metrics::Registry::global().counter(
        "custos_storage_committed_writes_total", "writes committed, over all batches");
    std::lock_guard conn_lock(conn_mu_);
    RETURN_IF_ERROR(step(kBegin, "begin"));
    Status st;
    for (const Pending& p : batch) {
      for (const auto& op : p.ops) {
        st = apply_op(op);
        if (!st.ok()) break;
      }
      if (!st.ok()) break;
    }
    if (st.ok() && hooks_.before_commit) st = hooks_.before_commit(batch.size());
    if (st.ok()) st = step(kCommit, "commit");
    // The COMMIT's frames are gathered in memory (sqlite_vfs.h): written now, before any fsync
    // is asked to cover them. If that fails SQLite believes them written, so the connection is
    // done for: the caller stops the backend.
    if (st.ok()) {
      Status flushed = internal::flush_wal(conn_.db.get());
      if (!flushed.ok()) return with_path(flushed);
    }
    if (!st.ok()) {
      if (sqlite3_get_autocommit(conn_.db.get()) == 0) (void)step(kRollback, "rollback");
      return st;
    }
    // A checkpoint is due once checkpoint_pages_ frames are past what the last one copied.
    if (wal_frames_ < ckpt_base_) ckpt_base_ = 0;  // the WAL restarted
    if (static_cast<size_t>(wal_frames_ - ckpt_base_) >= checkpoint_pages_) {
      std::lock_guard lock(mu_);
      checkpoint_due_ = true;
    }
    commits.inc();
    writes.inc(batch.size());
    return st;
  }

  Status apply_op(const Pending::PendingOp& op) {
    if (op.kind == Op::Kind::kPut) {
      sqlite3_stmt* stmt = conn_.stmt(kPut);
      bind_text(stmt, 1, op.key);
      bind_blob(stmt, 2, *op.value);
      return step(kPut, "put");
    }
    bind_text(conn_.stmt(kDelete), 1, op.key);
    return step(kDelete, "delete");
  }

  // conn_mu_ held.
  Status step(Stmt which, std::string_view what) {
    sqlite3_stmt* stmt = conn_.stmt(which);
    auto reset = reset_on_exit(stmt);
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return sqlite_error(path_, what, rc, conn_.db.get());
    return ok_status();
  }

  // A failed commit or fsync stops the backend: what was visible may not be durable, and what
  // later writes read may depend on it, so nothing after the last durable point is kept.
  void fail(const Status& st) {
    LOG_ERROR("storage", st.message());
    {
      std::lock_guard lock(mu_);
      if (failed_.ok()) failed_ = st;
      overlay_.clear();
      queue_.clear();
      queued_bytes_ = 0;
    }
    space_cv_.notify_all();
    committed_cv_.notify_all();
    tracker_.fail(st);
  }

  // The WAL's fsync, through a descriptor of our own (SQLite keeps its own private). One runs at
  // a time (run_sync()). The directory is synced once per WAL file, so that the file itself
  // survives a power loss. SQLite replaces the WAL only when the connection closes; as a safety
  // net, the descriptor is checked after each checkpoint (which may restart or truncate the
  // WAL), not before every fsync: any stat() of the file makes the kernel give its next write a
  // fine-grained timestamp (multigrain ctime), which dirties the inode, and ext4 then writes
  // the inode synchronously in that fdatasync, a third I/O wait on top of the data and the
  // cache flush (measured: about 1 in 10 fdatasyncs pay it without the stat, all of them with).
  Status sync_wal() {
    if (hooks_.before_sync) RETURN_IF_ERROR(hooks_.before_sync());
    RETURN_IF_ERROR(open_wal_fd());
    if (::fdatasync(wal_fd_) != 0) return errno_error("fdatasync of the WAL");
    return ok_status();
  }

  // Holding the fsync turn.
  Status open_wal_fd() {
    if (wal_fd_ >= 0 && check_wal_fd_.exchange(false, std::memory_order_acq_rel)) {
      struct stat st {};
      if (::fstat(wal_fd_, &st) != 0 || st.st_nlink == 0) {
        ::close(wal_fd_);
        wal_fd_ = -1;
      }
    }
    if (wal_fd_ >= 0) return ok_status();
    const std::string wal = path_ + "-wal";
    int fd = ::open(wal.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_error("opening the WAL to sync it");
    // Kept only once the directory is synced too, so that a failure is met again next time.
    Cleanup close_fd([&] {
      if (fd >= 0) ::close(fd);
    });
    std::string dir = path_.substr(0, path_.find_last_of('/') + 1);
    if (dir.empty()) dir = ".";
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return errno_error("opening the database directory to sync it");
    int rc = ::fsync(dfd);
    int saved = errno;
    ::close(dfd);
    if (rc != 0) return errno_error("syncing the database directory", saved);
    wal_fd_ = std::exchange(fd, -1);
    return ok_status();
  }

  Status with_path(const Status& st) const {
    return {st.code(), "storage: sqlite database '" + path_ + "': " + st.message()};
  }

  Status errno_error(std::string_view what, int err = errno) const {
    return unavailable("storage: sqlite database '" + path_ + "': " + std::string(what) + ": " +
                       std::strerror(err));
  }

  // ---- checkpoints (docs/formats/storage-sqlite.md, "Checkpoints and WAL size") ----

  static int wal_hook(void* self, sqlite3* /*db*/, const char* /*name*/, int frames) {
    static_cast<SqliteBackend*>(self)->wal_frames_ = frames;  // committer thread, conn_mu_ held
    return SQLITE_OK;
  }

  // The committer thread, holding the commit turn: copies the WAL into the database file
  // (SQLite fsyncs both). With no other connection the copy is complete, and the next commit
  // restarts the WAL at its first frame, overwriting blocks the file already has.
  void checkpoint_now() {
    std::lock_guard conn_lock(conn_mu_);
    int log = 0;
    int copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(conn_.db.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log,
                                       &copied);
    if (hooks_.after_checkpoint) hooks_.after_checkpoint(log, copied);
    check_wal_fd_.store(true, std::memory_order_release);
    if (rc != SQLITE_OK) {
      // The frames stay in the WAL, which is durable; retry after as many frames again.
      LOG_WARN("storage", sqlite_error(path_, "checkpoint", rc, conn_.db.get()).message());
      ckpt_base_ = wal_frames_;
      return;
    }
    ckpt_base_ = copied;
  }

  const std::string path_;
  const size_t max_batch_;
  const size_t checkpoint_pages_;
  const size_t max_queued_bytes_;
  const int64_t inline_sync_limit_ns_;  // SqliteOptions::inline_sync_limit
  const size_t rebuild_min_;            // SqliteOptions::key_filter_rebuild_min
  const size_t rebuild_page_;           // SqliteOptions::key_filter_rebuild_page
  const SqliteTestHooks hooks_;

  // The connection: reads and the committer's transactions and checkpoints take turns.
  std::mutex conn_mu_;
  Connection conn_;     // guarded by conn_mu_
  int wal_frames_ = 0;  // guarded by conn_mu_: WAL size after the latest commit
  int ckpt_base_ = 0;   // guarded by conn_mu_: WAL frames the last checkpoint copied

  std::mutex mu_;
  std::condition_variable work_cv_;       // the committer has work, or must stop
  std::condition_variable space_cv_;      // the queue shrank
  std::condition_variable committed_cv_;  // committed_ moved (or the backend failed)
  std::map<std::string, OverlayEntry, std::less<>> overlay_;  // guarded by mu_
  internal::KeyFilter filter_;  // guarded by mu_: every key put since open, and those at open
  // Guarded by mu_: the filter being rebuilt, if any, and when the next rebuild is due.
  std::optional<internal::KeyFilter> rebuilt_;
  size_t rebuild_at_ = 0;
  size_t deletes_since_build_ = 0;
  bool filter_rebuild_due_ = false;
  std::optional<std::string> rebuild_cursor_;  // committer thread only: the last key scanned
  std::deque<Pending> queue_;                                 // guarded by mu_
  size_t queued_bytes_ = 0;                                   // guarded by mu_
  uint64_t committed_ = 0;       // guarded by mu_: writes through this one are in SQLite
  bool committing_ = false;      // guarded by mu_: some thread has the commit turn
  bool checkpoint_due_ = false;  // guarded by mu_
  bool committer_idle_ = false;  // guarded by mu_
  bool stopping_ = false;        // guarded by mu_
  Status failed_;                // guarded by mu_: the failure that stopped the backend
  // Written under mu_, read without it by sync_point().
  std::atomic<uint64_t> applied_{0};  // the latest write made visible
  std::atomic<uint64_t> durable_{0};  // writes through this one are durable

  DurabilityTracker tracker_;

  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  uint64_t sync_committed_ = 0;  // guarded by sync_mu_: commits through this one are written
  uint64_t synced_ = 0;          // guarded by sync_mu_: the last fsync covered commits to here
  bool syncing_ = false;         // guarded by sync_mu_: an fsync runs (outside the lock)
  std::atomic<bool> sync_running_{false};  // syncing_, for writers deciding whether to lead
  std::atomic<int64_t> sync_avg_ns_{0};    // recent fsyncs' average length (run_sync())
  bool sync_failed_ = false;               // guarded by sync_mu_
  bool sync_stopping_ = false;             // guarded by sync_mu_
  int wal_fd_ = -1;                        // used by whoever holds the fsync turn
  std::atomic<bool> check_wal_fd_{false};  // a checkpoint ran: check wal_fd_ before its next use

  // Last: started once every member above exists.
  std::thread syncer_;
  std::thread committer_;
};

}  // namespace

Result<std::unique_ptr<Backend>> open_sqlite_with_hooks(const SqliteOptions& options,
                                                        SqliteTestHooks hooks) {
  const std::string& path = options.path;
  if (path.empty()) return invalid_argument("storage: sqlite database path is empty");
  // SQLite's memory statistics take a process-wide mutex on every allocation; nothing reads
  // them. The setting only takes before SQLite initializes (otherwise the call fails
  // harmlessly), hence once, before the first open.
  static std::once_flag memstatus_off;
  std::call_once(memstatus_off, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  ASSIGN_OR_RETURN(Connection conn, open_and_prepare(path));
  ASSIGN_OR_RETURN(internal::KeyFilter filter, load_key_filter(path, conn.db.get()));
  return std::unique_ptr<Backend>(std::make_unique<SqliteBackend>(
      path, options, std::move(conn), std::move(filter), std::move(hooks)));
}

Result<std::unique_ptr<Backend>> open_sqlite(const SqliteOptions& options) {
  return open_sqlite_with_hooks(options, {});
}

}  // namespace custos::storage
