// The SQLite backend: one database file in WAL mode; one writer connection, used by whichever
// writer thread leads the current group commit (concurrent writes share one transaction and one
// fsync; a lone writer commits on its own thread); a checkpointer thread that copies the WAL
// into the database file off the commit path; and a small pool of reader connections. The
// on-disk format and the design are documented in docs/formats/storage-sqlite.md; keep the two
// in step.
#include <semaphore.h>
#include <sqlite3.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include "base/cleanup.h"
#include "base/log.h"
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
  // Checkpoints run on the checkpointer thread, never inside a commit (the backend installs a
  // WAL hook that only signals it).
  RETURN_IF_ERROR(exec(path, db, "PRAGMA wal_autocheckpoint=0", "setting wal_autocheckpoint"));
  // When the WAL restarts, a file that grew past this (a long reader held a checkpoint back) is
  // cut back to it; below it, the file's blocks are kept and overwritten in place.
  RETURN_IF_ERROR(exec(path, db, kJournalSizeLimitPragma, "setting journal_size_limit"));
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

// The checkpointer's busy handler: in the final checkpoint step (which holds up writers) wait
// briefly for readers to leave the WAL, then give up; the next cycle retries.
int checkpoint_busy_handler(void* /*unused*/, int count) {
  if (count >= 50) return 0;
  std::this_thread::sleep_for(std::chrono::microseconds(200));
  return 1;
}

// The checkpointer's connection. Checkpoints fsync the WAL and then the database file as
// this connection's synchronous setting says, so it is FULL here too.
Result<DbPtr> open_checkpointer(const std::string& path) {
  ASSIGN_OR_RETURN(DbPtr db, open_connection(path, /*create=*/false));
  RETURN_IF_ERROR(exec(path, db.get(), "PRAGMA synchronous=FULL", "setting synchronous=FULL"));
  // Reading the header opens the WAL on this connection, so checkpoints find it.
  ASSIGN_OR_RETURN(std::string version,
                   pragma_value(path, db.get(), "PRAGMA user_version", "reading user_version"));
  (void)version;
  sqlite3_busy_handler(db.get(), &checkpoint_busy_handler, nullptr);
  return db;
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

// One unit of the group commit: a single put/delete or a whole transaction(), whose ops all
// apply or none do and whose status is reported to its writer alone; or the checkpointer's
// request to finish a checkpoint while no write is in progress.
struct Request {
  Request() { sem_init(&wake, 0, 0); }
  ~Request() { sem_destroy(&wake); }
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

  std::span<const OpRef> ops;
  bool checkpoint = false;
  // Written by another thread before it posts `wake`, read by the request's thread after it
  // has been woken (the semaphore orders them).
  Status status;
  bool done = false;  // status is final
  bool lead = false;  // this request's thread now leads the next batch
  // A request is woken exactly once: done, or handed the lead. A POSIX semaphore rather than
  // a mutex and condition variable: the waker takes no lock its wakee then has to wait for,
  // and glibc's sem_post does not touch the semaphore once the waiter can return and destroy
  // it (the request lives on its writer's stack).
  sem_t wake;
};

void wake(Request& r, bool Request::*flag) {
  r.*flag = true;
  sem_post(&r.wake);
}

void wait_woken(Request& r) {
  while (sem_wait(&r.wake) != 0) {
    // EINTR: a signal handler ran; keep waiting.
  }
}

class SqliteBackend final : public Backend {
 public:
  SqliteBackend(std::string path, const SqliteOptions& options, WriteConn writer,
                std::unique_ptr<ReadConn> first_reader, DbPtr checkpointer, SqliteTestHooks hooks)
      : path_(std::move(path)),
        max_batch_(options.max_batch == 0 ? 1 : options.max_batch),
        checkpoint_pages_(options.checkpoint_pages == 0 ? 1 : options.checkpoint_pages),
        hooks_(std::move(hooks)),
        writer_(std::move(writer)),
        checkpointer_db_(std::move(checkpointer)) {
    idle_readers_.push_back(std::move(first_reader));
    open_readers_ = 1;
    // Replaces SQLite's inline auto-checkpoint: commits only signal the checkpointer thread.
    sqlite3_wal_hook(writer_.db.get(), &SqliteBackend::wal_hook, this);
    checkpointer_ = std::thread([this] { checkpointer_loop(); });
  }

  ~SqliteBackend() override {
    {
      std::lock_guard lock(queue_mu_);
      stopping_ = true;
    }
    {
      std::lock_guard lock(ckpt_mu_);
      ckpt_stopping_ = true;
    }
    ckpt_cv_.notify_one();
    checkpointer_.join();
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
    Request request;
    request.ops = std::span<const OpRef>(&op, 1);
    return submit(request);
  }

  Status del(std::string_view key) override {
    RETURN_IF_ERROR(internal::validate_key(key));
    const OpRef op{Op::Kind::kDelete, key, {}};
    Request request;
    request.ops = std::span<const OpRef>(&op, 1);
    return submit(request);
  }

  Status transaction(std::span<const Op> ops) override {
    if (ops.empty()) return ok_status();
    std::vector<OpRef> refs;
    refs.reserve(ops.size());
    for (const Op& op : ops) {
      RETURN_IF_ERROR(internal::validate_key(op.key));
      refs.push_back({op.kind, op.key, op.value});
    }
    Request request;
    request.ops = refs;
    return submit(request);
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
    // A reader that tried to write would take the write lock behind the writers' back.
    RETURN_IF_ERROR(exec(path, conn->db.get(), "PRAGMA query_only=1", "setting query_only"));
    RETURN_IF_ERROR(prepare_all(path, *conn, kReadSql));
    return conn;
  }

 private:
  // ---- group commit (docs/formats/storage-sqlite.md, "Group commit") ----

  // Queues `request` and returns its result. The thread whose request is at the head of the
  // queue when no batch is in progress leads the next batch itself, on its own thread: it
  // commits its own request and those queued behind it, then hands the lead to the next queued
  // thread. A lone writer thus commits without any thread hand-off; under load, requests that
  // queue while one batch commits share the next COMMIT and its fsync.
  Status submit(Request& request) {
    bool lead = false;
    {
      std::lock_guard lock(queue_mu_);
      if (stopping_) return unavailable("storage: sqlite backend is shutting down");
      queue_.push_back(&request);
      if (hooks_.on_enqueue && !request.checkpoint) hooks_.on_enqueue();
      // With no batch in progress the queue was empty: this request is its head.
      lead = !leading_;
      leading_ = true;
    }
    if (!lead) {
      wait_woken(request);
      if (request.done) return std::move(request.status);
    }

    // Leading: this request is at the head of the queue and no other batch is in progress.
    std::vector<Request*> batch;
    {
      std::lock_guard lock(queue_mu_);
      // A checkpoint request runs alone; write batches stop in front of one.
      do {
        batch.push_back(queue_.front());
        queue_.pop_front();
      } while (!batch.front()->checkpoint && !queue_.empty() && batch.size() < max_batch_ &&
               !queue_.front()->checkpoint);
    }
    if (request.checkpoint) {
      finish_checkpoint();
    } else {
      commit_batch(batch);
    }
    Request* next = nullptr;
    {
      std::lock_guard lock(queue_mu_);
      if (queue_.empty()) {
        leading_ = false;
      } else {
        next = queue_.front();
      }
    }
    // The next batch's commit is what everyone queued is waiting for: hand the lead on first.
    if (next != nullptr) wake(*next, &Request::lead);
    for (Request* r : batch) {
      if (r != &request) wake(*r, &Request::done);
    }
    return std::move(request.status);
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

  // ---- checkpoints (docs/formats/storage-sqlite.md, "Checkpoints and WAL size") ----

  // SQLite calls this on the leading writer's thread after each commit, with the WAL's size in
  // frames. It only decides whether the checkpointer should run.
  static int wal_hook(void* self, sqlite3* /*db*/, const char* /*name*/, int frames) {
    static_cast<SqliteBackend*>(self)->on_wal_commit(frames);
    return SQLITE_OK;
  }

  void on_wal_commit(int frames) {
    std::lock_guard lock(ckpt_mu_);
    last_frames_ = frames;
    maybe_want_checkpoint();
    if (ckpt_wanted_) ckpt_cv_.notify_one();
  }

  // Guarded by ckpt_mu_. A checkpoint is due once the WAL holds checkpoint_pages_ frames past
  // the point the last one reached.
  void maybe_want_checkpoint() {
    if (last_frames_ < ckpt_base_) ckpt_base_ = 0;  // the WAL was restarted from its beginning
    if (!ckpt_running_ && static_cast<size_t>(last_frames_ - ckpt_base_) >= checkpoint_pages_) {
      ckpt_wanted_ = true;
    }
  }

  void checkpointer_loop() {
    std::unique_lock lock(ckpt_mu_);
    for (;;) {
      ckpt_cv_.wait(lock, [&] { return ckpt_stopping_ || ckpt_wanted_; });
      if (ckpt_stopping_) return;
      ckpt_wanted_ = false;
      ckpt_running_ = true;
      lock.unlock();
      int copied = run_checkpoint();
      lock.lock();
      ckpt_running_ = false;
      // After a failure, wait for another checkpoint_pages_ frames before retrying.
      ckpt_base_ = copied >= 0 ? copied : last_frames_;
      // Commits during the checkpoint may already have made the next one due.
      maybe_want_checkpoint();
    }
  }

  // One checkpoint cycle on the checkpointer's own connection; returns the number of WAL frames
  // known to be copied into the database file, or -1 on error.
  int run_checkpoint() {
    // 1. The bulk of the work, concurrently with commits: copy every frame no reader still
    //    needs into the database file and fsync it. PASSIVE never waits for a lock.
    int log = 0;
    int copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(checkpointer_db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                       &log, &copied);
    if (hooks_.after_checkpoint) hooks_.after_checkpoint(false, log, copied);
    if (rc != SQLITE_OK) {
      LOG_WARN("storage", sqlite_error(path_, "checkpoint", rc, checkpointer_db_.get()).message());
      return -1;
    }
    // 2. With the writers held off (a checkpoint request leads alone), copy the few frames
    //    committed meanwhile and wait briefly for readers still on old frames. The WAL is then
    //    fully copied and unused, so the next commit restarts it from its first frame, reusing
    //    the file's blocks instead of appending to it.
    Request request;
    request.checkpoint = true;
    if (!submit(request).ok()) return copied;
    return tail_copied_;
  }

  // Runs on the checkpointer thread while it leads the queue (no write is in progress).
  void finish_checkpoint() {
    int log = 0;
    int copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(checkpointer_db_.get(), nullptr, SQLITE_CHECKPOINT_RESTART,
                                       &log, &copied);
    if (hooks_.after_checkpoint) hooks_.after_checkpoint(true, log, copied);
    // SQLITE_BUSY: a reader stayed on old frames past the busy handler; the next cycle retries.
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      LOG_WARN("storage", sqlite_error(path_, "checkpoint", rc, checkpointer_db_.get()).message());
    }
    tail_copied_ = rc == SQLITE_OK || rc == SQLITE_BUSY ? copied : -1;
  }

  const std::string path_;
  const size_t max_batch_;
  const size_t checkpoint_pages_;
  const SqliteTestHooks hooks_;

  // Used only by the thread leading the current batch (and the constructor).
  WriteConn writer_;
  size_t pending_requests_ = 0;

  std::mutex queue_mu_;
  std::deque<Request*> queue_;  // guarded by queue_mu_: waiting, not yet in a batch
  bool leading_ = false;        // guarded by queue_mu_: some thread leads (or is handed) a batch
  bool stopping_ = false;       // guarded by queue_mu_

  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<ReadConn>> idle_readers_;  // guarded by readers_mu_
  size_t open_readers_ = 0;                              // idle + leased; guarded by readers_mu_

  // Used only by the checkpointer thread.
  DbPtr checkpointer_db_;
  int tail_copied_ = 0;

  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;
  bool ckpt_wanted_ = false;    // guarded by ckpt_mu_
  bool ckpt_running_ = false;   // guarded by ckpt_mu_
  bool ckpt_stopping_ = false;  // guarded by ckpt_mu_
  int last_frames_ = 0;         // guarded by ckpt_mu_: WAL size after the latest commit
  int ckpt_base_ = 0;           // guarded by ckpt_mu_: WAL frames the last checkpoint reached

  std::thread checkpointer_;  // last: started once every member above exists
};

}  // namespace

Result<std::unique_ptr<Backend>> open_sqlite_with_hooks(const SqliteOptions& options,
                                                        SqliteTestHooks hooks) {
  const std::string& path = options.path;
  if (path.empty()) return invalid_argument("storage: sqlite database path is empty");
  // SQLite's memory statistics take a process-wide mutex on every allocation, which all
  // connections then contend on; nothing reads them. The setting only takes before SQLite
  // initializes (otherwise the call fails harmlessly), hence once, before the first open.
  static std::once_flag memstatus_off;
  std::call_once(memstatus_off, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  WriteConn writer;
  ASSIGN_OR_RETURN(writer.db, open_connection(path, /*create=*/true));
  RETURN_IF_ERROR(configure_writer(path, writer.db.get()));
  RETURN_IF_ERROR(prepare_all(path, writer, kWriteSql));
  // One reader up front, so a file that readers cannot use fails here rather than on first get.
  ASSIGN_OR_RETURN(std::unique_ptr<ReadConn> reader, SqliteBackend::open_reader(path));
  ASSIGN_OR_RETURN(DbPtr checkpointer, open_checkpointer(path));
  return std::unique_ptr<Backend>(
      std::make_unique<SqliteBackend>(path, options, std::move(writer), std::move(reader),
                                      std::move(checkpointer), std::move(hooks)));
}

Result<std::unique_ptr<Backend>> open_sqlite(const SqliteOptions& options) {
  return open_sqlite_with_hooks(options, {});
}

}  // namespace custos::storage
