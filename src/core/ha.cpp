// High availability (docs/ha.md): the standby/active life of an unsealed server whose storage
// several servers share (storage::HaLock).
#include <boost/json.hpp>

#include "base/log.h"
#include "core/core.h"
#include "core/core_paths.h"

namespace custos::core {
namespace {

// After a failed attempt to become active: how long to wait before competing again.
constexpr std::chrono::seconds kRetryActivation{1};
// How long a standby trusts the lock holder it read (leader()).
constexpr std::chrono::milliseconds kLeaderCacheFor{1000};

}  // namespace

std::function<void()> Core::ha_lost_signal() {
  return [this] {
    {
      std::lock_guard lock(ha_mu_);
      ha_lost_ = true;
    }
    ha_cv_.notify_all();
  };
}

Status Core::ha_lock_for_init() {
  if (!ha_) return ok_status();
  Status st = ha_->try_acquire(node_id_, ha_lost_signal());
  if (!st.ok()) return st.with_context("initializing needs the HA lock");
  // Another server may have initialised the store before this one took the lock.
  auto inited = barrier_.initialized();
  if (!inited.ok() || *inited) {
    ha_->release();
    return inited.ok() ? invalid_argument("Vault is already initialized") : inited.status();
  }
  return ok_status();
}

void Core::start_ha() {
  std::lock_guard lock(ha_thread_mu_);
  // A thread that ended on its own (it sealed this server) is joined before the next starts.
  if (ha_thread_.joinable()) ha_thread_.join();
  {
    std::lock_guard l(ha_mu_);
    ha_stop_ = false;
  }
  ha_stopping_.store(false);
  ha_thread_live_.store(true);
  ha_thread_ = std::thread([this] { ha_loop(); });
}

void Core::stop_ha() {
  std::lock_guard lock(ha_thread_mu_);
  if (!ha_thread_.joinable()) return;
  {
    std::lock_guard l(ha_mu_);
    ha_stop_ = true;
  }
  ha_stopping_.store(true);
  ha_cv_.notify_all();
  ha_thread_.join();
  ha_thread_live_.store(false);
}

void Core::step_down() {
  if (!ha_ || !active_.load()) return;
  {
    std::lock_guard lock(ha_mu_);
    ha_step_down_ = true;
  }
  ha_cv_.notify_all();
}

Status Core::become_active() {
  // The active server may have added keyring terms since this one was unsealed.
  Status st = barrier_.reload();
  if (!st.ok()) return st.with_context("reading the keyring");
  // Advertised through the barrier, under the id the lock names; older servers' records go.
  ASSIGN_OR_RETURN(std::vector<std::string> ids, barrier_.list(paths::kLeaderPrefix));
  for (const auto& id : ids) {
    if (id != node_id_) RETURN_IF_ERROR(barrier_.del(std::string(paths::kLeaderPrefix) + id));
  }
  const SysTime now = clock_.now();
  boost::json::object record{{"api_addr", config_.api_addr},
                             {"node_id", node_id_},
                             {"active_time", format_rfc3339_nanos(now)}};
  RETURN_IF_ERROR(barrier_.put(std::string(paths::kLeaderPrefix) + node_id_,
                               as_bytes(boost::json::serialize(record))));
  RETURN_IF_ERROR(post_unseal());
  active_since_.store(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count());
  active_.store(true);
  return ok_status();
}

void Core::ha_loop() {
  auto cancelled = [this] { return ha_stopping_.load(); };
  for (;;) {
    {
      std::lock_guard lock(ha_mu_);
      ha_lost_ = false;
      ha_step_down_ = false;
    }
    // Initialisation may have taken the lock already.
    if (!ha_->held()) {
      LOG_INFO("core", "standby: waiting for the HA lock");
      if (!ha_->acquire(node_id_, cancelled, ha_lost_signal()).ok()) return;  // stopping
    }
    Status st;
    bool sealed_self = false;
    {
      std::lock_guard lock(seal_mu_);
      // Sealed meanwhile (a seal that raced with the unseal that started this thread).
      if (ha_stopping_.load() || barrier_.sealed()) {
        ha_->release();
        return;
      }
      st = become_active();
      if (!st.ok()) {
        pre_seal();
        // A root key that no longer opens the keyring will not open it later either.
        if (st.code() == Code::kDataLoss) {
          barrier_.seal();
          sealed_self = true;
        }
      }
    }
    if (!st.ok()) {
      ha_->release();
      if (sealed_self) {
        LOG_ERROR("core", "could not become the active server, sealed: " << st.message());
        return;
      }
      LOG_ERROR("core", "could not become the active server (standby again): " << st.message());
      std::unique_lock lock(ha_mu_);
      if (ha_cv_.wait_for(lock, kRetryActivation, [this] { return ha_stop_; })) return;
      continue;
    }
    LOG_INFO("core", "active: this server holds the HA lock and serves requests");
    bool stop = false;
    bool lost = false;
    bool stepped_down = false;
    {
      std::unique_lock lock(ha_mu_);
      ha_cv_.wait(lock, [this] { return ha_stop_ || ha_lost_ || ha_step_down_; });
      stop = ha_stop_;
      lost = ha_lost_;
      stepped_down = ha_step_down_;
    }
    // Requests of this term finish first (outside seal_mu_, which an unseal may be waiting for).
    active_.store(false);
    serving_.store(false);
    drain_requests();
    {
      std::lock_guard lock(seal_mu_);
      // Not after losing the lock: writes are fenced off then.
      if (!lost) (void)barrier_.del(std::string(paths::kLeaderPrefix) + node_id_);
      pre_seal();
    }
    ha_->release();
    if (stop) return;
    if (lost) {
      LOG_WARN("core", "lost the HA lock: standby again");
    } else if (stepped_down) {
      LOG_INFO("core", "stepped down: standby, competing for the lock again in "
                           << config_.step_down_wait.count() << " ms");
      std::unique_lock lock(ha_mu_);
      if (ha_cv_.wait_for(lock, config_.step_down_wait, [this] { return ha_stop_; })) return;
    }
  }
}

Result<LeaderStatus> Core::leader() {
  LeaderStatus s;
  if (!ha_) return s;  // Vault without HA: ha_enabled and is_self false
  s.ha_enabled = true;
  if (barrier_.sealed()) return unavailable("Vault is sealed");
  if (active_.load()) {
    s.is_self = true;
    s.leader_address = config_.api_addr;
    s.active_time = SysTime(std::chrono::duration_cast<SysTime::duration>(
        std::chrono::nanoseconds(active_since_.load())));
    return s;
  }
  {
    // A standby forwards every request: who holds the lock is read from etcd at most once per
    // kLeaderCacheFor (and again at once after a forward failed: forget_leader()).
    std::lock_guard lock(leader_mu_);
    if (!leader_addr_.empty() && std::chrono::steady_clock::now() < leader_fresh_until_) {
      s.leader_address = leader_addr_;
      return s;
    }
  }
  ASSIGN_OR_RETURN(std::optional<std::string> id, ha_->holder());
  // No holder, or this server between giving the lock up and its release: none to name.
  if (!id || *id == node_id_) return s;
  {
    std::lock_guard lock(leader_mu_);
    if (leader_id_ == *id) {
      leader_fresh_until_ = std::chrono::steady_clock::now() + kLeaderCacheFor;
      s.leader_address = leader_addr_;
      return s;
    }
  }
  const std::string key = std::string(paths::kLeaderPrefix) + *id;
  auto record = barrier_.get(key);
  if (!record.ok() && record.status().code() == Code::kDataLoss) {
    // Written under a keyring term added after this standby read the keyring: read it again.
    RETURN_IF_ERROR(barrier_.reload());
    record = barrier_.get(key);
  }
  if (!record.ok()) return record.status();
  if (!*record) return s;  // the holder has not advertised itself yet
  boost::system::error_code ec;
  auto v = boost::json::parse((*record)->view(), ec);
  const auto* addr = !ec && v.is_object() ? v.as_object().if_contains("api_addr") : nullptr;
  if (!addr || !addr->is_string()) return data_loss("the active server's advertisement is corrupt");
  s.leader_address = std::string(addr->as_string());
  std::lock_guard lock(leader_mu_);
  leader_id_ = *id;
  leader_addr_ = s.leader_address;
  leader_fresh_until_ = std::chrono::steady_clock::now() + kLeaderCacheFor;
  return s;
}

void Core::forget_leader() {
  std::lock_guard lock(leader_mu_);
  leader_fresh_until_ = {};
}

}  // namespace custos::core
