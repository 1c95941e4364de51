// Durability acknowledgement apart from the write itself (docs/formats/storage-sqlite.md,
// "Deferred durability").
//
// A disk backend makes a write visible (every later read sees it) before it is durable (on disk
// after an fsync). Plain callers wait for both: a put() that returns OK is durable. Code that
// answers a client can instead open a DeferDurability scope: writes made on that thread then
// return as soon as they are visible, and the caller holds its answer back until
// Backend::on_durable() says that everything visible when the answer was built is durable.
// No client is then told anything a crash could undo, while the thread that handled the
// request is free for the next one during the fsync, and one commit and one fsync cover many
// requests.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include "base/status.h"

namespace custos::storage {

// While one is alive on a thread, backend writes made on that thread do not wait until they
// are durable (see above). Scopes nest.
class DeferDurability {
 public:
  DeferDurability();
  ~DeferDurability();
  DeferDurability(const DeferDurability&) = delete;
  DeferDurability& operator=(const DeferDurability&) = delete;

  static bool active();
};

// Called once with the outcome: OK when the point is durable, an error when it never will be.
using DurableCallback = std::function<void(Status)>;

// How far a numbered sequence of writes is durable, for the threads and callbacks waiting on
// it. The backend numbers its writes (1, 2, ...) and reports progress; a failure is final:
// nothing numbered after the last durable point will ever be durable, because the backend stops
// (after a failed fsync the kernel may have dropped the dirty pages, so a retry could report
// success for lost writes: PostgreSQL's "fsyncgate").
class DurabilityTracker {
 public:
  DurabilityTracker() = default;
  // Tells every callback still waiting that the backend closed.
  ~DurabilityTracker();
  DurabilityTracker(const DurabilityTracker&) = delete;
  DurabilityTracker& operator=(const DurabilityTracker&) = delete;

  // Every write numbered up to `seq` is durable.
  void durable_through(uint64_t seq);
  // Nothing after the current durable point ever will be.
  void fail(Status error);

  // Blocks until write `seq` is durable; the failure if it never will be.
  Status wait(uint64_t seq);
  // Calls `done` once write `seq` is durable (or never will be): at once, on this thread, if
  // that is already known, else on the thread that reports it. `done` must not block.
  void on_durable(uint64_t seq, DurableCallback done);

  uint64_t durable() const;
  // OK, or the failure.
  Status failure() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t durable_ = 0;                                       // guarded by mu_
  Status failed_;                                              // guarded by mu_
  std::vector<std::pair<uint64_t, DurableCallback>> waiting_;  // guarded by mu_
};

}  // namespace custos::storage
