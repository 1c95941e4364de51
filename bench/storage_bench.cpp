// Storage write throughput. The baseline is what one durable 4 KiB write costs on this disk
// (write + fdatasync, serially); group commit is worth having when many writers beat it.
//   storage_bench --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "storage/backend.h"

namespace {

using custos::Bytes;
using custos::storage::Backend;

constexpr size_t kValueSize = 4096;

std::string make_temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                     "/custos-storage-bench-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) return {};
  return buf.data();
}

void remove_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void BM_WriteFdatasyncBaseline(benchmark::State& state) {
  std::string dir = make_temp_dir();
  if (dir.empty()) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  std::string path = dir + "/baseline";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    state.SkipWithError("open failed");
    remove_dir(dir);
    return;
  }
  std::vector<char> block(kValueSize, 'x');
  for (auto _ : state) {
    if (write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size()) ||
        fdatasync(fd) != 0) {
      state.SkipWithError("write/fdatasync failed");
      break;
    }
  }
  close(fd);
  remove_dir(dir);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kValueSize));
}
BENCHMARK(BM_WriteFdatasyncBaseline)->UseRealTime();

// Shared by every thread of one run: thread 0 sets up before the timed loop and tears down
// after it (the library's start/stop barriers order these against the other threads).
struct Shared {
  std::string dir;
  std::unique_ptr<Backend> backend;
};
Shared g_shared;

template <bool kSqlite>
void BM_DurablePut(benchmark::State& state) {
  if (state.thread_index() == 0) {
    if constexpr (kSqlite) {
      g_shared.dir = make_temp_dir();
      auto r = custos::storage::open_sqlite({.path = g_shared.dir + "/kv.db"});
      if (r.ok()) g_shared.backend = std::move(r).value();
    } else {
      g_shared.backend = custos::storage::open_inmem();
    }
  }
  Bytes value(kValueSize, 0x5a);
  const std::string key_prefix = "bench/" + std::to_string(state.thread_index()) + "/";
  int64_t i = 0;
  for (auto _ : state) {
    if (g_shared.backend == nullptr) {
      state.SkipWithError("open failed");
      break;
    }
    if (!g_shared.backend->put(key_prefix + std::to_string(i++), value).ok()) {
      state.SkipWithError("put failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kValueSize));
  if (state.thread_index() == 0) {
    g_shared.backend.reset();
    if (!g_shared.dir.empty()) remove_dir(g_shared.dir);
    g_shared.dir.clear();
  }
}
BENCHMARK(BM_DurablePut<true>)->Name("BM_SqliteDurablePut")->Threads(1)->Threads(32)->UseRealTime();
BENCHMARK(BM_DurablePut<false>)->Name("BM_InmemPut")->Threads(1)->Threads(32)->UseRealTime();

// scripts/bench's baseline: overwrite one 4 KiB block in place, then fdatasync (no file growth,
// so no metadata to commit): the cheapest durable write this disk offers.
void BM_FdatasyncInPlaceBaseline(benchmark::State& state) {
  std::string dir = make_temp_dir();
  if (dir.empty()) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  std::string path = dir + "/baseline";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  std::vector<char> block(kValueSize, 'x');
  if (fd < 0 || write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size()) ||
      fsync(fd) != 0) {
    state.SkipWithError("creating the baseline file failed");
  } else {
    for (auto _ : state) {
      if (pwrite(fd, block.data(), block.size(), 0) != static_cast<ssize_t>(block.size()) ||
          fdatasync(fd) != 0) {
        state.SkipWithError("pwrite/fdatasync failed");
        break;
      }
    }
  }
  if (fd >= 0) close(fd);
  remove_dir(dir);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FdatasyncInPlaceBaseline)->UseRealTime();

// The storage shape of one KV v2 write of a new secret: one transaction putting its metadata
// record (~400 B sealed) and its version record (~150 B sealed). Secrets are numbered in
// request order across threads, like scripts/bench's clients. Arg: checkpoint_pages.
std::atomic<int64_t> g_secret_counter{0};
void BM_SqliteKvV2Write(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_shared.dir = make_temp_dir();
    custos::storage::SqliteOptions options{.path = g_shared.dir + "/kv.db"};
    options.checkpoint_pages = static_cast<size_t>(state.range(0));
    auto r = custos::storage::open_sqlite(options);
    if (r.ok()) g_shared.backend = std::move(r).value();
  }
  std::vector<custos::storage::Op> ops(2);
  for (auto _ : state) {
    if (g_shared.backend == nullptr) {
      state.SkipWithError("open failed");
      break;
    }
    const std::string secret = "w-" + std::to_string(g_secret_counter.fetch_add(1));
    ops[0] = {custos::storage::Op::Kind::kPut, "logical/mount/ver/1/" + secret, Bytes(150, 0x5a)};
    ops[1] = {custos::storage::Op::Kind::kPut, "logical/mount/meta/" + secret, Bytes(400, 0xa5)};
    if (!g_shared.backend->transaction(ops).ok()) {
      state.SkipWithError("transaction failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    g_shared.backend.reset();
    if (!g_shared.dir.empty()) remove_dir(g_shared.dir);
    g_shared.dir.clear();
  }
}
BENCHMARK(BM_SqliteKvV2Write)->Arg(1000)->Arg(4000)->Threads(1)->Threads(32)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
