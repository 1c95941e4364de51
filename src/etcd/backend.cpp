#include "etcd/backend.h"

#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>
#include <thread>

#include "base/cleanup.h"
#include "base/encoding.h"
#include "base/log.h"
#include "crypto/random.h"
#include "etcd/gateway.h"
#include "storage/key_filter.h"
#include "storage/keys.h"

namespace custos::etcd {
namespace {

namespace json = boost::json;
using storage::Op;

// etcd's gateway speaks gRPC status codes in its error bodies.
constexpr int64_t kGrpcInvalidArgument = 3;
constexpr int64_t kGrpcNotFound = 5;
constexpr int64_t kGrpcOutOfRange = 11;
constexpr int64_t kGrpcResourceExhausted = 8;
constexpr int64_t kGrpcFailedPrecondition = 9;
constexpr int64_t kGrpcUnavailable = 14;
constexpr int64_t kGrpcUnauthenticated = 16;

std::string b64(std::string_view s) {
  return base64_encode(as_bytes(s));
}

// Keys per page when listing: enough for most folders in one round trip, bounded memory.
constexpr int64_t kListPage = 1000;
// The key filter is rebuilt once it holds twice the keys it was built with, and at least this
// many, if deletes since reach a quarter of them.
constexpr size_t kMinFilterRebuild = size_t{1} << 16;
constexpr int64_t kFilterRetryNs = 5'000'000'000;

// What another holder wrote in the lock key, fit for an error message: printable ASCII, short.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

using SteadyClock = std::chrono::steady_clock;

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

class EtcdBackend final : public storage::Backend, public storage::HaLock {
 public:
  explicit EtcdBackend(EtcdOptions options)
      : opt_(std::move(options)), lock_key_(lock_key_for(opt_.prefix)) {
    opt_.tls.timeout = opt_.request_timeout;
  }

  ~EtcdBackend() override {
    stop_builder();
    stop_keepalive();
    revoke_lease();  // releases the lock at once rather than when the lease runs out
  }

  Status open() {
    if (opt_.endpoints.empty()) return invalid_argument("etcd: no endpoint given");
    if (opt_.prefix.empty() || opt_.prefix.back() != '/') {
      return invalid_argument("etcd: path must end with '/' (e.g. \"/custos/\")");
    }
    if (!opt_.username.empty()) RETURN_IF_ERROR(authenticate());
    if (opt_.ha_enabled) return ok_status();  // HaLock: the server competes for it
    return take_lock(crypto::random_uuid(), opt_.on_lock_lost);
  }

  Result<std::optional<Bytes>> get(std::string_view key) override {
    RETURN_IF_ERROR(storage::internal::validate_key(key));
    RETURN_IF_ERROR(usable());
    if (filter_says_absent(key)) return std::optional<Bytes>();
    const std::string k = full(key);
    ASSIGN_OR_RETURN(json::object r, call("/v3/kv/range", json::object{{"key", b64(k)}}));
    ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, parse_range_kvs(r));
    if (kvs.empty()) return std::optional<Bytes>();
    if (kvs.size() != 1 || kvs[0].key != k) return data_loss("etcd: range answered another key");
    return std::optional<Bytes>(std::move(kvs[0].value));
  }

  Status put(std::string_view key, ByteSpan value) override {
    Op op{Op::Kind::kPut, std::string(key), Bytes(value.begin(), value.end())};
    return transaction(std::span<const Op>(&op, 1));
  }

  Status del(std::string_view key) override {
    Op op{Op::Kind::kDelete, std::string(key), {}};
    return transaction(std::span<const Op>(&op, 1));
  }

  Result<std::vector<std::string>> list(std::string_view prefix) override {
    RETURN_IF_ERROR(usable());
    auto listed = list_once(prefix);
    // The pages are read at the first page's revision; if etcd compacted it away meanwhile,
    // start again at a fresh one.
    if (!listed.ok() && listed.status().message().find("compacted") != std::string::npos) {
      listed = list_once(prefix);
    }
    return listed;
  }

  // Group commit: concurrent writes share one etcd transaction (and one raft round), as
  // SQLite's batches share an fsync. The first writer to find no commit under way leads: it
  // sends everything queued (whole writes, in arrival order, while their keys fit in
  // max_txn_ops) and then tells each writer its outcome; a lone writer commits on its own
  // thread with no hand-off.
  Status transaction(std::span<const Op> ops) override {
    for (const auto& op : ops) RETURN_IF_ERROR(storage::internal::validate_key(op.key));
    if (ops.empty()) return ok_status();
    RETURN_IF_ERROR(writable());
    Pending me;
    me.ops = ops;
    me.keys = distinct_keys(std::vector<std::span<const Op>>{ops});
    if (me.keys > opt_.max_txn_ops) {
      return invalid_argument("etcd: a transaction of " + std::to_string(me.keys) +
                              " writes exceeds max_txn_ops (" + std::to_string(opt_.max_txn_ops) +
                              "); raise it here and etcd's --max-txn-ops together");
    }
    note_writes(ops);
    Cleanup done_writing([&] { forget_writes(ops, me.status); });
    std::unique_lock lock(commit_mu_);
    queue_.push_back(&me);
    while (!me.done) {
      if (committing_) {
        commit_cv_.wait(lock);
        continue;
      }
      committing_ = true;
      std::vector<Pending*> batch;
      size_t keys = 0;
      while (!queue_.empty() &&
             (batch.empty() || keys + queue_.front()->keys <= opt_.max_txn_ops)) {
        keys += queue_.front()->keys;
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
      lock.unlock();
      commit_batch(batch);
      lock.lock();
      committing_ = false;
      commit_cv_.notify_all();
    }
    return me.status;
  }

  std::string_view name() const override { return "etcd"; }
  bool calls_block() const override { return true; }
  size_t max_transaction_ops() const override { return opt_.max_txn_ops; }
  // A new epoch per lock term; 0 (cache nothing) while not holding the lock.
  // The term is read on both sides of `holding_`: a term being taken (epoch_ already counted,
  // the lock not yet held) must not pass for the one before it.
  uint64_t cache_epoch() const override {
    const uint64_t epoch = epoch_.load();
    if (!holding_.load()) return 0;
    return epoch_.load() == epoch ? epoch : 0;
  }
  storage::HaLock* ha_lock() override { return opt_.ha_enabled ? this : nullptr; }

  // storage::HaLock (ha_enabled).
  Status try_acquire(std::string_view id, std::function<void()> on_lost) override {
    std::lock_guard lock(acquire_mu_);
    if (holding_.load()) return ok_status();
    // Looked at first, so that a standby polling a held lock costs one read, not a lease.
    ASSIGN_OR_RETURN(std::optional<std::string> value, lock_value());
    if (value) return held_by(*value);
    return take_lock(std::string(id), std::move(on_lost));
  }

  Status acquire(std::string_view id, const std::function<bool()>& cancelled,
                 std::function<void()> on_lost) override {
    std::string reported;  // the last failure logged, so that an outage logs once
    for (;;) {
      if (cancelled()) return unavailable("etcd: stopped waiting for the lock");
      Status st = try_acquire(id, on_lost);
      if (st.ok()) return st;
      const std::string why = st.code() == Code::kFailedPrecondition ? "" : st.message();
      if (!why.empty() && why != reported) {
        LOG_WARN("etcd", "cannot compete for the lock (retrying): " << why);
      }
      reported = why;
      const auto until = SteadyClock::now() + opt_.ha_poll;
      while (SteadyClock::now() < until) {
        if (cancelled()) return unavailable("etcd: stopped waiting for the lock");
        std::this_thread::sleep_for(std::min<SteadyClock::duration>(std::chrono::milliseconds(50),
                                                                    until - SteadyClock::now()));
      }
    }
  }

  void release() override {
    std::lock_guard lock(acquire_mu_);
    // Given up on purpose: no on_lost, and writes are refused from now on.
    lost_.store(true);
    holding_.store(false);
    stop_keepalive();
    revoke_lease();
  }

  bool held() const override { return holding_.load() && usable().ok(); }

  Result<std::optional<std::string>> holder() override {
    ASSIGN_OR_RETURN(std::optional<std::string> value, lock_value());
    if (!value) return std::optional<std::string>();
    // "<host> pid <pid> (<id>)": the id is what the holder passed.
    const size_t open = value->rfind('(');
    if (open == std::string::npos || value->back() != ')') {
      return data_loss("etcd: the lock key holds \"" + printable(*value) +
                       "\", not a server's name");
    }
    return std::optional<std::string>(value->substr(open + 1, value->size() - open - 2));
  }

  // Lost once the lock is known gone, or once the lease may have run out: no renewal has
  // succeeded for 5/6 of its TTL, counted from when the last good one was sent (etcd counts
  // from when it arrived, later). So this server stops trusting its cache before any
  // successor can take the lock, even when etcd cannot tell it (a partition).
  Status usable() const override {
    // A standby reads etcd directly (cache_epoch() is 0), and may: it caches nothing.
    if (opt_.ha_enabled && !holding_.load()) return ok_status();
    if (lost_.load()) return lost_status();
    if (steady_ns() >= deadline_ns_.load()) {
      mark_lost("no lease renewal succeeded in time");
      return lost_status();
    }
    return ok_status();
  }

 private:
  std::string full(std::string_view key) const { return opt_.prefix + std::string(key); }

  // A caller's write waiting for a group commit; lives on the caller's stack until `done`.
  struct Pending {
    std::span<const Op> ops;
    size_t keys = 0;  // distinct keys
    bool done = false;
    Status status;
  };

  static size_t distinct_keys(const std::vector<std::span<const Op>>& writes) {
    std::set<std::string_view> keys;
    for (const auto& w : writes) {
      for (const Op& op : w) keys.insert(op.key);
    }
    return keys.size();
  }

  // Sends the writes as one fenced etcd transaction, in order. etcd refuses a transaction that
  // names one key twice; every op writes a single key, so applying only each key's last op
  // leaves the same end state (as if the writes had been applied one after the other).
  Status send_txn(const std::vector<std::span<const Op>>& writes) {
    std::map<std::string_view, std::pair<size_t, size_t>> last;
    for (size_t w = 0; w < writes.size(); ++w) {
      for (size_t i = 0; i < writes[w].size(); ++i) last[writes[w][i].key] = {w, i};
    }
    json::array success;
    for (size_t w = 0; w < writes.size(); ++w) {
      for (size_t i = 0; i < writes[w].size(); ++i) {
        const Op& op = writes[w][i];
        if (last[op.key] != std::pair{w, i}) continue;
        if (op.kind == Op::Kind::kPut) {
          success.push_back(
              json::object{{"request_put", json::object{{"key", b64(full(op.key))},
                                                        {"value", base64_encode(op.value)}}}});
        } else {
          success.push_back(
              json::object{{"request_delete_range", json::object{{"key", b64(full(op.key))}}}});
        }
      }
    }
    // The fence: applied only while the lock key is still the one this server created.
    std::string revision;
    uint64_t epoch = 0;
    {
      std::lock_guard lock(term_mu_);
      revision = lock_revision_;
      epoch = epoch_.load();
    }
    if (revision.empty()) return lost_status();  // a term still being taken
    json::array compare{json::object{{"key", b64(lock_key_)},
                                     {"target", "CREATE"},
                                     {"result", "EQUAL"},
                                     {"create_revision", revision}}};
    ASSIGN_OR_RETURN(json::object r,
                     call("/v3/kv/txn", json::object{{"compare", std::move(compare)},
                                                     {"success", std::move(success)}}));
    const auto* ok = r.if_contains("succeeded");
    if (ok && ok->is_bool() && ok->as_bool()) return ok_status();
    // Only if the term this write was fenced with is still the current one: a write of an
    // earlier term (HA) must not end a later one.
    if (epoch == epoch_.load()) mark_lost("a write found the lock key no longer this server's");
    return lost_status();
  }

  // Commits a batch and tells each writer. A batch that etcd refuses for a reason of its own
  // (a value over --max-request-bytes, say) is retried write by write, so one writer's
  // refusal is not its neighbours'; a lost lock or an unreachable etcd fails them all.
  void commit_batch(const std::vector<Pending*>& batch) {
    std::vector<std::span<const Op>> writes;
    for (const Pending* p : batch) writes.push_back(p->ops);
    Status st = writable();
    if (st.ok()) st = send_txn(writes);
    const bool own_fault = !st.ok() && batch.size() > 1 && st.code() != Code::kUnavailable &&
                           st.code() != Code::kDeadlineExceeded;
    for (Pending* p : batch) p->status = own_fault ? send_txn({p->ops}) : st;
    std::lock_guard lock(commit_mu_);
    for (Pending* p : batch) p->done = true;
  }

  // ---- the key filter (docs/storage-etcd.md, "Key filter") ----
  // While this server holds the lock, nobody else writes under the prefix (the fence), so a
  // filter over the keys there, built once per term, answers reads of keys never written
  // without a round trip: KV v2 reads a new path's metadata before writing it.

  // A write's keys, from before it is sent until its outcome is known: a filter built
  // meanwhile starts with them (the write may land after the build's scan passed its key).
  void note_writes(std::span<const Op> ops) {
    std::lock_guard lock(filter_mu_);
    for (const Op& op : ops) {
      if (op.kind == Op::Kind::kPut) {
        ++inflight_[op.key];
        if (filter_) filter_->add(op.key);
      } else {
        ++deletes_since_build_;
      }
    }
    // Keys created and deleted would grow the filter for ever: build a new one at the next read.
    if (filter_ready_ && filter_->keys_added() >= rebuild_at_ &&
        deletes_since_build_ >= filter_->keys_added() / 4) {
      filter_epoch_ = 0;
    }
  }

  // A failed write may still land: etcd can apply a transaction whose answer was lost (a
  // timeout). Its keys stay "maybe written" for every later build while its term can last: the
  // fence keeps it from landing once a later term's lock key exists, and a build for a later
  // term scans after that.
  void forget_writes(std::span<const Op> ops, const Status& outcome) {
    const uint64_t epoch = epoch_.load();
    std::lock_guard lock(filter_mu_);
    for (const Op& op : ops) {
      if (op.kind != Op::Kind::kPut) continue;
      auto it = inflight_.find(op.key);
      if (it != inflight_.end() && --it->second == 0) inflight_.erase(it);
      if (!outcome.ok()) maybe_written_[op.key] = epoch;
    }
  }

  // True only if `key` is certainly absent. The first read of a term (or after churn) starts
  // the build of the term's filter on the builder thread: every key under the prefix at one
  // revision, plus every key written since the build started or in flight then. Until it is
  // ready, reads ask etcd.
  bool filter_says_absent(std::string_view key) {
    const uint64_t epoch = cache_epoch();
    if (epoch == 0) return false;  // a standby, or a term being taken: etcd answers
    std::lock_guard lock(filter_mu_);
    if (filter_epoch_ == epoch && filter_ready_) return !filter_->may_contain(key);
    if (filter_building_ || filter_stop_ || steady_ns() < filter_retry_ns_) return false;
    filter_building_ = true;
    filter_ready_ = false;
    filter_epoch_ = epoch;
    filter_.emplace(filter_ ? filter_->keys_added() / 2 : 0);
    for (const auto& [k, n] : inflight_) filter_->add(k);
    for (auto it = maybe_written_.begin(); it != maybe_written_.end();) {
      if (it->second < epoch) {
        it = maybe_written_.erase(it);  // its term ended before this one's lock existed
      } else {
        filter_->add(it->first);
        ++it;
      }
    }
    deletes_since_build_ = 0;
    if (!builder_.joinable()) {
      try {
        builder_ = std::thread([this] { builder_loop(); });
      } catch (const std::system_error&) {
        filter_building_ = false;  // no thread: no filter, and reads go to etcd
        filter_epoch_ = 0;
        filter_stop_ = true;
        return false;
      }
    }
    filter_cv_.notify_one();
    return false;
  }

  // The builder thread: scans for the build filter_says_absent() started, off the request path.
  void builder_loop() {
    std::unique_lock lock(filter_mu_);
    for (;;) {
      filter_cv_.wait(lock, [&] { return filter_stop_ || filter_building_; });
      if (filter_stop_) return;
      const uint64_t epoch = filter_epoch_;
      lock.unlock();
      Status st = scan_keys([&](const std::vector<std::string_view>& page) {
        // A term that ended (the lock lost or given up) stops its scan: the next term's build
        // waits for this one.
        if (cache_epoch() != epoch) return false;
        std::lock_guard l(filter_mu_);
        if (filter_stop_) return false;
        for (std::string_view k : page) filter_->add(k);
        return true;
      });
      lock.lock();
      filter_building_ = false;
      // Usable only for the term it was built in. A failed scan is tried again by a read, but
      // not for 5 s, so a steady failure (a compacted revision, a denied range) is no loop.
      if (!st.ok() || filter_epoch_ != epoch || cache_epoch() != epoch) {
        filter_epoch_ = 0;
        if (st.ok() || filter_stop_ || cache_epoch() != epoch) continue;
        filter_retry_ns_ = steady_ns() + kFilterRetryNs;
        lock.unlock();
        LOG_WARN("etcd", "building the key filter (reads ask etcd meanwhile): " << st.message());
        lock.lock();
        continue;
      }
      filter_ready_ = true;
      rebuild_at_ = std::max<size_t>(kMinFilterRebuild, 2 * filter_->keys_added());
    }
  }

  void stop_builder() {
    {
      std::lock_guard lock(filter_mu_);
      filter_stop_ = true;
    }
    filter_cv_.notify_all();
    if (builder_.joinable()) builder_.join();
  }

  struct KeyPage {
    std::vector<KeyValue> kvs;  // keys only, in order
    bool more = false;          // keys past the last one remain in the range
  };

  // One page of the keys in [start, end), at `revision`: the first page sets it, and every later
  // page of the same listing reads at it, so the pages make one consistent snapshot.
  Result<KeyPage> key_page(const std::string& start, const std::string& end,
                           std::string& revision) {
    json::object req{
        {"key", b64(start)}, {"range_end", b64(end)}, {"keys_only", true}, {"limit", kListPage}};
    if (!revision.empty()) req["revision"] = revision;
    ASSIGN_OR_RETURN(json::object r, call("/v3/kv/range", req));
    if (revision.empty()) {
      const auto* h = r.if_contains("header");
      if (h && h->is_object()) revision = string_field(h->as_object(), "revision");
      if (revision.empty()) return internal_error("etcd: range answered without a revision");
    }
    KeyPage page;
    ASSIGN_OR_RETURN(page.kvs, parse_range_kvs(r));
    for (size_t i = 0; i < page.kvs.size(); ++i) {
      const std::string& k = page.kvs[i].key;
      // In order, within the range asked for: anything else could loop or mislead.
      if (k < start || k >= end || (i > 0 && k <= page.kvs[i - 1].key)) {
        return data_loss("etcd: range answer out of order or out of range");
      }
    }
    const auto* more = r.if_contains("more");
    page.more = more && more->is_bool() && more->as_bool();
    return page;
  }

  // Every key under the prefix, page by page at the first page's revision, while `each` asks
  // for more.
  Status scan_keys(const std::function<bool(const std::vector<std::string_view>&)>& each) {
    const std::string& from = opt_.prefix;
    auto end = storage::internal::prefix_successor(from);
    if (!end) return internal_error("etcd: the prefix has no successor");
    std::string start = from;
    std::string revision;
    for (;;) {
      ASSIGN_OR_RETURN(KeyPage page, key_page(start, *end, revision));
      if (page.kvs.empty()) break;
      std::vector<std::string_view> keys;
      keys.reserve(page.kvs.size());
      for (const auto& kv : page.kvs) keys.push_back(std::string_view(kv.key).substr(from.size()));
      if (!each(keys)) return unavailable("etcd: key scan stopped");
      if (!page.more) break;
      start = page.kvs.back().key + '\0';
    }
    return ok_status();
  }

  Result<std::vector<std::string>> list_once(std::string_view prefix) {
    const std::string from = full(prefix);
    auto end = storage::internal::prefix_successor(from);
    if (!end) return internal_error("etcd: the prefix has no successor");
    std::vector<std::string> out;
    std::string start = from;
    std::string revision;  // of the first page, for every later one
    for (;;) {
      ASSIGN_OR_RETURN(KeyPage page, key_page(start, *end, revision));
      if (page.kvs.empty()) break;
      std::string skip_to;
      for (const auto& kv : page.kvs) {
        const std::string& k = kv.key;
        if (!skip_to.empty() && k < skip_to) continue;  // inside a folder already listed
        auto child = storage::internal::immediate_child(k, from);
        out.emplace_back(child.name);
        skip_to = child.folder ? storage::internal::skip_past_folder(from, child.name) : "";
      }
      if (!page.more) break;
      // The next page starts after the last key, or past the folder it was in.
      start = skip_to.empty() ? page.kvs.back().key + '\0' : skip_to;
    }
    return out;
  }

  void mark_lost(const char* why) const {
    if (lost_.exchange(true)) return;
    holding_.store(false);
    if (opt_.ha_enabled) {
      LOG_WARN("etcd", "lost the storage lock " << lock_key_ << ": " << why
                                                << "; writes are refused until it is taken again");
    } else {
      LOG_ERROR("etcd", "lost the storage lock " << lock_key_ << ": " << why
                                                 << "; every further call is refused");
    }
    std::function<void()> on_lost;
    {
      std::lock_guard lock(term_mu_);
      on_lost = on_lost_;
    }
    if (on_lost) on_lost();
  }

  Status lost_status() const {
    if (opt_.ha_enabled) {
      return unavailable(
          "etcd: this server no longer holds the storage lock (its lease lapsed, or another "
          "server took it)");
    }
    return unavailable(
        "etcd: this server lost its storage lock (its lease lapsed, or another server took it); "
        "restart it");
  }

  // Writes need the lock: refused on a standby, and once it is lost.
  Status writable() const {
    if (!holding_.load()) {
      if (opt_.ha_enabled && !lost_.load()) {
        return unavailable("etcd: this server is a standby: only the active server writes");
      }
      return lost_status();
    }
    return usable();
  }

  std::string token() {
    std::lock_guard lock(auth_mu_);
    return auth_token_;
  }

  Status authenticate() {
    ASSIGN_OR_RETURN(json::object r, call_once_each("/v3/auth/authenticate",
                                                    json::object{{"name", opt_.username},
                                                                 {"password", opt_.password}},
                                                    /*with_token=*/false));
    std::string t = string_field(r, "token");
    if (t.empty()) return unauthenticated("etcd: authentication returned no token");
    std::lock_guard lock(auth_mu_);
    auth_token_ = std::move(t);
    return ok_status();
  }

  std::unique_ptr<net::HttpClient> take_client() {
    std::lock_guard lock(pool_mu_);
    if (pool_.empty()) return std::make_unique<net::HttpClient>(opt_.tls);
    auto c = std::move(pool_.back());
    pool_.pop_back();
    return c;
  }
  void give_client(std::unique_ptr<net::HttpClient> c) {
    std::lock_guard lock(pool_mu_);
    pool_.push_back(std::move(c));
  }

  // One request to the first endpoint that answers, starting with the one that answered last.
  Result<json::object> call_once_each(std::string_view api, const json::object& body,
                                      bool with_token, net::HttpClient* own = nullptr) {
    const std::string text = json::serialize(body);
    // The renewal thread brings its own client (a shorter timeout); everyone else borrows one.
    std::unique_ptr<net::HttpClient> borrowed = own ? nullptr : take_client();
    net::HttpClient* client = own ? own : borrowed.get();
    auto give_back = [&] {
      if (borrowed) give_client(std::move(borrowed));
    };
    const size_t n = opt_.endpoints.size();
    const size_t first = preferred_.load();
    Status last = unavailable("etcd: no endpoint");
    for (size_t i = 0; i < n; ++i) {
      const size_t idx = (first + i) % n;
      std::vector<net::Header> headers{{"Content-Type", "application/json"}};
      if (with_token) {
        std::string t = token();
        if (!t.empty()) headers.push_back({"Authorization", std::move(t)});
      }
      auto resp = client->request("POST", opt_.endpoints[idx] + std::string(api), headers, text);
      if (!resp.ok()) {
        last = unavailable("etcd " + opt_.endpoints[idx] + ": " + resp.status().message());
        continue;
      }
      boost::system::error_code ec;
      json::value v = json::parse(resp->body, ec);
      if (ec || !v.is_object()) {
        last = unavailable("etcd " + opt_.endpoints[idx] + ": HTTP " +
                           std::to_string(resp->status) + " with a body that is not JSON");
        continue;
      }
      json::object o = std::move(v.as_object());
      if (resp->status == 200) {
        preferred_.store(idx);
        give_back();
        return o;
      }
      int64_t code = 0;
      if (const auto* c = o.if_contains("code"); c && c->is_int64()) code = c->as_int64();
      std::string message = "etcd: " + string_field(o, "message");
      if (code == kGrpcUnavailable) {  // no leader, leader changed: another member may serve
        last = unavailable(message);
        continue;
      }
      give_back();
      switch (code) {
        case kGrpcUnauthenticated:
          return unauthenticated(message);
        case kGrpcInvalidArgument:
          return invalid_argument(message);
        case kGrpcFailedPrecondition:
          return failed_precondition(message);
        case kGrpcNotFound:
          return not_found(message);
        case kGrpcOutOfRange:  // "required revision has been compacted": list() starts again
          return failed_precondition(message);
        case kGrpcResourceExhausted:
          return resource_exhausted(message);
        default:
          return internal_error(message + " (code " + std::to_string(code) + ")");
      }
    }
    give_back();
    return last;
  }

  Result<json::object> call(std::string_view api, const json::object& body,
                            net::HttpClient* own = nullptr) {
    const std::string used = token();
    auto r = call_once_each(api, body, true, own);
    if (r.ok() || opt_.username.empty()) return r;
    // An expired token (etcd's simple tokens expire when idle), or one issued before any change
    // to etcd's users and roles ("revision of auth store is old"): authenticate once more, one
    // thread for all, and retry.
    const std::string& m = r.status().message();
    bool auth = r.status().code() == Code::kUnauthenticated ||
                (r.status().code() == Code::kInvalidArgument &&
                 (m.find("auth") != std::string::npos || m.find("token") != std::string::npos));
    if (!auth) return r;
    {
      std::lock_guard lock(reauth_mu_);
      if (token() == used) RETURN_IF_ERROR(authenticate());
    }
    return call_once_each(api, body, true, own);
  }

  // The lock key's value, if the key exists.
  Result<std::optional<std::string>> lock_value() {
    ASSIGN_OR_RETURN(json::object r, call("/v3/kv/range", json::object{{"key", b64(lock_key_)}}));
    ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, parse_range_kvs(r));
    if (kvs.empty()) return std::optional<std::string>();
    return std::optional<std::string>(std::string(kvs[0].value.begin(), kvs[0].value.end()));
  }

  Status held_by(const std::string& value) const {
    return failed_precondition("etcd: the storage at " + opt_.prefix + " is in use by " +
                               printable(value) + " (lock " + lock_key_ +
                               "); one server at a time may use it");
  }

  // Takes the lock for a new term, naming this server "<host> pid <pid> (<id>)".
  Status take_lock(const std::string& id, std::function<void()> on_lost) {
    const auto ttl = static_cast<int64_t>(opt_.lock_ttl.count());
    stop_keepalive();  // an earlier term's renewals, which ended when that term was lost
    const int64_t sent = steady_ns();
    ASSIGN_OR_RETURN(json::object granted, call("/v3/lease/grant", json::object{{"TTL", ttl}}));
    const std::string lease = string_field(granted, "ID");
    if (lease.empty()) return internal_error("etcd: lease grant returned no ID");
    {
      std::lock_guard lock(term_mu_);
      lease_id_ = lease;
      lock_revision_.clear();
      on_lost_ = std::move(on_lost);
      // A new term from here: an earlier term's write that fails from now on is not this one's
      // loss (send_txn compares terms).
      epoch_.fetch_add(1);
    }
    lost_.store(false);
    deadline_ns_.store(sent + safe_span_ns());
    // Renewing from now on: taking the lock below may take several requests.
    start_keepalive();
    auto fail = [this](Status st) {
      lost_.store(true);
      stop_keepalive();
      revoke_lease();
      return st;
    };
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    const std::string holder =
        std::string(host) + " pid " + std::to_string(::getpid()) + " (" + id + ")";
    json::object read_lock{{"request_range", json::object{{"key", b64(lock_key_)}}}};
    json::object txn{
        {"compare", json::array{json::object{{"key", b64(lock_key_)},
                                             {"target", "CREATE"},
                                             {"result", "EQUAL"},
                                             {"create_revision", "0"}}}},
        // The key's revision is read in the same transaction that creates it: no one else's
        // can slip in between.
        {"success", json::array{json::object{{"request_put", json::object{{"key", b64(lock_key_)},
                                                                          {"value", b64(holder)},
                                                                          {"lease", lease}}}},
                                read_lock}},
        {"failure", json::array{read_lock}}};
    auto r = call("/v3/kv/txn", txn);
    if (!r.ok()) return fail(r.status());
    // The lock key as the transaction saw it: the last response either way.
    auto seen = parse_txn_last_range(*r);
    if (!seen.ok()) return fail(seen.status());
    std::optional<KeyValue> lock;
    if (!seen->empty()) lock = std::move(seen->front());
    // Ours if it is bound to our lease: taken by this transaction, or by an earlier attempt of
    // it whose answer was lost before a retry on another member.
    if (!lock || lock->lease != lease) {
      return fail(lock ? held_by(std::string(lock->value.begin(), lock->value.end()))
                       : held_by("another server"));
    }
    if (lock->create_revision.empty())
      return fail(internal_error("etcd: lock key without a revision"));
    {
      std::lock_guard l(term_mu_);
      lock_revision_ = lock->create_revision;
    }
    holding_.store(true);
    LOG_INFO("etcd", "holding the storage lock " << lock_key_ << " (lease " << ttl << " s)");
    return ok_status();
  }

  void start_keepalive() {
    {
      std::lock_guard lock(ka_mu_);
      ka_stop_ = false;
    }
    keepalive_ = std::thread([this] { keepalive_loop(); });
  }

  void stop_keepalive() {
    {
      std::lock_guard lock(ka_mu_);
      ka_stop_ = true;
    }
    ka_cv_.notify_all();
    if (keepalive_.joinable()) keepalive_.join();
  }

  void revoke_lease() {
    std::string lease;
    {
      std::lock_guard lock(term_mu_);
      lease.swap(lease_id_);
    }
    if (lease.empty()) return;
    auto r = call("/v3/lease/revoke", json::object{{"ID", lease}});
    if (!r.ok() && r.status().code() != Code::kNotFound) {
      LOG_WARN("etcd", "could not revoke the lock's lease: " << r.status().message());
    }
  }

  // How long after sending a renewal the lease is surely still alive: 5/6 of its TTL.
  int64_t safe_span_ns() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(opt_.lock_ttl).count() * 5 / 6;
  }

  // Renews the lease three times per TTL, sooner again after a failure, with a client whose
  // timeout fits in that period (a member that hangs must not eat the lease). A renewal that
  // finds the lease gone means the lock is lost; renewals that keep failing let usable()'s
  // deadline pass, which counts as lost too.
  void keepalive_loop() {
    using std::chrono::milliseconds;
    const auto ttl = std::chrono::duration_cast<milliseconds>(opt_.lock_ttl);
    const milliseconds period = std::max(milliseconds(200), ttl / 3);
    const milliseconds retry = std::max(milliseconds(100), std::min(milliseconds(1000), ttl / 10));
    net::ClientOptions o = opt_.tls;
    o.timeout = std::max(std::chrono::seconds(1),
                         std::chrono::duration_cast<std::chrono::seconds>(opt_.lock_ttl) / 3);
    net::HttpClient client(o);
    milliseconds wait = period;
    std::unique_lock lock(ka_mu_);
    // Until stopped, or until this term's lock is lost (HA: a later term starts its own).
    while (!ka_stop_ && !lost_.load()) {
      ka_cv_.wait_for(lock, wait, [this] { return ka_stop_; });
      if (ka_stop_) break;
      lock.unlock();
      wait = renew(client) ? period : retry;
      (void)usable();  // marks the lock lost once the deadline passed
      lock.lock();
    }
  }

  // One renewal; false when it should be retried soon.
  bool renew(net::HttpClient& client) {
    if (lost_.load()) return true;
    std::string lease;
    {
      std::lock_guard lock(term_mu_);
      lease = lease_id_;
    }
    const int64_t sent = steady_ns();
    auto r = call("/v3/lease/keepalive", json::object{{"ID", lease}}, &client);
    if (!r.ok()) {
      if (r.status().code() == Code::kNotFound) {
        mark_lost("the lock's lease is gone");
        return true;
      }
      LOG_WARN("etcd", "lease renewal failed (retrying): " << r.status().message());
      return false;
    }
    // The gateway streams answers with status 200, errors included.
    const auto* result = r->if_contains("result");
    if (!result || !result->is_object()) {
      LOG_WARN("etcd", "lease renewal answered without a result (retrying)");
      return false;
    }
    // A TTL of 0 (omitted, as zero values are) or below: the lease expired.
    std::string ttl = string_field(result->as_object(), "TTL");
    if (ttl.empty() || ttl == "0" || ttl[0] == '-') {
      mark_lost("the lock's lease expired");
      return true;
    }
    int64_t d = sent + safe_span_ns();
    int64_t cur = deadline_ns_.load();
    while (d > cur && !deadline_ns_.compare_exchange_weak(cur, d)) {
    }
    return true;
  }

  EtcdOptions opt_;
  const std::string lock_key_;
  // The current lock term: its lease, the lock key's creation revision (the fence), and whom
  // to tell if it is lost. Guarded by term_mu_.
  mutable std::mutex term_mu_;
  std::string lease_id_;
  std::string lock_revision_;
  std::function<void()> on_lost_;
  std::atomic<uint64_t> epoch_{0};  // lock terms taken (cache_epoch)
  mutable std::atomic<bool> holding_{false};
  mutable std::atomic<bool> lost_{false};
  std::mutex acquire_mu_;                // one try_acquire/release at a time
  std::atomic<int64_t> deadline_ns_{0};  // steady clock: see usable()
  std::atomic<size_t> preferred_{0};

  std::mutex pool_mu_;
  std::vector<std::unique_ptr<net::HttpClient>> pool_;
  std::mutex auth_mu_;
  std::string auth_token_;
  std::mutex reauth_mu_;  // one re-authentication at a time

  std::mutex commit_mu_;
  std::condition_variable commit_cv_;
  std::deque<Pending*> queue_;  // guarded by commit_mu_
  bool committing_ = false;     // guarded by commit_mu_

  std::mutex filter_mu_;
  std::optional<storage::internal::KeyFilter> filter_;  // guarded by filter_mu_, as below
  uint64_t filter_epoch_ = 0;  // the term filter_ belongs to; 0: build one at the next read
  bool filter_ready_ = false;  // its scan completed
  bool filter_building_ = false;
  bool filter_stop_ = false;
  int64_t filter_retry_ns_ = 0;  // steady clock: no new build before then (a scan failed)
  std::condition_variable filter_cv_;                 // a build to run, or the builder to stop
  std::map<std::string, int, std::less<>> inflight_;  // keys of puts not yet answered
  std::map<std::string, uint64_t, std::less<>> maybe_written_;  // failed puts' keys: their term
  size_t deletes_since_build_ = 0;
  size_t rebuild_at_ = 0;

  std::mutex ka_mu_;
  std::condition_variable ka_cv_;
  bool ka_stop_ = false;  // guarded by ka_mu_
  std::thread keepalive_;
  std::thread builder_;  // started by the first build
};

}  // namespace

std::string lock_key_for(const std::string& prefix) {
  std::string base = prefix;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + ".lock";
}

Result<std::unique_ptr<storage::Backend>> open_etcd(const EtcdOptions& options) {
  auto b = std::make_unique<EtcdBackend>(options);
  RETURN_IF_ERROR(b->open());
  return std::unique_ptr<storage::Backend>(std::move(b));
}

}  // namespace custos::etcd
