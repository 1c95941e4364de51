// The lease manager. Storage layout, scheduler and revoke semantics: docs/leases.md.
//
// Keys below the View ("sys/expire/"):
//   id/<lease id>                          the lease record (JSON, encrypted by the barrier)
//   exp/<20-digit expire unix>/<esc id>    "" : time index, so unseal reads keys, not records
//   token/<token hash>/<esc id>            "" : leases obtained with a token
// <esc id> is the lease ID with '%' -> "%25" and '/' -> "%2F" (one path segment).
// A lease's three keys change together in one barrier transaction.
//
// Concurrency: `mu_` guards the in-memory schedule (queue_, scheduled_, tombstones_). Work on
// one lease (renew, revoke) holds that lease's stripe lock, so a renew never races the revoke of
// the same lease; engine calls run without `mu_`. The scheduler thread is the only background
// thread; it loads the time index incrementally (earliest buckets first) and revokes due leases
// in batches that share one storage transaction.
#include "core/leases.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/json.hpp>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/log.h"
#include "base/metrics.h"
#include "core/tokens.h"
#include "crypto/random.h"

namespace custos::core {
namespace {

namespace json = boost::json;

constexpr std::string_view kComponent = "leases";
constexpr size_t kBatch = 256;          // leases revoked per storage transaction
constexpr size_t kLoadStep = 4096;      // index entries loaded per scheduler pass
constexpr int64_t kMaxWaitMs = 1000;    // bounded waits: stop() and clock jumps are noticed
constexpr size_t kStripes = 64;
constexpr size_t kLeaseIdRandomChars = 24;

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::string escape_id(std::string_view id) {
  std::string out;
  out.reserve(id.size() + 8);
  for (char c : id) {
    if (c == '%') {
      out += "%25";
    } else if (c == '/') {
      out += "%2F";
    } else {
      out += c;
    }
  }
  return out;
}

std::string unescape_id(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      std::string_view code = s.substr(i + 1, 2);
      if (code == "25" || code == "2F") {
        out += code == "25" ? '%' : '/';
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::string exp_bucket(int64_t expire) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%020lld", static_cast<long long>(std::max<int64_t>(0, expire)));
  return buf;
}

std::string random_lease_suffix() {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  out.reserve(kLeaseIdRandomChars);
  while (out.size() < kLeaseIdRandomChars) {
    Bytes b = crypto::random_bytes(32);
    for (uint8_t x : b) {
      // Rejection sampling keeps the alphabet uniform (248 = 4 * 62).
      if (x < 248 && out.size() < kLeaseIdRandomChars) out += kAlphabet[x % kAlphabet.size()];
    }
  }
  return out;
}

int64_t now_ms(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.now().time_since_epoch())
      .count();
}

std::string format_unix(int64_t s) { return format_rfc3339_nanos(from_unix_seconds(s)); }

// The stored record: LeaseEntry plus what revocation bookkeeping needs.
struct Record {
  LeaseEntry e;
  int64_t ttl = 0;       // the TTL granted at issue: the default increment of a renew
  int64_t attempts = 0;  // failed revocation attempts
  bool irrevocable = false;
  std::string revoke_error;

  json::object to_json() const {
    json::object o;
    o["version"] = 1;
    o["lease_id"] = e.lease_id;
    o["mount_path"] = e.mount_path;
    o["token_hash"] = e.token_hash;
    o["internal"] = e.internal;
    o["issue_time"] = e.issue_time;
    o["expire_time"] = e.expire_time;
    o["max_expire_time"] = e.max_expire_time;
    o["last_renewal_time"] = e.last_renewal_time;
    o["renewable"] = e.renewable;
    if (e.token_lease) o["token_lease"] = true;
    o["ttl"] = ttl;
    o["revoke_attempts"] = attempts;
    o["irrevocable"] = irrevocable;
    o["revoke_error"] = revoke_error;
    return o;
  }

  static Result<Record> from_json(const json::value& v) {
    if (!v.is_object()) return data_loss("lease record is not an object");
    const json::object& o = v.as_object();
    Record r;
    auto str = [&](const char* k) {
      const auto* x = o.if_contains(k);
      return x != nullptr && x->is_string() ? std::string(x->as_string()) : std::string();
    };
    auto num = [&](const char* k) {
      const auto* x = o.if_contains(k);
      return x != nullptr && x->is_int64() ? x->as_int64() : int64_t{0};
    };
    auto flag = [&](const char* k, bool d) {
      const auto* x = o.if_contains(k);
      return x != nullptr && x->is_bool() ? x->as_bool() : d;
    };
    r.e.lease_id = str("lease_id");
    r.e.mount_path = str("mount_path");
    r.e.token_hash = str("token_hash");
    if (const auto* x = o.if_contains("internal"); x != nullptr && x->is_object()) {
      r.e.internal = x->as_object();
    }
    r.e.issue_time = num("issue_time");
    r.e.expire_time = num("expire_time");
    r.e.max_expire_time = num("max_expire_time");
    r.e.last_renewal_time = num("last_renewal_time");
    r.e.renewable = flag("renewable", true);
    r.e.token_lease = flag("token_lease", false);
    r.ttl = num("ttl");
    r.attempts = num("revoke_attempts");
    r.irrevocable = flag("irrevocable", false);
    r.revoke_error = str("revoke_error");
    if (r.e.lease_id.empty() || r.e.mount_path.empty()) {
      return data_loss("lease record is incomplete");
    }
    return r;
  }
};

}  // namespace

struct LeaseManager::Impl {
  View view;
  const Clock& clock;
  EngineLookup lookup;
  LeaseRetryPolicy policy;

  std::array<std::mutex, kStripes> stripes;

  std::mutex mu;
  std::condition_variable cv;
  std::set<std::pair<int64_t, std::string>> queue;       // (due unix ms, lease id)
  std::unordered_map<std::string, int64_t> scheduled;    // lease id -> its key in queue
  // scheduled.size(), for the vault_expire_num_leases gauge: read at scrapes without `mu` (a
  // scrape holds the metrics registry's lock, which code holding `mu` may take).
  std::atomic<int64_t> num_scheduled{0};
  std::unordered_set<std::string> tombstones;            // revoked, delete not yet committed
  bool stopping = false;
  bool running = false;
  // While the scheduler waits: when it will wake (unix ms); 0 while it works.
  int64_t wake_at_ms = 0;
  bool loaded = false;
  std::vector<std::string> buckets;  // exp/ buckets still to load (earliest first)
  size_t next_bucket = 0;
  std::thread thread;
  // Last, so it unregisters before what it reads goes.
  metrics::GaugeHandle num_leases_gauge;

  Impl(View v, const Clock& c, EngineLookup l) : view(std::move(v)), clock(c), lookup(std::move(l)) {}

  std::mutex& stripe(const std::string& id) { return stripes[std::hash<std::string>{}(id) % kStripes]; }

  std::string full(std::string_view key) const { return view.prefix() + std::string(key); }
  static std::string id_key(const std::string& id) { return "id/" + id; }
  static std::string exp_key(int64_t expire, const std::string& id) {
    return "exp/" + exp_bucket(expire) + "/" + escape_id(id);
  }
  static std::string token_key(const std::string& hash, const std::string& id) {
    return "token/" + hash + "/" + escape_id(id);
  }

  storage::Op put_op(const std::string& key, std::string_view value) const {
    return storage::Op{storage::Op::Kind::kPut, full(key), to_bytes(value)};
  }
  storage::Op del_op(const std::string& key) const {
    return storage::Op{storage::Op::Kind::kDelete, full(key), {}};
  }

  Result<std::optional<Record>> load(const std::string& id) {
    if (id.empty() || id.find("..") != std::string::npos) return std::optional<Record>();
    ASSIGN_OR_RETURN(auto v, view.get_json(id_key(id)));
    if (!v) return std::optional<Record>();
    ASSIGN_OR_RETURN(Record r, Record::from_json(*v));
    return std::optional<Record>(std::move(r));
  }

  bool tombstoned(const std::string& id) {
    std::lock_guard lock(mu);
    return tombstones.count(id) != 0;
  }

  void schedule(const std::string& id, int64_t due_ms) {
    std::lock_guard lock(mu);
    auto it = scheduled.find(id);
    if (it != scheduled.end()) {
      queue.erase({it->second, id});
      it->second = due_ms;
    } else {
      scheduled.emplace(id, due_ms);
      num_scheduled.store(static_cast<int64_t>(scheduled.size()), std::memory_order_relaxed);
    }
    queue.emplace(due_ms, id);
    // Wake the scheduler only when this lease is due before it would wake anyway: a wake-up
    // per registration would cost a context switch for every token and secret issued.
    if (due_ms < wake_at_ms) cv.notify_all();
  }

  void unschedule_locked(const std::string& id) {
    auto it = scheduled.find(id);
    if (it == scheduled.end()) return;
    queue.erase({it->second, id});
    scheduled.erase(it);
    num_scheduled.store(static_cast<int64_t>(scheduled.size()), std::memory_order_relaxed);
  }

  int64_t backoff_ms(int64_t attempts) const {
    int64_t d = policy.initial_backoff.count();
    for (int64_t i = 1; i < attempts && d < policy.max_backoff.count(); ++i) d *= 2;
    return std::min<int64_t>(d, policy.max_backoff.count());
  }

  // A revocation failed: count it, move the lease's expiry to now (it is due: a later renew must
  // not resurrect it), persist, and retry later with exponential backoff. Never drops the lease.
  void record_failure(Record& r, const Status& st) {
    int64_t now = to_unix_seconds(clock.now());
    int64_t old_exp = r.e.expire_time;
    r.attempts += 1;
    r.e.expire_time = std::min(r.e.expire_time, now);
    r.revoke_error = st.message();
    if (r.attempts >= policy.max_attempts && !r.irrevocable) {
      r.irrevocable = true;
      LOG_ERROR(kComponent, "lease " << r.e.lease_id << " marked irrevocable after " << r.attempts
                                     << " failed revocations: " << st.message()
                                     << " (still retrying every " << policy.max_backoff.count()
                                     << " ms)");
    } else {
      LOG_WARN(kComponent, "revoking lease " << r.e.lease_id << " failed (attempt " << r.attempts
                                             << "): " << st.message());
    }
    std::vector<storage::Op> ops;
    ops.push_back(put_op(id_key(r.e.lease_id), json::serialize(r.to_json())));
    if (old_exp != r.e.expire_time) {
      ops.push_back(del_op(exp_key(old_exp, r.e.lease_id)));
      ops.push_back(put_op(exp_key(r.e.expire_time, r.e.lease_id), ""));
    }
    Status w = view.barrier().transaction(std::move(ops));
    if (!w.ok()) {
      LOG_ERROR(kComponent, "could not persist the failed revocation of lease "
                                << r.e.lease_id << ": " << w.message());
    }
    schedule(r.e.lease_id, now_ms(clock) + backoff_ms(r.attempts));
  }

  struct BatchResult {
    size_t revoked = 0;
    size_t failed = 0;
    Status first_error;
  };

  // Revokes `ids`: the engine call per lease, then one storage transaction per kBatch leases.
  // only_due: skip (and reschedule) leases whose expiry moved into the future (renewed).
  //
  // A token's own lease is ended by revoking its token, which revokes the token's children and
  // leases, each under its own stripe lock, and then deletes the token's lease
  // (forget_token_lease). So that no thread ever holds two stripe locks, that engine call runs
  // with the lease's lock released; whatever the revocation left is deleted here.
  BatchResult revoke_many(const std::vector<std::string>& ids, bool force, bool only_due,
                          bool stoppable = false) {
    BatchResult out;
    std::vector<storage::Op> ops;
    std::vector<std::string> done;
    // Each lease takes up to 3 ops; a backend with a transaction limit (etcd) gets batches that
    // fit it.
    const size_t op_limit = view.barrier().max_transaction_ops();
    auto flush = [&]() {
      if (done.empty()) return;
      Status st = view.barrier().transaction(std::move(ops));
      ops.clear();
      std::lock_guard lock(mu);
      for (const auto& id : done) {
        tombstones.erase(id);
        if (st.ok()) {
          unschedule_locked(id);
        } else {
          // The engine side is gone but the records stay: revocation is idempotent, so retry.
          auto it = scheduled.find(id);
          if (it != scheduled.end()) queue.erase({it->second, id});
          int64_t due = now_ms(clock) + backoff_ms(1);
          scheduled[id] = due;
          num_scheduled.store(static_cast<int64_t>(scheduled.size()), std::memory_order_relaxed);
          queue.emplace(due, id);
        }
      }
      if (st.ok()) {
        out.revoked += done.size();
      } else {
        LOG_ERROR(kComponent, "could not delete " << done.size()
                                                  << " revoked leases: " << st.message());
        out.failed += done.size();
        if (out.first_error.ok()) out.first_error = st;
      }
      done.clear();
    };
    for (const auto& id : ids) {
      if (stoppable) {
        std::lock_guard lock(mu);
        if (stopping) break;  // the rest stays in storage and loads again after unseal
      }
      std::unique_lock lease_lock(stripe(id));
      if (tombstoned(id)) continue;
      auto rec = load(id);
      if (!rec.ok()) {
        LOG_ERROR(kComponent, "reading lease " << id << ": " << rec.status().message());
        out.failed++;
        if (out.first_error.ok()) out.first_error = rec.status();
        continue;
      }
      if (!*rec) {
        std::lock_guard lock(mu);
        unschedule_locked(id);  // a stale index entry
        continue;
      }
      Record& r = **rec;
      if (only_due && r.e.expire_time > to_unix_seconds(clock.now())) {
        schedule(id, r.e.expire_time * 1000);
        continue;
      }
      Status st = ok_status();
      std::shared_ptr<Engine> engine = lookup(r.e.mount_path);
      if (!engine) {
        st = failed_precondition("no secrets engine is mounted at " + r.e.mount_path);
      } else if (r.e.token_lease) {
        lease_lock.unlock();
        st = engine->revoke_secret(r.e.internal);
        lease_lock.lock();
        auto again = load(id);
        if (again.ok() && !*again) {
          out.revoked++;  // the token's revocation deleted it
          continue;
        }
        if (!again.ok() && st.ok()) st = again.status();
        if (again.ok()) r = std::move(**again);
      } else {
        st = engine->revoke_secret(r.e.internal);
      }
      if (!st.ok() && !force) {
        record_failure(r, st);
        out.failed++;
        if (out.first_error.ok()) {
          out.first_error = Status(st.code(), "failed to revoke lease " + id + ": " + st.message());
        }
        continue;
      }
      if (!st.ok()) {
        LOG_WARN(kComponent, "force-revoking lease " << id << " although the engine failed: "
                                                     << st.message());
      }
      ops.push_back(del_op(id_key(id)));
      ops.push_back(del_op(exp_key(r.e.expire_time, id)));
      if (!r.e.token_hash.empty()) ops.push_back(del_op(token_key(r.e.token_hash, id)));
      {
        std::lock_guard lock(mu);
        tombstones.insert(id);
      }
      done.push_back(id);
      if (done.size() >= kBatch || (op_limit > 0 && ops.size() + 3 > op_limit)) flush();
    }
    flush();
    return out;
  }

  // Lease IDs below `prefix` (which ends with '/' or is empty), depth first.
  Status collect(const std::string& prefix, std::vector<std::string>& out) {
    ASSIGN_OR_RETURN(auto keys, view.list(id_key(prefix)));
    for (const auto& k : keys) {
      if (!k.empty() && k.back() == '/') {
        RETURN_IF_ERROR(collect(prefix + k, out));
      } else {
        out.push_back(prefix + k);
      }
    }
    return ok_status();
  }

  enum class LoadState { kMore, kDone, kError };
  // Loads up to kLoadStep index entries (earliest buckets first).
  LoadState load_step() {
    if (buckets.empty() && next_bucket == 0) {
      auto b = view.list("exp/");
      if (!b.ok()) {
        LOG_ERROR(kComponent, "listing the lease time index: " << b.status().message());
        return LoadState::kError;  // retried on the next pass
      }
      buckets = std::move(*b);
      if (buckets.empty()) return LoadState::kDone;
    }
    size_t n = 0;
    while (next_bucket < buckets.size() && n < kLoadStep) {
      const std::string& b = buckets[next_bucket];
      int64_t t = std::strtoll(b.c_str(), nullptr, 10);
      auto ids = view.list("exp/" + b);
      if (!ids.ok()) {
        LOG_ERROR(kComponent, "listing lease bucket " << b << ": " << ids.status().message());
        return LoadState::kError;
      }
      std::lock_guard lock(mu);
      for (const auto& esc : *ids) {
        std::string id = unescape_id(esc);
        if (scheduled.count(id) != 0 || tombstones.count(id) != 0) continue;  // newer in memory
        scheduled.emplace(id, t * 1000);
        queue.emplace(t * 1000, id);
      }
      num_scheduled.store(static_cast<int64_t>(scheduled.size()), std::memory_order_relaxed);
      n += ids->size();
      ++next_bucket;
    }
    if (next_bucket >= buckets.size()) {
      buckets.clear();
      buckets.shrink_to_fit();
      next_bucket = 0;
      return LoadState::kDone;
    }
    return LoadState::kMore;
  }

  // Takes up to kBatch due leases off the queue.
  std::vector<std::string> take_due_locked(int64_t now) {
    std::vector<std::string> due;
    while (!queue.empty() && queue.begin()->first <= now && due.size() < kBatch) {
      auto node = queue.extract(queue.begin());
      scheduled.erase(node.value().second);
      due.push_back(std::move(node.value().second));
    }
    num_scheduled.store(static_cast<int64_t>(scheduled.size()), std::memory_order_relaxed);
    return due;
  }

  size_t process_due() {
    std::vector<std::string> due;
    {
      std::lock_guard lock(mu);
      due = take_due_locked(now_ms(clock));
    }
    if (due.empty()) return 0;
    BatchResult r = revoke_many(due, /*force=*/false, /*only_due=*/true, /*stoppable=*/true);
    if (r.revoked > 0) LOG_INFO(kComponent, "revoked " << r.revoked << " expired leases");
    return due.size();
  }

  void run() {
    while (true) {
      bool was_loaded = false;
      {
        std::lock_guard lock(mu);
        if (stopping) return;
        was_loaded = loaded;
      }
      bool load_failed = false;
      try {
        if (!was_loaded) {
          LoadState st = load_step();
          load_failed = st == LoadState::kError;
          if (st == LoadState::kDone) {
            std::lock_guard lock(mu);
            loaded = true;
            LOG_INFO(kComponent, "lease index loaded: " << scheduled.size() << " leases scheduled");
            cv.notify_all();
          }
        }
        size_t n = process_due();
        std::unique_lock lock(mu);
        if (stopping) return;
        if (n > 0 || (!loaded && !load_failed)) continue;
        int64_t wait = kMaxWaitMs;
        if (!queue.empty() && loaded) {
          wait = std::clamp<int64_t>(queue.begin()->first - now_ms(clock), 0, kMaxWaitMs);
        }
        if (wait > 0) {
          wake_at_ms = now_ms(clock) + wait;
          cv.wait_for(lock, std::chrono::milliseconds(wait), [&] {
            return stopping || (!queue.empty() && queue.begin()->first < wake_at_ms);
          });
          wake_at_ms = 0;
        }
      } catch (const std::exception& e) {
        LOG_ERROR(kComponent, "scheduler pass failed: " << e.what());
        std::unique_lock lock(mu);
        cv.wait_for(lock, std::chrono::milliseconds(kMaxWaitMs), [&] { return stopping; });
      }
    }
  }
};

LeaseManager::LeaseManager(View view, const Clock& clock, EngineLookup lookup)
    : impl_(std::make_unique<Impl>(std::move(view), clock, std::move(lookup))) {
  Impl* m = impl_.get();
  m->num_leases_gauge = metrics::Registry::global().gauge(
      "vault_expire_num_leases", "leases scheduled for expiry (secrets and tokens)",
      [m] { return static_cast<double>(m->num_scheduled.load(std::memory_order_relaxed)); });
}

LeaseManager::~LeaseManager() { stop(); }

void LeaseManager::set_retry_policy(const LeaseRetryPolicy& policy) { impl_->policy = policy; }

Status LeaseManager::start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->running) return ok_status();
  impl_->stopping = false;
  impl_->running = true;
  try {
    impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
  } catch (const std::system_error& e) {
    impl_->running = false;
    return internal_error(std::string("starting the lease scheduler: ") + e.what());
  }
  return ok_status();
}

void LeaseManager::stop() {
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->running) return;
    impl_->stopping = true;
    impl_->cv.notify_all();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->num_scheduled.store(0, std::memory_order_relaxed);  // a stopped manager (sealed) has none
  std::lock_guard lock(impl_->mu);
  impl_->running = false;
}

bool LeaseManager::wait_loaded(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] { return impl_->loaded; });
}

size_t LeaseManager::process_due() {
  Impl& m = *impl_;
  bool need_load = false;
  {
    std::lock_guard lock(m.mu);
    need_load = !m.loaded && !m.running;
  }
  if (need_load) {
    // Without the scheduler thread (tests, tools): load the whole index first.
    Impl::LoadState st = Impl::LoadState::kMore;
    while (st == Impl::LoadState::kMore) st = m.load_step();
    if (st == Impl::LoadState::kError) return 0;
    std::lock_guard lock(m.mu);
    m.loaded = true;
  }
  return m.process_due();
}

Result<LeaseEntry> LeaseManager::register_secret(const Request& req, const Secret& secret,
                                                 int64_t default_ttl, int64_t max_ttl) {
  Record r;
  std::string path = req.mount_point + req.rel_path;
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.empty() || req.mount_point.empty()) return internal_error("lease without a mount path");
  r.e.lease_id = path + "/" + random_lease_suffix();
  r.e.mount_path = req.mount_point;
  if (req.token != nullptr && req.token->type != "batch") r.e.token_hash = req.token->hash;
  r.e.internal = secret.internal;
  r.e.renewable = secret.renewable;
  int64_t max = max_ttl;
  if (secret.max_ttl > 0 && (max <= 0 || secret.max_ttl < max)) max = secret.max_ttl;
  int64_t ttl = secret.ttl > 0 ? secret.ttl : default_ttl;
  if (max > 0 && ttl > max) ttl = max;
  if (ttl <= 0) return internal_error("lease without a TTL");
  int64_t now = to_unix_seconds(impl_->clock.now());
  r.ttl = ttl;
  r.e.issue_time = now;
  r.e.expire_time = now + ttl;
  r.e.max_expire_time = now + (max > 0 ? max : ttl);

  std::vector<storage::Op> ops;
  ops.push_back(impl_->put_op(Impl::id_key(r.e.lease_id), json::serialize(r.to_json())));
  ops.push_back(impl_->put_op(Impl::exp_key(r.e.expire_time, r.e.lease_id), ""));
  if (!r.e.token_hash.empty()) {
    ops.push_back(impl_->put_op(Impl::token_key(r.e.token_hash, r.e.lease_id), ""));
  }
  RETURN_IF_ERROR(impl_->view.barrier().transaction(std::move(ops)));
  impl_->schedule(r.e.lease_id, r.e.expire_time * 1000);
  return r.e;
}

namespace {

// A token's own lease, as track_token and add_token_lease first store it.
Record new_token_lease(const std::string& lease_id, const std::string& mount_path,
                       const std::string& token_hash, int64_t now) {
  Record r;
  r.e.lease_id = lease_id;
  r.e.mount_path = mount_path;
  r.e.token_hash = token_hash;
  r.e.internal = boost::json::object{{"token_hash", token_hash}};
  r.e.issue_time = now;
  r.e.renewable = false;
  r.e.token_lease = true;
  return r;
}

void set_token_lease_expiry(Record& r, int64_t expire_time) {
  r.e.expire_time = expire_time;
  r.e.max_expire_time = expire_time;
  r.ttl = std::max<int64_t>(0, expire_time - r.e.issue_time);
}

Status check_token_lease(const std::string& lease_id, const std::string& mount_path,
                         const std::string& token_hash, int64_t expire_time) {
  if (lease_id.empty() || mount_path.empty() || token_hash.empty() || expire_time <= 0) {
    return internal_error("a token lease needs an ID, a mount, a token and an expiry");
  }
  return ok_status();
}

}  // namespace

Status LeaseManager::track_token(const std::string& lease_id, const std::string& mount_path,
                                 const std::string& token_hash, int64_t expire_time) {
  RETURN_IF_ERROR(check_token_lease(lease_id, mount_path, token_hash, expire_time));
  Impl& m = *impl_;
  std::lock_guard lease_lock(m.stripe(lease_id));
  ASSIGN_OR_RETURN(auto rec, m.load(lease_id));
  std::vector<storage::Op> ops;
  Record r;
  if (rec && !m.tombstoned(lease_id)) {
    r = std::move(*rec);
    if (r.e.expire_time == expire_time) return ok_status();
    ops.push_back(m.del_op(Impl::exp_key(r.e.expire_time, lease_id)));
    r.e.last_renewal_time = to_unix_seconds(m.clock.now());
  } else {
    r = new_token_lease(lease_id, mount_path, token_hash, to_unix_seconds(m.clock.now()));
  }
  set_token_lease_expiry(r, expire_time);
  ops.push_back(m.put_op(Impl::id_key(lease_id), json::serialize(r.to_json())));
  ops.push_back(m.put_op(Impl::exp_key(expire_time, lease_id), ""));
  RETURN_IF_ERROR(m.view.barrier().transaction(std::move(ops)));
  m.schedule(lease_id, expire_time * 1000);
  return ok_status();
}

Status LeaseManager::forget_token_lease(const std::string& lease_id) {
  Impl& m = *impl_;
  std::lock_guard lease_lock(m.stripe(lease_id));
  ASSIGN_OR_RETURN(auto rec, m.load(lease_id));
  if (!rec || !rec->e.token_lease) return ok_status();
  std::vector<storage::Op> ops;
  ops.push_back(m.del_op(Impl::id_key(lease_id)));
  ops.push_back(m.del_op(Impl::exp_key(rec->e.expire_time, lease_id)));
  RETURN_IF_ERROR(m.view.barrier().transaction(std::move(ops)));
  std::lock_guard lock(m.mu);
  m.unschedule_locked(lease_id);
  return ok_status();
}

std::function<void()> LeaseManager::add_token_lease(const std::string& lease_id,
                                                    const std::string& mount_path,
                                                    const std::string& token_hash,
                                                    int64_t expire_time, WriteBatch& batch) {
  if (!check_token_lease(lease_id, mount_path, token_hash, expire_time).ok()) return {};
  Impl& m = *impl_;
  Record r = new_token_lease(lease_id, mount_path, token_hash, to_unix_seconds(m.clock.now()));
  set_token_lease_expiry(r, expire_time);
  batch.put(m.full(Impl::id_key(lease_id)), as_bytes(json::serialize(r.to_json())));
  batch.put(m.full(Impl::exp_key(expire_time, lease_id)), {});
  return [this, lease_id, expire_time] { impl_->schedule(lease_id, expire_time * 1000); };
}

Result<std::optional<LeaseEntry>> LeaseManager::lookup(const std::string& lease_id) {
  ASSIGN_OR_RETURN(auto rec, impl_->load(lease_id));
  if (!rec || impl_->tombstoned(lease_id)) return std::optional<LeaseEntry>();
  return std::optional<LeaseEntry>(rec->e);
}

Result<Response> LeaseManager::renew(const std::string& lease_id, int64_t increment) {
  if (lease_id.empty()) return invalid_argument("lease_id is required");
  Impl& m = *impl_;
  std::lock_guard lease_lock(m.stripe(lease_id));
  ASSIGN_OR_RETURN(auto rec, m.load(lease_id));
  if (!rec || m.tombstoned(lease_id)) return invalid_argument("lease not found");
  Record& r = *rec;
  int64_t now = to_unix_seconds(m.clock.now());
  if (!r.e.renewable) return invalid_argument("lease is not renewable");
  if (r.attempts > 0 || r.e.expire_time <= now) return invalid_argument("lease expired");
  int64_t ttl = increment > 0 ? increment : r.ttl;
  int64_t new_exp = now + ttl;
  Response resp;
  if (new_exp > r.e.max_expire_time) {
    new_exp = r.e.max_expire_time;
    resp.warnings.push_back("TTL of \"" + std::to_string(ttl) + "s\" exceeded the effective max_ttl of \"" +
                            std::to_string(std::max<int64_t>(0, new_exp - now)) +
                            "s\"; TTL value is capped accordingly");
  }
  if (new_exp <= now) return invalid_argument("lease expired: past its max TTL");
  std::shared_ptr<Engine> engine = m.lookup(r.e.mount_path);
  if (!engine) return invalid_argument("no secrets engine is mounted at " + r.e.mount_path);
  Status st = engine->renew_secret(r.e.internal, from_unix_seconds(new_exp));
  if (!st.ok()) return Status(st.code(), "failed to renew entry: " + st.message());
  int64_t old_exp = r.e.expire_time;
  r.e.expire_time = new_exp;
  r.e.last_renewal_time = now;
  std::vector<storage::Op> ops;
  ops.push_back(m.put_op(Impl::id_key(lease_id), json::serialize(r.to_json())));
  if (old_exp != new_exp) {
    ops.push_back(m.del_op(Impl::exp_key(old_exp, lease_id)));
    ops.push_back(m.put_op(Impl::exp_key(new_exp, lease_id), ""));
  }
  RETURN_IF_ERROR(m.view.barrier().transaction(std::move(ops)));
  m.schedule(lease_id, new_exp * 1000);
  resp.lease_id = lease_id;
  resp.renewable = true;
  resp.lease_duration = new_exp - now;
  return resp;
}

Status LeaseManager::revoke(const std::string& lease_id, bool sync) {
  Impl& m = *impl_;
  if (!sync) {
    // Vault's sync=false: the lease is due now; the scheduler revokes it (with retries).
    std::lock_guard lease_lock(m.stripe(lease_id));
    ASSIGN_OR_RETURN(auto rec, m.load(lease_id));
    if (!rec) return ok_status();
    Record& r = *rec;
    int64_t now = to_unix_seconds(m.clock.now());
    if (r.e.expire_time > now) {
      int64_t old_exp = r.e.expire_time;
      r.e.expire_time = now;
      std::vector<storage::Op> ops;
      ops.push_back(m.put_op(Impl::id_key(lease_id), json::serialize(r.to_json())));
      ops.push_back(m.del_op(Impl::exp_key(old_exp, lease_id)));
      ops.push_back(m.put_op(Impl::exp_key(now, lease_id), ""));
      RETURN_IF_ERROR(m.view.barrier().transaction(std::move(ops)));
    }
    m.schedule(lease_id, now_ms(m.clock));
    return ok_status();
  }
  Impl::BatchResult r = m.revoke_many({lease_id}, /*force=*/false, /*only_due=*/false);
  return r.first_error;
}

Status LeaseManager::revoke_token_leases(const std::string& token_hash) {
  if (token_hash.empty()) return ok_status();
  Impl& m = *impl_;
  ASSIGN_OR_RETURN(auto keys, m.view.list("token/" + token_hash + "/"));
  std::vector<std::string> ids;
  ids.reserve(keys.size());
  for (const auto& k : keys) ids.push_back(unescape_id(k));
  if (ids.empty()) return ok_status();
  Impl::BatchResult r = m.revoke_many(ids, /*force=*/false, /*only_due=*/false);
  // Failures are persisted as due and retried with backoff: the token revocation proceeds, as in
  // Vault (which marks the token's leases expired and lets the expiration manager finish).
  if (r.failed > 0) {
    LOG_WARN(kComponent, r.failed << " of " << ids.size()
                                  << " leases of a revoked token will be retried");
  }
  return ok_status();
}

Status LeaseManager::revoke_prefix(const std::string& prefix, bool force) {
  Impl& m = *impl_;
  std::vector<std::string> ids;
  std::string p = prefix;
  while (!p.empty() && p.front() == '/') p.erase(0, 1);
  if (p.find("..") != std::string::npos) return invalid_argument("invalid prefix");
  if (!p.empty() && p.back() != '/') {
    ASSIGN_OR_RETURN(auto exact, m.load(p));
    if (exact) ids.push_back(p);
    p += '/';
  }
  RETURN_IF_ERROR(m.collect(p, ids));
  if (ids.empty()) return ok_status();
  Impl::BatchResult r = m.revoke_many(ids, force, /*only_due=*/false);
  if (!r.first_error.ok()) {
    return Status(r.first_error.code(), std::to_string(r.failed) + " of " +
                                            std::to_string(ids.size()) +
                                            " leases were not revoked: " + r.first_error.message());
  }
  return ok_status();
}

Result<Response> LeaseManager::handle_sys(Request& req, const std::string& rest, bool& handled) {
  Impl& m = *impl_;
  handled = true;
  auto tail_after = [&](std::initializer_list<std::string_view> prefixes) -> std::optional<std::string> {
    for (auto p : prefixes) {
      if (starts_with(rest, p)) return rest.substr(p.size());
      std::string bare(p.substr(0, p.size() - 1));
      if (rest == bare) return std::string();
    }
    return std::nullopt;
  };
  bool write = req.op == Operation::kCreate || req.op == Operation::kUpdate;

  // LIST sys/leases/lookup/<prefix>
  if (req.op == Operation::kList) {
    if (auto tail = tail_after({"leases/lookup/"})) {
      std::string p = *tail;
      if (!p.empty() && p.back() != '/') p += '/';
      if (p.find("..") != std::string::npos) return invalid_argument("invalid prefix");
      ASSIGN_OR_RETURN(auto keys, m.view.list(Impl::id_key(p)));
      if (keys.empty()) return not_found("");
      json::array a;
      for (auto& k : keys) a.emplace_back(k);
      return Response::with_data({{"keys", std::move(a)}});
    }
  }

  if (rest == "leases/lookup") {
    if (!write) return unimplemented("unsupported operation");
    ASSIGN_OR_RETURN(std::string id, field_string(req.data, "lease_id"));
    if (id.empty()) return invalid_argument("missing lease id");
    ASSIGN_OR_RETURN(auto rec, m.load(id));
    if (!rec || m.tombstoned(id)) return invalid_argument("invalid lease");
    const Record& r = *rec;
    int64_t now = to_unix_seconds(m.clock.now());
    json::object d;
    d["id"] = r.e.lease_id;
    d["issue_time"] = format_unix(r.e.issue_time);
    d["expire_time"] = format_unix(r.e.expire_time);
    d["last_renewal"] =
        r.e.last_renewal_time > 0 ? json::value(format_unix(r.e.last_renewal_time)) : json::value(nullptr);
    d["renewable"] = r.e.renewable;
    d["ttl"] = std::max<int64_t>(0, r.e.expire_time - now);
    if (r.irrevocable || r.attempts > 0) {
      d["irrevocable"] = r.irrevocable;
      d["revoke_attempts"] = r.attempts;
      d["revoke_error"] = r.revoke_error;
    }
    return Response::with_data(std::move(d));
  }

  if (auto tail = tail_after({"leases/renew/", "renew/"})) {
    if (!write) return unimplemented("unsupported operation");
    ASSIGN_OR_RETURN(std::string id, field_string(req.data, "lease_id"));
    if (id.empty()) id = *tail;
    if (id.empty()) return invalid_argument("lease_id is required");
    ASSIGN_OR_RETURN(int64_t inc, field_duration(req.data, "increment", 0));
    if (inc < 0) return invalid_argument("increment must not be negative");
    return renew(id, inc);
  }

  if (auto tail = tail_after({"leases/revoke-prefix/", "revoke-prefix/", "leases/revoke-force/",
                              "revoke-force/"})) {
    if (!write) return unimplemented("unsupported operation");
    bool force = rest.find("revoke-force") != std::string::npos;
    if (tail->empty()) return invalid_argument("prefix is required");
    RETURN_IF_ERROR(revoke_prefix(*tail, force));
    return Response::empty();
  }

  if (auto tail = tail_after({"leases/revoke/", "revoke/"})) {
    if (!write) return unimplemented("unsupported operation");
    ASSIGN_OR_RETURN(std::string id, field_string(req.data, "lease_id"));
    if (id.empty()) id = *tail;
    if (id.empty()) return invalid_argument("lease_id is required");
    ASSIGN_OR_RETURN(bool sync, field_bool(req.data, "sync", true));
    RETURN_IF_ERROR(revoke(id, sync));
    Response r;
    if (!sync) r.status = 202;
    return r;
  }

  if (rest == "leases/tidy") {
    if (!write) return unimplemented("unsupported operation");
    RETURN_IF_ERROR(tidy());
    Response r;
    r.status = 202;
    return r;
  }

  if (rest == "leases/count") {
    if (req.op != Operation::kRead) return unimplemented("unsupported operation");
    ASSIGN_OR_RETURN(std::string type, field_string(req.data, "type", "all"));
    if (type != "irrevocable" && type != "all") {
      return invalid_argument("type must be \"irrevocable\" or \"all\"");
    }
    std::vector<std::string> ids;
    RETURN_IF_ERROR(m.collect("", ids));
    json::object counts;
    int64_t total = 0;
    for (const auto& id : ids) {
      std::string mount;
      if (type == "irrevocable") {
        ASSIGN_OR_RETURN(auto rec, m.load(id));
        if (!rec || !rec->irrevocable) continue;
        mount = rec->e.mount_path;
      } else {
        size_t slash = id.find('/');
        mount = slash == std::string::npos ? id : id.substr(0, slash + 1);
        if (mount == "auth/") {
          size_t s2 = id.find('/', slash + 1);
          mount = s2 == std::string::npos ? id : id.substr(0, s2 + 1);
        }
      }
      ++total;
      auto* c = counts.if_contains(mount);
      if (c != nullptr) {
        *c = c->as_int64() + 1;
      } else {
        counts[mount] = 1;
      }
    }
    return Response::with_data({{"lease_count", total}, {"counts", std::move(counts)}});
  }

  handled = false;
  return Response::empty();
}

Status LeaseManager::tidy() {
  Impl& m = *impl_;
  // 1. Index entries whose lease record is gone.
  size_t removed = 0;
  for (const char* index : {"exp/", "token/"}) {
    ASSIGN_OR_RETURN(auto groups, m.view.list(index));
    for (const auto& g : groups) {
      std::string dir = std::string(index) + g;
      ASSIGN_OR_RETURN(auto keys, m.view.list(dir));
      for (const auto& k : keys) {
        std::string id = unescape_id(k);
        ASSIGN_OR_RETURN(auto raw, m.view.get(Impl::id_key(id)));
        if (!raw) {
          RETURN_IF_ERROR(m.view.del(dir + k));
          ++removed;
        }
      }
    }
  }
  // 2. Leases missing from the time index: re-index and schedule them.
  std::vector<std::string> ids;
  RETURN_IF_ERROR(m.collect("", ids));
  size_t fixed = 0;
  for (const auto& id : ids) {
    ASSIGN_OR_RETURN(auto rec, m.load(id));
    if (!rec) continue;
    std::string ek = Impl::exp_key(rec->e.expire_time, id);
    ASSIGN_OR_RETURN(auto raw, m.view.get(ek));
    if (!raw) {
      RETURN_IF_ERROR(m.view.put(ek, ByteSpan()));
      ++fixed;
    }
    bool known = false;
    {
      std::lock_guard lock(m.mu);
      known = m.scheduled.count(id) != 0;
    }
    if (!known) m.schedule(id, rec->e.expire_time * 1000);
  }
  LOG_INFO(kComponent, "tidy: removed " << removed << " dangling index entries, re-indexed "
                                        << fixed << " of " << ids.size() << " leases");
  return ok_status();
}

}  // namespace custos::core
