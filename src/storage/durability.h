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

// A backend whose lone writer, inside a DeferDurability scope, may leave its fsync for the end
// of that scope (DeferDurability::owe()): the device then writes while the thread builds its
// answer, and the fsync that follows finds less to wait for.
class DeferredSync {
 public:
  // Runs the fsync this thread owes; called once, on the owing thread.
  virtual void run_deferred_sync() = 0;

 protected:
  ~DeferredSync() = default;
};

// While one is alive on a thread, backend writes made on that thread do not wait until they
// are durable (see above). Scopes nest.
class DeferDurability {
 public:
  DeferDurability();
  // The outermost scope runs the fsync this thread owes, if any.
  ~DeferDurability();
  DeferDurability(const DeferDurability&) = delete;
  DeferDurability& operator=(const DeferDurability&) = delete;

  static bool active();

  // Called by a backend on the writing thread, inside a scope: `backend` runs its fsync (its
  // run_deferred_sync()) when this thread's outermost scope ends. A fsync owed to another
  // backend runs at once. The scope must end before `backend` is destroyed.
  static void owe(DeferredSync* backend);
  // Whether this thread owes `backend` a fsync.
  static bool owes(const DeferredSync* backend);
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
