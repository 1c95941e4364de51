// Storage write throughput. The baseline is what one durable 4 KiB write costs on this disk
// (write + fdatasync, serially); group commit is worth having when many writers beat it.
//   storage_bench --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

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

}  // namespace

BENCHMARK_MAIN();
