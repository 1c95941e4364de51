// SQLite-only behaviour: persistence, open errors, the write path (overlay, batched commits,
// fsyncs, deferred durability) under injected faults, checkpoints, and kill -9 crash tests. The
// shared contract is tested in conformance_test.cpp.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "storage/backend.h"
#include "storage/durability.h"
#include "storage/sqlite_testing.h"
#include "storage/temp_dir.h"

namespace custos::storage {
namespace {

using testing::TempDir;

std::unique_ptr<Backend> must_open(const std::string& path, size_t max_batch = 1024) {
  auto r = open_sqlite({.path = path, .max_batch = max_batch});
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? std::move(r).value() : nullptr;
}

std::optional<std::string> get_string(Backend& b, std::string_view key) {
  auto r = b.get(key);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  if (!r.ok() || !r->has_value()) return std::nullopt;
  return to_string(**r);
}

TEST(Sqlite, DataSurvivesReopen) {
  TempDir dir;
  const std::string path = dir.file("kv.db");
  {
    auto b = must_open(path);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(b->put("sys/a", as_bytes("1")).ok());
    ASSERT_TRUE(b->put("sys/b/c", as_bytes("2")).ok());
    ASSERT_TRUE(b->put("gone", as_bytes("3")).ok());
    ASSERT_TRUE(b->del("gone").ok());
    std::vector<Op> ops = {{Op::Kind::kPut, "tx/1", to_bytes("t1")},
                           {Op::Kind::kPut, "tx/2", to_bytes("t2")}};
    ASSERT_TRUE(b->transaction(ops).ok());
  }
  auto b = must_open(path);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(get_string(*b, "sys/a"), "1");
  EXPECT_EQ(get_string(*b, "sys/b/c"), "2");
  EXPECT_EQ(get_string(*b, "gone"), std::nullopt);
  EXPECT_EQ(get_string(*b, "tx/2"), "t2");
  EXPECT_EQ(*b->list(""), (std::vector<std::string>{"sys/", "tx/"}));
}

// The key filter ("Key filter" in docs/formats/storage-sqlite.md) answers reads of keys never
// written without SQLite, and never hides a key: not one put since open (past the first
// sub-filter's capacity), not one on disk at open.
TEST(Sqlite, KeyFilterAnswersNeverWrittenKeysWithoutSqliteAndHidesNone) {
  TempDir dir;
  const std::string path = dir.file("kv.db");
  constexpr int kOnDisk = 10000;
  {
    auto b = must_open(path);
    ASSERT_NE(b, nullptr);
    std::vector<Op> ops;
    for (int i = 0; i < kOnDisk; ++i) {
      ops.push_back({Op::Kind::kPut, "disk/" + std::to_string(i), to_bytes(std::to_string(i))});
    }
    ASSERT_TRUE(b->transaction(ops).ok());
  }
  std::atomic<int> sqlite_reads{0};
  std::atomic<int> rebuilds{0};
  SqliteTestHooks hooks;
  hooks.before_read = [&](std::string_view) { sqlite_reads.fetch_add(1); };
  hooks.after_filter_rebuild = [&](size_t) { rebuilds.fetch_add(1); };
  SqliteOptions options{.path = path};
  options.key_filter_rebuild_min = 1000;
  auto r = open_sqlite_with_hooks(options, std::move(hooks));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  Backend& b = **r;
  // Every key on disk at open is found (each read reaches SQLite: the filter says "maybe").
  for (int i = 0; i < kOnDisk; ++i) {
    ASSERT_EQ(get_string(b, "disk/" + std::to_string(i)), std::to_string(i)) << i;
  }
  EXPECT_EQ(sqlite_reads.load(), kOnDisk);
  // Keys never written: answered absent, nearly all without SQLite (false positives are rare).
  sqlite_reads = 0;
  for (int i = 0; i < kOnDisk; ++i) {
    ASSERT_EQ(get_string(b, "never/" + std::to_string(i)), std::nullopt);
  }
  EXPECT_LT(sqlite_reads.load(), kOnDisk / 100) << "false positives";
  // Keys put since open, past the first sub-filter's capacity, each found once committed.
  for (int i = 0; i < 3 * kOnDisk; i += 100) {
    std::vector<Op> ops;
    for (int j = i; j < i + 100; ++j) {
      ops.push_back({Op::Kind::kPut, "new/" + std::to_string(j), to_bytes("n")});
    }
    ASSERT_TRUE(b.transaction(ops).ok());
  }
  ASSERT_TRUE(b.put("new/single", as_bytes("s")).ok());
  EXPECT_EQ(get_string(b, "new/single"), "s");
  // The filter grew with the store; with nothing deleted, no rebuild was worth it.
  EXPECT_EQ(rebuilds.load(), 0);
  for (int i = 0; i < 3 * kOnDisk; i += 7) {
    ASSERT_EQ(get_string(b, "new/" + std::to_string(i)), "n") << i;
  }
}

// Keys created and deleted (tokens, leases) would grow the filter for ever: once it has taken
// twice the keys it was built with, the committer rebuilds it from the file, a page at a time
// between batches, while writers go on. No key written before or during a rebuild may read as
// absent: a writer reads back every key right after writing it, and every kept key is read
// again at the end.
TEST(Sqlite, KeyFilterIsRebuiltWithoutChurnedKeysAndHidesNoneMeanwhile) {
  TempDir dir;
  std::mutex mu;
  std::vector<size_t> rebuilds;  // keys in each rebuilt filter
  SqliteTestHooks hooks;
  hooks.after_filter_rebuild = [&](size_t keys) {
    std::lock_guard lock(mu);
    rebuilds.push_back(keys);
  };
  SqliteOptions options{.path = dir.file("kv.db")};
  options.key_filter_rebuild_min = 1000;
  options.key_filter_rebuild_page = 64;  // many pages, so writes land between them
  auto r = open_sqlite_with_hooks(options, std::move(hooks));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  Backend& b = **r;
  auto rebuild_count = [&] {
    std::lock_guard lock(mu);
    return rebuilds.size();
  };
  std::atomic<bool> stop{false};
  std::atomic<int> kept{0};
  std::atomic<int> hidden{0};
  // Keys that stay, each read back at once. Each sorts before every earlier one and before the
  // churn, so once a rebuild's scan has started, their commits land behind its cursor.
  auto keep_key = [](int i) {
    std::string n = std::to_string(999999 - i);
    return "a/keep/" + std::string(6 - n.size(), '0') + n;
  };
  std::thread keeper([&] {
    for (int i = 0; !stop.load() && i < 100000; ++i) {
      const std::string key = keep_key(i);
      if (!b.put(key, as_bytes("v")).ok()) break;
      kept = i + 1;
      auto got = b.get(key);
      if (!got.ok() || !got->has_value()) hidden.fetch_add(1);
    }
  });
  // Churn: 50 keys created in one write, then deleted in another.
  int churned = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (rebuild_count() < 10 && std::chrono::steady_clock::now() < deadline) {
    std::vector<Op> puts;
    std::vector<Op> dels;
    for (int j = 0; j < 50; ++j) {
      const std::string key = "churn/" + std::to_string(churned++);
      puts.push_back({Op::Kind::kPut, key, to_bytes("c")});
      dels.push_back({Op::Kind::kDelete, key, {}});
    }
    ASSERT_TRUE(b.transaction(puts).ok());
    ASSERT_TRUE(b.transaction(dels).ok());
  }
  stop = true;
  keeper.join();
  ASSERT_GE(rebuild_count(), 10u) << "not 10 rebuilds within 20 s";
  EXPECT_EQ(hidden.load(), 0);
  for (int i = 0; i < kept.load(); ++i) {
    ASSERT_EQ(get_string(b, keep_key(i)), "v") << i;
  }
  EXPECT_EQ(get_string(b, "churn/0"), std::nullopt);
  // A rebuilt filter holds what the file held (the kept keys, the few churned keys not yet
  // deleted, keys written during the rebuild), far fewer than the keys ever added.
  std::lock_guard lock(mu);
  EXPECT_LT(rebuilds.back(), static_cast<size_t>(kept.load() + churned) / 2)
      << "kept " << kept.load() << ", churned " << churned;
}

TEST(Sqlite, NotADatabaseIsAClearError) {
  TempDir dir;
  const std::string path = dir.file("garbage.db");
  {
    std::ofstream f(path, std::ios::binary);
    for (int i = 0; i < 512; ++i) f << "this is not an sqlite database, it is a text file\n";
  }
  auto r = open_sqlite({.path = path});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kDataLoss);
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("not a database"), std::string::npos) << r.status().message();
}

TEST(Sqlite, MissingDirectoryIsAClearError) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/kv.db");
  auto r = open_sqlite({.path = path});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().message();
}

TEST(Sqlite, EmptyPathIsRejected) {
  EXPECT_EQ(open_sqlite({.path = ""}).status().code(), Code::kInvalidArgument);
}

// Runs SQL on a file with a plain connection, as an older Custos (or an operator) left it.
void run_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err != nullptr ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

std::string query_text(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

// Format version 1 kept the table WITHOUT ROWID; opening such a file migrates it, in place and
// losing nothing, to the rowid table of version 2 (docs/formats/storage-sqlite.md, "Versioning").
TEST(Sqlite, FormatVersion1IsMigratedWithEveryRow) {
  TempDir dir;
  const std::string path = dir.file("kv.db");
  std::string sql =
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;"
      "PRAGMA user_version=1;"
      "INSERT INTO kv VALUES('sys/a', x'01'), ('sys/b/c', x''), ('z', x'00ff');";
  // Enough rows, some larger than a WITHOUT ROWID leaf keeps inline, to span many pages.
  for (int i = 0; i < 300; ++i) {
    sql += "INSERT INTO kv VALUES('data/" + std::to_string(i) + "', randomblob(" +
           std::to_string(100 + i * 7) + "));";
  }
  run_sql(path, sql);
  // Every row, in key order, as one string.
  const std::string dump_sql =
      "SELECT group_concat(key || ':' || hex(value), ',') FROM (SELECT key, value FROM kv ORDER "
      "BY key)";
  const std::string before = query_text(path, dump_sql);
  ASSERT_FALSE(before.empty());
  {
    auto b = must_open(path);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(get_string(*b, "sys/a"), std::string("\x01", 1));
    EXPECT_EQ(get_string(*b, "sys/b/c"), std::string());
    EXPECT_EQ(get_string(*b, "z"), std::string("\x00\xff", 2));
    auto listed = b->list("sys/");
    ASSERT_TRUE(listed.ok());
    EXPECT_EQ(*listed, (std::vector<std::string>{"a", "b/"}));
    ASSERT_TRUE(b->put("after", as_bytes("migration")).ok());
  }
  EXPECT_EQ(query_text(path, "PRAGMA user_version"), "2");
  const std::string schema = query_text(path, "SELECT sql FROM sqlite_master WHERE name = 'kv'");
  EXPECT_NE(schema.find("PRIMARY KEY"), std::string::npos) << schema;
  EXPECT_EQ(schema.find("WITHOUT ROWID"), std::string::npos) << schema;
  EXPECT_EQ(query_text(path, "SELECT count(*) FROM sqlite_master WHERE name = 'kv_format1'"), "0");
  run_sql(path, "DELETE FROM kv WHERE key = 'after';");
  EXPECT_EQ(query_text(path, dump_sql), before);
  // And a reopen of the migrated file changes nothing more.
  auto again = must_open(path);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(get_string(*again, "z"), std::string("\x00\xff", 2));
}

TEST(Sqlite, UnknownFormatVersionIsRefused) {
  TempDir dir;
  const std::string path = dir.file("kv.db");
  run_sql(path, "CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB); PRAGMA user_version=7;");
  auto r = open_sqlite({.path = path});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("format version 7 is not supported"), std::string::npos)
      << r.status().message();
}

TEST(Sqlite, ReadOnlyFileIsAClearError) {
  TempDir dir;
  const std::string path = dir.file("kv.db");
  { ASSERT_NE(must_open(path), nullptr); }
  ASSERT_EQ(chmod(path.c_str(), 0444), 0);
  auto check = [&path]() -> bool {
    auto r = open_sqlite({.path = path});
    return !r.ok() && r.status().message().find(path) != std::string::npos &&
           r.status().message().find("read-only") != std::string::npos;
  };
  if (geteuid() != 0) {
    EXPECT_TRUE(check());
    return;
  }
  // Root ignores file modes, so the open runs in a child that drops to an unprivileged user.
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    constexpr uid_t kNobody = 65534;
    if (setgid(kNobody) != 0 || setuid(kNobody) != 0) _exit(2);
    if (access(path.c_str(), R_OK) != 0) _exit(3);  // $TMPDIR not reachable for that user
    _exit(check() ? 0 : 1);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  if (WEXITSTATUS(wstatus) == 3) GTEST_SKIP() << "the unprivileged user cannot reach $TMPDIR";
  EXPECT_EQ(WEXITSTATUS(wstatus), 0) << "1: wrong or no error, 2: could not drop privileges";
}

// ---- the write path: overlay, commits, fsyncs (made deterministic with hooks) ----

// A gate a hook can wait on until the test opens it.
class Latch {
 public:
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Records every COMMIT's size and thread, and every fsync's thread.
struct Recorder {
  std::mutex mu;
  std::vector<size_t> commits;
  std::vector<std::thread::id> commit_threads;
  std::vector<std::thread::id> sync_threads;
  std::vector<size_t> commit_sizes() {
    std::lock_guard lock(mu);
    return commits;
  }
  size_t syncs() {
    std::lock_guard lock(mu);
    return sync_threads.size();
  }
  // Hooks that record each commit (its size and thread) and each fsync's thread.
  SqliteTestHooks hooks() {
    SqliteTestHooks h;
    h.before_commit = [this](size_t writes) {
      std::lock_guard lock(mu);
      commits.push_back(writes);
      commit_threads.push_back(std::this_thread::get_id());
      return ok_status();
    };
    h.before_sync = [this] {
      std::lock_guard lock(mu);
      sync_threads.push_back(std::this_thread::get_id());
      return ok_status();
    };
    return h;
  }
};

// Writes made visible so far (durable or not) once the first commit's writes are durable:
// sync_point() is the latest write's number while any write is not durable.
void wait_until_visible(Backend& b, uint64_t writes) {
  while (b.sync_point() < writes) std::this_thread::yield();
}

// Makes batching deterministic: a lone writer commits first, on its own thread, and its COMMIT
// waits until `writers` more writes are visible (queued), so all of them wait for the next
// commit and the committer takes them in batches of at most max_batch. Returns the writers'
// failures; the recorder has every COMMIT's size and every fsync.
int run_queued_writers(const SqliteOptions& options, int writers, Recorder& rec) {
  Backend* backend = nullptr;
  SqliteTestHooks hooks;
  hooks.before_commit = [&](size_t writes) {
    bool first = false;
    {
      std::lock_guard lock(rec.mu);
      rec.commits.push_back(writes);
      first = rec.commits.size() == 1;
    }
    if (first) wait_until_visible(*backend, static_cast<uint64_t>(writers) + 1);
    return ok_status();
  };
  hooks.before_sync = [&] {
    std::lock_guard lock(rec.mu);
    rec.sync_threads.push_back(std::this_thread::get_id());
    return ok_status();
  };
  auto r = open_sqlite_with_hooks(options, std::move(hooks));
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  if (!r.ok()) return writers;
  backend = r->get();
  Backend& b = **r;
  std::thread lead([&] { EXPECT_TRUE(b.put("lead", as_bytes("v")).ok()); });
  while (rec.commit_sizes().empty()) std::this_thread::yield();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < writers; ++t) {
    threads.emplace_back([&, t] {
      if (!b.put("k/" + std::to_string(t), as_bytes("v")).ok()) failures.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  lead.join();
  EXPECT_EQ(b.list("k/")->size(), static_cast<size_t>(writers));
  EXPECT_EQ(b.sync_point(), 0u) << "everything acknowledged is durable";
  return failures.load();
}

TEST(SqliteCommit, QueuedWritesShareOneCommitAndFewFsyncs) {
  TempDir dir;
  constexpr int kWriters = 32;
  Recorder rec;
  EXPECT_EQ(run_queued_writers({.path = dir.file("kv.db")}, kWriters, rec), 0);
  EXPECT_EQ(rec.commit_sizes(), (std::vector<size_t>{1, kWriters}));
  // Far fewer fsyncs than writes: one may cover the lead and the batch, or each gets its own
  // (one more if the batch's commit ended while the lead's fsync ran).
  EXPECT_GE(rec.syncs(), 1u);
  EXPECT_LE(rec.syncs(), 3u);
}

TEST(SqliteCommit, BatchesRespectMaxBatch) {
  TempDir dir;
  Recorder rec;
  EXPECT_EQ(run_queued_writers({.path = dir.file("kv.db"), .max_batch = 8}, 30, rec), 0);
  EXPECT_EQ(rec.commit_sizes(), (std::vector<size_t>{1, 8, 8, 8, 6}));
}

// A writer with nothing queued and nothing committing or syncing commits and fsyncs on its own
// thread: no hand-off to another thread and back.
TEST(SqliteCommit, LoneWriterCommitsAndSyncsOnItsOwnThread) {
  TempDir dir;
  Recorder rec;
  // However slow this machine's fsyncs, they count as quick here (see the next test).
  auto r = open_sqlite_with_hooks(
      {.path = dir.file("kv.db"), .inline_sync_limit = std::chrono::hours(1)}, rec.hooks());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_TRUE((*r)->put("a", as_bytes("1")).ok());
  std::vector<Op> ops = {{Op::Kind::kPut, "b", to_bytes("2")}, {Op::Kind::kDelete, "a", {}}};
  ASSERT_TRUE((*r)->transaction(ops).ok());
  std::thread other([&] { EXPECT_TRUE((*r)->del("b").ok()); });
  const std::thread::id other_id = other.get_id();
  other.join();
  const auto me = std::this_thread::get_id();
  std::lock_guard lock(rec.mu);
  EXPECT_EQ(rec.commits, (std::vector<size_t>{1, 1, 1}));
  EXPECT_EQ(rec.commit_threads, (std::vector<std::thread::id>{me, me, other_id}));
  EXPECT_EQ(rec.sync_threads, (std::vector<std::thread::id>{me, me, other_id}));
}

// Inside a DeferDurability scope (a server request), a lone writer's fsync waits for the end of
// the scope, so the device writes the WAL while the thread builds its answer. Until then the
// writer holds the fsync turn: its own further writes lead (commit on its thread) and share
// that fsync, while another thread's write waits for it and does not hang.
TEST(SqliteCommit, ALoneWriterInADeferScopeFsyncsWhenTheScopeEnds) {
  TempDir dir;
  Recorder rec;
  auto r = open_sqlite_with_hooks(
      {.path = dir.file("kv.db"), .inline_sync_limit = std::chrono::hours(1)}, rec.hooks());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  Backend& b = **r;
  const auto me = std::this_thread::get_id();
  std::atomic<bool> other_done{false};
  std::thread other;
  uint64_t ticket = 0;
  {
    DeferDurability defer;
    ASSERT_TRUE(b.put("a", as_bytes("1")).ok());
    ASSERT_TRUE(b.put("b", as_bytes("2")).ok());
    EXPECT_EQ(rec.syncs(), 0u) << "the fsync ran before the scope ended";
    ticket = b.sync_point();
    EXPECT_NE(ticket, 0u);
    EXPECT_EQ(get_string(b, "a"), "1");
    {
      std::lock_guard lock(rec.mu);
      EXPECT_EQ(rec.commit_threads, (std::vector<std::thread::id>{me, me}));
    }
    // A plain write on another thread waits for durability, which this thread's fsync brings.
    other = std::thread([&] {
      EXPECT_TRUE(b.put("c", as_bytes("3")).ok());
      other_done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(other_done.load()) << "a write became durable while the fsync was owed";
  }
  // Both writes are durable once the scope has ended: the callback runs at once, here.
  bool durable = false;
  b.on_durable(ticket, [&](Status st) { durable = st.ok(); });
  EXPECT_TRUE(durable);
  other.join();
  EXPECT_TRUE(other_done.load());
  EXPECT_EQ(b.sync_point(), 0u);
  std::lock_guard lock(rec.mu);
  ASSERT_GE(rec.sync_threads.size(), 1u);
  EXPECT_EQ(rec.sync_threads.front(), me) << "the owed fsync ran on another thread";
}

// A slow disk must not hold the thread of a lone writer (a server I/O thread) for its fsyncs:
// once recent fsyncs average over the limit, the syncer thread runs them, and a write inside a
// DeferDurability scope returns while its fsync is still running. Quick fsyncs bring the
// writer's own fsync back.
TEST(SqliteCommit, ALoneWriterLeavesSlowFsyncsToTheSyncer) {
  TempDir dir;
  std::mutex mu;
  std::vector<std::thread::id> sync_threads;  // guarded by mu
  std::atomic<int> sleep_ms{0};
  std::atomic<Latch*> gate{nullptr};
  SqliteTestHooks hooks;
  hooks.before_sync = [&] {
    {
      std::lock_guard lock(mu);
      sync_threads.push_back(std::this_thread::get_id());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms.load()));
    if (Latch* l = gate.load()) l->wait();
    return ok_status();
  };
  auto last_sync_thread = [&] {
    std::lock_guard lock(mu);
    return sync_threads.back();
  };
  auto r = open_sqlite_with_hooks(
      {.path = dir.file("kv.db"), .inline_sync_limit = std::chrono::milliseconds(20)},
      std::move(hooks));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  Backend& b = **r;
  const auto me = std::this_thread::get_id();

  // No fsync yet: the first is the writer's own.
  ASSERT_TRUE(b.put("first", as_bytes("1")).ok());
  EXPECT_EQ(last_sync_thread(), me);

  // Fsyncs of 80 ms (four times the limit): at most three more run on the writer's thread
  // before the average (1/8 of the latest each time: 10, 18.75, 26.4 ms) passes the limit.
  sleep_ms = 80;
  int slow = 0;
  while (slow < 8) {
    ASSERT_TRUE(b.put("slow/" + std::to_string(slow), as_bytes("s")).ok());
    ++slow;
    if (last_sync_thread() != me) break;
  }
  EXPECT_NE(last_sync_thread(), me) << "every slow fsync ran on the writer's thread";
  EXPECT_LE(slow, 4);

  // While the average stays high, a deferred write returns with its fsync still held.
  sleep_ms = 0;
  Latch held;
  gate = &held;
  std::atomic<bool> returned{false};
  std::atomic<uint64_t> ticket{0};
  std::thread writer([&] {
    DeferDurability defer;
    EXPECT_TRUE(b.put("deferred", as_bytes("d")).ok());
    ticket = b.sync_point();
    returned = true;
  });
  for (int i = 0; i < 10000 && !returned.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(returned.load()) << "the deferred write waited for its fsync";
  gate = nullptr;
  held.open();
  writer.join();
  ASSERT_NE(ticket.load(), 0u);
  std::atomic<int> outcome{0};  // 1: durable, 2: failed
  b.on_durable(ticket.load(), [&](Status st) { outcome = st.ok() ? 1 : 2; });
  for (int i = 0; i < 10000 && outcome.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(outcome.load(), 1);

  // Quick fsyncs pull the average back under the limit (by 1/8 per fsync).
  bool inline_again = false;
  for (int i = 0; i < 200 && !inline_again; ++i) {
    ASSERT_TRUE(b.put("quick/" + std::to_string(i), as_bytes("q")).ok());
    inline_again = last_sync_thread() == me;
  }
  EXPECT_TRUE(inline_again);
  EXPECT_EQ(get_string(b, "deferred"), "d");
}

// Holds every fsync until the test opens the latch; the first one is a lone writer's (on its
// own thread), after which writers are not alone and go through the committer.
struct HeldSyncs {
  Latch latch;
  std::atomic<int> started{0};
  SqliteTestHooks hooks() {
    SqliteTestHooks h;
    h.before_sync = [this] {
      started.fetch_add(1);
      latch.wait();
      return ok_status();
    };
    return h;
  }
  // Starts a blocking put on its own thread and returns once its fsync is held.
  std::thread hold(Backend& b) {
    std::thread t([&b] { EXPECT_TRUE(b.put("holder", as_bytes("h")).ok()); });
    while (started.load() == 0) std::this_thread::yield();
    return t;
  }
};

// Inside a DeferDurability scope a write returns once it is visible; on_durable() tells when
// the fsync has made it durable. A plain write waits for that fsync.
std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The backend's VFS gathers a commit's WAL frames in memory (storage/sqlite_vfs.h): every fsync
// must find the frames of the commits it covers already in the file, or it would acknowledge
// writes that a crash loses.
TEST(SqliteCommit, EveryFsyncFindsItsCommitsInTheWalFile) {
  TempDir dir;
  const std::string path = dir.file("kv.db");
  std::mutex mu;
  std::vector<std::string> written;  // keys whose put() has started
  size_t checked = 0;
  std::vector<std::string> missing;
  SqliteTestHooks hooks;
  hooks.before_sync = [&] {
    const std::string wal = read_file(path + "-wal");
    std::lock_guard lock(mu);
    // Every put that returned before this fsync started was committed before it.
    for (; checked < written.size(); ++checked) {
      if (wal.find(written[checked]) == std::string::npos) missing.push_back(written[checked]);
    }
    return ok_status();
  };
  auto r = open_sqlite_with_hooks({.path = path}, std::move(hooks));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  for (size_t i = 0; i < 200; ++i) {
    // Keys (stored in the clear, unlike the barrier's values) that no other key contains.
    std::string key = "gathered/key-" + std::to_string(1000 + i) + "-end";
    ASSERT_TRUE((*r)->put(key, as_bytes(std::string(300 + i * 13, 'v'))).ok());
    std::lock_guard lock(mu);
    written.push_back(std::move(key));
  }
  ASSERT_TRUE((*r)->put("last", as_bytes("x")).ok());  // one more fsync checks the 200th put
  std::lock_guard lock(mu);
  EXPECT_EQ(checked, written.size());
  EXPECT_TRUE(missing.empty()) << missing.size() << " committed keys were not in the WAL file "
                               << "when an fsync covering them started, e.g. " << missing[0];
}

TEST(SqliteCommit, DeferredWritesAreVisibleAtOnceAndDurableLater) {
  TempDir dir;
  HeldSyncs held;
  auto r = open_sqlite_with_hooks({.path = dir.file("kv.db")}, held.hooks());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  Backend& b = **r;
  std::thread holder = held.hold(b);

  std::atomic<bool> blocking_returned{false};
  std::thread blocking([&] {
    EXPECT_TRUE(b.put("blocking", as_bytes("b")).ok());
    blocking_returned = true;
  });
  uint64_t ticket = 0;
  {
    DeferDurability defer;
    ASSERT_TRUE(b.put("deferred", as_bytes("d")).ok());
    std::vector<Op> ops = {{Op::Kind::kPut, "tx/1", to_bytes("1")},
                           {Op::Kind::kDelete, "holder", {}}};
    ASSERT_TRUE(b.transaction(ops).ok());
    ticket = b.sync_point();
  }
  // Visible to every reader, listings included, though nothing after the holder is durable.
  while (!b.get("blocking")->has_value()) std::this_thread::yield();  // its thread has run
  EXPECT_EQ(get_string(b, "deferred"), "d");
  EXPECT_EQ(get_string(b, "tx/1"), "1");
  EXPECT_EQ(get_string(b, "holder"), std::nullopt);
  EXPECT_EQ(*b.list(""), (std::vector<std::string>{"blocking", "deferred", "tx/"}));
  EXPECT_NE(ticket, 0u);
  std::atomic<int> outcomes{0};
  Status outcome = unavailable("not called");
  b.on_durable(ticket, [&](Status st) {
    outcome = std::move(st);
    outcomes.fetch_add(1);
  });
  // A negative can only be observed for a while: the fsync is held, so none of these may happen.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(outcomes.load(), 0);
  EXPECT_FALSE(blocking_returned.load());

  held.latch.open();
  holder.join();
  blocking.join();
  while (outcomes.load() == 0) std::this_thread::yield();
  EXPECT_TRUE(outcome.ok()) << outcome.to_string();
  EXPECT_EQ(outcomes.load(), 1);
  EXPECT_EQ(b.sync_point(), 0u);
  // Already durable: the callback runs at once, on this thread.
  bool now = false;
  b.on_durable(ticket, [&](Status st) { now = st.ok(); });
  EXPECT_TRUE(now);
}

// A COMMIT that fails stops the backend: what was visible may have been read and built upon,
// so nothing after the last durable point is kept, every waiting writer and callback is told,
// and the backend refuses reads and writes until it is reopened.
TEST(SqliteCommit, FailedCommitStopsTheBackend) {
  TempDir dir;
  const std::string path = dir.file("kv.db");
  {
    auto r = open_sqlite_with_hooks({.path = path}, {});
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE((*r)->put("before", as_bytes("1")).ok());
  }
  std::atomic<bool> fail_commits{false};
  SqliteTestHooks hooks;
  hooks.before_commit = [&](size_t) {
    return fail_commits ? Status(Code::kUnavailable, "disk on fire") : ok_status();
  };
  auto r = open_sqlite_with_hooks({.path = path}, std::move(hooks));
  ASSERT_TRUE(r.ok());
  Backend& b = **r;
  fail_commits = true;
  Status st;
  {
    // A lone writer commits on its own thread: even a deferred write learns of the failure.
    DeferDurability defer;
    st = b.put("k", as_bytes("v"));
  }
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find(path), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("disk on fire"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("restart"), std::string::npos) << st.message();
  EXPECT_EQ(b.put("k2", as_bytes("v")).code(), Code::kUnavailable);
  std::vector<Op> ops = {{Op::Kind::kPut, "a", to_bytes("1")}, {Op::Kind::kPut, "b", {}}};
  EXPECT_EQ(b.transaction(ops).code(), Code::kUnavailable);
  EXPECT_EQ(b.get("before").status().code(), Code::kUnavailable);
  EXPECT_EQ(b.list("").status().code(), Code::kUnavailable);
  bool told = false;
  b.on_durable(1, [&](Status s) { told = !s.ok(); });
  EXPECT_TRUE(told);
  r->reset();
  auto again = must_open(path);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(get_string(*again, "before"), "1");
  EXPECT_EQ(get_string(*again, "k"), std::nullopt);
  EXPECT_EQ(get_string(*again, "a"), std::nullopt);
}

// A failed fsync is final as well (the kernel may have dropped the pages it failed to write),
// for plain writers and for deferred ones waiting on a callback.
TEST(SqliteCommit, FailedFsyncStopsTheBackend) {
  TempDir dir;
  Latch latch;
  std::atomic<int> syncs{0};
  SqliteTestHooks hooks;
  hooks.before_sync = [&]() -> Status {
    if (syncs.fetch_add(1) == 0) return ok_status();
    latch.wait();
    return Status(Code::kUnavailable, "injected EIO");
  };
  auto r = open_sqlite_with_hooks({.path = dir.file("kv.db")}, std::move(hooks));
  ASSERT_TRUE(r.ok());
  Backend& b = **r;
  ASSERT_TRUE(b.put("durable", as_bytes("1")).ok());
  Status blocking_status;
  std::thread blocking([&] { blocking_status = b.put("lost", as_bytes("2")); });
  while (syncs.load() < 2) std::this_thread::yield();
  uint64_t ticket = 0;
  {
    DeferDurability defer;
    ASSERT_TRUE(b.put("deferred", as_bytes("3")).ok());
    ticket = b.sync_point();
  }
  std::atomic<bool> called{false};
  Status deferred_status;
  b.on_durable(ticket, [&](Status s) {
    deferred_status = std::move(s);
    called = true;
  });
  latch.open();
  blocking.join();
  while (!called.load()) std::this_thread::yield();
  EXPECT_EQ(blocking_status.code(), Code::kUnavailable);
  EXPECT_NE(blocking_status.message().find("injected EIO"), std::string::npos);
  EXPECT_EQ(deferred_status.code(), Code::kUnavailable);
  EXPECT_EQ(b.put("after", as_bytes("4")).code(), Code::kUnavailable);
  bool before_ok = false;
  b.on_durable(1, [&](Status s) { before_ok = s.ok(); });
  EXPECT_TRUE(before_ok) << "what was durable before the failure stays so";
}

// Writers wait while the queue holds more than max_queued_bytes (the disk is behind), and go on
// once it drains; one write always gets in.
TEST(SqliteCommit, AFullQueueHoldsWritersBack) {
  TempDir dir;
  HeldSyncs held;
  Latch commit_gate;
  std::atomic<int> commits{0};
  SqliteTestHooks hooks = held.hooks();
  hooks.before_commit = [&](size_t) {
    if (commits.fetch_add(1) == 1) commit_gate.wait();  // the committer's first batch
    return ok_status();
  };
  auto r = open_sqlite_with_hooks({.path = dir.file("kv.db"), .max_queued_bytes = 1000},
                                  std::move(hooks));
  ASSERT_TRUE(r.ok());
  Backend& b = **r;
  std::thread holder = held.hold(b);
  const Bytes value(400, 0x61);
  std::atomic<int> returned{0};
  std::vector<std::thread> writers;
  // The first write goes to the committer, whose commit then stalls (its bytes still count:
  // the overlay holds them until the commit); the second fits beside it; the third and fourth
  // must wait.
  writers.emplace_back([&] {
    DeferDurability defer;
    EXPECT_TRUE(b.put("w/0", value).ok());
    returned.fetch_add(1);
  });
  while (commits.load() < 2) std::this_thread::yield();
  for (int i = 1; i <= 3; ++i) {
    writers.emplace_back([&, i] {
      DeferDurability defer;
      EXPECT_TRUE(b.put("w/" + std::to_string(i), value).ok());
      returned.fetch_add(1);
    });
  }
  while (returned.load() < 2) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(returned.load(), 2) << "a write got past a full queue";
  commit_gate.open();
  held.latch.open();
  for (auto& w : writers) w.join();
  holder.join();
  EXPECT_EQ(returned.load(), 4);
  for (int i = 0; i <= 3; ++i) EXPECT_TRUE(get_string(b, "w/" + std::to_string(i)).has_value());
}

// ---- checkpoints ----

off_t file_size(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

// Checkpoints run on the committer thread between batches, never inside a writer's commit, and
// they keep the WAL from growing: each copies every frame (no other connection reads the WAL),
// so the next commit restarts the WAL at its first frame, overwriting the file in place.
TEST(SqliteCheckpoint, CheckpointsKeepTheWalBounded) {
  TempDir dir;
  const std::string path = dir.file("kv.db");
  constexpr size_t kPages = 32;
  std::mutex mu;
  int checkpoints = 0;
  int complete = 0;
  std::set<std::thread::id> checkpoint_threads;
  SqliteTestHooks hooks;
  hooks.after_checkpoint = [&](int wal_frames, int copied_frames) {
    std::lock_guard lock(mu);
    checkpoint_threads.insert(std::this_thread::get_id());
    ++checkpoints;
    if (copied_frames == wal_frames) ++complete;
  };
  std::set<std::thread::id> writer_threads;
  auto r = open_sqlite_with_hooks({.path = path, .checkpoint_pages = kPages}, std::move(hooks));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  Backend& b = **r;

  constexpr int kWriters = 8;
  constexpr int kPutsEach = 250;
  const Bytes value(2048, 0x42);  // half a page: ~2000 frames in all if nothing is checkpointed
  std::atomic<bool> writing{true};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      {
        std::lock_guard lock(mu);
        writer_threads.insert(std::this_thread::get_id());
      }
      for (int i = 0; i < kPutsEach; ++i) {
        if (!b.put("w/" + std::to_string(t) + "/" + std::to_string(i), value).ok()) {
          failures.fetch_add(1);
        }
      }
    });
  }
  // Readers meanwhile.
  std::thread reader([&] {
    while (writing.load()) {
      if (!b.get("w/0/0").ok() || !b.list("w/").ok()) failures.fetch_add(1);
    }
  });
  for (auto& t : threads) t.join();
  writing = false;
  reader.join();
  EXPECT_EQ(failures.load(), 0);

  {
    std::lock_guard lock(mu);
    EXPECT_GE(checkpoints, 1);
    EXPECT_EQ(complete, checkpoints);
    ASSERT_EQ(checkpoint_threads.size(), 1u);
    EXPECT_EQ(writer_threads.count(*checkpoint_threads.begin()), 0u) << "checkpoint in a commit";
  }
  // Without checkpoints the WAL would hold ~2000 frames (8 MiB); 16 thresholds is ample room
  // for a batch committed past the threshold, and still far below that.
  const off_t wal = file_size(path + "-wal");
  EXPECT_GT(wal, 0);
  EXPECT_LE(wal, static_cast<off_t>(16 * kPages * (4096 + 24) + 32));
  for (int t = 0; t < kWriters; ++t) {
    auto got = b.get("w/" + std::to_string(t) + "/" + std::to_string(kPutsEach - 1));
    ASSERT_TRUE(got.ok() && got->has_value()) << t;
    EXPECT_EQ(**got, value);
  }
}

// The database file is locked while a backend has it open: a second open fails clearly instead
// of two processes writing one WAL.
TEST(Sqlite, ASecondOpenOfTheSameFileFailsClearly) {
  TempDir dir;
  const std::string path = dir.file("kv.db");
  auto first = must_open(path);
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->put("k", as_bytes("v")).ok());
  auto second = open_sqlite({.path = path});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kUnavailable);
  EXPECT_NE(second.status().message().find(path), std::string::npos) << second.status().message();
  EXPECT_NE(second.status().message().find("another process"), std::string::npos)
      << second.status().message();
}

// ---- crash test ----

std::string crash_value(const std::string& key) {
  std::string v;
  while (v.size() < 300) v += key + ";";
  return v;
}

// The child: several writers putting durable keys; after each acknowledged put, the key goes
// down the pipe (one write() of < PIPE_BUF bytes, so lines never interleave). Never returns.
[[noreturn]] void crash_child(const std::string& path, int fd, size_t checkpoint_pages) {
  auto r = open_sqlite({.path = path, .checkpoint_pages = checkpoint_pages});
  if (!r.ok()) _exit(2);
  Backend& b = **r;
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&b, fd, t] {
      for (long i = 0;; ++i) {
        std::string key = "crash/" + std::to_string(t) + "/" + std::to_string(i);
        if (i % 7 == 6) {
          std::vector<Op> ops = {{Op::Kind::kPut, key, to_bytes(crash_value(key))},
                                 {Op::Kind::kPut, key + "/tx", to_bytes(crash_value(key))}};
          if (!b.transaction(ops).ok()) _exit(3);
        } else if (!b.put(key, as_bytes(crash_value(key))).ok()) {
          _exit(3);
        }
        std::string line = key + "\n";
        if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(4);
      }
    });
  }
  for (auto& th : threads) th.join();
  _exit(0);
}

// Forks a child streaming durable writes, kills it with SIGKILL mid-stream and checks that
// every write it acknowledged is in the database after reopening.
void check_kill9(size_t checkpoint_pages) {
  TempDir dir;
  const std::string path = dir.file("kv.db");
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    crash_child(path, fds[1], checkpoint_pages);
  }
  close(fds[1]);

  std::string acked_text;
  char buf[4096];
  auto read_some = [&](int timeout_ms) {
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return false;
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) return false;
    acked_text.append(buf, static_cast<size_t>(n));
    return true;
  };
  // Wait (without a deadline) until the child is demonstrably writing, then let it run for a
  // bounded time and kill it mid-stream.
  while (std::count(acked_text.begin(), acked_text.end(), '\n') < 20) {
    if (!read_some(-1)) break;
  }
  auto stop_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  while (std::chrono::steady_clock::now() < stop_at) read_some(10);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited early with status " << WEXITSTATUS(wstatus);
  // Acknowledgements written before the kill are still in the pipe.
  while (read_some(0)) {
  }
  close(fds[0]);

  std::vector<std::string> acked;
  std::istringstream lines(acked_text);
  for (std::string line; std::getline(lines, line);) acked.push_back(line);
  ASSERT_GE(acked.size(), 20u);

  auto b = must_open(path);
  ASSERT_NE(b, nullptr);
  size_t missing = 0;
  for (const auto& key : acked) {
    auto got = get_string(*b, key);
    bool was_transaction = std::stol(key.substr(key.rfind('/') + 1)) % 7 == 6;
    if (got != crash_value(key) ||
        (was_transaction && get_string(*b, key + "/tx") != crash_value(key))) {
      ++missing;
      ADD_FAILURE() << "acknowledged key lost or wrong after kill -9: " << key;
      if (missing > 10) break;
    }
  }
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged";
  // The database stays writable after recovery.
  EXPECT_TRUE(b->put("after/crash", as_bytes("ok")).ok());
}

TEST(SqliteCrash, EveryAcknowledgedPutSurvivesKill9) {
  check_kill9(SqliteOptions{}.checkpoint_pages);
}

// The same with a checkpoint every few commits, so the kill lands amid checkpoints copying the
// WAL into the database and WAL restarts.
TEST(SqliteCrash, EveryAcknowledgedPutSurvivesKill9AmidCheckpoints) {
  check_kill9(4);
}

}  // namespace
}  // namespace custos::storage
