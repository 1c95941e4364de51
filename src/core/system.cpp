// sys/ endpoints (seal lifecycle, mounts, policies, audit, keyring) and the token auth method.
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "base/encoding.h"
#include "base/log.h"
#include "base/metrics.h"
#include "core/core.h"
#include "core/engines/cubbyhole.h"
#include "crypto/random.h"

namespace custos::core {
namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Legacy sys/ endpoints answer with their fields both at the top level and under "data".
Response legacy(boost::json::object data) {
  Response r;
  boost::json::object raw = data;
  raw["data"] = data;
  raw["request_id"] = crypto::random_uuid();
  raw["lease_id"] = "";
  raw["renewable"] = false;
  raw["lease_duration"] = 0;
  raw["wrap_info"] = nullptr;
  raw["warnings"] = nullptr;
  raw["auth"] = nullptr;
  r.raw = std::move(raw);
  return r;
}

bool is_write(Operation op) { return op == Operation::kCreate || op == Operation::kUpdate; }

// Resident set size in bytes (/proc/self/statm's second field, in pages).
double resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) : 0;
}

double open_fds() {
  std::error_code ec;
  double n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

}  // namespace

void Core::register_process_gauges() {
  static metrics::GaugeHandle rss = metrics::Registry::global().gauge(
      "custos_process_resident_memory_bytes", "resident memory of the server process",
      [] { return resident_bytes(); });
  static metrics::GaugeHandle fds = metrics::Registry::global().gauge(
      "custos_process_open_fds", "file descriptors the server process holds",
      [] { return open_fds(); });
}

// sys/metrics: ?format=prometheus gives the Prometheus text format; without it, Vault's JSON
// (go-metrics' shape: Gauges, Counters, Samples). docs/api.md, "Metrics".
Result<Response> Core::sys_metrics(Request& req) {
  if (req.op != Operation::kRead) return unimplemented("unsupported operation");
  ASSIGN_OR_RETURN(std::string format, field_string(req.data, "format", ""));
  Response r;
  if (format == "prometheus") {
    r.raw_body = metrics::Registry::global().prometheus();
    r.raw_content_type = "text/plain; version=0.0.4; charset=utf-8";
    return r;
  }
  if (!format.empty()) return invalid_argument("format must be \"prometheus\" or absent");
  boost::json::array gauges, counters, samples;
  metrics::Registry::global().visit([&](metrics::Registry::Kind kind,
                                        const metrics::Registry::Sample& s) {
    boost::json::object labels;
    for (const auto& [k, v] : s.labels) labels[k] = v;
    // Whole numbers as integers ("Value": 17, not 1.7E1).
    auto number = [](double v) -> boost::json::value {
      if (v == std::floor(v) && std::fabs(v) < 9.0e15) return static_cast<int64_t>(v);
      return v;
    };
    if (kind == metrics::Registry::Kind::kGauge) {
      gauges.push_back(
          boost::json::object{{"Name", s.name}, {"Value", number(s.value)}, {"Labels", labels}});
    } else if (kind == metrics::Registry::Kind::kCounter) {
      counters.push_back(boost::json::object{{"Name", s.name},
                                             {"Count", number(s.value)},
                                             {"Sum", number(s.value)},
                                             {"Labels", labels}});
    } else {
      metrics::Histogram::Snapshot h = s.histogram->snapshot();
      samples.push_back(
          boost::json::object{{"Name", s.name},
                              {"Count", h.count},
                              {"Sum", h.sum},
                              {"Mean", h.count > 0 ? h.sum / static_cast<double>(h.count) : 0.0},
                              {"Labels", labels}});
    }
  });
  r.raw = boost::json::object{{"Timestamp", format_rfc3339_nanos(clock_.now())},
                              {"Gauges", std::move(gauges)},
                              {"Counters", std::move(counters)},
                              {"Points", boost::json::array{}},
                              {"Samples", std::move(samples)}};
  return r;
}

boost::json::object Core::seal_status_json(const SealStatus& s) const {
  boost::json::object o;
  o["type"] = s.type;
  o["initialized"] = s.initialized;
  o["sealed"] = s.sealed;
  o["t"] = s.threshold;
  o["n"] = s.shares;
  o["progress"] = s.progress;
  o["nonce"] = s.nonce;
  o["version"] = config_.version;
  o["build_date"] = "2026-11-22T00:00:00Z";
  o["migration"] = false;
  o["recovery_seal"] = s.recovery_seal;
  if (s.recovery_seal) o["recovery_seal_type"] = "shamir";
  o["storage_type"] = config_.storage_type;
  if (!s.sealed) {
    o["cluster_name"] = config_.cluster_name;
    o["cluster_id"] = cluster_id_;
  }
  return o;
}

Result<Response> Core::sys_health(Request& req) {
  ASSIGN_OR_RETURN(SealStatus s, seal_status());
  // The status codes a caller may ask for (activecode, sealedcode, ...): a final HTTP status,
  // so 200-599; anything else is refused, as Vault refuses a code that is not a number.
  for (const char* key : {"activecode", "standbycode", "drsecondarycode", "haunhealthycode",
                          "performancestandbycode", "removedcode", "sealedcode", "uninitcode"}) {
    auto v = field_int(req.data, key, 200);
    if (!v.ok() || *v < 200 || *v > 599) {
      return invalid_argument(std::string("invalid value for \"") + key +
                              "\": an HTTP status from 200 to 599 is needed");
    }
  }
  ASSIGN_OR_RETURN(bool standby_ok, field_bool(req.data, "standbyok", false));
  auto code = [&](const char* key, int64_t fallback) -> int64_t {
    return field_int(req.data, key, fallback).value();
  };
  Response r;
  boost::json::object o;
  const bool is_standby = standby();
  o["initialized"] = s.initialized;
  o["sealed"] = s.sealed;
  o["standby"] = is_standby;
  o["performance_standby"] = false;
  o["replication_performance_mode"] = "disabled";
  o["replication_dr_mode"] = "disabled";
  o["server_time_utc"] = to_unix_seconds(clock_.now());
  o["version"] = config_.version;
  o["enterprise"] = false;
  o["echo_duration_ms"] = 0;
  o["clock_skew_ms"] = 0;
  if (s.initialized && !s.sealed) {
    o["cluster_name"] = config_.cluster_name;
    o["cluster_id"] = cluster_id_;
  }
  if (!s.initialized) {
    r.status = static_cast<int>(code("uninitcode", 501));
  } else if (s.sealed) {
    r.status = static_cast<int>(code("sealedcode", 503));
  } else if (is_standby && !standby_ok) {
    r.status = static_cast<int>(code("standbycode", 429));
  } else {
    r.status = static_cast<int>(code("activecode", 200));
  }
  r.raw = std::move(o);
  return r;
}

// PUT sys/init. As in Vault, the parameters of the other seal kind are refused by name: a Shamir
// seal takes secret_shares/secret_threshold, an auto seal recovery_shares/recovery_threshold.
Result<Response> Core::sys_init(Request& req) {
  auto given = [&](const char* key) {
    const auto* v = req.data.if_contains(key);
    if (!v || v->is_null()) return false;
    if (v->is_int64()) return v->as_int64() != 0;
    if (v->is_uint64()) return v->as_uint64() != 0;
    if (v->is_array()) return !v->as_array().empty();
    if (v->is_string()) return !v->as_string().empty();
    return true;
  };
  const auto* pgp = req.data.if_contains("pgp_keys");
  if ((pgp && !pgp->is_null()) || given("root_token_pgp_key") || given("recovery_pgp_keys")) {
    return invalid_argument("PGP-encrypted key shares are not supported by this server");
  }
  // One shape for both seal kinds: a Shamir seal splits the unseal key ("secret_*", defaults 5
  // and 3 as before), an auto seal the recovery key ("recovery_*", required as in Vault's API).
  // The other kind's parameters are refused by name, with Vault's message.
  const bool recovery = config_.auto_seal != nullptr;
  const std::string kind = recovery ? "recovery" : "secret";
  const std::string other = recovery ? "secret" : "recovery";
  std::string refused;
  for (const std::string& k : {other + "_shares", other + "_threshold"}) {
    if (given(k.c_str())) refused += (refused.empty() ? "" : ",") + k;
  }
  if (!refused.empty()) {
    return invalid_argument("parameters " + refused + " not applicable to seal type " +
                            (recovery ? config_.auto_seal->type() : "shamir"));
  }
  ASSIGN_OR_RETURN(int64_t shares, field_int(req.data, kind + "_shares", recovery ? 0 : 5));
  ASSIGN_OR_RETURN(int64_t threshold, field_int(req.data, kind + "_threshold", recovery ? 0 : 3));
  if (shares < 0 || shares > 255 || threshold < 0 || threshold > 255) {
    return invalid_argument(kind + "_shares and " + kind + "_threshold must be between 1 and 255");
  }
  InitResult init;
  if (recovery) {
    ASSIGN_OR_RETURN(init,
                     initialize_recovery(static_cast<int>(shares), static_cast<int>(threshold)));
  } else {
    ASSIGN_OR_RETURN(init, initialize(static_cast<int>(shares), static_cast<int>(threshold)));
  }
  auto encode = [](const std::vector<SecretBytes>& parts, boost::json::array& hex,
                   boost::json::array& b64) {
    for (const auto& s : parts) {
      hex.emplace_back(hex_encode(s.span()));
      b64.emplace_back(base64_encode(s.span()));
    }
  };
  boost::json::array hex, b64;
  encode(init.shares, hex, b64);
  boost::json::object o{{"keys", std::move(hex)}, {"keys_base64", std::move(b64)}};
  if (config_.auto_seal) {
    boost::json::array rhex, rb64;
    encode(init.recovery_shares, rhex, rb64);
    o["recovery_keys"] = std::move(rhex);
    o["recovery_keys_base64"] = std::move(rb64);
  }
  o["root_token"] = init.root_token;
  Response r;
  r.raw = std::move(o);
  return r;
}

Result<Response> Core::handle_unauthenticated(Request& req, bool& handled) {
  handled = true;
  const std::string& p = req.path;
  if (p == "sys/health") return sys_health(req);
  if (p == "sys/seal-status") {
    ASSIGN_OR_RETURN(SealStatus s, seal_status());
    Response r;
    r.raw = seal_status_json(s);
    return r;
  }
  if (p == "sys/init") {
    if (req.op == Operation::kRead) {
      ASSIGN_OR_RETURN(bool inited, barrier_.initialized());
      Response r;
      r.raw = boost::json::object{{"initialized", inited}};
      return r;
    }
    if (req.op != Operation::kUpdate && req.op != Operation::kCreate && !req.http_put_or_post) {
      return unimplemented("unsupported operation");
    }
    return sys_init(req);
  }
  if (p == "sys/wrapping/lookup") return wrapping_lookup(req);
  if (p == "sys/leader") {
    if (req.op != Operation::kRead) return unimplemented("unsupported operation");
    ASSIGN_OR_RETURN(LeaderStatus l, leader());
    Response r;
    r.raw = boost::json::object{
        {"ha_enabled", l.ha_enabled},
        {"is_self", l.is_self},
        {"active_time",
         l.is_self && l.ha_enabled ? format_rfc3339_nanos(l.active_time) : "0001-01-01T00:00:00Z"},
        {"leader_address", l.leader_address},
        {"leader_cluster_address", ""},
        {"performance_standby", false},
        {"performance_standby_last_remote_wal", 0}};
    return r;
  }
  // Authorised by key shares, not a token (Vault): usable when the root token is lost.
  if (starts_with(p, "sys/generate-root/")) return sys_generate_root(req, p.substr(18));
  if (starts_with(p, "sys/rekey/")) return sys_rekey(req, p.substr(10), false);
  if (starts_with(p, "sys/rekey-recovery-key/")) return sys_rekey(req, p.substr(23), true);
  if (p == "sys/unseal") {
    if (!req.http_put_or_post) return unimplemented("unsupported operation");
    ASSIGN_OR_RETURN(bool reset, field_bool(req.data, "reset", false));
    ASSIGN_OR_RETURN(std::string key, field_string(req.data, "key"));
    ASSIGN_OR_RETURN(SealStatus s, unseal(key, reset));
    SecretString wipe(std::move(key));
    Response r;
    r.raw = seal_status_json(s);
    return r;
  }
  handled = false;
  return Response::empty();
}

Result<Response> Core::handle_sys(Request& req) {
  std::string rest = req.path.substr(4);
  auto segment = [&](std::string_view prefix) -> std::optional<std::string> {
    if (rest == prefix) return std::string();
    std::string pre(prefix);
    pre += '/';
    if (starts_with(rest, pre)) return rest.substr(pre.size());
    return std::nullopt;
  };

  if (rest == "seal") {
    if (!req.http_put_or_post) return unimplemented("unsupported operation");
    RETURN_IF_ERROR(seal());
    return Response::empty();
  }
  if (auto m = segment("mounts")) return sys_mounts(req, *m);
  if (auto m = segment("internal/ui/mounts")) return sys_internal_ui_mounts(req, *m);
  if (auto m = segment("auth")) return sys_auth(req, *m);
  if (auto m = segment("policy")) {
    if (m->empty()) return sys_policy_list(true);
    return sys_policy(req, *m, true);
  }
  if (auto m = segment("policies/acl")) {
    if (m->empty()) {
      if (req.op == Operation::kList || req.op == Operation::kRead) return sys_policy_list(false);
      return unimplemented("unsupported operation");
    }
    return sys_policy(req, *m, false);
  }
  if (rest == "capabilities-self") return sys_capabilities(req, true);
  if (rest == "capabilities" || rest == "capabilities-accessor") return sys_capabilities(req, false);
  if (auto m = segment("audit")) return sys_audit(req, *m);
  if (auto m = segment("wrapping")) return sys_wrapping(req, *m);
  if (auto m = segment("audit-hash")) {
    ASSIGN_OR_RETURN(std::string input, field_string(req.data, "input"));
    std::string path = *m;
    if (!path.empty() && path.back() != '/') path += '/';
    ASSIGN_OR_RETURN(std::string h, audit_.hash(path, input));
    return Response::with_data({{"hash", h}});
  }
  if (rest == "rotate") {
    if (!req.http_put_or_post) return unimplemented("unsupported operation");
    ASSIGN_OR_RETURN(uint32_t term, barrier_.rotate());
    (void)term;
    return Response::empty();
  }
  if (rest == "key-status") {
    ASSIGN_OR_RETURN(auto ks, barrier_.key_status());
    boost::json::object d{{"term", ks.term},
                          {"install_time", format_rfc3339_nanos(ks.install_time)},
                          {"encryptions", ks.encryptions}};
    return legacy(std::move(d));
  }
  {
    bool handled = false;
    auto r = leases_->handle_sys(req, rest, handled);
    if (handled) return r;
  }
  if (rest == "metrics") return sys_metrics(req);
  if (rest == "step-down") {
    if (!req.http_put_or_post) return unimplemented("unsupported operation");
    step_down();
    return Response::empty();
  }
  if (rest == "tools/random" || starts_with(rest, "tools/random/")) {
    int64_t n = 32;
    if (rest.size() > 13) {
      auto v = field_int(boost::json::object{{"n", rest.substr(13)}}, "n", 32);
      if (!v.ok()) return invalid_argument("invalid byte count");
      n = *v;
    }
    ASSIGN_OR_RETURN(n, field_int(req.data, "bytes", n));
    if (n < 1 || n > 1024 * 1024) return invalid_argument("bytes must be between 1 and 1048576");
    ASSIGN_OR_RETURN(std::string fmt, field_string(req.data, "format", "base64"));
    Bytes b = crypto::random_bytes(static_cast<size_t>(n));
    if (fmt == "hex") return Response::with_data({{"random_bytes", hex_encode(b)}});
    if (fmt != "base64") return invalid_argument("unsupported encoding format " + fmt);
    return Response::with_data({{"random_bytes", base64_encode(b)}});
  }
  return not_found("unsupported path");
}

// ---------------------------------------------------------------------------------------------

Result<Response> Core::sys_mounts(Request& req, const std::string& rest) {
  if (rest.empty()) {
    if (req.op != Operation::kRead) return unimplemented("unsupported operation");
    boost::json::object all;
    {
      std::shared_lock lock(mounts_mu_);
      for (const auto& [path, m] : mounts_) all[path] = m->entry.to_json();
    }
    MountEntry sys;
    sys.type = "system";
    sys.description = "system endpoints used for control, policy and debugging";
    sys.accessor = "system_" + cluster_id_.substr(0, 8);
    sys.uuid = cluster_id_;
    all["sys/"] = sys.to_json();
    return legacy(std::move(all));
  }
  std::string path = rest;
  bool tune = false;
  if (path.size() > 5 && path.compare(path.size() - 5, 5, "/tune") == 0) {
    tune = true;
    path.resize(path.size() - 5);
  }
  if (path.back() != '/') path += '/';
  if (tune) {
    std::shared_ptr<Mounted> m;
    {
      std::shared_lock lock(mounts_mu_);
      auto it = mounts_.find(path);
      if (it == mounts_.end()) return invalid_argument("cannot tune '" + path + "': no mount found");
      m = it->second;
    }
    if (req.op == Operation::kRead) {
      boost::json::object d;
      d["default_lease_ttl"] = m->entry.config.contains("default_lease_ttl")
                                   ? m->entry.config.at("default_lease_ttl")
                                   : boost::json::value(config_.default_lease_ttl);
      d["max_lease_ttl"] = m->entry.config.contains("max_lease_ttl")
                               ? m->entry.config.at("max_lease_ttl")
                               : boost::json::value(config_.max_lease_ttl);
      d["force_no_cache"] = false;
      d["description"] = m->entry.description;
      if (!m->entry.options.empty()) d["options"] = m->entry.options;
      return legacy(std::move(d));
    }
    ASSIGN_OR_RETURN(int64_t dl, field_duration(req.data, "default_lease_ttl", -1));
    ASSIGN_OR_RETURN(int64_t ml, field_duration(req.data, "max_lease_ttl", -1));
    {
      std::unique_lock lock(mounts_mu_);
      if (dl >= 0) m->entry.config["default_lease_ttl"] = dl;
      if (ml >= 0) m->entry.config["max_lease_ttl"] = ml;
      if (const auto* d = req.data.if_contains("description"); d && d->is_string()) {
        m->entry.description = std::string(d->as_string());
      }
      if (const auto* o = req.data.if_contains("options"); o && o->is_object()) {
        for (const auto& [k, v] : o->as_object()) {
          if (k == "version" && m->entry.type == "kv") {
            auto cur = m->entry.options.contains("version") ? m->entry.options.at("version") : "1";
            std::string want = v.is_string() ? std::string(v.as_string()) : "";
            if (cur.is_string() && want != cur.as_string()) {
              return invalid_argument("changing the kv version of a mount is not supported");
            }
            continue;
          }
          m->entry.options[k] = v;
        }
      }
    }
    RETURN_IF_ERROR(persist_mounts());
    return Response::empty();
  }
  if (req.op == Operation::kDelete) {
    if (path == kCubbyholePath) return invalid_argument("cannot unmount \"cubbyhole/\"");
    {
      std::shared_lock lock(mounts_mu_);
      if (!mounts_.count(path)) return Response::empty();  // Vault: unmounting nothing is OK
    }
    // Revoke the mount's leases while its engine can still act on them.
    RETURN_IF_ERROR(leases_->revoke_prefix(path, /*force=*/false));
    std::shared_ptr<Mounted> m;
    {
      std::unique_lock lock(mounts_mu_);
      auto it = mounts_.find(path);
      if (it == mounts_.end()) return Response::empty();
      m = it->second;
      mounts_.erase(it);
    }
    m->engine->shutdown();
    RETURN_IF_ERROR(persist_mounts());
    RETURN_IF_ERROR(View(barrier_, "logical/" + m->entry.uuid + "/").delete_tree(""));
    return Response::empty();
  }
  if (req.op == Operation::kRead) {
    std::shared_lock lock(mounts_mu_);
    auto it = mounts_.find(path);
    if (it == mounts_.end()) return invalid_argument("no matching mount");
    return legacy(it->second->entry.to_json());
  }
  if (!is_write(req.op)) return unimplemented("unsupported operation");
  ASSIGN_OR_RETURN(std::string type, field_string(req.data, "type"));
  if (type.empty()) return invalid_argument("plugin not found in the catalog: (empty type)");
  ASSIGN_OR_RETURN(std::string description, field_string(req.data, "description"));
  boost::json::object options;
  if (const auto* o = req.data.if_contains("options"); o && o->is_object()) {
    options = o->as_object();
  } else if (o && !o->is_null()) {
    return invalid_argument("'options' must be an object");
  }
  RETURN_IF_ERROR(mount(path, type, std::move(options), description));
  if (const auto* c = req.data.if_contains("config"); c && c->is_object()) {
    ASSIGN_OR_RETURN(int64_t dl, field_duration(c->as_object(), "default_lease_ttl", -1));
    ASSIGN_OR_RETURN(int64_t ml, field_duration(c->as_object(), "max_lease_ttl", -1));
    {
      std::unique_lock lock(mounts_mu_);
      auto it = mounts_.find(path);
      if (it != mounts_.end()) {
        if (dl >= 0) it->second->entry.config["default_lease_ttl"] = dl;
        if (ml >= 0) it->second->entry.config["max_lease_ttl"] = ml;
      }
    }
    RETURN_IF_ERROR(persist_mounts());
  }
  return Response::empty();
}

Result<Response> Core::sys_internal_ui_mounts(Request& req, const std::string& rest) {
  if (req.token == nullptr) return permission_denied("permission denied");
  ASSIGN_OR_RETURN(auto acl, acl_for(*req.token));
  if (rest.empty()) {
    boost::json::object secret, auth;
    {
      std::shared_lock lock(mounts_mu_);
      for (const auto& [path, m] : mounts_) {
        if (acl->has_access_under(path)) secret[path] = m->entry.to_json();
      }
    }
    MountEntry tok;
    tok.type = "token";
    tok.description = "token based credentials";
    tok.accessor = "auth_token_" + cluster_id_.substr(0, 8);
    tok.uuid = cluster_id_;
    auth["token/"] = tok.to_json();
    return Response::with_data({{"secret", std::move(secret)}, {"auth", std::move(auth)}});
  }
  std::string rel;
  auto m = route(rest, rel);
  if (!m.ok() || !acl->has_access_under((*m)->entry.path)) {
    return permission_denied("preflight capability check returned 403, please ensure client's "
                             "policies grant access to path \"" + rest + "/\"");
  }
  boost::json::object d = (*m)->entry.to_json();
  d["path"] = (*m)->entry.path;
  return Response::with_data(std::move(d));
}

Result<Response> Core::sys_auth(Request& req, const std::string& rest) {
  if (rest.empty()) {
    if (req.op != Operation::kRead) return unimplemented("unsupported operation");
    MountEntry tok;
    tok.type = "token";
    tok.description = "token based credentials";
    tok.accessor = "auth_token_" + cluster_id_.substr(0, 8);
    tok.uuid = cluster_id_;
    boost::json::object all{{"token/", tok.to_json()}};
    {
      std::shared_lock lock(mounts_mu_);
      for (const auto& [path, m] : auth_mounts_) all[path] = m->entry.to_json();
    }
    return legacy(std::move(all));
  }
  std::string path = rest;
  if (path.back() != '/') path += '/';
  if (is_write(req.op)) {
    ASSIGN_OR_RETURN(std::string type, field_string(req.data, "type"));
    ASSIGN_OR_RETURN(std::string description, field_string(req.data, "description"));
    if (type.empty()) return invalid_argument("missing auth method type");
    RETURN_IF_ERROR(enable_auth(path, type, description));
    return Response::empty();
  }
  if (req.op == Operation::kDelete) {
    if (path == "token/") return invalid_argument("token credential backend cannot be disabled");
    std::shared_ptr<Mounted> m;
    {
      std::unique_lock lock(mounts_mu_);
      auto it = auth_mounts_.find(path);
      if (it == auth_mounts_.end()) return Response::empty();
      m = it->second;
      auth_mounts_.erase(it);
    }
    m->engine->shutdown();
    RETURN_IF_ERROR(persist_auth());
    // As Vault: the tokens the method issued go with it (with their trees and leases).
    ASSIGN_OR_RETURN(size_t revoked, tokens_->revoke_created_under("auth/" + path));
    if (revoked > 0)
      LOG_INFO("core", "disabling auth/" << path << " revoked " << revoked << " tokens");
    RETURN_IF_ERROR(View(barrier_, "auth/" + m->entry.uuid + "/").delete_tree(""));
    return Response::empty();
  }
  return unimplemented("unsupported operation");
}

// ---------------------------------------------------------------------------------------------
// Policies

Result<Response> Core::sys_policy_list(bool legacy_api) {
  ASSIGN_OR_RETURN(auto keys, barrier_.list("sys/policy/"));
  std::vector<std::string> names(keys.begin(), keys.end());
  if (std::find(names.begin(), names.end(), "default") == names.end()) names.push_back("default");
  names.push_back("root");
  std::sort(names.begin(), names.end());
  if (legacy_api) {
    return legacy({{"policies", to_string_array(names)}, {"keys", to_string_array(names)}});
  }
  return Response::with_data({{"keys", to_string_array(names)}});
}

Result<Response> Core::sys_policy(Request& req, const std::string& raw_name, bool legacy_api) {
  std::string name = policy::normalize_policy_name(raw_name);
  if (name.empty() || name.find('/') != std::string::npos) return invalid_argument("invalid policy name");
  if (req.op == Operation::kRead) {
    if (name == "root") {
      boost::json::object d{{"name", "root"}, {legacy_api ? "rules" : "policy", ""}};
      return legacy_api ? legacy(std::move(d)) : Response::with_data(std::move(d));
    }
    ASSIGN_OR_RETURN(auto p, get_policy(name));
    if (!p) return not_found("policy \"" + name + "\" not found");
    boost::json::object d{{"name", name}, {legacy_api ? "rules" : "policy", p->raw}};
    return legacy_api ? legacy(std::move(d)) : Response::with_data(std::move(d));
  }
  if (req.op == Operation::kDelete) {
    if (name == "root" || name == "default" || name == policy::kResponseWrappingPolicyName) {
      return invalid_argument("cannot delete \"" + name + "\" policy");
    }
    RETURN_IF_ERROR(barrier_.del("sys/policy/" + name));
  } else if (is_write(req.op)) {
    if (name == "root" || name == policy::kResponseWrappingPolicyName) {
      return invalid_argument("cannot update \"" + name + "\" policy");
    }
    ASSIGN_OR_RETURN(std::string text, field_string(req.data, "policy"));
    if (text.empty()) {
      ASSIGN_OR_RETURN(text, field_string(req.data, "rules"));
    }
    if (text.empty()) return invalid_argument("'policy' parameter not supplied or empty");
    // Vault also accepts the policy base64-encoded.
    if (text.find('{') == std::string::npos && text.find('"') == std::string::npos) {
      auto decoded = base64_decode(strip_whitespace(text));
      if (decoded.ok()) text = to_string(*decoded);
    }
    ASSIGN_OR_RETURN(policy::Policy parsed, policy::parse_policy(name, text));
    (void)parsed;
    RETURN_IF_ERROR(barrier_.put("sys/policy/" + name, as_bytes(text)));
  } else {
    return unimplemented("unsupported operation");
  }
  std::lock_guard lock(policy_mu_);
  policy_cache_.erase(name);
  acl_cache_.clear();
  return Response::empty();
}

Result<Response> Core::sys_capabilities(Request& req, bool self) {
  std::vector<std::string> paths;
  ASSIGN_OR_RETURN(paths, field_string_list(req.data, "paths"));
  ASSIGN_OR_RETURN(std::string single, field_string(req.data, "path"));
  if (!single.empty()) paths.push_back(single);
  if (paths.empty()) return invalid_argument("missing paths");
  std::optional<TokenEntry> who;
  if (self) {
    who = *req.token;
  } else {
    ASSIGN_OR_RETURN(std::string token, field_string(req.data, "token"));
    ASSIGN_OR_RETURN(std::string accessor, field_string(req.data, "accessor"));
    if (!accessor.empty()) {
      ASSIGN_OR_RETURN(who, tokens_->lookup_accessor(accessor));
    } else {
      ASSIGN_OR_RETURN(who, tokens_->lookup(token));
    }
    if (!who) return invalid_argument("invalid token");
  }
  ASSIGN_OR_RETURN(auto acl, acl_for(*who));
  boost::json::object d;
  boost::json::array all;
  for (const auto& p : paths) {
    auto names = acl->capability_names(p);
    d[p] = to_string_array(names);
    for (const auto& n : names) all.emplace_back(n);
  }
  d["capabilities"] = to_string_array(acl->capability_names(paths.front()));
  return legacy(std::move(d));
}

Result<Response> Core::sys_audit(Request& req, const std::string& rest) {
  if (rest.empty()) {
    if (req.op != Operation::kRead) return unimplemented("unsupported operation");
    return legacy(audit_.list());
  }
  std::string path = rest;
  if (path.back() != '/') path += '/';
  if (req.op == Operation::kDelete) {
    RETURN_IF_ERROR(audit_.disable(path));
    return Response::empty();
  }
  if (!is_write(req.op)) return unimplemented("unsupported operation");
  ASSIGN_OR_RETURN(std::string type, field_string(req.data, "type"));
  ASSIGN_OR_RETURN(std::string description, field_string(req.data, "description"));
  ASSIGN_OR_RETURN(bool local, field_bool(req.data, "local", false));
  boost::json::object options;
  if (const auto* o = req.data.if_contains("options"); o && o->is_object()) {
    for (const auto& [k, v] : o->as_object()) {
      if (v.is_string()) options[k] = v;
      else options[k] = boost::json::serialize(v);
    }
  }
  RETURN_IF_ERROR(audit_.enable(path, type, description, options, local));
  return Response::empty();
}

// ---------------------------------------------------------------------------------------------
// Token auth method

Auth Core::auth_for(const std::string& token, const TokenEntry& e) const {
  Auth a;
  a.client_token = token;
  a.accessor = e.accessor;
  a.policies = e.policies;
  a.token_policies = e.policies;
  a.metadata = e.meta;
  int64_t now = to_unix_seconds(clock_.now());
  a.lease_duration = e.expire_time > 0 ? std::max<int64_t>(0, e.expire_time - now) : 0;
  a.renewable = e.renewable;
  a.token_type = e.type;
  a.orphan = e.orphan;
  a.num_uses = e.num_uses;
  return a;
}

Result<Response> Core::token_lookup_response(const TokenEntry& e, const std::string& id) {
  int64_t now = to_unix_seconds(clock_.now());
  boost::json::object d;
  d["accessor"] = e.accessor;
  if (!e.bound_cidrs.empty()) d["bound_cidrs"] = to_string_array(e.bound_cidrs);
  d["creation_time"] = e.creation_time;
  d["creation_ttl"] = e.creation_ttl;
  d["display_name"] = e.display_name;
  d["entity_id"] = "";
  if (e.expire_time > 0) {
    d["expire_time"] = format_rfc3339_nanos(from_unix_seconds(e.expire_time));
  } else {
    d["expire_time"] = nullptr;
  }
  d["explicit_max_ttl"] = e.explicit_max_ttl;
  d["id"] = id;
  d["issue_time"] = format_rfc3339_nanos(from_unix_seconds(e.creation_time));
  if (e.last_renewal_time > 0) {
    d["last_renewal"] = format_rfc3339_nanos(from_unix_seconds(e.last_renewal_time));
    d["last_renewal_time"] = e.last_renewal_time;
  }
  if (e.meta.empty()) {
    d["meta"] = nullptr;
  } else {
    d["meta"] = e.meta;
  }
  d["num_uses"] = e.num_uses;
  d["orphan"] = e.orphan;
  d["path"] = e.path;
  d["policies"] = to_string_array(e.policies);
  d["renewable"] = e.renewable;
  d["ttl"] = e.expire_time > 0 ? std::max<int64_t>(0, e.expire_time - now) : 0;
  d["type"] = e.type;
  if (e.period > 0) d["period"] = e.period;
  return Response::with_data(std::move(d));
}

Result<std::optional<TokenRole>> Core::get_token_role(const std::string& name) {
  ASSIGN_OR_RETURN(auto raw, barrier_.get(kTokenRolePrefix + name));
  if (!raw) return std::optional<TokenRole>();
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(raw->view(), ec);
  if (ec || !v.is_object()) return data_loss("token role " + name + " is corrupt");
  ASSIGN_OR_RETURN(TokenRole role, TokenRole::from_json(name, v.as_object()));
  return std::optional<TokenRole>(std::move(role));
}

Result<Response> Core::token_create(Request& req, bool orphan, const TokenRole* role) {
  const TokenEntry& parent = *req.token;
  TokenCreateParams p;
  ASSIGN_OR_RETURN(p.policies, field_string_list(req.data, "policies"));
  const bool policies_given = !p.policies.empty();
  if (const auto* m = req.data.if_contains("meta"); m && m->is_object()) {
    for (const auto& [k, v] : m->as_object()) {
      if (!v.is_string()) return invalid_argument("'meta' values must be strings");
      p.meta[k] = v;
    }
  } else if (m && !m->is_null()) {
    return invalid_argument("'meta' must be an object of strings");
  }
  ASSIGN_OR_RETURN(p.display_name, field_string(req.data, "display_name", "token"));
  ASSIGN_OR_RETURN(p.ttl, field_duration(req.data, "ttl", 0));
  if (p.ttl == 0) {
    ASSIGN_OR_RETURN(p.ttl, field_duration(req.data, "lease", 0));
  }
  ASSIGN_OR_RETURN(p.explicit_max_ttl, field_duration(req.data, "explicit_max_ttl", 0));
  ASSIGN_OR_RETURN(p.period, field_duration(req.data, "period", 0));
  ASSIGN_OR_RETURN(p.num_uses, field_int(req.data, "num_uses", 0));
  if (p.num_uses < 0) return invalid_argument("number of uses cannot be negative");
  ASSIGN_OR_RETURN(p.renewable, field_bool(req.data, "renewable", true));
  ASSIGN_OR_RETURN(p.no_default_policy, field_bool(req.data, "no_default_policy", false));
  ASSIGN_OR_RETURN(bool no_parent, field_bool(req.data, "no_parent", false));
  ASSIGN_OR_RETURN(p.type, field_string(req.data, "type", ""));
  if (role != nullptr) {
    ASSIGN_OR_RETURN(p.type, role->token_type(p.type));
  }
  if (p.type.empty() || p.type == "default") p.type = "service";
  if (p.type != "service" && p.type != "batch") return invalid_argument("unsupported token type " + p.type);
  ASSIGN_OR_RETURN(p.id, field_string(req.data, "id"));
  bool is_root = parent.is_root();
  ASSIGN_OR_RETURN(auto acl, acl_for(parent));
  bool sudo = acl->is_root() || acl->capabilities(req.path).grants(policy::Capability::kSudo);
  if (!p.id.empty() && !is_root) return invalid_argument("root or sudo privileges required to specify token id");
  if ((no_parent || orphan) && !sudo && !orphan) {
    return invalid_argument("root or sudo privileges required to create orphan token");
  }
  if (role != nullptr &&
      (!role->allowed_policies.empty() || !role->allowed_policies_glob.empty())) {
    // The role, not the parent, bounds the policies: tokens may get any of the role's allowed
    // policies, even ones the caller does not hold (Vault's rule).
    if (!policies_given) p.policies = role->allowed_policies;
    for (const auto& pol : p.policies) {
      if (pol != "default" && !role->allows_policy(pol)) {
        return invalid_argument(
            "token policies must be a subset of the role's allowed policies; \"" + pol +
            "\" is not");
      }
    }
  } else if (p.policies.empty()) {
    p.policies = parent.policies;
    // A child of a root token with no policies given inherits root.
  } else if (!is_root && !sudo) {
    for (const auto& pol : p.policies) {
      if (pol == "default") continue;
      if (std::find(parent.policies.begin(), parent.policies.end(), pol) == parent.policies.end()) {
        return invalid_argument("child policies must be subset of parent");
      }
    }
  }
  if (role != nullptr) {
    // Disallowed policies: refused when asked for, dropped when inherited.
    if (policies_given) {
      for (const auto& pol : p.policies) {
        if (role->disallows_policy(pol)) {
          return invalid_argument("token policies contain \"" + pol +
                                  "\", which the role disallows");
        }
      }
    } else {
      std::erase_if(p.policies,
                    [&](const std::string& pol) { return role->disallows_policy(pol); });
    }
    if (role->disallows_policy("default")) p.no_default_policy = true;
    p.no_default_policy = p.no_default_policy || role->no_default_policy;
    orphan = orphan || role->orphan;
    if (!role->renewable) p.renewable = false;
    if (role->period > 0) p.period = role->period;
    if (role->explicit_max_ttl > 0 &&
        (p.explicit_max_ttl == 0 || p.explicit_max_ttl > role->explicit_max_ttl)) {
      p.explicit_max_ttl = role->explicit_max_ttl;
    }
    if (role->num_uses > 0 && (p.num_uses == 0 || p.num_uses > role->num_uses)) {
      p.num_uses = role->num_uses;
    }
    p.bound_cidrs = role->bound_cidrs;
    p.path = "auth/token/create/" + role->name;
    if (!role->path_suffix.empty()) p.path += "/" + role->path_suffix;
  }
  if (std::find(p.policies.begin(), p.policies.end(), "root") != p.policies.end() && !is_root) {
    return invalid_argument("root tokens may not be created by a non-root token");
  }
  p.orphan = orphan || no_parent;
  p.parent_hash = p.orphan ? "" : parent.hash;
  if (parent.type == "batch" && !p.orphan) {
    return invalid_argument("batch tokens cannot create non-orphan tokens");
  }
  // A child may not outlive its parent's expiry (Vault caps the TTL).
  if (!p.orphan && parent.expire_time > 0) {
    int64_t left = parent.expire_time - to_unix_seconds(clock_.now());
    if (p.ttl == 0 || p.ttl > left) p.ttl = std::max<int64_t>(1, left);
  }
  ASSIGN_OR_RETURN(auto created, tokens_->create(p));
  Response r;
  r.auth = auth_for(created.first, created.second);
  return r;
}

Result<Response> Core::handle_token(Request& req) {
  const std::string& rel = req.rel_path;
  const TokenEntry& self = *req.token;
  auto lookup_token = [&](const std::string& field) -> Result<TokenEntry> {
    ASSIGN_OR_RETURN(std::string token, field_string(req.data, field));
    if (token.empty()) return invalid_argument("missing " + field);
    ASSIGN_OR_RETURN(auto e, tokens_->lookup(token));
    if (!e) return invalid_argument("bad token");
    return *e;
  };
  auto lookup_accessor = [&]() -> Result<TokenEntry> {
    ASSIGN_OR_RETURN(std::string accessor, field_string(req.data, "accessor"));
    if (accessor.empty()) return invalid_argument("missing accessor");
    ASSIGN_OR_RETURN(auto e, tokens_->lookup_accessor(accessor));
    if (!e) return invalid_argument("invalid accessor");
    return *e;
  };
  auto increment = [&]() -> Result<int64_t> { return field_duration(req.data, "increment", 0); };

  if (rel == "create") {
    if (!is_write(req.op)) return unimplemented("unsupported operation");
    return token_create(req, false);
  }
  if (starts_with(rel, "create/")) {
    if (!is_write(req.op)) return unimplemented("unsupported operation");
    const std::string name = rel.substr(7);
    RETURN_IF_ERROR(validate_token_role_name(name));
    ASSIGN_OR_RETURN(auto role, get_token_role(name));
    if (!role) return invalid_argument("unknown role " + name);
    return token_create(req, false, &*role);
  }
  if (rel == "roles" || rel == "roles/") {
    if (req.op != Operation::kList) return unimplemented("unsupported operation");
    ASSIGN_OR_RETURN(auto keys, barrier_.list(kTokenRolePrefix));
    if (keys.empty()) return not_found("");  // Vault answers an empty LIST with 404
    return Response::with_data({{"keys", to_string_array(keys)}});
  }
  if (starts_with(rel, "roles/")) {
    const std::string name = rel.substr(6);
    RETURN_IF_ERROR(validate_token_role_name(name));
    if (req.op == Operation::kRead) {
      ASSIGN_OR_RETURN(auto role, get_token_role(name));
      if (!role) return not_found("");
      return Response::with_data(role->to_response());
    }
    if (req.op == Operation::kDelete) {
      RETURN_IF_ERROR(barrier_.del(kTokenRolePrefix + name));
      return Response::empty();
    }
    if (!is_write(req.op)) return unimplemented("unsupported operation");
    ASSIGN_OR_RETURN(auto existing, get_token_role(name));
    TokenRole role = existing ? *existing : TokenRole{};
    role.name = name;
    RETURN_IF_ERROR(role.apply(req.data));
    RETURN_IF_ERROR(
        barrier_.put(kTokenRolePrefix + name, as_bytes(boost::json::serialize(role.to_json()))));
    return Response::empty();
  }
  if (rel == "create-orphan") {
    if (!is_write(req.op)) return unimplemented("unsupported operation");
    return token_create(req, true);
  }
  if (rel == "lookup-self") return token_lookup_response(self, req.client_token);
  if (rel == "lookup" || starts_with(rel, "lookup/")) {
    if (starts_with(rel, "lookup/")) req.data["token"] = rel.substr(7);
    if (req.op == Operation::kRead && !req.data.contains("token")) {
      return token_lookup_response(self, req.client_token);
    }
    ASSIGN_OR_RETURN(std::string token, field_string(req.data, "token"));
    ASSIGN_OR_RETURN(TokenEntry e, lookup_token("token"));
    return token_lookup_response(e, token);
  }
  if (rel == "lookup-accessor" || starts_with(rel, "lookup-accessor/")) {
    if (starts_with(rel, "lookup-accessor/")) req.data["accessor"] = rel.substr(16);
    ASSIGN_OR_RETURN(TokenEntry e, lookup_accessor());
    return token_lookup_response(e, "");
  }
  if (rel == "renew-self") {
    ASSIGN_OR_RETURN(int64_t inc, increment());
    ASSIGN_OR_RETURN(TokenEntry e, tokens_->renew(self, inc));
    Response r;
    r.auth = auth_for(req.client_token, e);
    return r;
  }
  if (rel == "renew" || starts_with(rel, "renew/")) {
    if (starts_with(rel, "renew/")) req.data["token"] = rel.substr(6);
    ASSIGN_OR_RETURN(std::string token, field_string(req.data, "token"));
    ASSIGN_OR_RETURN(TokenEntry e, lookup_token("token"));
    ASSIGN_OR_RETURN(int64_t inc, increment());
    ASSIGN_OR_RETURN(TokenEntry renewed, tokens_->renew(e, inc));
    Response r;
    r.auth = auth_for(token, renewed);
    return r;
  }
  if (rel == "renew-accessor") {
    ASSIGN_OR_RETURN(TokenEntry e, lookup_accessor());
    ASSIGN_OR_RETURN(int64_t inc, increment());
    ASSIGN_OR_RETURN(TokenEntry renewed, tokens_->renew(e, inc));
    Response r;
    r.auth = auth_for("", renewed);
    return r;
  }
  if (rel == "revoke-self") {
    RETURN_IF_ERROR(tokens_->revoke(self));
    return Response::empty();
  }
  if (rel == "revoke" || starts_with(rel, "revoke/")) {
    if (starts_with(rel, "revoke/")) req.data["token"] = rel.substr(7);
    ASSIGN_OR_RETURN(std::string token, field_string(req.data, "token"));
    ASSIGN_OR_RETURN(auto e, tokens_->lookup(token));
    if (e) RETURN_IF_ERROR(tokens_->revoke(*e));  // Vault: revoking an unknown token is 204
    return Response::empty();
  }
  if (rel == "revoke-orphan") {
    ASSIGN_OR_RETURN(TokenEntry e, lookup_token("token"));
    RETURN_IF_ERROR(tokens_->revoke(e, /*orphan_children=*/true));
    return Response::empty();
  }
  if (rel == "revoke-accessor") {
    ASSIGN_OR_RETURN(TokenEntry e, lookup_accessor());
    RETURN_IF_ERROR(tokens_->revoke(e));
    return Response::empty();
  }
  if (rel == "accessors" || rel == "accessors/") {
    if (req.op != Operation::kList) return unimplemented("unsupported operation");
    ASSIGN_OR_RETURN(auto keys, tokens_->list_accessors());
    return Response::with_data({{"keys", to_string_array(keys)}});
  }
  if (rel == "tidy") {
    if (req.op != Operation::kUpdate && req.op != Operation::kCreate) {
      return unimplemented("unsupported operation");
    }
    ASSIGN_OR_RETURN(TokenStore::TidyReport report, tokens_->tidy());
    // Cubbyholes whose token is gone (revoked while the cubbyhole could not be deleted).
    ASSIGN_OR_RETURN(View all, cubbyhole_mount());
    ASSIGN_OR_RETURN(auto boxes, all.list(""));
    size_t cubbyholes = 0;
    for (std::string hash : boxes) {
      if (hash.empty() || hash.back() != '/') continue;
      hash.pop_back();
      ASSIGN_OR_RETURN(bool alive, tokens_->stored(hash));
      if (alive) continue;
      ASSIGN_OR_RETURN(View box, cubbyhole(hash));
      RETURN_IF_ERROR(box.delete_tree(""));
      ++cubbyholes;
    }
    // Vault tidies in the background and answers 202; this runs to completion first.
    Response resp;
    resp.status = 202;
    resp.warnings.emplace_back(
        "Tidy operation completed: revoked " + std::to_string(report.expired) +
        " expired tokens and " + std::to_string(report.parentless) +
        " tokens whose parent was gone; removed " + std::to_string(report.accessors) +
        " dangling accessors and " + std::to_string(cubbyholes) + " orphaned cubbyholes.");
    return resp;
  }
  return not_found("unsupported path");
}

}  // namespace custos::core
