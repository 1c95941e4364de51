#include "agent/bench.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

namespace custos::agent {
namespace {

using Clock = std::chrono::steady_clock;

struct ClientStats {
  std::vector<double> latencies_ms;
  uint64_t failed = 0;
  std::string first_error;
};

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t idx = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(idx, sorted.size() - 1)];
}

}  // namespace

Result<ReleaseBenchResult> run_release_bench(const ReleaseBenchOptions& o) {
  if (o.clients < 1 || o.clients > 1024) return invalid_argument("bench: clients must be 1..1024");
  if (o.duration.count() <= 0) return invalid_argument("bench: duration must be positive");
  if (o.pool_per_client < 1) return invalid_argument("bench: the key pool needs at least one key");
  if (o.rate < 0 || o.rate > 1e6) return invalid_argument("bench: rate must be 0 (closed loop) or up to 1e6/s");
  auto producer = make_producer(o.producer);
  if (!producer.ok()) return producer.status().with_context("bench: evidence producer");

  // One release first, outside the clock: a wrong key id, policy or address fails here with the
  // broker's reason instead of as N x duration failures.
  {
    FetchOptions f = o.fetch;
    f.producer = producer->get();
    auto probe = fetch_key(f);
    if (!probe.ok()) return probe.status().with_context("bench: first release");
  }

  const auto clients = static_cast<size_t>(o.clients);
  struct PoolKey {
    crypto::PrivateKey key;
    Bytes spki;
  };
  std::vector<std::vector<PoolKey>> pools(clients);
  {
    std::vector<std::thread> gen;
    std::mutex mu;
    Status gen_status;
    for (size_t c = 0; c < clients; ++c) {
      gen.emplace_back([&, c] {
        for (size_t i = 0; i < o.pool_per_client; ++i) {
          auto k = generate_ephemeral_key(o.fetch.key_type);
          if (!k.ok()) {
            std::lock_guard<std::mutex> lock(mu);
            gen_status = k.status();
            return;
          }
          Bytes spki = k->public_key().to_der();
          pools[c].push_back(PoolKey{std::move(*k), std::move(spki)});
        }
      });
    }
    for (auto& t : gen) t.join();
    if (!gen_status.ok()) return gen_status.with_context("bench: generating the key pool");
  }

  std::vector<ClientStats> stats(clients);
  std::atomic<bool> go{false};
  std::atomic<size_t> ready{0};  // clients done with their warm-up release
  Clock::time_point start{};  // published to the clients by the release store of `go`
  std::vector<std::thread> threads;
  for (size_t c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      net::ClientOptions co;
      co.ca_file = o.fetch.ca_file;
      co.insecure_skip_verify = o.fetch.insecure_skip_verify;
      net::HttpClient http(co);
      FetchOptions f = o.fetch;
      f.producer = producer->get();
      f.http = &http;
      ClientStats& s = stats[c];
      s.latencies_ms.reserve(4096);
      // Warm-up, untimed: one release per client opens its keep-alive connection and warms the
      // server (thread pool, caches) before the clock starts; a failure here counts as one.
      {
        f.ephemeral = &pools[c][0].key;
        f.ephemeral_spki = pools[c][0].spki;
        auto r = fetch_key(f);
        if (!r.ok()) {
          ++s.failed;
          s.first_error = r.status().message();
        }
        ready.fetch_add(1, std::memory_order_release);
      }
      while (!go.load(std::memory_order_acquire)) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      const Clock::time_point end = start + o.duration;
      // Paced: client c's k-th release is due at start + (k * clients + c) / rate.
      const auto period = o.rate > 0 ? std::chrono::duration<double>(static_cast<double>(clients) / o.rate)
                                     : std::chrono::duration<double>(0);
      const auto offset = o.rate > 0 ? std::chrono::duration<double>(static_cast<double>(c) / o.rate)
                                     : std::chrono::duration<double>(0);
      size_t next = 0;
      while (true) {
        Clock::time_point t0 = Clock::now();
        if (o.rate > 0) {
          const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                       offset + period * static_cast<double>(next));
          if (due >= end) break;
          if (due > t0) std::this_thread::sleep_until(due);
          t0 = due;
        }
        if (t0 >= end) break;
        const PoolKey& pk = pools[c][next++ % pools[c].size()];
        f.ephemeral = &pk.key;
        f.ephemeral_spki = pk.spki;
        auto r = fetch_key(f);
        Clock::time_point t1 = Clock::now();
        if (r.ok()) {
          s.latencies_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        } else {
          ++s.failed;
          if (s.first_error.empty()) s.first_error = r.status().message();
        }
      }
    });
  }
  while (ready.load(std::memory_order_acquire) < clients) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  start = Clock::now();
  go.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  ReleaseBenchResult out;
  std::vector<double> all;
  for (auto& s : stats) {
    all.insert(all.end(), s.latencies_ms.begin(), s.latencies_ms.end());
    out.failed += s.failed;
    if (out.first_error.empty()) out.first_error = s.first_error;
  }
  std::sort(all.begin(), all.end());
  out.released = all.size();
  out.seconds = seconds;
  out.releases_per_second = seconds > 0 ? static_cast<double>(all.size()) / seconds : 0;
  out.offered_per_second = o.rate;
  out.p50_ms = percentile(all, 0.50);
  out.p90_ms = percentile(all, 0.90);
  out.p99_ms = percentile(all, 0.99);
  out.max_ms = all.empty() ? 0 : all.back();
  out.distinct_keys = clients * o.pool_per_client;
  return out;
}

}  // namespace custos::agent
