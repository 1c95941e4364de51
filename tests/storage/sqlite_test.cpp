// SQLite-only behaviour: persistence, open errors, group commit under injected faults, and a
// kill -9 crash test. The shared contract is tested in conformance_test.cpp.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
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
#include "storage/sqlite_testing.h"
#include "storage/temp_dir.h"

namespace custos::storage {
namespace {

using testing::TempDir;

std::unique_ptr<Backend> must_open(const std::string& path, size_t max_batch = 256) {
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

// ---- group commit, made deterministic with hooks ----

// Makes batching deterministic: a "lead" put commits first and its COMMIT blocks until every
// other writer has queued, so the next transaction must carry all of them (up to max_batch).
class BatchRecorder {
 public:
  explicit BatchRecorder(int total_requests) : total_(total_requests) {}

  SqliteTestHooks hooks() {
    SqliteTestHooks h;
    h.on_enqueue = [this] {
      std::lock_guard lock(mu_);
      ++enqueued_;
      cv_.notify_all();
    };
    h.before_commit = [this](size_t requests) {
      std::unique_lock lock(mu_);
      batch_sizes_.push_back(requests);
      if (batch_sizes_.size() == 1) {
        cv_.notify_all();
        cv_.wait(lock, [&] { return enqueued_ >= total_; });
      }
      return ok_status();
    };
    return h;
  }

  // Starts the lead put and returns once its COMMIT is blocked.
  std::thread start_lead(Backend& b) {
    std::thread lead([&b] { EXPECT_TRUE(b.put("lead", as_bytes("v")).ok()); });
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !batch_sizes_.empty(); });
    return lead;
  }

  std::vector<size_t> batch_sizes() {
    std::lock_guard lock(mu_);
    return batch_sizes_;
  }

 private:
  const int total_;
  std::mutex mu_;
  std::condition_variable cv_;
  int enqueued_ = 0;
  std::vector<size_t> batch_sizes_;
};

TEST(SqliteGroupCommit, QueuedWritersShareOneCommit) {
  TempDir dir;
  constexpr int kWriters = 32;
  BatchRecorder rec(kWriters + 1);
  auto r = open_sqlite_with_hooks({.path = dir.file("kv.db"), .max_batch = 256}, rec.hooks());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto& b = **r;
  std::thread lead = rec.start_lead(b);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      if (!b.put("k/" + std::to_string(t), as_bytes("v")).ok()) failures.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  lead.join();
  EXPECT_EQ(failures.load(), 0);
  // The lead commits alone; the 32 queued behind it commit together, with one fsync.
  EXPECT_EQ(rec.batch_sizes(), (std::vector<size_t>{1, kWriters}));
  EXPECT_EQ(b.list("k/")->size(), static_cast<size_t>(kWriters));
}

TEST(SqliteGroupCommit, BatchesRespectMaxBatch) {
  TempDir dir;
  constexpr int kWriters = 30;
  BatchRecorder rec(kWriters + 1);
  auto r = open_sqlite_with_hooks({.path = dir.file("kv.db"), .max_batch = 8}, rec.hooks());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  std::thread lead = rec.start_lead(**r);
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back(
        [&, t] { EXPECT_TRUE((*r)->put("k/" + std::to_string(t), as_bytes("v")).ok()); });
  }
  for (auto& t : threads) t.join();
  lead.join();
  EXPECT_EQ(rec.batch_sizes(), (std::vector<size_t>{1, 8, 8, 8, 6}));
}

// A failing request in a shared transaction must fail alone: its neighbours commit, and its
// own partial effects (for a transaction) are rolled back to its savepoint.
TEST(SqliteGroupCommit, FailingRequestDoesNotPoisonItsBatch) {
  TempDir dir;
  constexpr int kWriters = 16;
  BatchRecorder rec(kWriters + 1);
  SqliteTestHooks hooks = rec.hooks();
  hooks.before_op = [](std::string_view key) {
    return key == "poison" ? Status(Code::kInternal, "injected op failure") : ok_status();
  };
  auto r = open_sqlite_with_hooks({.path = dir.file("kv.db")}, std::move(hooks));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto& b = **r;
  std::thread lead = rec.start_lead(b);

  std::vector<Status> results(kWriters);
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      const std::string key = "k/" + std::to_string(t);
      if (t == 5) {
        results[static_cast<size_t>(t)] = b.put("poison", as_bytes("x"));
      } else if (t == 9) {
        // Partly applied before the failing op: must vanish entirely.
        std::vector<Op> ops = {{Op::Kind::kPut, key, to_bytes("partial")},
                               {Op::Kind::kPut, "poison", to_bytes("x")},
                               {Op::Kind::kPut, key + "/after", to_bytes("x")}};
        results[static_cast<size_t>(t)] = b.transaction(ops);
      } else if (t == 12) {
        std::vector<Op> ops = {{Op::Kind::kPut, key, to_bytes(key)},
                               {Op::Kind::kPut, key + "/second", to_bytes("x")}};
        results[static_cast<size_t>(t)] = b.transaction(ops);
      } else {
        results[static_cast<size_t>(t)] = b.put(key, as_bytes(key));
      }
    });
  }
  for (auto& t : threads) t.join();
  lead.join();
  ASSERT_GE(rec.batch_sizes().size(), 2u);
  EXPECT_EQ(rec.batch_sizes()[1], static_cast<size_t>(kWriters)) << "they shared a batch";

  for (int t = 0; t < kWriters; ++t) {
    const std::string key = "k/" + std::to_string(t);
    if (t == 5 || t == 9) {
      EXPECT_EQ(results[static_cast<size_t>(t)].code(), Code::kInternal) << t;
      EXPECT_EQ(get_string(b, key), std::nullopt) << t;
    } else {
      EXPECT_TRUE(results[static_cast<size_t>(t)].ok())
          << t << results[static_cast<size_t>(t)].to_string();
      EXPECT_EQ(get_string(b, key), key) << t;
    }
  }
  EXPECT_EQ(get_string(b, "poison"), std::nullopt);
  EXPECT_EQ(get_string(b, "k/9/after"), std::nullopt);
  EXPECT_EQ(get_string(b, "k/12/second"), "x");
}

// When the shared COMMIT itself fails, nothing of the batch is on disk; each request is retried
// on its own and reports its own result.
TEST(SqliteGroupCommit, FailedCommitRetriesEachRequestAlone) {
  TempDir dir;
  constexpr int kWriters = 12;
  BatchRecorder rec(kWriters + 1);
  SqliteTestHooks hooks = rec.hooks();
  auto base_commit = hooks.before_commit;
  hooks.before_commit = [base_commit](size_t requests) -> Status {
    RETURN_IF_ERROR(base_commit(requests));
    // Shared commits fail; commits of one request succeed.
    if (requests > 1) return Status(Code::kUnavailable, "injected commit failure");
    return ok_status();
  };
  hooks.before_op = [](std::string_view key) {
    return key == "k/3" ? Status(Code::kInternal, "injected op failure") : ok_status();
  };
  auto r = open_sqlite_with_hooks({.path = dir.file("kv.db")}, std::move(hooks));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto& b = **r;
  std::thread lead = rec.start_lead(b);

  std::vector<Status> results(kWriters);
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      results[static_cast<size_t>(t)] = b.put("k/" + std::to_string(t), as_bytes("v"));
    });
  }
  for (auto& t : threads) t.join();
  lead.join();
  ASSERT_GE(rec.batch_sizes().size(), 2u);
  EXPECT_EQ(rec.batch_sizes()[1], static_cast<size_t>(kWriters));
  for (int t = 0; t < kWriters; ++t) {
    const std::string key = "k/" + std::to_string(t);
    if (t == 3) {
      EXPECT_EQ(results[static_cast<size_t>(t)].code(), Code::kInternal);
      EXPECT_EQ(get_string(b, key), std::nullopt);
    } else {
      EXPECT_TRUE(results[static_cast<size_t>(t)].ok())
          << results[static_cast<size_t>(t)].to_string();
      EXPECT_EQ(get_string(b, key), "v");
    }
  }
}

TEST(SqliteGroupCommit, CommitFailureIsReportedNotSwallowed) {
  TempDir dir;
  SqliteTestHooks hooks;
  hooks.before_commit = [](size_t) { return Status(Code::kUnavailable, "disk on fire"); };
  auto r = open_sqlite_with_hooks({.path = dir.file("kv.db")}, std::move(hooks));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->put("k", as_bytes("v")).code(), Code::kUnavailable);
  std::vector<Op> ops = {{Op::Kind::kPut, "a", to_bytes("1")}, {Op::Kind::kPut, "b", {}}};
  EXPECT_EQ((*r)->transaction(ops).code(), Code::kUnavailable);
  EXPECT_EQ(get_string(**r, "k"), std::nullopt);
  EXPECT_EQ(get_string(**r, "a"), std::nullopt);
}

// A writer with nobody queued ahead leads its own batch: its commit (and fsync) runs on its own
// thread, with no hand-off to another thread and back.
TEST(SqliteGroupCommit, LoneWriterCommitsOnItsOwnThread) {
  TempDir dir;
  std::mutex mu;
  std::vector<std::thread::id> committers;
  SqliteTestHooks hooks;
  hooks.before_commit = [&](size_t) {
    std::lock_guard lock(mu);
    committers.push_back(std::this_thread::get_id());
    return ok_status();
  };
  auto r = open_sqlite_with_hooks({.path = dir.file("kv.db")}, std::move(hooks));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_TRUE((*r)->put("a", as_bytes("1")).ok());
  std::vector<Op> ops = {{Op::Kind::kPut, "b", to_bytes("2")}, {Op::Kind::kDelete, "a", {}}};
  ASSERT_TRUE((*r)->transaction(ops).ok());
  std::thread other([&] { EXPECT_TRUE((*r)->del("b").ok()); });
  const std::thread::id other_id = other.get_id();
  other.join();
  std::lock_guard lock(mu);
  EXPECT_EQ(committers, (std::vector<std::thread::id>{std::this_thread::get_id(),
                                                      std::this_thread::get_id(), other_id}));
}

// ---- checkpoints ----

off_t file_size(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

// Checkpoints run on the checkpointer thread, not inside commits, and they keep the WAL from
// growing: once a checkpoint has copied every frame (its final step holds writers off), the
// next commit restarts the WAL at its first frame, overwriting the file in place.
TEST(SqliteCheckpoint, BackgroundCheckpointsKeepTheWalBounded) {
  TempDir dir;
  const std::string path = dir.file("kv.db");
  constexpr size_t kPages = 32;
  std::mutex mu;
  int final_steps = 0;
  int complete_final_steps = 0;
  std::set<std::thread::id> checkpoint_threads;
  SqliteTestHooks hooks;
  hooks.after_checkpoint = [&](bool final, int wal_frames, int copied_frames) {
    std::lock_guard lock(mu);
    checkpoint_threads.insert(std::this_thread::get_id());
    if (!final) return;
    ++final_steps;
    if (copied_frames == wal_frames) ++complete_final_steps;
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
  // Readers keep the WAL busy meanwhile.
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
    EXPECT_GE(final_steps, 1);
    EXPECT_GE(complete_final_steps, 1);
    ASSERT_EQ(checkpoint_threads.size(), 1u);
    EXPECT_EQ(writer_threads.count(*checkpoint_threads.begin()), 0u) << "checkpoint in a commit";
  }
  // Without checkpoints the WAL would hold ~2000 frames (8 MiB); 16 thresholds is ample room
  // for frames committed while a checkpoint copies, and still far below that.
  const off_t wal = file_size(path + "-wal");
  EXPECT_GT(wal, 0);
  EXPECT_LE(wal, static_cast<off_t>(16 * kPages * (4096 + 24) + 32));
  for (int t = 0; t < kWriters; ++t) {
    auto got = b.get("w/" + std::to_string(t) + "/" + std::to_string(kPutsEach - 1));
    ASSERT_TRUE(got.ok() && got->has_value()) << t;
    EXPECT_EQ(**got, value);
  }
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
