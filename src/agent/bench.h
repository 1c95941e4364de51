// Load driver for secure key release (`custos bench release`): N client threads, each running
// the full /kbs/v1 flow (challenge, evidence, transfer = verify + policy + wrap on the server,
// unwrap here) with a new nonce every time, back to back or paced at a fixed total rate. Each
// client first makes one untimed warm-up release (it opens the client's keep-alive connection),
// so the numbers are the steady state.
//
// Ephemeral keys: each client pre-generates a pool of keys before the clock starts and takes the
// next one for every release, cycling when the pool is exhausted. Key generation (RSA-3072 takes
// tens of milliseconds) would otherwise dominate the client side and measure the client, not the
// broker. With EC P-256 (the default) the pool is cheap; docs/workload.md has the numbers.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "agent/fetch.h"
#include "agent/producer.h"
#include "base/status.h"

namespace custos::agent {

struct ReleaseBenchOptions {
  FetchOptions fetch;  // kbs_addr, key_id, TLS, key_type; producer/ephemeral/http are per client
  ProducerConfig producer;
  int clients = 32;
  std::chrono::milliseconds duration{10000};
  size_t pool_per_client = 64;
  // 0: closed loop (each client starts its next release when the last one ends). > 0: open loop
  // at this many releases per second in total, spread evenly over the clients; a release's
  // latency runs from when it was due, not from when it was sent, so a broker that falls behind
  // shows it (no coordinated omission, as in wrk2).
  double rate = 0;
};
// fetch.omit_collateral is honoured too (the dev server holds its sim platform's collateral).

struct ReleaseBenchResult {
  uint64_t released = 0;
  uint64_t failed = 0;
  double seconds = 0;
  double releases_per_second = 0;
  double offered_per_second = 0;  // the paced rate, 0 for a closed loop
  double p50_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
  size_t distinct_keys = 0;
  std::string first_error;  // empty when nothing failed
};

Result<ReleaseBenchResult> run_release_bench(const ReleaseBenchOptions& options);

}  // namespace custos::agent
