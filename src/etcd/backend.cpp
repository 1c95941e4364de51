#include "etcd/backend.h"

#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "base/encoding.h"
#include "base/log.h"
#include "crypto/random.h"
#include "storage/keys.h"

namespace custos::etcd {
namespace {

namespace json = boost::json;
using storage::Op;

// etcd's gateway speaks gRPC status codes in its error bodies.
constexpr int64_t kGrpcInvalidArgument = 3;
constexpr int64_t kGrpcNotFound = 5;
constexpr int64_t kGrpcResourceExhausted = 8;
constexpr int64_t kGrpcFailedPrecondition = 9;
constexpr int64_t kGrpcUnavailable = 14;
constexpr int64_t kGrpcUnauthenticated = 16;

std::string b64(std::string_view s) {
  return base64_encode(as_bytes(s));
}

// Keys per page when listing: enough for most folders in one round trip, bounded memory.
constexpr int64_t kListPage = 1000;

std::string string_field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : "";
}

class EtcdBackend final : public storage::Backend {
 public:
  explicit EtcdBackend(EtcdOptions options)
      : opt_(std::move(options)), lock_key_(lock_key_for(opt_.prefix)) {
    opt_.tls.timeout = opt_.request_timeout;
  }

  ~EtcdBackend() override {
    {
      std::lock_guard lock(ka_mu_);
      stopping_ = true;
    }
    ka_cv_.notify_all();
    if (keepalive_.joinable()) keepalive_.join();
    if (!lease_id_.empty()) {
      // Releases the lock at once rather than when the lease runs out.
      auto r = call("/v3/lease/revoke", json::object{{"ID", lease_id_}});
      if (!r.ok()) LOG_WARN("etcd", "could not revoke the lock's lease: " << r.status().message());
    }
  }

  Status open() {
    if (opt_.endpoints.empty()) return invalid_argument("etcd: no endpoint given");
    if (opt_.prefix.empty() || opt_.prefix.back() != '/') {
      return invalid_argument("etcd: path must end with '/' (e.g. \"/custos/\")");
    }
    if (!opt_.username.empty()) RETURN_IF_ERROR(authenticate());
    return take_lock();
  }

  Result<std::optional<Bytes>> get(std::string_view key) override {
    RETURN_IF_ERROR(storage::internal::validate_key(key));
    if (lost_.load()) return lost_status();
    ASSIGN_OR_RETURN(json::object r, call("/v3/kv/range", json::object{{"key", b64(full(key))}}));
    const auto* kvs = r.if_contains("kvs");
    if (!kvs || !kvs->is_array() || kvs->as_array().empty()) return std::optional<Bytes>();
    const auto& kv = kvs->as_array().front();
    if (!kv.is_object()) return data_loss("etcd: malformed range response");
    // The gateway omits empty byte fields: a key with an empty value has no "value".
    std::string value = string_field(kv.as_object(), "value");
    if (value.empty()) return std::optional<Bytes>(Bytes{});
    auto decoded = base64_decode(value);
    if (!decoded.ok()) return data_loss("etcd: malformed value in range response");
    return std::optional<Bytes>(std::move(*decoded));
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
    if (lost_.load()) return lost_status();
    const std::string from = full(prefix);
    auto end = storage::internal::prefix_successor(from);
    if (!end) return internal_error("etcd: the prefix has no successor");
    std::vector<std::string> out;
    std::string start = from;
    for (;;) {
      json::object req{
          {"key", b64(start)}, {"range_end", b64(*end)}, {"keys_only", true}, {"limit", kListPage}};
      ASSIGN_OR_RETURN(json::object r, call("/v3/kv/range", req));
      const auto* kvs = r.if_contains("kvs");
      if (!kvs || !kvs->is_array() || kvs->as_array().empty()) break;
      std::string last_key;
      std::string skip_to;
      for (const auto& kv : kvs->as_array()) {
        if (!kv.is_object()) return data_loss("etcd: malformed range response");
        auto key = base64_decode(string_field(kv.as_object(), "key"));
        if (!key.ok()) return data_loss("etcd: malformed key in range response");
        std::string k(as_string_view(*key));
        if (k.compare(0, from.size(), from) != 0) return data_loss("etcd: key outside the range");
        last_key = k;
        if (!skip_to.empty() && k < skip_to) continue;  // inside a folder already listed
        auto child = storage::internal::immediate_child(k, from);
        out.emplace_back(child.name);
        skip_to = child.folder ? storage::internal::skip_past_folder(from, child.name) : "";
      }
      const auto* more = r.if_contains("more");
      if (!more || !more->is_bool() || !more->as_bool()) break;
      // The next page starts after the last key, or past the folder it was in.
      start = skip_to.empty() ? last_key + '\0' : skip_to;
    }
    return out;
  }

  Status transaction(std::span<const Op> ops) override {
    for (const auto& op : ops) RETURN_IF_ERROR(storage::internal::validate_key(op.key));
    if (ops.empty()) return ok_status();
    if (lost_.load()) return lost_status();
    // etcd refuses a transaction that names one key twice. Every op writes a single key, so
    // applying only each key's last op leaves the same end state.
    std::map<std::string_view, size_t> last;
    for (size_t i = 0; i < ops.size(); ++i) last[ops[i].key] = i;
    if (last.size() > opt_.max_txn_ops) {
      return invalid_argument("etcd: a transaction of " + std::to_string(last.size()) +
                              " writes exceeds max_txn_ops (" + std::to_string(opt_.max_txn_ops) +
                              "); raise it here and etcd's --max-txn-ops together");
    }
    json::array success;
    for (size_t i = 0; i < ops.size(); ++i) {
      const Op& op = ops[i];
      if (last[op.key] != i) continue;
      if (op.kind == Op::Kind::kPut) {
        success.push_back(
            json::object{{"request_put", json::object{{"key", b64(full(op.key))},
                                                      {"value", base64_encode(op.value)}}}});
      } else {
        success.push_back(
            json::object{{"request_delete_range", json::object{{"key", b64(full(op.key))}}}});
      }
    }
    // The fence: applied only while the lock key is still the one this server created.
    json::array compare{json::object{{"key", b64(lock_key_)},
                                     {"target", "CREATE"},
                                     {"result", "EQUAL"},
                                     {"create_revision", lock_revision_}}};
    ASSIGN_OR_RETURN(json::object r,
                     call("/v3/kv/txn", json::object{{"compare", std::move(compare)},
                                                     {"success", std::move(success)}}));
    const auto* ok = r.if_contains("succeeded");
    if (ok && ok->is_bool() && ok->as_bool()) return ok_status();
    mark_lost("a write found the lock key no longer this server's");
    return lost_status();
  }

  std::string_view name() const override { return "etcd"; }
  bool calls_block() const override { return true; }

 private:
  std::string full(std::string_view key) const { return opt_.prefix + std::string(key); }

  void mark_lost(const char* why) {
    if (lost_.exchange(true)) return;
    LOG_ERROR("etcd", "lost the storage lock " << lock_key_ << ": " << why
                                               << "; every further call is refused");
    if (opt_.on_lock_lost) opt_.on_lock_lost();
  }

  static Status lost_status() {
    return unavailable(
        "etcd: this server lost its storage lock (its lease lapsed, or another server took it); "
        "restart it");
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
                                      bool with_token) {
    const std::string text = json::serialize(body);
    auto client = take_client();
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
        give_client(std::move(client));
        return o;
      }
      int64_t code = 0;
      if (const auto* c = o.if_contains("code"); c && c->is_int64()) code = c->as_int64();
      std::string message = "etcd: " + string_field(o, "message");
      if (code == kGrpcUnavailable) {  // no leader, leader changed: another member may serve
        last = unavailable(message);
        continue;
      }
      give_client(std::move(client));
      switch (code) {
        case kGrpcUnauthenticated:
          return unauthenticated(message);
        case kGrpcInvalidArgument:
          return invalid_argument(message);
        case kGrpcFailedPrecondition:
          return failed_precondition(message);
        case kGrpcNotFound:
          return not_found(message);
        case kGrpcResourceExhausted:
          return resource_exhausted(message);
        default:
          return internal_error(message + " (code " + std::to_string(code) + ")");
      }
    }
    give_client(std::move(client));
    return last;
  }

  Result<json::object> call(std::string_view api, const json::object& body) {
    auto r = call_once_each(api, body, true);
    if (r.ok() || r.status().code() != Code::kUnauthenticated || opt_.username.empty()) return r;
    // The auth token expired (etcd's simple tokens do after 5 minutes idle): once more.
    RETURN_IF_ERROR(authenticate());
    return call_once_each(api, body, true);
  }

  Status take_lock() {
    const auto ttl = static_cast<int64_t>(opt_.lock_ttl.count());
    ASSIGN_OR_RETURN(json::object lease, call("/v3/lease/grant", json::object{{"TTL", ttl}}));
    lease_id_ = string_field(lease, "ID");
    if (lease_id_.empty()) return internal_error("etcd: lease grant returned no ID");
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    const std::string holder = std::string(host) + " pid " + std::to_string(::getpid()) + " (" +
                               crypto::random_uuid() + ")";
    json::object txn{
        {"compare", json::array{json::object{{"key", b64(lock_key_)},
                                             {"target", "CREATE"},
                                             {"result", "EQUAL"},
                                             {"create_revision", "0"}}}},
        {"success", json::array{json::object{{"request_put", json::object{{"key", b64(lock_key_)},
                                                                          {"value", b64(holder)},
                                                                          {"lease", lease_id_}}}}}},
        {"failure",
         json::array{json::object{{"request_range", json::object{{"key", b64(lock_key_)}}}}}}};
    ASSIGN_OR_RETURN(json::object r, call("/v3/kv/txn", txn));
    const auto* ok = r.if_contains("succeeded");
    if (!ok || !ok->is_bool() || !ok->as_bool()) {
      std::string other = "another server";
      const auto* responses = r.if_contains("responses");
      if (responses && responses->is_array() && !responses->as_array().empty()) {
        try {
          const auto& kv = responses->as_array()
                               .front()
                               .as_object()
                               .at("response_range")
                               .as_object()
                               .at("kvs")
                               .as_array()
                               .front()
                               .as_object();
          auto v = base64_decode(string_field(kv, "value"));
          if (v.ok()) other = std::string(as_string_view(*v));
        } catch (const std::exception&) {
        }
      }
      (void)call("/v3/lease/revoke", json::object{{"ID", lease_id_}});
      lease_id_.clear();
      return failed_precondition("etcd: the storage at " + opt_.prefix + " is in use by " + other +
                                 " (lock " + lock_key_ + "); one server at a time may use it");
    }
    // The creation revision of our lock key: the fence every write compares.
    ASSIGN_OR_RETURN(json::object got, call("/v3/kv/range", json::object{{"key", b64(lock_key_)}}));
    const auto* kvs = got.if_contains("kvs");
    if (!kvs || !kvs->is_array() || kvs->as_array().empty() || !kvs->as_array()[0].is_object()) {
      return unavailable("etcd: the lock key vanished right after it was taken");
    }
    lock_revision_ = string_field(kvs->as_array()[0].as_object(), "create_revision");
    if (lock_revision_.empty()) return internal_error("etcd: lock key without a revision");
    keepalive_ = std::thread([this] { keepalive_loop(); });
    LOG_INFO("etcd", "holding the storage lock " << lock_key_ << " (lease " << ttl << " s)");
    return ok_status();
  }

  // Renews the lease three times per TTL. A renewal that finds the lease gone (TTL 0 or no ID)
  // means the lock is lost: writes stop (the fence would refuse them anyway).
  void keepalive_loop() {
    const auto period = std::max<std::chrono::milliseconds>(
        std::chrono::milliseconds(200),
        std::chrono::duration_cast<std::chrono::milliseconds>(opt_.lock_ttl) / 3);
    std::unique_lock lock(ka_mu_);
    while (!stopping_) {
      ka_cv_.wait_for(lock, period, [this] { return stopping_; });
      if (stopping_) break;
      lock.unlock();
      auto r = call("/v3/lease/keepalive", json::object{{"ID", lease_id_}});
      if (r.ok()) {
        const auto* result = r->if_contains("result");
        std::string ttl =
            result && result->is_object() ? string_field(result->as_object(), "TTL") : "";
        if (ttl.empty() || ttl == "0" || ttl[0] == '-') mark_lost("the lock's lease expired");
      } else if (r.status().code() == Code::kNotFound) {
        mark_lost("the lock's lease is gone");
      } else {
        LOG_WARN("etcd", "lease renewal failed (retrying): " << r.status().message());
      }
      lock.lock();
    }
  }

  EtcdOptions opt_;
  const std::string lock_key_;
  std::string lease_id_;
  std::string lock_revision_;
  std::atomic<bool> lost_{false};
  std::atomic<size_t> preferred_{0};

  std::mutex pool_mu_;
  std::vector<std::unique_ptr<net::HttpClient>> pool_;
  std::mutex auth_mu_;
  std::string auth_token_;

  std::mutex ka_mu_;
  std::condition_variable ka_cv_;
  bool stopping_ = false;
  std::thread keepalive_;
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
