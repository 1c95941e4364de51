#include "config/config.h"

#include <cctype>
#include <charconv>
#include <fstream>
#include <map>
#include <set>
#include <system_error>
#include <utility>

#include "base/encoding.h"
#include "hcl/hcl.h"

namespace custos::config {

namespace {

constexpr Seconds kDefaultLeaseTtl = Seconds(768 * 3600);

// Only short printable text from the file is quoted back in errors.
std::string quote_text(std::string_view s) {
  std::string out = "\"";
  size_t n = 0;
  for (char c : s) {
    if (++n > 64) {
      out += "...";
      break;
    }
    out.push_back(c >= 0x20 && c <= 0x7e ? c : '?');
  }
  out.push_back('"');
  return out;
}

Status error_at(int line, std::string_view what) {
  return invalid_argument("line " + std::to_string(line) + ": " + std::string(what));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Status type_error(const hcl::Attribute& a, std::string_view expected) {
  return error_at(a.line, quote_text(a.name) + " must be " + std::string(expected) + ", not a " +
                              std::string(hcl::kind_name(a.value.kind())));
}

Result<std::string> get_string(const hcl::Attribute& a) {
  if (!a.value.is_string()) return type_error(a, "a string");
  return a.value.as_string();
}

Result<std::string> get_nonempty_string(const hcl::Attribute& a) {
  ASSIGN_OR_RETURN(std::string s, get_string(a));
  if (s.empty()) return error_at(a.line, quote_text(a.name) + " must not be empty");
  return s;
}

// Vault parses booleans leniently (Go's strconv.ParseBool), and operators rely on it:
// tls_disable = "true" and tls_disable = 1 are both common.
Result<bool> get_bool(const hcl::Attribute& a) {
  const hcl::Value& v = a.value;
  if (v.is_bool()) return v.as_bool();
  if (v.is_int() && (v.as_int() == 0 || v.as_int() == 1)) return v.as_int() == 1;
  if (v.is_string()) {
    const std::string& s = v.as_string();
    for (std::string_view t : {"1", "t", "T", "true", "TRUE", "True"}) {
      if (s == t) return true;
    }
    for (std::string_view f : {"0", "f", "F", "false", "FALSE", "False"}) {
      if (s == f) return false;
    }
  }
  return error_at(a.line, quote_text(a.name) + " must be a boolean (true, false, \"true\", \"1\", ...)");
}

// Vault durations: "768h", "1h30m", or a bare number of seconds.
Result<Seconds> get_duration(const hcl::Attribute& a) {
  const hcl::Value& v = a.value;
  if (v.is_int()) {
    if (v.as_int() < 0) return error_at(a.line, quote_text(a.name) + " must not be negative");
    return Seconds(v.as_int());
  }
  if (v.is_string()) {
    auto d = parse_duration(v.as_string());
    if (!d.ok()) {
      return error_at(a.line, quote_text(a.name) + " is not a duration such as \"768h\" or \"90s\"");
    }
    if (d->count() < 0) return error_at(a.line, quote_text(a.name) + " must not be negative");
    return *d;
  }
  return type_error(a, "a duration");
}

Result<int64_t> get_int(const hcl::Attribute& a) {
  const hcl::Value& v = a.value;
  if (v.is_int()) return v.as_int();
  if (v.is_string()) {
    const std::string& s = v.as_string();
    int64_t out = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return out;
  }
  return type_error(a, "an integer");
}

// Rejects a key set twice in one body: the second would silently win otherwise.
class SeenKeys {
 public:
  Status check(const hcl::Attribute& a) {
    auto [it, inserted] = first_.emplace(a.name, a.line);
    if (!inserted) {
      return error_at(a.line, quote_text(a.name) + " is set twice (first on line " +
                                  std::to_string(it->second) + ")");
    }
    return ok_status();
  }

 private:
  std::map<std::string, int> first_;
};

Status no_blocks(const hcl::Block& parent) {
  if (parent.body.blocks.empty()) return ok_status();
  const hcl::Block& b = parent.body.blocks.front();
  return error_at(b.line, "unexpected block " + quote_text(b.type) + " inside " + quote_text(parent.type));
}

// What the etcd keys must agree on, once all are read (file and environment).
Status check_etcd(const StorageConfig& s) {
  // TLS settings with an http:// member would be silently unused (and the password sent in the
  // clear): refused, as is a certificate without its key.
  bool tls =
      !s.etcd_tls_ca_file.empty() || !s.etcd_tls_cert_file.empty() || !s.etcd_tls_key_file.empty();
  for (const auto& e : s.etcd_endpoints) {
    if (tls && e.rfind("http://", 0) == 0) {
      return error_at(
          s.line, "storage \"etcd\": tls_* settings need https:// addresses, not " + quote_text(e));
    }
  }
  if (s.etcd_tls_cert_file.empty() != s.etcd_tls_key_file.empty()) {
    return error_at(s.line, "storage \"etcd\": tls_cert_file and tls_key_file go together");
  }
  return ok_status();
}

// storage "etcd": Vault's keys where Custos does what they ask; the rest refused by name.
Status parse_etcd_key(const hcl::Attribute& a, StorageConfig& s) {
  const std::string& k = a.name;
  if (k == "address") {
    ASSIGN_OR_RETURN(std::string v, get_nonempty_string(a));
    s.etcd_endpoints.clear();
    size_t start = 0;
    while (start <= v.size()) {
      size_t comma = v.find(',', start);
      std::string one = strip_whitespace(
          v.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (one.rfind("http://", 0) != 0 && one.rfind("https://", 0) != 0) {
        return error_at(a.line,
                        "\"address\" takes etcd client URLs (http://host:2379 or https://...), "
                        "comma-separated; got " +
                            quote_text(one));
      }
      while (!one.empty() && one.back() == '/') one.pop_back();
      if (one.find('@') != std::string::npos) {
        return error_at(a.line,
                        "\"address\": credentials go in username and password, not "
                        "in the URL");
      }
      s.etcd_endpoints.push_back(one);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  } else if (k == "path") {
    ASSIGN_OR_RETURN(s.path, get_nonempty_string(a));
    if (s.path.back() != '/') s.path += '/';
  } else if (k == "username") {
    ASSIGN_OR_RETURN(s.etcd_username, get_string(a));
  } else if (k == "password") {
    ASSIGN_OR_RETURN(s.etcd_password, get_string(a));
  } else if (k == "tls_ca_file") {
    ASSIGN_OR_RETURN(s.etcd_tls_ca_file, get_nonempty_string(a));
  } else if (k == "tls_cert_file") {
    ASSIGN_OR_RETURN(s.etcd_tls_cert_file, get_nonempty_string(a));
  } else if (k == "tls_key_file") {
    ASSIGN_OR_RETURN(s.etcd_tls_key_file, get_nonempty_string(a));
  } else if (k == "request_timeout" || k == "lock_timeout") {
    ASSIGN_OR_RETURN(Seconds d, get_duration(a));
    if (d.count() < 1) return error_at(a.line, quote_text(k) + " must be at least 1s");
    (k == "request_timeout" ? s.etcd_request_timeout : s.etcd_lock_ttl) = d.count();
  } else if (k == "max_txn_ops") {
    ASSIGN_OR_RETURN(int64_t n, get_int(a));
    if (n < 1) return error_at(a.line, "\"max_txn_ops\" must be at least 1");
    s.etcd_max_txn_ops = n;
  } else if (k == "etcd_api") {
    ASSIGN_OR_RETURN(std::string v, get_string(a));
    if (v != "v3") return error_at(a.line, "etcd_api: only \"v3\" is supported");
  } else if (k == "ha_enabled") {
    ASSIGN_OR_RETURN(s.ha_enabled, get_bool(a));
  } else if (k == "sync" || k == "discovery_srv" || k == "discovery_srv_name" ||
             k == "tls_discovery_srv_name" || k == "max_receive_size") {
    return error_at(a.line, quote_text(k) +
                                " is not supported by storage \"etcd\"; list every "
                                "member in \"address\"");
  } else {
    return error_at(a.line, "unknown key " + quote_text(k) + " in storage \"etcd\"");
  }
  return ok_status();
}

Result<StorageConfig> parse_storage(const hcl::Block& b) {
  if (b.labels.size() != 1) {
    return error_at(b.line, "storage takes one label, the backend: storage \"sqlite\" { ... }");
  }
  StorageConfig s;
  s.line = b.line;
  const std::string& backend = b.labels[0];
  if (backend == "inmem") {
    s.type = StorageType::kInmem;
  } else if (backend == "sqlite") {
    s.type = StorageType::kSqlite;
  } else if (backend == "etcd") {
    s.type = StorageType::kEtcd;
    s.path = "/custos/";
    s.etcd_endpoints = {"http://127.0.0.1:2379"};  // Vault's default address
  } else {
    return error_at(b.line, "unknown storage backend " + quote_text(backend) +
                                " (available: \"inmem\", \"sqlite\", \"etcd\")");
  }
  RETURN_IF_ERROR(no_blocks(b));
  SeenKeys seen;
  for (const hcl::Attribute& a : b.body.attributes) {
    RETURN_IF_ERROR(seen.check(a));
    if (s.type == StorageType::kEtcd) {
      RETURN_IF_ERROR(parse_etcd_key(a, s));
    } else if (s.type == StorageType::kSqlite && a.name == "path") {
      ASSIGN_OR_RETURN(s.path, get_nonempty_string(a));
    } else {
      return error_at(a.line, "unknown key " + quote_text(a.name) + " in storage \"" + backend + "\"" +
                                  (s.type == StorageType::kSqlite ? " (expected \"path\")"
                                                                  : " (it takes no settings)"));
    }
  }
  if (s.type == StorageType::kSqlite && s.path.empty()) {
    return error_at(b.line, "storage \"sqlite\" needs a path");
  }
  if (s.type == StorageType::kEtcd) RETURN_IF_ERROR(check_etcd(s));
  return s;
}

Result<ListenerConfig> parse_listener(const hcl::Block& b) {
  if (b.labels.size() != 1) {
    return error_at(b.line, "listener takes one label, the type: listener \"tcp\" { ... }");
  }
  if (b.labels[0] != "tcp") {
    return error_at(b.line, "unknown listener type " + quote_text(b.labels[0]) + " (available: \"tcp\")");
  }
  if (!b.body.blocks.empty() && b.body.blocks.front().type == "telemetry") {
    return error_at(b.body.blocks.front().line,
                    "listener telemetry (unauthenticated_metrics_access) is not supported: "
                    "scrape sys/metrics with a token that may read it");
  }
  RETURN_IF_ERROR(no_blocks(b));
  ListenerConfig l;
  l.line = b.line;
  SeenKeys seen;
  for (const hcl::Attribute& a : b.body.attributes) {
    RETURN_IF_ERROR(seen.check(a));
    const std::string& k = a.name;
    if (k == "address") {
      ASSIGN_OR_RETURN(l.address, get_nonempty_string(a));
    } else if (k == "cluster_address") {
      ASSIGN_OR_RETURN(l.cluster_address, get_string(a));
    } else if (k == "tls_disable") {
      ASSIGN_OR_RETURN(l.tls_disable, get_bool(a));
    } else if (k == "tls_cert_file") {
      ASSIGN_OR_RETURN(l.tls_cert_file, get_nonempty_string(a));
    } else if (k == "tls_key_file") {
      ASSIGN_OR_RETURN(l.tls_key_file, get_nonempty_string(a));
    } else if (k == "tls_client_ca_file") {
      ASSIGN_OR_RETURN(l.tls_client_ca_file, get_nonempty_string(a));
    } else if (k == "tls_min_version") {
      ASSIGN_OR_RETURN(std::string v, get_string(a));
      if (v == "tls12") {
        l.tls_min_version = TlsVersion::kTls12;
      } else if (v == "tls13") {
        l.tls_min_version = TlsVersion::kTls13;
      } else if (v == "tls10" || v == "tls11") {
        return error_at(a.line, "tls_min_version " + quote_text(v) +
                                    " is not supported (use \"tls12\" or \"tls13\")");
      } else {
        return error_at(a.line, "tls_min_version must be \"tls12\" or \"tls13\"");
      }
    } else if (k == "max_request_size") {
      ASSIGN_OR_RETURN(int64_t n, get_int(a));
      // As in Vault: 0 means the default, a negative value means no limit.
      l.max_request_size = n == 0 ? ListenerConfig{}.max_request_size : n;
    } else if (k == "max_request_duration") {
      ASSIGN_OR_RETURN(Seconds d, get_duration(a));
      l.max_request_duration = d.count() == 0 ? ListenerConfig{}.max_request_duration : d;
    } else {
      return error_at(a.line, "unknown key " + quote_text(k) + " in listener \"tcp\"");
    }
  }
  if (!l.tls_disable && (l.tls_cert_file.empty() || l.tls_key_file.empty())) {
    return error_at(b.line,
                    "listener \"tcp\" needs tls_cert_file and tls_key_file unless tls_disable = true");
  }
  if (l.tls_disable && !l.tls_client_ca_file.empty()) {
    return error_at(b.line, "listener \"tcp\" sets tls_client_ca_file but disables TLS");
  }
  return l;
}

Result<log::Level> get_log_level(const hcl::Attribute& a) {
  ASSIGN_OR_RETURN(std::string v, get_string(a));
  std::string name = lower(v);
  if (name == "warning") name = "warn";
  if (name == "err") name = "error";
  log::Level level = log::Level::kInfo;
  if (!log::parse_level(name, level)) {
    return error_at(a.line, "log_level must be one of trace, debug, info, warn, error, off");
  }
  return level;
}

Result<std::optional<uint64_t>> parse_slot(std::string_view v, int line) {
  auto slot = parse_uint64(v);
  if (!slot)
    return error_at(line, "slot must be a slot number such as \"0\" or \"0x2000000000000001\"");
  return slot;
}

// seal "pkcs11" { ... }. Other seal types are refused by name: a configuration that expects a
// cloud KMS must not start with Shamir instead.
Result<SealConfig> parse_seal(const hcl::Block& b) {
  if (b.labels.size() != 1)
    return error_at(b.line, "seal takes one label, the type: seal \"pkcs11\" { ... }");
  if (b.labels[0] != "pkcs11") {
    return error_at(b.line,
                    "seal type " + quote_text(b.labels[0]) +
                        " is not supported (available: \"pkcs11\"; without a seal stanza the "
                        "server uses Shamir unseal keys)");
  }
  RETURN_IF_ERROR(no_blocks(b));
  SealConfig s;
  s.line = b.line;
  SeenKeys seen;
  for (const hcl::Attribute& a : b.body.attributes) {
    RETURN_IF_ERROR(seen.check(a));
    const std::string& k = a.name;
    if (k == "lib") {
      ASSIGN_OR_RETURN(s.lib, get_nonempty_string(a));
    } else if (k == "slot") {
      if (a.value.is_int() && a.value.as_int() >= 0) {
        s.slot = static_cast<uint64_t>(a.value.as_int());
      } else {
        ASSIGN_OR_RETURN(std::string v, get_string(a));
        ASSIGN_OR_RETURN(s.slot, parse_slot(v, a.line));
      }
    } else if (k == "token_label") {
      ASSIGN_OR_RETURN(s.token_label, get_nonempty_string(a));
    } else if (k == "pin") {
      // Never quoted back: a PIN of the wrong type is reported without its value.
      if (!a.value.is_string()) return error_at(a.line, "\"pin\" must be a string");
      s.pin = SecretString(a.value.as_string());
    } else if (k == "key_label" || k == "default_key_label") {
      if (!s.key_label.empty())
        return error_at(a.line, "set key_label or default_key_label, not both");
      ASSIGN_OR_RETURN(s.key_label, get_nonempty_string(a));
    } else if (k == "mechanism") {
      if (a.value.is_int()) {
        s.mechanism = std::to_string(a.value.as_int());
      } else {
        ASSIGN_OR_RETURN(s.mechanism, get_nonempty_string(a));
      }
    } else if (k == "generate_key") {
      ASSIGN_OR_RETURN(s.generate_key, get_bool(a));
    } else if (k == "rsa_oaep_hash") {
      ASSIGN_OR_RETURN(s.rsa_oaep_hash, get_nonempty_string(a));
    } else if (k == "hmac_key_label" || k == "hmac_default_key_label") {
      ASSIGN_OR_RETURN(s.hmac_key_label, get_string(a));
    } else if (k == "hmac_mechanism") {
      ASSIGN_OR_RETURN(s.hmac_mechanism, get_string(a));
    } else if (k == "disabled") {
      ASSIGN_OR_RETURN(bool disabled, get_bool(a));
      if (disabled) return error_at(a.line, "seal migration (disabled = true) is not supported");
    } else if (k == "key_id" || k == "rsa_encrypt_local" || k == "force_rw_session") {
      return error_at(a.line,
                      quote_text(k) + " is not supported by Custos's pkcs11 seal (docs/seal.md)");
    } else {
      return error_at(a.line, "unknown key " + quote_text(k) + " in seal \"pkcs11\"");
    }
  }
  return s;
}

}  // namespace

std::string_view storage_type_name(StorageType t) {
  switch (t) {
    case StorageType::kInmem:
      return "inmem";
    case StorageType::kSqlite:
      return "sqlite";
    case StorageType::kEtcd:
      return "etcd";
  }
  return "unknown";
}

// Vault's telemetry stanza. Custos serves its metrics at sys/metrics (Prometheus text or Vault's
// JSON) and has no push sinks: their keys are refused rather than silently ignored. The other
// keys are accepted so that a vault.conf starts unchanged; docs/configuration.md says which have
// no effect.
Status parse_telemetry(const hcl::Block& b) {
  if (!b.labels.empty()) return error_at(b.line, "telemetry takes no label: telemetry { ... }");
  RETURN_IF_ERROR(no_blocks(b));
  static const std::set<std::string, std::less<>> kAccepted = {"prometheus_retention_time",
                                                               "disable_hostname",
                                                               "enable_hostname_label",
                                                               "usage_gauge_period",
                                                               "maximum_gauge_cardinality",
                                                               "lease_metrics_epsilon",
                                                               "num_lease_metrics_buckets",
                                                               "add_lease_metrics_namespace_labels",
                                                               "add_mount_point_rollback_metrics",
                                                               "filter_default",
                                                               "prefix_filter",
                                                               "metrics_prefix"};
  SeenKeys seen;
  for (const hcl::Attribute& a : b.body.attributes) {
    RETURN_IF_ERROR(seen.check(a));
    if (kAccepted.count(a.name) > 0) continue;
    const std::string& k = a.name;
    if (k.rfind("statsd", 0) == 0 || k.rfind("statsite", 0) == 0 || k.rfind("dogstatsd", 0) == 0 ||
        k.rfind("circonus", 0) == 0 || k.rfind("stackdriver", 0) == 0) {
      return error_at(a.line, quote_text(k) +
                                  ": metrics sinks are not supported; scrape sys/metrics "
                                  "(?format=prometheus) instead");
    }
    return error_at(a.line, "unknown telemetry key " + quote_text(k));
  }
  return ok_status();
}

Result<ServerConfig> parse_server_config(std::string_view text) {
  ASSIGN_OR_RETURN(hcl::Body body, hcl::parse(text));
  ServerConfig c;
  SeenKeys seen;
  for (const hcl::Attribute& a : body.attributes) {
    RETURN_IF_ERROR(seen.check(a));
    const std::string& k = a.name;
    if (k == "api_addr") {
      ASSIGN_OR_RETURN(c.api_addr, get_string(a));
    } else if (k == "cluster_addr") {
      ASSIGN_OR_RETURN(c.cluster_addr, get_string(a));
    } else if (k == "ha_tls_ca_file") {
      ASSIGN_OR_RETURN(c.ha_tls_ca_file, get_nonempty_string(a));
    } else if (k == "ui") {
      ASSIGN_OR_RETURN(c.ui, get_bool(a));
    } else if (k == "disable_mlock") {
      ASSIGN_OR_RETURN(c.disable_mlock, get_bool(a));
    } else if (k == "disable_cache") {
      ASSIGN_OR_RETURN(c.disable_cache, get_bool(a));
    } else if (k == "cache_size") {
      ASSIGN_OR_RETURN(c.cache_size, get_int(a));
      if (c.cache_size < 0 || c.cache_size > (int64_t{1} << 26)) {
        return error_at(a.line, "cache_size must be between 0 and 67108864 entries");
      }
    } else if (k == "default_lease_ttl" || k == "max_lease_ttl") {
      ASSIGN_OR_RETURN(Seconds d, get_duration(a));
      // As in Vault, 0 means the system default.
      (k == "default_lease_ttl" ? c.default_lease_ttl : c.max_lease_ttl) =
          d.count() == 0 ? kDefaultLeaseTtl : d;
    } else if (k == "log_level") {
      ASSIGN_OR_RETURN(c.log_level, get_log_level(a));
    } else if (k == "storage" || k == "listener") {
      return error_at(a.line, quote_text(k) + " is a stanza: write " + k + " \"type\" { ... }");
    } else {
      return error_at(a.line, "unknown key " + quote_text(k));
    }
  }
  bool have_storage = false;
  bool have_telemetry = false;
  int storage_line = 0;
  for (const hcl::Block& b : body.blocks) {
    if (b.type == "storage") {
      if (have_storage) {
        return error_at(b.line, "only one storage stanza is allowed (first on line " +
                                    std::to_string(storage_line) + ")");
      }
      ASSIGN_OR_RETURN(c.storage, parse_storage(b));
      have_storage = true;
      storage_line = b.line;
    } else if (b.type == "listener") {
      ASSIGN_OR_RETURN(ListenerConfig l, parse_listener(b));
      c.listeners.push_back(std::move(l));
    } else if (b.type == "seal") {
      if (c.seal)
        return error_at(b.line,
                        "only one seal stanza is allowed (seal migration is not supported)");
      ASSIGN_OR_RETURN(SealConfig seal, parse_seal(b));
      c.seal = std::move(seal);
    } else if (b.type == "telemetry") {
      if (have_telemetry) return error_at(b.line, "only one telemetry stanza is allowed");
      RETURN_IF_ERROR(parse_telemetry(b));
      have_telemetry = true;
    } else {
      return error_at(b.line, "unknown stanza " + quote_text(b.type) +
                                  " (supported: storage, listener, seal, telemetry)");
    }
  }
  if (!have_storage) return invalid_argument("a storage stanza is required");
  if (c.listeners.empty()) return invalid_argument("at least one listener stanza is required");
  if (c.default_lease_ttl > c.max_lease_ttl) {
    const hcl::Attribute* a = body.find_attribute("default_lease_ttl");
    return error_at(a ? a->line : 1, "default_lease_ttl is greater than max_lease_ttl");
  }
  return c;
}

Status apply_storage_environment(ServerConfig& c,
                                 const std::function<const char*(const char*)>& getenv) {
  if (c.storage.type != StorageType::kEtcd) return ok_status();
  // Vault's variables for its etcd backend; the password can then stay out of the file.
  for (auto [var, key] : {std::pair{"ETCD_ADDR", "address"}, std::pair{"ETCD_USERNAME", "username"},
                          std::pair{"ETCD_PASSWORD", "password"}}) {
    const char* v = getenv(var);
    if (v == nullptr || *v == '\0') continue;
    hcl::Attribute a;
    a.name = key;
    a.line = c.storage.line;
    a.value = hcl::Value::string(v);
    Status st = parse_etcd_key(a, c.storage);
    if (!st.ok()) return invalid_argument(std::string(var) + ": " + st.message());
  }
  return check_etcd(c.storage);
}

Status apply_seal_environment(ServerConfig& c,
                              const std::function<const char*(const char*)>& getenv) {
  auto env = [&](const char* name) -> std::optional<std::string> {
    const char* v = getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
  if (!c.seal) {
    auto type = env("VAULT_SEAL_TYPE");
    if (!type) type = env("VAULT_HSM_TYPE");
    if (!type || *type == "shamir") return ok_status();
    if (*type != "pkcs11") {
      return invalid_argument("VAULT_SEAL_TYPE " + quote_text(*type) +
                              " is not supported (available: \"pkcs11\", \"shamir\")");
    }
    c.seal.emplace();
  }
  SealConfig& s = *c.seal;
  if (auto v = env("VAULT_HSM_LIB")) s.lib = *v;
  if (auto v = env("VAULT_HSM_SLOT")) {
    auto slot = parse_slot(*v, 0);
    if (!slot.ok()) return invalid_argument("VAULT_HSM_SLOT must be a slot number");
    s.slot = *slot;
  }
  if (auto v = env("VAULT_HSM_TOKEN_LABEL")) s.token_label = *v;
  if (auto v = env("VAULT_HSM_PIN")) s.pin = SecretString(std::move(*v));
  if (auto v = env("VAULT_HSM_KEY_LABEL")) s.key_label = *v;
  if (auto v = env("VAULT_HSM_MECHANISM")) s.mechanism = *v;
  if (auto v = env("VAULT_HSM_RSA_OAEP_HASH")) s.rsa_oaep_hash = *v;
  if (auto v = env("VAULT_HSM_HMAC_KEY_LABEL")) s.hmac_key_label = *v;
  if (auto v = env("VAULT_HSM_GENERATE_KEY")) {
    hcl::Attribute a;
    a.name = "VAULT_HSM_GENERATE_KEY";
    a.value = hcl::Value::string(*v);
    auto b = get_bool(a);
    if (!b.ok()) return invalid_argument("VAULT_HSM_GENERATE_KEY must be true or false");
    s.generate_key = *b;
  }
  std::string where =
      s.line > 0 ? "line " + std::to_string(s.line) + ": seal \"pkcs11\"" : "seal \"pkcs11\"";
  if (s.lib.empty()) return invalid_argument(where + " needs lib (or VAULT_HSM_LIB)");
  if (!s.slot && s.token_label.empty()) {
    return invalid_argument(
        where + " needs slot or token_label (or VAULT_HSM_SLOT, VAULT_HSM_TOKEN_LABEL)");
  }
  if (s.pin.empty()) return invalid_argument(where + " needs pin (or VAULT_HSM_PIN)");
  if (s.key_label.empty())
    return invalid_argument(where + " needs key_label (or VAULT_HSM_KEY_LABEL)");
  return ok_status();
}

namespace {

// Reads a configuration file (at most kMaxConfigFileSize bytes) and parses it with `parse`;
// errors are prefixed by the path.
template <typename Config, typename Parse>
Result<Config> load_file(const std::filesystem::path& path, Parse parse) {
  const std::string where = "config file " + path.string();
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return not_found(where + ": not found");
    return invalid_argument(where + ": " + ec.message());
  }
  if (size > kMaxConfigFileSize) {
    return invalid_argument(where + ": larger than " + std::to_string(kMaxConfigFileSize) +
                            " bytes");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_argument(where + ": cannot be opened");
  std::string text(static_cast<size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  if (in.gcount() != static_cast<std::streamsize>(size)) {
    return invalid_argument(where + ": short read");
  }
  Result<Config> config = parse(text);
  if (!config.ok()) return config.status().with_context(where);
  return config;
}

}  // namespace

Result<ServerConfig> load_server_config(const std::filesystem::path& path) {
  return load_file<ServerConfig>(path, parse_server_config);
}

Result<MigrationConfig> parse_migration_config(std::string_view text) {
  ASSIGN_OR_RETURN(hcl::Body body, hcl::parse(text));
  if (!body.attributes.empty()) {
    const hcl::Attribute& a = body.attributes.front();
    return error_at(a.line, "unknown key " + quote_text(a.name) +
                                " (a migration takes storage_source and storage_destination)");
  }
  MigrationConfig m;
  bool source = false, destination = false;
  for (const hcl::Block& b : body.blocks) {
    bool is_source = b.type == "storage_source";
    if (!is_source && b.type != "storage_destination") {
      return error_at(b.line, "unknown stanza " + quote_text(b.type) +
                                  " (a migration takes storage_source and storage_destination)");
    }
    bool& seen = is_source ? source : destination;
    if (seen) return error_at(b.line, "only one " + b.type + " stanza is allowed");
    seen = true;
    ASSIGN_OR_RETURN(StorageConfig s, parse_storage(b));
    if (s.type == StorageType::kInmem) {
      return error_at(b.line, b.type + " \"inmem\" holds nothing to migrate to or from");
    }
    (is_source ? m.source : m.destination) = std::move(s);
  }
  if (!source || !destination) {
    return invalid_argument("a migration needs a storage_source and a storage_destination stanza");
  }
  return m;
}

Result<MigrationConfig> load_migration_config(const std::filesystem::path& path) {
  return load_file<MigrationConfig>(path, parse_migration_config);
}

}  // namespace custos::config
