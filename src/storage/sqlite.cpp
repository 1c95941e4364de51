// The SQLite backend: one database file in WAL mode, one writer connection driven by a single
// committer thread that groups concurrent writes into one transaction (one fsync), and a small
// pool of reader connections. The on-disk format and the group-commit design are documented in
// docs/formats/storage-sqlite.md; keep the two in step.
#include <sqlite3.h>

#include <array>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include "base/cleanup.h"
#include "storage/backend.h"
#include "storage/keys.h"
#include "storage/sqlite_testing.h"

namespace custos::storage {
namespace {

// docs/formats/storage-sqlite.md, "Versioning": PRAGMA user_version of a Custos database.
constexpr int kFormatVersion = 1;
// Readers beyond this wait for a free connection rather than opening more file handles.
constexpr size_t kMaxReaders = 16;
constexpr int kBusyTimeoutMs = 10'000;

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

// One connection with its statements prepared once (SQLITE_PREPARE_PERSISTENT).
template <size_t N>
struct Connection {
  DbPtr db;
  std::array<StmtPtr, N> stmts;
  sqlite3_stmt* stmt(size_t i) const { return stmts[i].get(); }
};

Result<DbPtr> open_connection(const std::string& path, bool create) {
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) return sqlite_error(path, "opening", rc, db.get());
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
  // SQLite silently falls back to read-only when the file is write-protected; a secrets store
  // that cannot persist writes must refuse to start instead.
  if (sqlite3_db_readonly(db.get(), "main") == 1) {
    return failed_precondition("storage: sqlite database '" + path +
                               "': opening: file is read-only");
  }
  return db;
}

template <size_t N>
Status prepare_all(const std::string& path, Connection<N>& conn,
                   const std::array<const char*, N>& sql) {
  for (size_t i = 0; i < N; ++i) {
    sqlite3_stmt* raw = nullptr;
    int rc =
        sqlite3_prepare_v3(conn.db.get(), sql[i], -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    conn.stmts[i].reset(raw);
    if (rc != SQLITE_OK) return sqlite_error(path, "preparing statements", rc, conn.db.get());
  }
  return ok_status();
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
Status configure_writer(const std::string& path, sqlite3* db) {
  ASSIGN_OR_RETURN(std::string mode,
                   pragma_value(path, db, "PRAGMA journal_mode=WAL", "setting journal_mode=WAL"));
  if (mode != "wal") {
    return unavailable("storage: sqlite database '" + path + "': journal_mode is '" + mode +
                       "', WAL is required");
  }
  // FULL in WAL mode: every COMMIT fsyncs the WAL before returning, which is what makes an
  // acknowledged write survive power loss.
  RETURN_IF_ERROR(exec(path, db, "PRAGMA synchronous=FULL", "setting synchronous=FULL"));
  ASSIGN_OR_RETURN(std::string version,
                   pragma_value(path, db, "PRAGMA user_version", "reading user_version"));
  if (version == "0") {
    RETURN_IF_ERROR(exec(path, db,
                         "BEGIN IMMEDIATE;"
                         "CREATE TABLE IF NOT EXISTS kv ("
                         "  key TEXT PRIMARY KEY NOT NULL,"
                         "  value BLOB NOT NULL"
                         ") WITHOUT ROWID;"
                         "PRAGMA user_version=1;"
                         "COMMIT;",
                         "creating schema"));
  } else if (version != std::to_string(kFormatVersion)) {
    return failed_precondition("storage: sqlite database '" + path + "': format version " +
                               version + " is not supported (expected " +
                               std::to_string(kFormatVersion) + ")");
  }
  return ok_status();
}

enum WriteStmt : size_t {
  kPut,
  kDelete,
  kBegin,
  kCommit,
  kRollback,
  kSavepoint,
  kRelease,
  kRollbackTo,
  kWriteStmtCount
};
constexpr std::array<const char*, kWriteStmtCount> kWriteSql = {
    "INSERT INTO kv(key, value) VALUES(?1, ?2) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    "DELETE FROM kv WHERE key = ?1",
    // IMMEDIATE takes the write lock up front, so COMMIT cannot fail with SQLITE_BUSY on a
    // lock upgrade.
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT request",
    "RELEASE request",
    "ROLLBACK TO request",
};

enum ReadStmt : size_t { kGet, kListBounded, kListOpen, kBeginRead, kEndRead, kReadStmtCount };
constexpr std::array<const char*, kReadStmtCount> kReadSql = {
    "SELECT value FROM kv WHERE key = ?1",
    "SELECT key FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key",
    // For prefixes without a successor string (empty, or all 0xff bytes).
    "SELECT key FROM kv WHERE key >= ?1 ORDER BY key",
    "BEGIN",
    "COMMIT",
};

using WriteConn = Connection<kWriteStmtCount>;
using ReadConn = Connection<kReadStmtCount>;

// A view of one op for the duration of a request; the writer owns the bytes and is blocked
// until the request completes.
struct OpRef {
  Op::Kind kind = Op::Kind::kPut;
  std::string_view key;
  ByteSpan value;
};

// One unit of the group commit: a single put/delete, or a whole transaction(). All of its ops
// apply or none do; its status is reported to its writer alone.
struct Request {
  std::span<const OpRef> ops;
  Status status;
  bool done = false;  // guarded by SqliteBackend::queue_mu_
};

class SqliteBackend final : public Backend {
 public:
  SqliteBackend(std::string path, size_t max_batch, WriteConn writer,
                std::unique_ptr<ReadConn> first_reader, SqliteTestHooks hooks)
      : path_(std::move(path)),
        max_batch_(max_batch == 0 ? 1 : max_batch),
        hooks_(std::move(hooks)),
        writer_(std::move(writer)) {
    idle_readers_.push_back(std::move(first_reader));
    open_readers_ = 1;
    committer_ = std::thread([this] { committer_loop(); });
  }

  ~SqliteBackend() override {
    {
      std::lock_guard lock(queue_mu_);
      stopping_ = true;
    }
    queue_cv_.notify_one();
    committer_.join();
  }

  SqliteBackend(const SqliteBackend&) = delete;
  SqliteBackend& operator=(const SqliteBackend&) = delete;

  Result<std::optional<Bytes>> get(std::string_view key) override {
    RETURN_IF_ERROR(internal::validate_key(key));
    ASSIGN_OR_RETURN(ReaderLease lease, acquire_reader());
    sqlite3_stmt* stmt = lease->stmt(kGet);
    auto reset = reset_on_exit(stmt);
    bind_text(stmt, 1, key);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) return std::optional<Bytes>();
    if (rc != SQLITE_ROW) return sqlite_error(path_, "get", rc, lease->db.get());
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(stmt, 0));
    auto n = static_cast<size_t>(sqlite3_column_bytes(stmt, 0));
    if (p == nullptr) return std::optional<Bytes>(Bytes());
    return std::optional<Bytes>(Bytes(p, p + n));
  }

  Status put(std::string_view key, ByteSpan value) override {
    RETURN_IF_ERROR(internal::validate_key(key));
    const OpRef op{Op::Kind::kPut, key, value};
    return submit(std::span<const OpRef>(&op, 1));
  }

  Status del(std::string_view key) override {
    RETURN_IF_ERROR(internal::validate_key(key));
    const OpRef op{Op::Kind::kDelete, key, {}};
    return submit(std::span<const OpRef>(&op, 1));
  }

  Status transaction(std::span<const Op> ops) override {
    if (ops.empty()) return ok_status();
    std::vector<OpRef> refs;
    refs.reserve(ops.size());
    for (const Op& op : ops) {
      RETURN_IF_ERROR(internal::validate_key(op.key));
      refs.push_back({op.kind, op.key, op.value});
    }
    return submit(refs);
  }

  Result<std::vector<std::string>> list(std::string_view prefix) override {
    ASSIGN_OR_RETURN(ReaderLease lease, acquire_reader());
    sqlite3* db = lease->db.get();
    // One read transaction across all the seeks below, so the listing is one snapshot even
    // while commits land between them.
    {
      sqlite3_stmt* begin = lease->stmt(kBeginRead);
      auto reset = reset_on_exit(begin);
      int rc = sqlite3_step(begin);
      if (rc != SQLITE_DONE) return sqlite_error(path_, "list", rc, db);
    }
    auto end_read = Cleanup([&lease] {
      sqlite3_stmt* end = lease->stmt(kEndRead);
      sqlite3_step(end);
      sqlite3_reset(end);
    });

    std::optional<std::string> upper = internal::prefix_successor(prefix);
    sqlite3_stmt* stmt = lease->stmt(upper ? kListBounded : kListOpen);
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

 private:
  // ---- readers ----

  class ReaderLease {
   public:
    ReaderLease(SqliteBackend* owner, std::unique_ptr<ReadConn> conn)
        : owner_(owner), conn_(std::move(conn)) {}
    ReaderLease(ReaderLease&& other) noexcept = default;
    ReaderLease& operator=(ReaderLease&&) = delete;
    ReaderLease(const ReaderLease&) = delete;
    ReaderLease& operator=(const ReaderLease&) = delete;
    ~ReaderLease() {
      if (conn_) owner_->release_reader(std::move(conn_));
    }
    ReadConn* operator->() const { return conn_.get(); }

   private:
    SqliteBackend* owner_;
    std::unique_ptr<ReadConn> conn_;
  };

  Result<ReaderLease> acquire_reader() {
    {
      std::unique_lock lock(readers_mu_);
      readers_cv_.wait(lock, [&] { return !idle_readers_.empty() || open_readers_ < kMaxReaders; });
      if (!idle_readers_.empty()) {
        std::unique_ptr<ReadConn> conn = std::move(idle_readers_.back());
        idle_readers_.pop_back();
        return ReaderLease(this, std::move(conn));
      }
      ++open_readers_;
    }
    // Opened outside the lock: opening touches the file system.
    auto conn = open_reader(path_);
    if (!conn.ok()) {
      {
        std::lock_guard lock(readers_mu_);
        --open_readers_;
      }
      readers_cv_.notify_one();
      return conn.status();
    }
    return ReaderLease(this, std::move(conn).value());
  }

  void release_reader(std::unique_ptr<ReadConn> conn) {
    {
      std::lock_guard lock(readers_mu_);
      idle_readers_.push_back(std::move(conn));
    }
    readers_cv_.notify_one();
  }

 public:
  static Result<std::unique_ptr<ReadConn>> open_reader(const std::string& path) {
    auto conn = std::make_unique<ReadConn>();
    ASSIGN_OR_RETURN(conn->db, open_connection(path, /*create=*/false));
    // A reader that tried to write would take the write lock behind the committer's back.
    RETURN_IF_ERROR(exec(path, conn->db.get(), "PRAGMA query_only=1", "setting query_only"));
    RETURN_IF_ERROR(prepare_all(path, *conn, kReadSql));
    return conn;
  }

 private:
  // ---- group commit ----

  Status submit(std::span<const OpRef> ops) {
    Request request;
    request.ops = ops;
    std::unique_lock lock(queue_mu_);
    if (stopping_) return unavailable("storage: sqlite backend is shutting down");
    queue_.push_back(&request);
    if (hooks_.on_enqueue) hooks_.on_enqueue();
    queue_cv_.notify_one();
    done_cv_.wait(lock, [&] { return request.done; });
    return request.status;
  }

  void committer_loop() {
    std::vector<Request*> batch;
    std::unique_lock lock(queue_mu_);
    for (;;) {
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and every queued writer has been answered
      batch.clear();
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
      lock.unlock();
      commit_batch(batch);
      lock.lock();
      for (Request* r : batch) r->done = true;
      done_cv_.notify_all();
    }
  }

  bool in_transaction() const { return sqlite3_get_autocommit(writer_.db.get()) == 0; }

  Status step_writer(WriteStmt which, std::string_view what) {
    sqlite3_stmt* stmt = writer_.stmt(which);
    auto reset = reset_on_exit(stmt);
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
      return sqlite_error(path_, what, rc, writer_.db.get());
    }
    return ok_status();
  }

  Status apply_op(const OpRef& op) {
    if (hooks_.before_op) RETURN_IF_ERROR(hooks_.before_op(op.key));
    if (op.kind == Op::Kind::kPut) {
      sqlite3_stmt* stmt = writer_.stmt(kPut);
      bind_text(stmt, 1, op.key);
      bind_blob(stmt, 2, op.value);
      return step_writer(kPut, "put");
    }
    bind_text(writer_.stmt(kDelete), 1, op.key);
    return step_writer(kDelete, "delete");
  }

  Status commit() {
    if (hooks_.before_commit) {
      // The hook sees the request count of the transaction being committed.
      RETURN_IF_ERROR(hooks_.before_commit(pending_requests_));
    }
    return step_writer(kCommit, "commit");
  }

  void rollback_if_open() {
    if (in_transaction()) (void)step_writer(kRollback, "rollback");
  }

  // One request inside a shared transaction. A multi-op request is fenced by a SAVEPOINT so
  // its failure undoes only its own ops; a single statement is already atomic on its own.
  Status apply_in_batch(const Request& r) {
    if (r.ops.size() == 1) return apply_op(r.ops[0]);
    RETURN_IF_ERROR(step_writer(kSavepoint, "savepoint"));
    for (const OpRef& op : r.ops) {
      Status s = apply_op(op);
      if (!s.ok()) {
        if (in_transaction()) {
          (void)step_writer(kRollbackTo, "rollback to savepoint");
          (void)step_writer(kRelease, "release savepoint");
        }
        return s;
      }
    }
    return step_writer(kRelease, "release savepoint");
  }

  // A request in a transaction of its own: the fallback when a shared one fails as a whole.
  void commit_alone(Request& r) {
    pending_requests_ = 1;
    Status s = step_writer(kBegin, "begin");
    for (size_t i = 0; s.ok() && i < r.ops.size(); ++i) s = apply_op(r.ops[i]);
    if (s.ok()) s = commit();
    if (!s.ok()) rollback_if_open();
    r.status = std::move(s);
  }

  // Runs `batch` as one transaction: one COMMIT, one fsync. Each request gets its own status.
  // If the transaction as a whole cannot commit (an I/O error, or an error that made SQLite roll
  // everything back), nothing of it is on disk, so every request is retried alone and gets the
  // result it would have had without its neighbours.
  void commit_batch(std::vector<Request*>& batch) {
    if (batch.size() == 1) {
      commit_alone(*batch[0]);
      return;
    }
    pending_requests_ = batch.size();
    bool whole_ok = step_writer(kBegin, "begin").ok();
    for (size_t i = 0; whole_ok && i < batch.size(); ++i) {
      batch[i]->status = apply_in_batch(*batch[i]);
      // A failed op normally undoes only itself; some errors (I/O, disk full) end the whole
      // transaction, which the connection reports by dropping back to autocommit.
      if (!in_transaction()) whole_ok = false;
    }
    if (whole_ok) whole_ok = commit().ok();
    if (whole_ok) return;
    rollback_if_open();
    for (Request* r : batch) commit_alone(*r);
  }

  const std::string path_;
  const size_t max_batch_;
  const SqliteTestHooks hooks_;

  // Used only by the committer thread (and the constructor, before it starts).
  WriteConn writer_;
  size_t pending_requests_ = 0;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;  // committer waits: work queued, or stopping
  std::condition_variable done_cv_;   // writers wait: their request is done
  std::deque<Request*> queue_;        // guarded by queue_mu_
  bool stopping_ = false;             // guarded by queue_mu_

  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<ReadConn>> idle_readers_;  // guarded by readers_mu_
  size_t open_readers_ = 0;                              // idle + leased; guarded by readers_mu_

  std::thread committer_;  // last: started once every member above exists
};

}  // namespace

Result<std::unique_ptr<Backend>> open_sqlite_with_hooks(const SqliteOptions& options,
                                                        SqliteTestHooks hooks) {
  const std::string& path = options.path;
  if (path.empty()) return invalid_argument("storage: sqlite database path is empty");
  WriteConn writer;
  ASSIGN_OR_RETURN(writer.db, open_connection(path, /*create=*/true));
  RETURN_IF_ERROR(configure_writer(path, writer.db.get()));
  RETURN_IF_ERROR(prepare_all(path, writer, kWriteSql));
  // One reader up front, so a file that readers cannot use fails here rather than on first get.
  ASSIGN_OR_RETURN(std::unique_ptr<ReadConn> reader, SqliteBackend::open_reader(path));
  return std::unique_ptr<Backend>(std::make_unique<SqliteBackend>(
      path, options.max_batch, std::move(writer), std::move(reader), std::move(hooks)));
}

Result<std::unique_ptr<Backend>> open_sqlite(const SqliteOptions& options) {
  return open_sqlite_with_hooks(options, {});
}

}  // namespace custos::storage
