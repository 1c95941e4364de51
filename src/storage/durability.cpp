#include "storage/durability.h"

#include <algorithm>

namespace custos::storage {
namespace {

thread_local int defer_depth = 0;
thread_local DeferredSync* owed_sync = nullptr;

void run_owed_sync() {
  DeferredSync* backend = owed_sync;
  owed_sync = nullptr;
  if (backend) backend->run_deferred_sync();
}

}  // namespace

DeferDurability::DeferDurability() {
  ++defer_depth;
}
DeferDurability::~DeferDurability() {
  if (--defer_depth == 0) run_owed_sync();
}
bool DeferDurability::active() {
  return defer_depth > 0;
}
void DeferDurability::owe(DeferredSync* backend) {
  if (owed_sync != backend) run_owed_sync();
  owed_sync = backend;
}
bool DeferDurability::owes(const DeferredSync* backend) {
  return owed_sync == backend;
}

DurabilityTracker::~DurabilityTracker() {
  std::vector<std::pair<uint64_t, DurableCallback>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(waiting_);
  }
  for (auto& [seq, done] : left) done(unavailable("storage: closed before the write was durable"));
}

void DurabilityTracker::durable_through(uint64_t seq) {
  std::vector<DurableCallback> ready;
  {
    std::lock_guard lock(mu_);
    if (!failed_.ok() || seq <= durable_) return;
    durable_ = seq;
    // Callbacks still waiting first, in registration order; the ready ones after them.
    auto first_ready = std::stable_partition(waiting_.begin(), waiting_.end(),
                                             [&](const auto& w) { return w.first > durable_; });
    for (auto it = first_ready; it != waiting_.end(); ++it) ready.push_back(std::move(it->second));
    waiting_.erase(first_ready, waiting_.end());
  }
  cv_.notify_all();
  for (auto& done : ready) done(ok_status());
}

void DurabilityTracker::fail(Status error) {
  std::vector<std::pair<uint64_t, DurableCallback>> left;
  {
    std::lock_guard lock(mu_);
    if (!failed_.ok()) return;
    failed_ = std::move(error);
    left.swap(waiting_);
  }
  cv_.notify_all();
  for (auto& [seq, done] : left) done(failure());
}

Status DurabilityTracker::wait(uint64_t seq) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return durable_ >= seq || !failed_.ok(); });
  return durable_ >= seq ? ok_status() : failed_;
}

void DurabilityTracker::on_durable(uint64_t seq, DurableCallback done) {
  Status outcome;
  {
    std::lock_guard lock(mu_);
    if (durable_ < seq) {
      if (failed_.ok()) {
        waiting_.emplace_back(seq, std::move(done));
        return;
      }
      outcome = failed_;
    }
  }
  done(std::move(outcome));
}

uint64_t DurabilityTracker::durable() const {
  std::lock_guard lock(mu_);
  return durable_;
}

Status DurabilityTracker::failure() const {
  std::lock_guard lock(mu_);
  return failed_;
}

}  // namespace custos::storage
