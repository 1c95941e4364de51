#include "core/audit.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>

#include "base/encoding.h"
#include "base/log.h"
#include "base/metrics.h"
#include "core/tokens.h"
#include "crypto/hash.h"
#include "crypto/random.h"

namespace custos::core {

namespace {

// Vault's audit failure counters: one per device write that failed (sys/metrics).
metrics::Counter& request_failures() {
  static metrics::Counter& c = metrics::Registry::global().counter(
      "vault_audit_log_request_failure", "audit device writes of requests that failed");
  return c;
}
metrics::Counter& response_failures() {
  static metrics::Counter& c = metrics::Registry::global().counter(
      "vault_audit_log_response_failure", "audit device writes of responses that failed");
  return c;
}

// Publishes the number of devices when a mutation's scope ends (declared after the lock_guard,
// so mu_ is still held): requests read it without the lock and skip all audit work when it is 0.
template <class Map>
struct Recount {
  const Map& devices;
  std::atomic<size_t>& count;
  ~Recount() { count.store(devices.size(), std::memory_order_release); }
};
// Spelled out: clang 14 (make fuzz) has no class template argument deduction for aggregates.
template <class Map>
Recount(const Map&, std::atomic<size_t>&) -> Recount<Map>;
}  // namespace
namespace {

class FileDevice final : public AuditDevice {
 public:
  FileDevice(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~FileDevice() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status write_line(std::string_view line) override {
    std::string buf(line);
    buf += '\n';
    std::lock_guard lock(mu_);
    size_t off = 0;
    while (off < buf.size()) {
      ssize_t n = ::write(fd_, buf.data() + off, buf.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        return unavailable("audit device " + path_ + ": " + std::strerror(errno));
      }
      off += static_cast<size_t>(n);
    }
    return ok_status();
  }

 private:
  int fd_;
  std::string path_;
  std::mutex mu_;
};

constexpr int kMaxDepth = 64;

}  // namespace

Result<std::unique_ptr<AuditDevice>> open_file_device(const std::string& path, int mode) {
  if (path == "stdout") {
    int fd = ::dup(1);
    if (fd < 0) return internal_error("dup stdout failed");
    return std::unique_ptr<AuditDevice>(new FileDevice(fd, path));
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                  static_cast<mode_t>(mode));
  if (fd < 0) {
    return invalid_argument("cannot open audit file " + path + ": " + std::strerror(errno));
  }
  return std::unique_ptr<AuditDevice>(new FileDevice(fd, path));
}

std::string AuditBroker::hmac_value(const Device& d, std::string_view v) {
  return "hmac-sha256:" + hex_encode(crypto::hmac_sha256(d.hmac_key.span(), as_bytes(v)));
}

boost::json::value AuditBroker::hash_tree(const Device& d, const boost::json::value& v, int depth) {
  if (depth > kMaxDepth) return "hmac-sha256:<too deep>";
  if (v.is_string()) return boost::json::value(hmac_value(d, v.as_string()));
  if (v.is_object()) {
    boost::json::object o;
    for (const auto& [k, x] : v.as_object()) o[k] = hash_tree(d, x, depth + 1);
    return o;
  }
  if (v.is_array()) {
    boost::json::array a;
    for (const auto& x : v.as_array()) a.push_back(hash_tree(d, x, depth + 1));
    return a;
  }
  return v;
}

Status AuditBroker::load(View view) {
  std::lock_guard lock(mu_);
  Recount recount{devices_, active_};
  view_ = view;
  devices_.clear();
  ASSIGN_OR_RETURN(auto doc, view.get_json("devices"));
  if (!doc || !doc->is_object()) return ok_status();
  for (const auto& [path, v] : doc->as_object()) {
    if (!v.is_object()) continue;
    const auto& o = v.as_object();
    Device d;
    d.path = std::string(path);
    d.type = o.contains("type") ? std::string(o.at("type").as_string()) : "file";
    if (const auto* x = o.if_contains("description"); x && x->is_string()) {
      d.description = std::string(x->as_string());
    }
    if (const auto* x = o.if_contains("options"); x && x->is_object()) d.options = x->as_object();
    if (const auto* x = o.if_contains("local"); x && x->is_bool()) d.local = x->as_bool();
    const auto* key = o.if_contains("hmac_key");
    if (!key || !key->is_string()) return data_loss("audit device entry has no key");
    auto k = base64_decode(key->as_string());
    if (!k.ok()) return data_loss("audit device key is corrupt");
    d.hmac_key = SecretBytes(std::move(*k));
    std::string file_path = d.options.contains("file_path") && d.options.at("file_path").is_string()
                                ? std::string(d.options.at("file_path").as_string())
                                : "";
    auto sink = open_file_device(file_path, 0600);
    if (!sink.ok()) {
      // Keep the device: requests will fail until it can write, which is the point.
      LOG_ERROR("audit", "device " << d.path << " cannot open: " << sink.status().message());
    } else {
      d.sink = std::move(*sink);
    }
    devices_.emplace(d.path, std::move(d));
  }
  return ok_status();
}

void AuditBroker::clear() {
  std::lock_guard lock(mu_);
  Recount recount{devices_, active_};
  devices_.clear();
  view_.reset();
}

bool AuditBroker::enabled() const {
  std::lock_guard lock(mu_);
  return !devices_.empty();
}

Status AuditBroker::persist() {
  boost::json::object doc;
  for (const auto& [path, d] : devices_) {
    boost::json::object o;
    o["type"] = d.type;
    o["description"] = d.description;
    o["options"] = d.options;
    o["local"] = d.local;
    o["hmac_key"] = base64_encode(d.hmac_key.span());
    doc[path] = std::move(o);
  }
  if (!view_) return unavailable("Vault is sealed");
  return view_->put_json("devices", doc);
}

Status AuditBroker::enable(const std::string& path, const std::string& type,
                           const std::string& description, const boost::json::object& options,
                           bool local) {
  if (type != "file") {
    return invalid_argument("unknown audit device type \"" + type + "\" (available: file)");
  }
  const auto* fp = options.if_contains("file_path");
  if (!fp || !fp->is_string() || fp->as_string().empty()) {
    return invalid_argument("file_path is required for the file audit device");
  }
  std::lock_guard lock(mu_);
  Recount recount{devices_, active_};
  if (devices_.count(path)) return invalid_argument("path already in use");
  ASSIGN_OR_RETURN(auto sink, open_file_device(std::string(fp->as_string()), 0600));
  Device d;
  d.path = path;
  d.type = type;
  d.description = description;
  d.options = options;
  d.local = local;
  d.hmac_key = crypto::random_secret(32);
  d.sink = std::move(sink);
  devices_.emplace(path, std::move(d));
  Status st = persist();
  if (!st.ok()) devices_.erase(path);
  return st;
}

Status AuditBroker::disable(const std::string& path) {
  std::lock_guard lock(mu_);
  Recount recount{devices_, active_};
  if (!devices_.erase(path)) return ok_status();  // Vault: disabling a missing device is fine
  return persist();
}

boost::json::object AuditBroker::list() const {
  std::lock_guard lock(mu_);
  boost::json::object out;
  for (const auto& [path, d] : devices_) {
    boost::json::object o;
    o["type"] = d.type;
    o["description"] = d.description;
    o["options"] = d.options;
    o["local"] = d.local;
    o["path"] = path;
    out[path] = std::move(o);
  }
  return out;
}

Result<std::string> AuditBroker::hash(const std::string& path, std::string_view input) const {
  std::lock_guard lock(mu_);
  auto it = devices_.find(path);
  if (it == devices_.end()) return invalid_argument("unknown audit backend " + path);
  return hmac_value(it->second, input);
}

Status AuditBroker::write_all(const std::function<std::string(const Device&)>& render) {
  std::lock_guard lock(mu_);
  if (devices_.empty()) return ok_status();
  size_t ok = 0;
  std::string last_error;
  for (auto& [path, d] : devices_) {
    if (!d.sink) {
      last_error = "audit device " + path + " is not open";
      continue;
    }
    Status st = d.sink->write_line(render(d));
    if (st.ok()) {
      ++ok;
    } else {
      last_error = st.message();
      request_failures().inc();
    }
  }
  if (ok == 0) {
    LOG_ERROR("audit", "no audit device could record the request: " << last_error);
    return internal_error("audit: no enabled audit device could record the request (" +
                          last_error + "); the request was not processed");
  }
  return ok_status();
}

namespace {

boost::json::object auth_json(const TokenEntry* token) {
  boost::json::object a;
  if (!token) return a;
  boost::json::array p;
  for (const auto& x : token->policies) p.emplace_back(x);
  a["accessor"] = token->accessor;
  a["display_name"] = token->display_name;
  a["policies"] = p;
  a["token_policies"] = p;
  a["metadata"] = token->meta;
  a["token_type"] = token->type;
  return a;
}

}  // namespace

Status AuditBroker::log_request(const Request& req, const TokenEntry* token,
                                std::string_view error) {
  if (active_.load(std::memory_order_acquire) == 0) return ok_status();
  std::string time = format_rfc3339_nanos(clock_.now());
  return write_all([&](const Device& d) {
    boost::json::object line;
    line["time"] = time;
    line["type"] = "request";
    line["auth"] = hash_tree(d, auth_json(token), 0);
    boost::json::object r;
    r["id"] = req.request_id;
    r["operation"] = std::string(operation_name(req.op));
    r["mount_type"] = req.mount_type;
    r["client_token"] = req.client_token.empty() ? "" : hmac_value(d, req.client_token);
    r["client_token_accessor"] = token && !token->accessor.empty() ? hmac_value(d, token->accessor) : "";
    r["path"] = req.path;
    r["data"] = hash_tree(d, req.data, 0);
    r["remote_address"] = req.remote_addr;
    line["request"] = std::move(r);
    if (!error.empty()) line["error"] = error;
    return boost::json::serialize(line);
  });
}

Status AuditBroker::log_response(const Request& req, const TokenEntry* token,
                                 const Result<Response>& resp) {
  if (active_.load(std::memory_order_acquire) == 0) return ok_status();
  return write_response(*render_response(req, token, resp), ok_status());
}

std::shared_ptr<const AuditBroker::PendingResponse> AuditBroker::render_response(
    const Request& req, const TokenEntry* token, const Result<Response>& resp) const {
  auto pending = std::make_shared<PendingResponse>();
  if (active_.load(std::memory_order_acquire) == 0) return pending;
  std::string time = format_rfc3339_nanos(clock_.now());
  std::lock_guard lock(mu_);
  for (const auto& [path, d] : devices_) {
    boost::json::object line;
    line["time"] = time;
    line["type"] = "response";
    line["auth"] = hash_tree(d, auth_json(token), 0);
    boost::json::object r;
    r["id"] = req.request_id;
    r["operation"] = std::string(operation_name(req.op));
    r["mount_type"] = req.mount_type;
    r["client_token"] = req.client_token.empty() ? "" : hmac_value(d, req.client_token);
    r["path"] = req.path;
    r["remote_address"] = req.remote_addr;
    line["request"] = std::move(r);
    boost::json::object out;
    if (resp.ok()) {
      const Response& x = *resp;
      if (x.data) out["data"] = hash_tree(d, *x.data, 0);
      if (x.raw) out["data"] = hash_tree(d, *x.raw, 0);
      if (x.auth) {
        boost::json::object a;
        a["client_token"] = hmac_value(d, x.auth->client_token);
        a["accessor"] = hmac_value(d, x.auth->accessor);
        boost::json::array p;
        for (const auto& y : x.auth->policies) p.emplace_back(y);
        a["policies"] = std::move(p);
        out["auth"] = std::move(a);
      }
      if (!x.lease_id.empty()) out["secret"] = boost::json::object{{"lease_id", x.lease_id}};
      if (x.wrap_info) {
        const WrapInfo& w = *x.wrap_info;
        boost::json::object wi;
        wi["token"] = hmac_value(d, w.token);
        wi["accessor"] = hmac_value(d, w.accessor);
        wi["ttl"] = w.ttl;
        wi["creation_time"] = w.creation_time;
        wi["creation_path"] = w.creation_path;
        if (!w.wrapped_accessor.empty()) wi["wrapped_accessor"] = hmac_value(d, w.wrapped_accessor);
        out["wrap_info"] = std::move(wi);
      }
      line["error"] = "";
    } else {
      line["error"] = resp.status().message();
    }
    line["response"] = std::move(out);
    pending->lines.emplace_back(path, std::move(line));
  }
  return pending;
}

Status AuditBroker::write_response(const PendingResponse& pending, const Status& outcome) {
  if (pending.lines.empty()) return ok_status();
  std::lock_guard lock(mu_);
  size_t tried = 0;
  size_t ok = 0;
  std::string last_error;
  for (const auto& [path, rendered] : pending.lines) {
    auto it = devices_.find(path);
    if (it == devices_.end()) continue;  // disabled since: nothing to record it in
    ++tried;
    if (!it->second.sink) {
      last_error = "audit device " + path + " is not open";
      continue;
    }
    std::string line;
    if (outcome.ok()) {
      line = boost::json::serialize(rendered);
    } else {
      // What the client is told instead of the answer rendered before.
      boost::json::object failed = rendered;
      failed["error"] = outcome.message();
      failed["response"] = boost::json::object();
      line = boost::json::serialize(failed);
    }
    Status st = it->second.sink->write_line(line);
    if (st.ok()) {
      ++ok;
    } else {
      last_error = st.message();
      response_failures().inc();
    }
  }
  if (tried == 0 || ok > 0) return ok_status();
  LOG_ERROR("audit", "no audit device could record the response: " << last_error);
  // The operation already ran (its request was audited); say so rather than imply it did not.
  return internal_error(
      "audit: the request was processed, but no enabled audit device could "
      "record its response (" +
      last_error + ")");
}

}  // namespace custos::core
