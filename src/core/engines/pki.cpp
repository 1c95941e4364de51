// Vault's PKI secrets engine, one issuer per mount. API, storage layout and what is left out:
// docs/engines/pki.md.
//
// Concurrency: the CA (key, certificate, parents) is an immutable snapshot shared by pointer;
// issuing takes mu_ only to copy the pointer. Everything that changes the CA, the revocation list
// or the CRL (root/generate, set-signed, revoke, tidy, DELETE root) runs under mu_, so the stored
// CRL always reflects every stored revocation.
#include "core/engines/pki.h"

#include <arpa/inet.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/encoding.h"
#include "base/log.h"
#include "base/metrics.h"
#include "core/attested.h"
#include "crypto/pkey.h"
#include "crypto/x509.h"

namespace custos::core {
namespace {

namespace json = boost::json;

// Storage layout (docs/engines/pki.md).
constexpr std::string_view kCaBundleKey = "ca/bundle";
constexpr std::string_view kCaPendingKey = "ca/pending";
constexpr std::string_view kCertsPrefix = "certs/";
constexpr std::string_view kRevokedPrefix = "revoked/";
// Attested workloads by common name: the last attested certificate and heartbeat (sign-attested).
constexpr std::string_view kEnclavesPrefix = "enclaves/";
constexpr std::string_view kRolesPrefix = "roles/";
constexpr std::string_view kUrlsKey = "config/urls";
constexpr std::string_view kCrlKey = "crl";

constexpr int64_t kVaultDefaultTtl = int64_t{768} * 3600;  // Vault's system default and max TTL
constexpr int64_t kCrlLifetime = int64_t{72} * 3600;       // Vault's default CRL expiry
constexpr int64_t kDefaultSafetyBuffer = int64_t{72} * 3600;
constexpr int64_t kBackdate = 30;  // Vault's not_before_duration: tolerate clock skew
constexpr size_t kMaxNameLength = 256;
constexpr size_t kMaxHostnameLength = 253;
constexpr size_t kMaxLabelLength = 63;

constexpr std::string_view kCertPemType = "application/pem-certificate-chain";
constexpr std::string_view kCertDerType = "application/pkix-cert";
constexpr std::string_view kCrlDerType = "application/pkix-crl";
constexpr std::string_view kCrlPemType = "application/x-pem-file";

// Extension OIDs for config/urls (RFC 5280 4.2.2.1 and 4.2.1.13).
constexpr std::string_view kAiaOid = "1.3.6.1.5.5.7.1.1";
constexpr std::string_view kCrlDpOid = "2.5.29.31";
// DER of id-ad-ocsp and id-ad-caIssuers (1.3.6.1.5.5.7.48.1 and .2).
constexpr uint8_t kOcspOidDer[] = {0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01};
constexpr uint8_t kCaIssuersOidDer[] = {0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02};

// ---------------------------------------------------------------------------------------------
// Small helpers

std::vector<std::string> split_path(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  std::vector<std::string> out;
  if (path.empty()) return out;
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    out.emplace_back(path.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

bool valid_role_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  if (!word(s.front()) || !word(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return word(c) || c == '-' || c == '.'; });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string str_field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

int64_t int_field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_int64() ? v->as_int64() : 0;
}

// Overwrites a string member of a parsed document that held key material.
void wipe_member(json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (v != nullptr && v->is_string() && !v->as_string().empty()) {
    secure_wipe(v->as_string().data(), v->as_string().size());
  }
}

json::array to_array(const std::vector<std::string>& v) {
  json::array out;
  for (const auto& s : v) out.emplace_back(s);
  return out;
}

std::vector<std::string> from_array(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_array()) return out;
  for (const auto& e : v->as_array()) {
    if (e.is_string()) out.emplace_back(e.as_string());
  }
  return out;
}

bool is_ip_address(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// RFC 1123 host names; a leading "*." label when wildcards are allowed.
bool valid_hostname(std::string_view name, bool allow_wildcard) {
  if (allow_wildcard && name.substr(0, 2) == "*.") name.remove_prefix(2);
  if (name.empty() || name.size() > kMaxHostnameLength) return false;
  if (name.back() == '.') name.remove_suffix(1);
  while (true) {
    size_t dot = name.find('.');
    std::string_view label = name.substr(0, dot);
    if (label.empty() || label.size() > kMaxLabelLength || label.front() == '-' ||
        label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    if (dot == std::string_view::npos) return true;
    name.remove_prefix(dot + 1);
  }
}

// Vault's serial number text: lowercase hex bytes joined by ':'.
std::string serial_text(ByteSpan serial, char sep = ':') {
  std::string hex = hex_encode(serial);
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    if (i != 0) out += sep;
    out.append(hex, i, 2);
  }
  return out;
}

// Accepts "aa:bb:cc", "aa-bb-cc" or "aabbcc"; returns the big-endian magnitude.
Result<Bytes> parse_serial(std::string_view s) {
  std::string hex;
  for (char c : s) {
    if (c == ':' || c == '-') continue;
    hex += c;
  }
  if (hex.empty() || hex.size() > 80) return invalid_argument("invalid serial number");
  if (hex.size() % 2 != 0) hex.insert(hex.begin(), '0');
  auto bytes = hex_decode(hex);
  if (!bytes.ok()) return invalid_argument("invalid serial number");
  Bytes b = std::move(*bytes);
  size_t zeros = 0;
  while (zeros + 1 < b.size() && b[zeros] == 0) ++zeros;
  b.erase(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(zeros));
  return b;
}

std::string serial_key(ByteSpan serial) {
  return serial_text(serial, '-');
}

std::string trim_newline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// The base64 body of a PEM block (the DER in base64), for format=der on CSRs.
std::string pem_body(std::string_view pem) {
  std::string out;
  size_t start = pem.find('\n');
  size_t end = pem.find("-----END");
  if (start == std::string_view::npos || end == std::string_view::npos || end < start) return out;
  return strip_whitespace(pem.substr(start + 1, end - start - 1));
}

std::string_view private_key_type(crypto::KeyType t) {
  switch (t) {
    case crypto::KeyType::kRsa:
      return "rsa";
    case crypto::KeyType::kEd25519:
      return "ed25519";
    default:
      return "ec";
  }
}

int ec_bits(crypto::KeyType t) {
  switch (t) {
    case crypto::KeyType::kEcP384:
      return 384;
    case crypto::KeyType::kEcP521:
      return 521;
    default:
      return 256;
  }
}

// A key type and size as Vault names them ("rsa" 2048, "ec" 256, "ed25519" 0, "any" 0).
struct KeySpec {
  std::string type = "rsa";
  int bits = 2048;
};

Result<KeySpec> key_spec(std::string type, int64_t bits, bool allow_any) {
  if (type.empty()) type = "rsa";
  KeySpec k;
  k.type = type;
  if (type == "rsa") {
    if (bits == 0) bits = 2048;
    if (bits != 2048 && bits != 3072 && bits != 4096 && bits != 8192) {
      return invalid_argument("unsupported bit length for RSA key: " + std::to_string(bits));
    }
  } else if (type == "ec") {
    if (bits == 0) bits = 256;
    if (bits != 256 && bits != 384 && bits != 521) {
      return invalid_argument("unsupported bit length for EC key: " + std::to_string(bits));
    }
  } else if (type == "ed25519" || (allow_any && type == "any")) {
    bits = 0;
  } else {
    return invalid_argument("unknown key_type value: " + type);
  }
  k.bits = static_cast<int>(bits);
  return k;
}

Result<crypto::PrivateKey> generate_key(const KeySpec& k) {
  if (k.type == "rsa") return crypto::PrivateKey::generate(crypto::KeyType::kRsa, k.bits);
  if (k.type == "ed25519") return crypto::PrivateKey::generate(crypto::KeyType::kEd25519);
  if (k.type == "ec") {
    crypto::KeyType t = k.bits == 384   ? crypto::KeyType::kEcP384
                        : k.bits == 521 ? crypto::KeyType::kEcP521
                                        : crypto::KeyType::kEcP256;
    return crypto::PrivateKey::generate(t);
  }
  return invalid_argument("cannot generate a key of type " + k.type);
}

// DER: a tag-length-value with a definite length.
void der_append(Bytes& out, uint8_t tag, ByteSpan content) {
  out.push_back(tag);
  size_t n = content.size();
  if (n < 0x80) {
    out.push_back(static_cast<uint8_t>(n));
  } else {
    Bytes len;
    for (size_t v = n; v != 0; v >>= 8) len.insert(len.begin(), static_cast<uint8_t>(v & 0xff));
    out.push_back(static_cast<uint8_t>(0x80 | len.size()));
    out.insert(out.end(), len.begin(), len.end());
  }
  out.insert(out.end(), content.begin(), content.end());
}

Bytes der_tlv(uint8_t tag, ByteSpan content) {
  Bytes out;
  der_append(out, tag, content);
  return out;
}

constexpr uint8_t kDerSequence = 0x30;
constexpr uint8_t kDerUri = 0x86;       // GeneralName uniformResourceIdentifier [6] IMPLICIT
constexpr uint8_t kDerContext0 = 0xa0;  // [0] constructed

// ---------------------------------------------------------------------------------------------
// Records

struct Urls {
  std::vector<std::string> issuing_certificates;
  std::vector<std::string> crl_distribution_points;
  std::vector<std::string> ocsp_servers;

  json::object to_json() const {
    json::object o;
    o["issuing_certificates"] = to_array(issuing_certificates);
    o["crl_distribution_points"] = to_array(crl_distribution_points);
    o["ocsp_servers"] = to_array(ocsp_servers);
    return o;
  }
  static Urls from_json(const json::object& o) {
    Urls u;
    u.issuing_certificates = from_array(o, "issuing_certificates");
    u.crl_distribution_points = from_array(o, "crl_distribution_points");
    u.ocsp_servers = from_array(o, "ocsp_servers");
    return u;
  }

  // AuthorityInfoAccess and CRLDistributionPoints contents for issued certificates.
  void add_extensions(std::map<std::string, Bytes>& ext) const {
    if (!issuing_certificates.empty() || !ocsp_servers.empty()) {
      Bytes seq;
      auto access = [&](ByteSpan oid, const std::string& url) {
        Bytes desc(oid.begin(), oid.end());
        der_append(desc, kDerUri, as_bytes(url));
        der_append(seq, kDerSequence, desc);
      };
      for (const auto& u : ocsp_servers) access(kOcspOidDer, u);
      for (const auto& u : issuing_certificates) access(kCaIssuersOidDer, u);
      ext[std::string(kAiaOid)] = der_tlv(kDerSequence, seq);
    }
    if (!crl_distribution_points.empty()) {
      // DistributionPoint { distributionPoint [0] { fullName [0] { URI } } }, one per URL.
      Bytes seq;
      for (const auto& u : crl_distribution_points) {
        Bytes full_name = der_tlv(kDerContext0, der_tlv(kDerUri, as_bytes(u)));
        der_append(seq, kDerSequence, der_tlv(kDerContext0, full_name));
      }
      ext[std::string(kCrlDpOid)] = der_tlv(kDerSequence, seq);
    }
  }
};

struct Role {
  std::vector<std::string> allowed_domains;
  bool allow_subdomains = false;
  bool allow_bare_domains = false;
  bool allow_glob_domains = false;
  bool allow_localhost = true;
  bool allow_ip_sans = true;
  bool allow_any_name = false;
  bool allow_wildcard_certificates = true;
  bool enforce_hostnames = true;
  bool server_flag = true;
  bool client_flag = true;
  std::string key_type = "rsa";
  int key_bits = 2048;
  int64_t ttl = 0;
  int64_t max_ttl = 0;
  // sign-attested: the oldest attestation (auth/attest login) an attested certificate may rest
  // on, in seconds; a workload re-attests at least this often to keep getting certificates.
  int64_t attestation_max_age = 300;
  // sign-attested: each new certificate of a workload (a heartbeat) revokes the one before it,
  // so a workload has one valid attested certificate at a time.
  bool revoke_superseded = false;
  bool generate_lease = false;
  bool no_store = false;
  bool require_cn = true;
  bool use_csr_common_name = true;
  bool use_csr_sans = true;
  std::string leaf_not_after_behavior = "truncate";
  std::string organization;
  std::string ou;

  json::object to_json() const {
    json::object o;
    o["allowed_domains"] = to_array(allowed_domains);
    o["allow_subdomains"] = allow_subdomains;
    o["allow_bare_domains"] = allow_bare_domains;
    o["allow_glob_domains"] = allow_glob_domains;
    o["allow_localhost"] = allow_localhost;
    o["allow_ip_sans"] = allow_ip_sans;
    o["allow_any_name"] = allow_any_name;
    o["allow_wildcard_certificates"] = allow_wildcard_certificates;
    o["enforce_hostnames"] = enforce_hostnames;
    o["server_flag"] = server_flag;
    o["client_flag"] = client_flag;
    o["key_type"] = key_type;
    o["key_bits"] = key_bits;
    o["ttl"] = ttl;
    o["max_ttl"] = max_ttl;
    o["attestation_max_age"] = attestation_max_age;
    o["revoke_superseded"] = revoke_superseded;
    o["generate_lease"] = generate_lease;
    o["no_store"] = no_store;
    o["require_cn"] = require_cn;
    o["use_csr_common_name"] = use_csr_common_name;
    o["use_csr_sans"] = use_csr_sans;
    o["leaf_not_after_behavior"] = leaf_not_after_behavior;
    o["organization"] = organization.empty() ? json::array() : json::array{organization};
    o["ou"] = ou.empty() ? json::array() : json::array{ou};
    return o;
  }

  // From a request body (missing fields take Vault's defaults) or a stored record.
  static Result<Role> from_json(const json::object& d) {
    Role r;
    ASSIGN_OR_RETURN(r.allowed_domains, field_string_list(d, "allowed_domains"));
    for (auto& dom : r.allowed_domains) dom = lower(dom);
    ASSIGN_OR_RETURN(r.allow_subdomains, field_bool(d, "allow_subdomains", false));
    ASSIGN_OR_RETURN(r.allow_bare_domains, field_bool(d, "allow_bare_domains", false));
    ASSIGN_OR_RETURN(r.allow_glob_domains, field_bool(d, "allow_glob_domains", false));
    ASSIGN_OR_RETURN(r.allow_localhost, field_bool(d, "allow_localhost", true));
    ASSIGN_OR_RETURN(r.allow_ip_sans, field_bool(d, "allow_ip_sans", true));
    ASSIGN_OR_RETURN(r.allow_any_name, field_bool(d, "allow_any_name", false));
    ASSIGN_OR_RETURN(r.allow_wildcard_certificates,
                     field_bool(d, "allow_wildcard_certificates", true));
    ASSIGN_OR_RETURN(r.enforce_hostnames, field_bool(d, "enforce_hostnames", true));
    ASSIGN_OR_RETURN(r.server_flag, field_bool(d, "server_flag", true));
    ASSIGN_OR_RETURN(r.client_flag, field_bool(d, "client_flag", true));
    ASSIGN_OR_RETURN(std::string type, field_string(d, "key_type", "rsa"));
    ASSIGN_OR_RETURN(int64_t bits, field_int(d, "key_bits", 0));
    ASSIGN_OR_RETURN(KeySpec ks, key_spec(type, bits, /*allow_any=*/true));
    r.key_type = ks.type;
    r.key_bits = ks.bits;
    ASSIGN_OR_RETURN(r.ttl, field_duration(d, "ttl", 0));
    ASSIGN_OR_RETURN(r.max_ttl, field_duration(d, "max_ttl", 0));
    if (r.max_ttl != 0 && r.ttl > r.max_ttl) {
      return invalid_argument("\"ttl\" value must be less than \"max_ttl\" value");
    }
    ASSIGN_OR_RETURN(r.attestation_max_age, field_duration(d, "attestation_max_age", 300));
    if (r.attestation_max_age <= 0) {
      return invalid_argument("\"attestation_max_age\" must be positive");
    }
    ASSIGN_OR_RETURN(r.generate_lease, field_bool(d, "generate_lease", false));
    if (r.generate_lease) {
      return invalid_argument("generate_lease is not supported: certificates are not leased");
    }
    ASSIGN_OR_RETURN(r.no_store, field_bool(d, "no_store", false));
    ASSIGN_OR_RETURN(r.revoke_superseded, field_bool(d, "revoke_superseded", false));
    if (r.revoke_superseded && r.no_store) {
      return invalid_argument(
          "revoke_superseded needs the certificates stored (no_store = false) to revoke them");
    }
    ASSIGN_OR_RETURN(r.require_cn, field_bool(d, "require_cn", true));
    ASSIGN_OR_RETURN(r.use_csr_common_name, field_bool(d, "use_csr_common_name", true));
    ASSIGN_OR_RETURN(r.use_csr_sans, field_bool(d, "use_csr_sans", true));
    ASSIGN_OR_RETURN(r.leaf_not_after_behavior,
                     field_string(d, "leaf_not_after_behavior", "truncate"));
    if (r.leaf_not_after_behavior.empty()) r.leaf_not_after_behavior = "truncate";
    if (r.leaf_not_after_behavior != "truncate" && r.leaf_not_after_behavior != "err") {
      return invalid_argument("leaf_not_after_behavior must be \"truncate\" or \"err\"");
    }
    ASSIGN_OR_RETURN(auto orgs, field_string_list(d, "organization"));
    ASSIGN_OR_RETURN(auto units, field_string_list(d, "ou"));
    if (orgs.size() > 1 || units.size() > 1) {
      return invalid_argument("only one organization and one ou are supported");
    }
    if (!orgs.empty()) r.organization = orgs.front();
    if (!units.empty()) r.ou = units.front();
    return r;
  }

  bool name_allowed(const std::string& name) const {
    if (enforce_hostnames && !valid_hostname(name, allow_wildcard_certificates)) return false;
    if (allow_any_name) return true;
    if (allow_localhost && (name == "localhost" || name == "localdomain")) return true;
    std::string_view base = name;
    bool wildcard = false;
    if (base.substr(0, 2) == "*.") {
      if (!allow_wildcard_certificates) return false;
      base.remove_prefix(2);
      wildcard = true;
    }
    for (const auto& d : allowed_domains) {
      if (d.empty()) continue;
      if (allow_glob_domains && d.find('*') != std::string::npos) {
        if (glob_match(d, name)) return true;
        continue;
      }
      if (!wildcard && allow_bare_domains && name == d) return true;
      if (allow_subdomains && (ends_with(base, "." + d) || (wildcard && base == d))) return true;
    }
    return false;
  }
};

// The mount's issuer: key, certificate and the certificates above it (for ca_chain).
struct CaBundle {
  crypto::PrivateKey key;
  crypto::Certificate cert;
  std::vector<crypto::Certificate> parents;
  std::string issuer_name;

  json::array chain_json() const {
    json::array out;
    out.emplace_back(trim_newline(cert.pem()));
    for (const auto& p : parents) out.emplace_back(trim_newline(p.pem()));
    return out;
  }
  std::string chain_pem() const {
    std::string out = cert.pem();
    for (const auto& p : parents) out += p.pem();
    return out;
  }
};
using CaPtr = std::shared_ptr<const CaBundle>;

Result<CaBundle> ca_from_json(json::object& o) {
  CaBundle ca;
  SecretString key_pem(str_field(o, "private_key"));
  wipe_member(o, "private_key");
  auto key = crypto::PrivateKey::from_pem(key_pem.str());
  if (!key.ok()) return data_loss("stored CA key does not parse");
  ca.key = std::move(*key);
  auto cert = crypto::Certificate::from_pem(str_field(o, "certificate"));
  if (!cert.ok()) return data_loss("stored CA certificate does not parse");
  ca.cert = std::move(*cert);
  for (const auto& pem : from_array(o, "ca_chain")) {
    auto c = crypto::Certificate::from_pem(pem);
    if (!c.ok()) return data_loss("stored CA chain does not parse");
    ca.parents.push_back(std::move(*c));
  }
  ca.issuer_name = str_field(o, "issuer_name");
  return ca;
}

json::object ca_to_json(const CaBundle& ca) {
  json::object o;
  o["private_key"] = ca.key.to_pem().str();
  o["certificate"] = ca.cert.pem();
  json::array chain;
  for (const auto& p : ca.parents) chain.emplace_back(p.pem());
  o["ca_chain"] = std::move(chain);
  o["issuer_name"] = ca.issuer_name;
  return o;
}

// A certificate in the response format the caller asked for.
Result<std::string> render_cert(const crypto::Certificate& c, std::string_view format) {
  if (format == "der") return base64_encode(c.der());
  if (format == "pem" || format == "pem_bundle") return trim_newline(c.pem());
  return invalid_argument("unsupported format: use pem, pem_bundle or der");
}

// Subject names of a leaf certificate, after the role's checks.
struct LeafNames {
  std::string cn;
  std::vector<std::string> dns;
  std::vector<std::string> ips;
};

void add_unique(std::vector<std::string>& v, const std::string& s) {
  if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

// ---------------------------------------------------------------------------------------------
// The engine

struct TidyStatus {
  std::string state = "Inactive";
  int64_t cert_store_deleted_count = 0;
  int64_t revoked_cert_deleted_count = 0;
  int64_t safety_buffer = 0;
  bool tidy_cert_store = false;
  bool tidy_revoked_certs = false;
  std::string time_started;
  std::string time_finished;
};

class PkiEngine final : public Engine {
 public:
  explicit PkiEngine(EngineContext ctx)
      : storage_(ctx.storage),
        clock_(ctx.clock),
        default_ttl_(ctx.default_lease_ttl > 0 ? ctx.default_lease_ttl : kVaultDefaultTtl),
        max_ttl_(ctx.max_lease_ttl > 0 ? ctx.max_lease_ttl : kVaultDefaultTtl) {
    // custos_pki_enclaves{mount_point, status}: what an alert on workloads that stopped
    // heartbeating watches (docs/engines/pki.md).
    for (bool alive : {true, false}) {
      gauges_.push_back(metrics::Registry::global().gauge(
          "custos_pki_enclaves",
          "attested workloads in a PKI mount's registry: alive (a valid attested certificate) "
          "or stale (none since the last one expired)",
          [index = enclaves_, &clock = clock_, alive] {
            const int64_t now_s = to_unix_seconds(clock.now());
            std::lock_guard lock(index->mu);
            double n = 0;
            for (const auto& [cn, expiration] : index->expiration)
              n += (now_s < expiration) == alive;
            return n;
          },
          {{"mount_point", ctx.mount.path}, {"status", alive ? "alive" : "stale"}}));
    }
    // Best effort: a failure here is tried again by the next registry call.
    Status st = load_enclave_index();
    if (!st.ok()) LOG_WARN("pki", "loading the enclave registry for its metric: " << st.message());
  }

  Result<Response> handle(Request& req) override;
  Result<bool> exists(const Request& req) override;
  void shutdown() override { drop_cache(); }

 private:
  SysTime now() const { return clock_.now(); }

  void drop_cache() {
    std::lock_guard lock(mu_);
    ca_.reset();
  }

  Result<CaPtr> load_ca_locked() {
    if (ca_) return ca_;
    ASSIGN_OR_RETURN(auto doc, storage_.get_json(kCaBundleKey));
    if (!doc) return CaPtr();
    if (!doc->is_object()) return data_loss("stored CA bundle is not an object");
    auto parsed = ca_from_json(doc->as_object());
    if (!parsed.ok()) return parsed.status();
    ca_ = std::make_shared<const CaBundle>(std::move(*parsed));
    return ca_;
  }

  Result<CaPtr> load_ca() {
    std::lock_guard lock(mu_);
    return load_ca_locked();
  }

  Result<CaPtr> require_ca() {
    ASSIGN_OR_RETURN(CaPtr ca, load_ca());
    if (!ca) {
      return invalid_argument(
          "no issuer is configured: generate a root (root/generate) or set a signed "
          "intermediate (intermediate/set-signed) first");
    }
    return ca;
  }

  Result<std::optional<Role>> load_role(const std::string& name) {
    ASSIGN_OR_RETURN(auto doc, storage_.get_json(std::string(kRolesPrefix) + name));
    if (!doc) return std::optional<Role>();
    if (!doc->is_object()) return data_loss("stored role is not an object");
    auto role = Role::from_json(doc->as_object());
    if (!role.ok()) return data_loss("stored role does not parse: " + role.status().message());
    return std::optional<Role>(std::move(*role));
  }

  Result<Urls> load_urls() {
    ASSIGN_OR_RETURN(auto doc, storage_.get_json(kUrlsKey));
    if (!doc || !doc->is_object()) return Urls();
    return Urls::from_json(doc->as_object());
  }

  Status store_cert(const crypto::Certificate& c) {
    json::object o;
    o["certificate"] = c.pem();
    return storage_.put_json(std::string(kCertsPrefix) + serial_key(c.serial()), o);
  }

  // With mu_ held: replaces the issuer, records its certificate and signs a fresh (empty or
  // carried-over) CRL with it.
  Status install_ca_locked(CaBundle bundle) {
    RETURN_IF_ERROR(storage_.put_json(kCaBundleKey, ca_to_json(bundle)));
    ca_ = std::make_shared<const CaBundle>(std::move(bundle));
    RETURN_IF_ERROR(store_cert(ca_->cert));
    return rebuild_crl_locked().status();
  }

  // With mu_ held: signs a CRL with every stored revocation and stores it (DER).
  Result<crypto::Crl> rebuild_crl_locked() {
    ASSIGN_OR_RETURN(CaPtr ca, load_ca_locked());
    if (!ca) return failed_precondition("no issuer is configured");
    ASSIGN_OR_RETURN(auto keys, storage_.list(kRevokedPrefix));
    std::vector<Bytes> serials;
    for (const auto& k : keys) {
      if (k.empty() || k.back() == '/') continue;
      auto s = parse_serial(k);
      if (!s.ok()) {
        LOG_WARN("pki", "skipping a malformed revocation record key (" << k.size() << " bytes)");
        continue;
      }
      serials.push_back(std::move(*s));
    }
    SysTime t = now();
    ASSIGN_OR_RETURN(crypto::Crl crl,
                     crypto::issue_crl(ca->cert, ca->key, serials, t, t + Seconds(kCrlLifetime)));
    RETURN_IF_ERROR(storage_.put(kCrlKey, crl.der()));
    return crl;
  }

  // The stored CRL, signed on demand when missing.
  Result<std::optional<crypto::Crl>> current_crl() {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(auto raw, storage_.get(kCrlKey));
    if (raw) {
      auto crl = crypto::Crl::from_der(raw->span());
      if (!crl.ok()) return data_loss("stored CRL does not parse");
      return std::optional<crypto::Crl>(std::move(*crl));
    }
    ASSIGN_OR_RETURN(CaPtr ca, load_ca_locked());
    if (!ca) return std::optional<crypto::Crl>();
    ASSIGN_OR_RETURN(crypto::Crl crl, rebuild_crl_locked());
    return std::optional<crypto::Crl>(std::move(crl));
  }

  // notAfter for a certificate valid `ttl` seconds, within the issuer's own validity.
  Result<SysTime> not_after_within_ca(const CaBundle& ca, int64_t ttl, bool truncate,
                                      std::vector<std::string>& warnings) {
    SysTime na = now() + Seconds(ttl);
    if (na > ca.cert.not_after()) {
      if (!truncate) {
        return invalid_argument("cannot satisfy request, as TTL would result in notAfter " +
                                format_rfc3339(na) +
                                " that is beyond the expiration of the CA certificate at " +
                                format_rfc3339(ca.cert.not_after()));
      }
      warnings.push_back("TTL would exceed the CA certificate's notAfter " +
                         format_rfc3339(ca.cert.not_after()) + "; the certificate ends there");
      na = ca.cert.not_after();
    }
    return na;
  }

  Result<LeafNames> leaf_names(const Role& role, const json::object& data,
                               const crypto::CsrInfo* csr);
  // `extensions`: more (non-critical) extensions for the leaf (attested certificates).
  Result<Response> issue_leaf(const Role& role, const json::object& data,
                              const crypto::PublicKey& subject_key, const crypto::CsrInfo* csr,
                              const crypto::PrivateKey* generated,
                              const std::map<std::string, Bytes>& extensions = {});

  // Handlers.
  Result<Response> generate_root(const std::string& kind, const json::object& data);
  Result<Response> delete_root();
  Result<Response> generate_intermediate(const std::string& kind, const json::object& data);
  Result<Response> set_signed(const json::object& data);
  Result<Response> sign_intermediate(const json::object& data);
  Result<Response> list_roles();
  Result<Response> write_role(const std::string& name, const json::object& data);
  Result<Response> read_role(const std::string& name);
  Result<Response> delete_role(const std::string& name);
  Result<Response> issue(const std::string& role_name, const json::object& data);
  Result<Response> sign(const std::string& role_name, const json::object& data,
                        const std::map<std::string, Bytes>& extensions = {},
                        const Bytes* required_spki = nullptr);
  // sign-attested/:role (docs/engines/pki.md): sign, for a token from an attest login, a CSR
  // whose key is the one the TEE bound into its evidence; the certificate carries the
  // attestation claims in an extension.
  Result<Response> sign_attested(const std::string& role_name, const Request& req);
  // The registry of attested workloads: LIST enclaves, GET enclaves/:cn.
  Result<Response> list_enclaves();
  Result<Response> read_enclave(const std::string& cn);
  // DELETE enclaves/:cn: retires a workload; its certificate, if still valid, is revoked.
  Result<Response> retire_enclave(const std::string& cn);
  Result<Response> revoke(const json::object& data);
  Result<Response> revoke_serial(const Bytes& serial);
  Result<Response> read_crl(bool pem);
  Result<Response> rotate_crl();
  Result<Response> read_ca(bool pem, bool chain);
  Result<Response> read_cert(const std::string& serial);
  Result<Response> list_certs();
  Result<Response> tidy(const json::object& data);
  Result<Response> tidy_status();
  Result<Response> write_urls(const json::object& data);
  Result<Response> read_urls();

  View storage_;
  const Clock& clock_;
  int64_t default_ttl_;
  int64_t max_ttl_;
  std::mutex mu_;  // guards ca_ and serializes CA, revocation, CRL and tidy changes
  // Serializes the registry's read-sign-record-revoke steps (sign-attested, retiring), so two
  // heartbeats of one workload cannot both supersede the same certificate and leave two valid.
  // Taken before mu_, never inside it.
  std::mutex registry_mu_;
  // The registry's expirations by common name, for the metric (read at scrapes).
  struct EnclaveIndex {
    std::mutex mu;
    bool loaded = false;
    SysTime retry_at{};  // no load attempt from a request before then
    std::map<std::string, int64_t> expiration;
  };
  std::shared_ptr<EnclaveIndex> enclaves_ = std::make_shared<EnclaveIndex>();
  std::vector<metrics::GaugeHandle> gauges_;  // after enclaves_: removed first

  // Reads every registry entry into enclaves_, unless done already.
  Status load_enclave_index() {
    {
      std::lock_guard lock(enclaves_->mu);
      if (enclaves_->loaded) return ok_status();
    }
    ASSIGN_OR_RETURN(auto names, storage_.list(kEnclavesPrefix));
    std::map<std::string, int64_t> loaded;
    for (const auto& cn : names) {
      if (cn.empty() || cn.back() == '/') continue;
      ASSIGN_OR_RETURN(auto rec, storage_.get_json(std::string(kEnclavesPrefix) + cn));
      if (rec && rec->is_object()) loaded[cn] = int_field(rec->as_object(), "expiration");
    }
    std::lock_guard lock(enclaves_->mu);
    if (!enclaves_->loaded) {
      enclaves_->expiration = std::move(loaded);
      enclaves_->loaded = true;
    }
    return ok_status();
  }

  // The registry's metric counts nothing until the index is read: a load that failed at start
  // is tried again by any request to the mount (at most every 10 s), not only by heartbeats,
  // which a fleet that went stale no longer sends.
  void retry_enclave_index() {
    {
      std::lock_guard lock(enclaves_->mu);
      if (enclaves_->loaded) return;
      const SysTime t = now();
      if (t < enclaves_->retry_at) return;
      enclaves_->retry_at = t + std::chrono::seconds(10);
    }
    std::unique_lock registry_lock(registry_mu_, std::try_to_lock);
    if (!registry_lock.owns_lock()) return;  // a registry step runs, and loads it
    if (Status st = load_enclave_index(); !st.ok()) {
      LOG_WARN("pki", "reading the enclave registry for its metric: " << st.message());
    }
  }

  void index_enclave(const std::string& cn, std::optional<int64_t> expiration) {
    std::lock_guard lock(enclaves_->mu);
    if (expiration) {
      enclaves_->expiration[cn] = *expiration;
    } else {
      enclaves_->expiration.erase(cn);
    }
  }
  CaPtr ca_;
  TidyStatus tidy_status_;  // guarded by mu_
};

Result<bool> PkiEngine::exists(const Request& req) {
  if (storage_.barrier().sealed()) return unavailable("Vault is sealed");
  auto segs = split_path(req.rel_path);
  if (segs.size() == 2 && segs[0] == "roles" && valid_role_name(segs[1])) {
    ASSIGN_OR_RETURN(auto raw, storage_.get(std::string(kRolesPrefix) + segs[1]));
    return raw.has_value();
  }
  return true;
}

Result<Response> PkiEngine::handle(Request& req) {
  if (storage_.barrier().sealed()) {
    drop_cache();  // sealing takes the CA key out of memory too
    return unavailable("Vault is sealed");
  }
  retry_enclave_index();
  auto segs = split_path(req.rel_path);
  const auto& data = req.data;
  bool write = req.op == Operation::kCreate || req.op == Operation::kUpdate;
  bool read = req.op == Operation::kRead;
  bool list = req.op == Operation::kList;
  bool del = req.op == Operation::kDelete;
  auto unsupported_op = [] { return unimplemented("unsupported operation"); };
  if (segs.empty()) return not_found("unsupported path");
  const std::string& head = segs[0];
  size_t n = segs.size();

  if (head == "root") {
    if (n == 1) return del ? delete_root() : unsupported_op();
    if (n == 3 && segs[1] == "generate")
      return write ? generate_root(segs[2], data) : unsupported_op();
    if (n == 2 && segs[1] == "sign-intermediate") {
      return write ? sign_intermediate(data) : unsupported_op();
    }
    return not_found("unsupported path");
  }
  if (head == "intermediate") {
    if (n == 3 && segs[1] == "generate") {
      return write ? generate_intermediate(segs[2], data) : unsupported_op();
    }
    if (n == 2 && segs[1] == "set-signed") return write ? set_signed(data) : unsupported_op();
    return not_found("unsupported path");
  }
  if (head == "roles") {
    if (n == 1) return list ? list_roles() : unsupported_op();
    if (n != 2) return not_found("unsupported path");
    if (!valid_role_name(segs[1])) return invalid_argument("invalid role name");
    if (write) return write_role(segs[1], data);
    if (read) return read_role(segs[1]);
    if (del) return delete_role(segs[1]);
    return unsupported_op();
  }
  if (head == "enclaves") {
    if (n == 1) return list ? list_enclaves() : unsupported_op();
    if (n == 2) {
      if (read) return read_enclave(segs[1]);
      if (del) return retire_enclave(segs[1]);
      return unsupported_op();
    }
    return not_found("unsupported path");
  }
  if (head == "sign-attested" && n == 2) {
    if (!write) return unsupported_op();
    if (!valid_role_name(segs[1])) return invalid_argument("invalid role name");
    return sign_attested(segs[1], req);
  }
  if ((head == "issue" || head == "sign") && n == 2) {
    if (!write) return unsupported_op();
    if (!valid_role_name(segs[1])) return invalid_argument("invalid role name");
    return head == "issue" ? issue(segs[1], data) : sign(segs[1], data);
  }
  if (head == "revoke" && n == 1) return write ? revoke(data) : unsupported_op();
  if (head == "crl") {
    if (n == 1) return read ? read_crl(false) : unsupported_op();
    if (n == 2 && segs[1] == "pem") return read ? read_crl(true) : unsupported_op();
    if (n == 2 && segs[1] == "rotate") return read ? rotate_crl() : unsupported_op();
    return not_found("unsupported path");
  }
  if (head == "ca") {
    if (n == 1) return read ? read_ca(false, false) : unsupported_op();
    if (n == 2 && segs[1] == "pem") return read ? read_ca(true, false) : unsupported_op();
    return not_found("unsupported path");
  }
  if (head == "ca_chain" && n == 1) return read ? read_ca(true, true) : unsupported_op();
  if (head == "cert" && n == 2) return read ? read_cert(segs[1]) : unsupported_op();
  if (head == "certs" && n == 1) return list ? list_certs() : unsupported_op();
  if (head == "tidy" && n == 1) return write ? tidy(data) : unsupported_op();
  if (head == "tidy-status" && n == 1) return read ? tidy_status() : unsupported_op();
  if (head == "config" && n == 2 && segs[1] == "urls") {
    if (write) return write_urls(data);
    if (read) return read_urls();
    return unsupported_op();
  }
  return not_found("unsupported path");
}

// ---------------------------------------------------------------------------------------------
// CA generation

Result<Response> PkiEngine::generate_root(const std::string& kind, const json::object& data) {
  if (kind != "internal" && kind != "exported") {
    return invalid_argument("unsupported root type \"" + kind + "\": use internal or exported");
  }
  {
    ASSIGN_OR_RETURN(CaPtr existing, load_ca());
    if (existing) {
      // Vault's answer: a warning, not an error, and the existing root is kept.
      Response resp;
      resp.warnings.push_back(
          "Refusing to generate a root certificate over an existing root certificate. If you "
          "really want to destroy the original root certificate, please issue a delete against "
          "the root endpoint.");
      return resp;
    }
  }
  ASSIGN_OR_RETURN(std::string cn, field_string(data, "common_name"));
  if (cn.empty()) return invalid_argument("the common_name field is required");
  ASSIGN_OR_RETURN(std::string type, field_string(data, "key_type", "rsa"));
  ASSIGN_OR_RETURN(int64_t bits, field_int(data, "key_bits", 0));
  ASSIGN_OR_RETURN(KeySpec ks, key_spec(type, bits, false));
  ASSIGN_OR_RETURN(int64_t ttl, field_duration(data, "ttl", max_ttl_));
  if (ttl <= 0) ttl = max_ttl_;
  ASSIGN_OR_RETURN(auto alt_names, field_string_list(data, "alt_names"));
  ASSIGN_OR_RETURN(auto ip_sans, field_string_list(data, "ip_sans"));
  for (const auto& ip : ip_sans) {
    if (!is_ip_address(ip)) return invalid_argument("the value \"" + ip + "\" is not a valid IP");
  }
  ASSIGN_OR_RETURN(int64_t path_len, field_int(data, "max_path_length", -1));
  ASSIGN_OR_RETURN(bool exclude_cn, field_bool(data, "exclude_cn_from_sans", false));
  ASSIGN_OR_RETURN(std::string issuer_name, field_string(data, "issuer_name"));
  ASSIGN_OR_RETURN(std::string format, field_string(data, "format", "pem"));
  if (format.empty()) format = "pem";
  ASSIGN_OR_RETURN(std::string org, field_string(data, "organization"));
  ASSIGN_OR_RETURN(std::string ou, field_string(data, "ou"));

  ASSIGN_OR_RETURN(crypto::PrivateKey key, generate_key(ks));
  crypto::CertificateSpec spec;
  spec.subject_cn = cn;
  if (!org.empty()) spec.subject_extra["O"] = org;
  if (!ou.empty()) spec.subject_extra["OU"] = ou;
  SysTime t = now();
  spec.not_before = t - Seconds(kBackdate);
  spec.not_after = t + Seconds(ttl);
  spec.is_ca = true;
  spec.path_len = static_cast<int>(std::clamp<int64_t>(path_len, -1, 64));
  if (!exclude_cn && valid_hostname(cn, true)) add_unique(spec.dns_names, cn);
  for (const auto& a : alt_names) add_unique(spec.dns_names, a);
  spec.ip_addresses = ip_sans;
  ASSIGN_OR_RETURN(crypto::Certificate cert,
                   crypto::issue_certificate(spec, key.public_key(), key, nullptr));
  ASSIGN_OR_RETURN(std::string cert_text, render_cert(cert, format));

  json::object out;
  out["certificate"] = cert_text;
  out["issuing_ca"] = cert_text;
  out["serial_number"] = serial_text(cert.serial());
  out["expiration"] = to_unix_seconds(cert.not_after());
  out["issuer_name"] = issuer_name;
  out["key_type"] = ks.type;
  if (kind == "exported") {
    out["private_key"] = trim_newline(key.to_pem().str());
    out["private_key_type"] = private_key_type(key.type());
  }

  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(CaPtr raced, load_ca_locked());
  if (raced) return failed_precondition("a root was generated concurrently; not replacing it");
  CaBundle bundle;
  bundle.key = std::move(key);
  bundle.cert = std::move(cert);
  bundle.issuer_name = issuer_name;
  RETURN_IF_ERROR(install_ca_locked(std::move(bundle)));
  (void)storage_.del(kCaPendingKey);
  return Response::with_data(std::move(out));
}

Result<Response> PkiEngine::delete_root() {
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(storage_.del(kCaBundleKey));
  RETURN_IF_ERROR(storage_.del(kCaPendingKey));
  RETURN_IF_ERROR(storage_.del(kCrlKey));
  ca_.reset();
  return Response::empty();
}

Result<Response> PkiEngine::generate_intermediate(const std::string& kind,
                                                  const json::object& data) {
  if (kind != "internal" && kind != "exported") {
    return invalid_argument("unsupported intermediate type \"" + kind +
                            "\": use internal or exported");
  }
  ASSIGN_OR_RETURN(std::string cn, field_string(data, "common_name"));
  if (cn.empty()) return invalid_argument("the common_name field is required");
  ASSIGN_OR_RETURN(std::string type, field_string(data, "key_type", "rsa"));
  ASSIGN_OR_RETURN(int64_t bits, field_int(data, "key_bits", 0));
  ASSIGN_OR_RETURN(KeySpec ks, key_spec(type, bits, false));
  ASSIGN_OR_RETURN(auto alt_names, field_string_list(data, "alt_names"));
  ASSIGN_OR_RETURN(std::string format, field_string(data, "format", "pem"));
  if (format.empty()) format = "pem";
  if (format != "pem" && format != "der" && format != "pem_bundle") {
    return invalid_argument("unsupported format: use pem, pem_bundle or der");
  }
  ASSIGN_OR_RETURN(std::string issuer_name, field_string(data, "issuer_name"));

  ASSIGN_OR_RETURN(crypto::PrivateKey key, generate_key(ks));
  ASSIGN_OR_RETURN(std::string csr, crypto::make_csr(key, cn, alt_names));

  json::object pending;
  SecretString key_pem = key.to_pem();
  pending["private_key"] = key_pem.str();
  pending["issuer_name"] = issuer_name;
  Status st = storage_.put_json(kCaPendingKey, pending);
  wipe_member(pending, "private_key");
  RETURN_IF_ERROR(st);

  json::object out;
  out["csr"] = format == "der" ? pem_body(csr) : trim_newline(csr);
  out["key_type"] = ks.type;
  if (kind == "exported") {
    out["private_key"] = trim_newline(key_pem.str());
    out["private_key_type"] = private_key_type(key.type());
  }
  return Response::with_data(std::move(out));
}

Result<Response> PkiEngine::set_signed(const json::object& data) {
  ASSIGN_OR_RETURN(std::string pem, field_string(data, "certificate"));
  if (pem.empty()) return invalid_argument("the certificate field is required");
  auto chain = crypto::Certificate::chain_from_pem(pem);
  if (!chain.ok() || chain->empty()) {
    return invalid_argument("the certificate field is not a PEM certificate (bundle)");
  }
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto doc, storage_.get_json(kCaPendingKey));
  if (!doc || !doc->is_object()) {
    return invalid_argument(
        "no pending intermediate key: generate one with intermediate/generate first");
  }
  json::object& pending = doc->as_object();
  SecretString key_pem(str_field(pending, "private_key"));
  wipe_member(pending, "private_key");
  auto key = crypto::PrivateKey::from_pem(key_pem.str());
  if (!key.ok()) return data_loss("stored pending intermediate key does not parse");

  CaBundle bundle;
  bundle.cert = (*chain)[0];
  if (bundle.cert.public_key().to_der() != key->public_key().to_der()) {
    return invalid_argument(
        "the certificate's public key does not match the pending intermediate key");
  }
  if (!bundle.cert.is_ca()) {
    return invalid_argument("the certificate is not a CA certificate (basicConstraints CA:FALSE)");
  }
  if (bundle.cert.not_after() <= now()) return invalid_argument("the certificate has expired");
  for (size_t i = 1; i < chain->size(); ++i) bundle.parents.push_back((*chain)[i]);
  bundle.key = std::move(*key);
  bundle.issuer_name = str_field(pending, "issuer_name");
  RETURN_IF_ERROR(install_ca_locked(std::move(bundle)));
  RETURN_IF_ERROR(storage_.del(kCaPendingKey));
  return Response::empty();
}

Result<Response> PkiEngine::sign_intermediate(const json::object& data) {
  ASSIGN_OR_RETURN(CaPtr ca, require_ca());
  ASSIGN_OR_RETURN(std::string csr_pem, field_string(data, "csr"));
  if (csr_pem.empty()) return invalid_argument("the csr field is required");
  auto csr = crypto::parse_csr(csr_pem);
  if (!csr.ok())
    return invalid_argument("the csr does not parse or verify: " + csr.status().message());
  ASSIGN_OR_RETURN(bool use_csr_values, field_bool(data, "use_csr_values", false));
  ASSIGN_OR_RETURN(std::string cn, field_string(data, "common_name"));
  if (use_csr_values || cn.empty()) cn = csr->subject_cn;
  if (cn.empty()) return invalid_argument("the common_name field is required");
  ASSIGN_OR_RETURN(auto alt_names, field_string_list(data, "alt_names"));
  ASSIGN_OR_RETURN(auto ip_sans, field_string_list(data, "ip_sans"));
  if (use_csr_values) {
    for (const auto& d : csr->dns_names) add_unique(alt_names, d);
    for (const auto& ip : csr->ip_addresses) add_unique(ip_sans, ip);
  }
  for (const auto& ip : ip_sans) {
    if (!is_ip_address(ip)) return invalid_argument("the value \"" + ip + "\" is not a valid IP");
  }
  ASSIGN_OR_RETURN(int64_t ttl, field_duration(data, "ttl", max_ttl_));
  if (ttl <= 0) ttl = max_ttl_;
  ASSIGN_OR_RETURN(int64_t path_len, field_int(data, "max_path_length", -1));
  ASSIGN_OR_RETURN(bool exclude_cn, field_bool(data, "exclude_cn_from_sans", false));
  ASSIGN_OR_RETURN(std::string format, field_string(data, "format", "pem"));
  if (format.empty()) format = "pem";

  std::vector<std::string> warnings;
  ASSIGN_OR_RETURN(SysTime not_after, not_after_within_ca(*ca, ttl, true, warnings));
  ASSIGN_OR_RETURN(Urls urls, load_urls());
  crypto::CertificateSpec spec;
  spec.subject_cn = cn;
  spec.not_before = now() - Seconds(kBackdate);
  spec.not_after = not_after;
  spec.is_ca = true;
  spec.path_len = static_cast<int>(std::clamp<int64_t>(path_len, -1, 64));
  if (!exclude_cn && valid_hostname(cn, true)) add_unique(spec.dns_names, cn);
  for (const auto& a : alt_names) add_unique(spec.dns_names, a);
  spec.ip_addresses = ip_sans;
  urls.add_extensions(spec.extensions);
  ASSIGN_OR_RETURN(crypto::Certificate cert,
                   crypto::issue_certificate(spec, csr->public_key, ca->key, &ca->cert));
  RETURN_IF_ERROR(store_cert(cert));

  ASSIGN_OR_RETURN(std::string cert_text, render_cert(cert, format));
  ASSIGN_OR_RETURN(std::string ca_text, render_cert(ca->cert, format));
  json::object out;
  out["certificate"] = cert_text;
  out["issuing_ca"] = ca_text;
  out["ca_chain"] = ca->chain_json();
  out["serial_number"] = serial_text(cert.serial());
  out["expiration"] = to_unix_seconds(cert.not_after());
  Response resp = Response::with_data(std::move(out));
  resp.warnings = std::move(warnings);
  return resp;
}

// ---------------------------------------------------------------------------------------------
// Roles

Result<Response> PkiEngine::list_roles() {
  ASSIGN_OR_RETURN(auto names, storage_.list(kRolesPrefix));
  json::array keys;
  for (const auto& k : names) {
    if (!k.empty() && k.back() != '/') keys.emplace_back(k);
  }
  if (keys.empty()) return not_found("no roles");  // Vault answers an empty LIST with 404
  json::object body;
  body["keys"] = std::move(keys);
  return Response::with_data(std::move(body));
}

Result<Response> PkiEngine::write_role(const std::string& name, const json::object& data) {
  ASSIGN_OR_RETURN(Role role, Role::from_json(data));
  RETURN_IF_ERROR(storage_.put_json(std::string(kRolesPrefix) + name, role.to_json()));
  return Response::with_data(role.to_json());
}

Result<Response> PkiEngine::read_role(const std::string& name) {
  ASSIGN_OR_RETURN(auto role, load_role(name));
  if (!role) return not_found("role " + name + " not found");
  return Response::with_data(role->to_json());
}

Result<Response> PkiEngine::delete_role(const std::string& name) {
  RETURN_IF_ERROR(storage_.del(std::string(kRolesPrefix) + name));
  return Response::empty();
}

// ---------------------------------------------------------------------------------------------
// Leaf certificates

Result<LeafNames> PkiEngine::leaf_names(const Role& role, const json::object& data,
                                        const crypto::CsrInfo* csr) {
  LeafNames names;
  ASSIGN_OR_RETURN(std::string cn, field_string(data, "common_name"));
  ASSIGN_OR_RETURN(auto alt_names, field_string_list(data, "alt_names"));
  ASSIGN_OR_RETURN(auto ip_sans, field_string_list(data, "ip_sans"));
  ASSIGN_OR_RETURN(bool exclude_cn, field_bool(data, "exclude_cn_from_sans", false));
  if (csr != nullptr && role.use_csr_common_name && !csr->subject_cn.empty()) {
    cn = csr->subject_cn;
  }
  if (csr != nullptr && role.use_csr_sans) {
    alt_names = csr->dns_names;
    ip_sans = csr->ip_addresses;
  }
  names.cn = lower(cn);
  if (names.cn.empty() && role.require_cn)
    return invalid_argument("the common_name field is required");

  if (!names.cn.empty()) {
    if (is_ip_address(names.cn)) {
      if (!role.allow_ip_sans) {
        return invalid_argument("common name " + names.cn +
                                " is an IP address, but IP Subject Alternative Names are not "
                                "allowed by this role");
      }
      if (!exclude_cn) add_unique(names.ips, names.cn);
    } else {
      if (!role.name_allowed(names.cn)) {
        return invalid_argument("common name " + names.cn + " not allowed by this role");
      }
      if (!exclude_cn) add_unique(names.dns, names.cn);
    }
  }
  for (const auto& a : alt_names) {
    std::string name = lower(a);
    if (!role.name_allowed(name)) {
      return invalid_argument("subject alternate name " + name + " not allowed by this role");
    }
    add_unique(names.dns, name);
  }
  for (const auto& ip : ip_sans) {
    if (!role.allow_ip_sans) {
      return invalid_argument(
          "IP Subject Alternative Names are not allowed in this role, but was provided " + ip);
    }
    if (!is_ip_address(ip)) return invalid_argument("the value \"" + ip + "\" is not a valid IP");
    add_unique(names.ips, ip);
  }
  return names;
}

Result<Response> PkiEngine::issue_leaf(const Role& role, const json::object& data,
                                       const crypto::PublicKey& subject_key,
                                       const crypto::CsrInfo* csr,
                                       const crypto::PrivateKey* generated,
                                       const std::map<std::string, Bytes>& extensions) {
  ASSIGN_OR_RETURN(CaPtr ca, require_ca());
  ASSIGN_OR_RETURN(LeafNames names, leaf_names(role, data, csr));
  ASSIGN_OR_RETURN(std::string format, field_string(data, "format", "pem"));
  if (format.empty()) format = "pem";
  if (format != "pem" && format != "der" && format != "pem_bundle") {
    return invalid_argument("unsupported format: use pem, pem_bundle or der");
  }

  std::vector<std::string> warnings;
  ASSIGN_OR_RETURN(int64_t ttl, field_duration(data, "ttl", 0));
  if (ttl <= 0) ttl = role.ttl > 0 ? role.ttl : default_ttl_;
  int64_t max_ttl = role.max_ttl > 0 ? role.max_ttl : max_ttl_;
  if (ttl > max_ttl) {
    warnings.push_back("TTL " + std::to_string(ttl) + "s is longer than the permitted max_ttl " +
                       std::to_string(max_ttl) + "s, so max_ttl is being used");
    ttl = max_ttl;
  }
  ASSIGN_OR_RETURN(
      SysTime not_after,
      not_after_within_ca(*ca, ttl, role.leaf_not_after_behavior == "truncate", warnings));
  ASSIGN_OR_RETURN(Urls urls, load_urls());

  crypto::CertificateSpec spec;
  spec.subject_cn = names.cn;
  if (!role.organization.empty()) spec.subject_extra["O"] = role.organization;
  if (!role.ou.empty()) spec.subject_extra["OU"] = role.ou;
  spec.not_before = now() - Seconds(kBackdate);
  spec.not_after = not_after;
  spec.dns_names = names.dns;
  spec.ip_addresses = names.ips;
  spec.server_auth = role.server_flag;
  spec.client_auth = role.client_flag;
  urls.add_extensions(spec.extensions);
  for (const auto& [oid, der] : extensions) spec.extensions[oid] = der;
  ASSIGN_OR_RETURN(crypto::Certificate cert,
                   crypto::issue_certificate(spec, subject_key, ca->key, &ca->cert));
  if (!role.no_store) RETURN_IF_ERROR(store_cert(cert));

  ASSIGN_OR_RETURN(std::string cert_text, render_cert(cert, format));
  ASSIGN_OR_RETURN(std::string ca_text, render_cert(ca->cert, format));
  json::object out;
  json::array chain;
  if (format == "der") {
    chain.emplace_back(ca_text);
    for (const auto& p : ca->parents) chain.emplace_back(base64_encode(p.der()));
  } else {
    chain = ca->chain_json();
  }
  out["issuing_ca"] = ca_text;
  out["ca_chain"] = std::move(chain);
  out["serial_number"] = serial_text(cert.serial());
  out["expiration"] = to_unix_seconds(cert.not_after());
  if (generated != nullptr) {
    SecretString key_pem = generated->to_pem();
    if (format == "der") {
      SecretBytes der = generated->to_der();
      out["private_key"] = base64_encode(der.span());
    } else {
      out["private_key"] = trim_newline(key_pem.str());
    }
    out["private_key_type"] = private_key_type(generated->type());
    if (format == "pem_bundle") {
      cert_text = key_pem.str() + cert.pem() + ca->chain_pem();
      cert_text = trim_newline(std::move(cert_text));
    }
  } else if (format == "pem_bundle") {
    cert_text = trim_newline(cert.pem() + ca->chain_pem());
  }
  out["certificate"] = cert_text;
  Response resp = Response::with_data(std::move(out));
  resp.warnings = std::move(warnings);
  return resp;
}

Result<Response> PkiEngine::issue(const std::string& role_name, const json::object& data) {
  ASSIGN_OR_RETURN(auto role, load_role(role_name));
  if (!role) return invalid_argument("unknown role: " + role_name);
  if (role->key_type == "any") {
    return invalid_argument(
        "role key type \"any\" not allowed for issuing certificates, only signing");
  }
  ASSIGN_OR_RETURN(CaPtr ca, require_ca());
  (void)ca;
  // Check names before spending time on key generation.
  ASSIGN_OR_RETURN(LeafNames checked, leaf_names(*role, data, nullptr));
  (void)checked;
  ASSIGN_OR_RETURN(crypto::PrivateKey key, generate_key(KeySpec{role->key_type, role->key_bits}));
  return issue_leaf(*role, data, key.public_key(), nullptr, &key);
}

Result<Response> PkiEngine::sign(const std::string& role_name, const json::object& data,
                                 const std::map<std::string, Bytes>& extensions,
                                 const Bytes* required_spki) {
  ASSIGN_OR_RETURN(auto role, load_role(role_name));
  if (!role) return invalid_argument("unknown role: " + role_name);
  ASSIGN_OR_RETURN(std::string csr_pem, field_string(data, "csr"));
  if (csr_pem.empty()) return invalid_argument("the csr field is required");
  auto csr = crypto::parse_csr(csr_pem);
  if (!csr.ok())
    return invalid_argument("the csr does not parse or verify: " + csr.status().message());
  if (required_spki != nullptr && csr->public_key.to_der() != *required_spki) {
    return permission_denied(
        "the CSR's key is not the one the TEE bound into its evidence at login");
  }
  if (role->key_type != "any") {
    crypto::KeyType t = csr->public_key.type();
    std::string_view actual = private_key_type(t);
    if (actual != role->key_type) {
      return invalid_argument("role requires keys of type " + role->key_type +
                              ", but the CSR's key is of type " + std::string(actual));
    }
    int bits = t == crypto::KeyType::kRsa       ? csr->public_key.bits()
               : t == crypto::KeyType::kEd25519 ? 0
                                                : ec_bits(t);
    if (bits < role->key_bits) {
      return invalid_argument("role requires a minimum of a " + std::to_string(role->key_bits) +
                              "-bit key, but the CSR's key is " + std::to_string(bits) + " bits");
    }
  }
  return issue_leaf(*role, data, csr->public_key, &*csr, nullptr, extensions);
}

namespace {

// DER UTF8String of `s`.
Bytes der_utf8_string(std::string_view s) {
  Bytes out{0x0c};
  const size_t n = s.size();
  if (n < 0x80) {
    out.push_back(static_cast<uint8_t>(n));
  } else if (n <= 0xff) {
    out.push_back(0x81);
    out.push_back(static_cast<uint8_t>(n));
  } else {
    out.push_back(0x82);
    out.push_back(static_cast<uint8_t>(n >> 8));
    out.push_back(static_cast<uint8_t>(n & 0xff));
  }
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

}  // namespace

Result<Response> PkiEngine::sign_attested(const std::string& role_name, const Request& req) {
  ASSIGN_OR_RETURN(AttestedCaller caller, attested_caller(req, "an attested certificate"));
  ASSIGN_OR_RETURN(auto role, load_role(role_name));
  if (!role) return invalid_argument("unknown role: " + role_name);
  // Fresh attestation only: the claims go into the certificate as of the login.
  const int64_t now_s = to_unix_seconds(now());
  const int64_t age = now_s - caller.attested_at;
  if (age > role->attestation_max_age) {
    return permission_denied("the attestation behind this token is " + std::to_string(age) +
                             " s old; the role accepts " +
                             std::to_string(role->attestation_max_age) +
                             " s (attestation_max_age): log in to auth/attest again");
  }
  // The names the certificate will carry, by sign's own rule (leaf_names: the CSR's common
  // name and DNS names unless the role says otherwise, lowercased). The registry is keyed by
  // the common name. A CSR that does not parse or names that sign refuses get sign's error
  // below.
  LeafNames names;
  {
    ASSIGN_OR_RETURN(std::string csr_pem, field_string(req.data, "csr"));
    auto csr = crypto::parse_csr(csr_pem);
    if (csr.ok()) {
      auto resolved = leaf_names(*role, req.data, &*csr);
      if (resolved.ok()) names = std::move(*resolved);
    }
  }
  const std::string cn = names.cn;
  json::object claims = std::move(caller.claims);
  claims["attested_at"] = format_rfc3339(from_unix_seconds(caller.attested_at));
  std::lock_guard registry_lock(registry_mu_);
  if (Status loaded = load_enclave_index(); !loaded.ok()) {
    LOG_WARN("pki", "reading the enclave registry for its metric: " << loaded.message());
  }
  auto registrable = [](const std::string& n) {
    return !n.empty() && n.find('/') == std::string::npos && n != "." && n != "..";
  };
  // Each name belongs to one measurement while its workload is alive: another workload the
  // role allows cannot get a certificate for it, as common name or DNS name, until it goes
  // stale.
  std::vector<std::string> held_names;
  add_unique(held_names, cn);
  for (const auto& d : names.dns) add_unique(held_names, d);
  json::object previous;  // the common name's entry
  for (const std::string& name : held_names) {
    if (!registrable(name)) continue;
    ASSIGN_OR_RETURN(auto before, storage_.get_json(std::string(kEnclavesPrefix) + name));
    json::object entry;
    if (before && before->is_object()) entry = before->as_object();
    if (!entry.empty() && now_s < int_field(entry, "expiration")) {
      const auto* held = entry.if_contains("claims");
      for (const char* k : {"tee", "mrenclave", "mrsigner", "mrtd", "measurement", "host_data",
                            "ak_name", "isv_prod_id"}) {
        const auto* a = held && held->is_object() ? held->as_object().if_contains(k) : nullptr;
        const auto* b = claims.if_contains(k);
        if ((a == nullptr) != (b == nullptr) || (a && *a != *b)) {
          return permission_denied("the name " + name +
                                   " is held by another attested workload (its " + k +
                                   " differs) until its certificate expires");
        }
      }
    }
    if (name == cn) previous = std::move(entry);
  }
  const bool cn_registrable = registrable(cn);
  const std::string reg_key = std::string(kEnclavesPrefix) + cn;
  const std::string text = json::serialize(claims);
  if (text.size() > 0xffff) return internal_error("attestation claims too large");
  std::map<std::string, Bytes> ext{{std::string(kAttestationClaimsOid), der_utf8_string(text)}};
  ASSIGN_OR_RETURN(Response resp, sign(role_name, req.data, ext, &caller.public_key));

  // The registry: each attested certificate is a heartbeat of the workload it names.
  if (cn_registrable) {
    const json::object& out = *resp.data;
    int64_t beats = int_field(previous, "heartbeats");
    int64_t first = previous.empty() ? now_s : int_field(previous, "first_seen");
    json::object rec{{"common_name", cn},
                     {"serial_number", out.at("serial_number")},
                     {"expiration", out.at("expiration")},
                     {"last_heartbeat", caller.attested_at},
                     {"first_seen", first},
                     {"heartbeats", beats + 1},
                     {"claims", std::move(claims)}};
    RETURN_IF_ERROR(storage_.put_json(reg_key, rec));
    index_enclave(cn, int_field(rec, "expiration"));
    // One valid certificate per workload: the heartbeat retires the one before it.
    const std::string prev_serial = str_field(previous, "serial_number");
    if (role->revoke_superseded && !prev_serial.empty() &&
        prev_serial != str_field(out, "serial_number") &&
        now_s < int_field(previous, "expiration")) {
      auto serial = parse_serial(prev_serial);
      auto revoked = serial.ok() ? revoke_serial(*serial) : Result<Response>(serial.status());
      if (revoked.ok()) {
        resp.data->emplace("superseded_serial_number", prev_serial);
      } else {
        resp.warnings.push_back("revoking the superseded certificate " + prev_serial + ": " +
                                revoked.status().message());
      }
    }
  }
  return resp;
}

Result<Response> PkiEngine::list_enclaves() {
  ASSIGN_OR_RETURN(auto names, storage_.list(kEnclavesPrefix));
  json::array keys;
  for (const auto& k : names) {
    if (!k.empty() && k.back() != '/') keys.emplace_back(k);
  }
  if (keys.empty()) return not_found("no attested workloads");
  return Response::with_data({{"keys", std::move(keys)}});
}

Result<Response> PkiEngine::read_enclave(const std::string& cn) {
  ASSIGN_OR_RETURN(auto rec, storage_.get_json(std::string(kEnclavesPrefix) + cn));
  if (!rec || !rec->is_object()) return not_found("no attested workload named " + cn);
  json::object out = rec->as_object();
  // Alive while its last attested certificate is valid: a workload that stops re-attesting
  // (heartbeats) goes stale when that certificate expires.
  out["status"] = to_unix_seconds(now()) < int_field(out, "expiration") ? "alive" : "stale";
  return Response::with_data(std::move(out));
}

Result<Response> PkiEngine::retire_enclave(const std::string& cn) {
  const std::string reg_key = std::string(kEnclavesPrefix) + cn;
  std::lock_guard registry_lock(registry_mu_);
  if (Status loaded = load_enclave_index(); !loaded.ok()) {
    LOG_WARN("pki", "reading the enclave registry for its metric: " << loaded.message());
  }
  ASSIGN_OR_RETURN(auto rec, storage_.get_json(reg_key));
  if (!rec || !rec->is_object()) return not_found("no attested workload named " + cn);
  const json::object& r = rec->as_object();
  json::object out{{"common_name", cn}};
  if (to_unix_seconds(now()) < int_field(r, "expiration")) {
    const std::string serial_text_in = str_field(r, "serial_number");
    ASSIGN_OR_RETURN(Bytes serial, parse_serial(serial_text_in));
    auto revoked = revoke_serial(serial);
    // Without its record (no_store) the certificate cannot be revoked: keep the entry, so the
    // name stays held until the certificate expires, and say why.
    if (!revoked.ok()) return revoked.status().with_context("the workload was not retired");
    out["revoked_serial_number"] = serial_text_in;
  }
  RETURN_IF_ERROR(storage_.del(reg_key));
  index_enclave(cn, std::nullopt);
  return Response::with_data(std::move(out));
}

// ---------------------------------------------------------------------------------------------
// Revocation and the CRL

Result<Response> PkiEngine::revoke(const json::object& data) {
  ASSIGN_OR_RETURN(std::string serial_in, field_string(data, "serial_number"));
  if (serial_in.empty()) return invalid_argument("the serial_number field is required");
  ASSIGN_OR_RETURN(Bytes serial, parse_serial(serial_in));
  return revoke_serial(serial);
}

Result<Response> PkiEngine::revoke_serial(const Bytes& serial) {
  std::string key = serial_key(serial);

  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(CaPtr ca, load_ca_locked());
  if (!ca) return invalid_argument("no issuer is configured");
  if (ca->cert.serial() == serial) return invalid_argument("adding CA to CRL is not allowed");
  ASSIGN_OR_RETURN(auto existing, storage_.get_json(std::string(kRevokedPrefix) + key));
  if (existing && existing->is_object()) {
    int64_t t = int_field(existing->as_object(), "revocation_time");
    json::object out;
    out["revocation_time"] = t;
    out["revocation_time_rfc3339"] = format_rfc3339(from_unix_seconds(t));
    out["state"] = "revoked";
    return Response::with_data(std::move(out));
  }
  ASSIGN_OR_RETURN(auto stored, storage_.get_json(std::string(kCertsPrefix) + key));
  if (!stored || !stored->is_object()) {
    return invalid_argument("certificate with serial " + serial_text(serial) + " not found");
  }
  std::string pem = str_field(stored->as_object(), "certificate");
  auto cert = crypto::Certificate::from_pem(pem);
  if (!cert.ok()) return data_loss("stored certificate does not parse");
  SysTime t = now();
  if (cert->not_after() < t) {
    Response resp;
    resp.warnings.push_back("certificate already expired; refusing to add to CRL");
    return resp;
  }
  json::object rec;
  rec["serial_number"] = serial_text(serial);
  rec["certificate"] = pem;
  rec["revocation_time"] = to_unix_seconds(t);
  RETURN_IF_ERROR(storage_.put_json(std::string(kRevokedPrefix) + key, rec));
  auto crl = rebuild_crl_locked();
  if (!crl.ok()) {
    // The revocation is recorded; the next CRL build (rotate, revoke, read) will include it.
    return crl.status().with_context("revoked, but rebuilding the CRL failed");
  }
  json::object out;
  out["revocation_time"] = to_unix_seconds(t);
  out["revocation_time_rfc3339"] = format_rfc3339(t);
  out["state"] = "revoked";
  return Response::with_data(std::move(out));
}

Result<Response> PkiEngine::read_crl(bool pem) {
  ASSIGN_OR_RETURN(auto crl, current_crl());
  if (!crl) return Response::empty();
  Response resp;
  if (pem) {
    resp.raw_body = crl->pem();
    resp.raw_content_type = std::string(kCrlPemType);
  } else {
    resp.raw_body = to_string(crl->der());
    resp.raw_content_type = std::string(kCrlDerType);
  }
  return resp;
}

Result<Response> PkiEngine::rotate_crl() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(CaPtr ca, load_ca_locked());
  if (!ca) return invalid_argument("no issuer is configured");
  ASSIGN_OR_RETURN(crypto::Crl crl, rebuild_crl_locked());
  (void)crl;
  json::object out;
  out["success"] = true;
  return Response::with_data(std::move(out));
}

Result<Response> PkiEngine::read_ca(bool pem, bool chain) {
  ASSIGN_OR_RETURN(CaPtr ca, load_ca());
  if (!ca) return Response::empty();  // Vault: 204 when there is no CA yet
  Response resp;
  if (chain) {
    resp.raw_body = ca->chain_pem();
    resp.raw_content_type = std::string(kCertPemType);
  } else if (pem) {
    resp.raw_body = ca->cert.pem();
    resp.raw_content_type = std::string(kCertPemType);
  } else {
    resp.raw_body = to_string(ca->cert.der());
    resp.raw_content_type = std::string(kCertDerType);
  }
  return resp;
}

Result<Response> PkiEngine::read_cert(const std::string& serial_in) {
  json::object out;
  if (serial_in == "ca" || serial_in == "ca_chain") {
    ASSIGN_OR_RETURN(CaPtr ca, load_ca());
    if (!ca) return not_found("no CA certificate is configured");
    if (serial_in == "ca") {
      out["certificate"] = trim_newline(ca->cert.pem());
    } else {
      out["certificate"] = trim_newline(ca->chain_pem());
      out["ca_chain"] = trim_newline(ca->chain_pem());
    }
    out["revocation_time"] = 0;
    return Response::with_data(std::move(out));
  }
  if (serial_in == "crl") {
    ASSIGN_OR_RETURN(auto crl, current_crl());
    if (!crl) return not_found("no CRL: no issuer is configured");
    out["certificate"] = trim_newline(crl->pem());
    out["revocation_time"] = 0;
    return Response::with_data(std::move(out));
  }
  ASSIGN_OR_RETURN(Bytes serial, parse_serial(serial_in));
  std::string key = serial_key(serial);
  ASSIGN_OR_RETURN(auto stored, storage_.get_json(std::string(kCertsPrefix) + key));
  if (!stored || !stored->is_object()) {
    return not_found("certificate with serial " + serial_text(serial) + " not found");
  }
  out["certificate"] = trim_newline(str_field(stored->as_object(), "certificate"));
  ASSIGN_OR_RETURN(auto revoked, storage_.get_json(std::string(kRevokedPrefix) + key));
  int64_t rt =
      revoked && revoked->is_object() ? int_field(revoked->as_object(), "revocation_time") : 0;
  out["revocation_time"] = rt;
  out["revocation_time_rfc3339"] = rt != 0 ? format_rfc3339(from_unix_seconds(rt)) : "";
  return Response::with_data(std::move(out));
}

Result<Response> PkiEngine::list_certs() {
  ASSIGN_OR_RETURN(auto names, storage_.list(kCertsPrefix));
  json::array keys;
  for (const auto& k : names) {
    if (k.empty() || k.back() == '/') continue;
    std::string s = k;
    std::replace(s.begin(), s.end(), '-', ':');
    keys.emplace_back(s);
  }
  if (keys.empty()) return not_found("no certificates");
  json::object body;
  body["keys"] = std::move(keys);
  return Response::with_data(std::move(body));
}

// ---------------------------------------------------------------------------------------------
// Tidy

Result<Response> PkiEngine::tidy(const json::object& data) {
  ASSIGN_OR_RETURN(bool cert_store, field_bool(data, "tidy_cert_store", false));
  ASSIGN_OR_RETURN(bool revoked_certs, field_bool(data, "tidy_revoked_certs", false));
  ASSIGN_OR_RETURN(int64_t buffer, field_duration(data, "safety_buffer", kDefaultSafetyBuffer));
  if (!cert_store && !revoked_certs) {
    return invalid_argument(
        "At least one operation must be enabled (tidy_cert_store or tidy_revoked_certs).");
  }
  std::lock_guard lock(mu_);
  TidyStatus st;
  st.state = "Running";
  st.safety_buffer = buffer;
  st.tidy_cert_store = cert_store;
  st.tidy_revoked_certs = revoked_certs;
  st.time_started = format_rfc3339(now());
  SysTime cutoff = now() - Seconds(buffer);
  ASSIGN_OR_RETURN(CaPtr ca, load_ca_locked());

  // A certificate is removable when it expired more than safety_buffer ago.
  auto expired = [&](const json::object& rec) {
    auto c = crypto::Certificate::from_pem(str_field(rec, "certificate"));
    if (!c.ok()) return false;  // keep what cannot be read; it is not ours to guess about
    if (ca && c->serial() == ca->cert.serial()) return false;
    return c->not_after() < cutoff;
  };
  if (cert_store) {
    ASSIGN_OR_RETURN(auto keys, storage_.list(kCertsPrefix));
    for (const auto& k : keys) {
      if (k.empty() || k.back() == '/') continue;
      ASSIGN_OR_RETURN(auto rec, storage_.get_json(std::string(kCertsPrefix) + k));
      if (!rec || !rec->is_object() || !expired(rec->as_object())) continue;
      RETURN_IF_ERROR(storage_.del(std::string(kCertsPrefix) + k));
      ++st.cert_store_deleted_count;
    }
  }
  if (revoked_certs) {
    ASSIGN_OR_RETURN(auto keys, storage_.list(kRevokedPrefix));
    for (const auto& k : keys) {
      if (k.empty() || k.back() == '/') continue;
      ASSIGN_OR_RETURN(auto rec, storage_.get_json(std::string(kRevokedPrefix) + k));
      if (!rec || !rec->is_object() || !expired(rec->as_object())) continue;
      RETURN_IF_ERROR(storage_.del(std::string(kRevokedPrefix) + k));
      RETURN_IF_ERROR(storage_.del(std::string(kCertsPrefix) + k));
      ++st.revoked_cert_deleted_count;
    }
    if (st.revoked_cert_deleted_count > 0 && ca) {
      ASSIGN_OR_RETURN(crypto::Crl crl, rebuild_crl_locked());
      (void)crl;
    }
  }
  st.state = "Finished";
  st.time_finished = format_rfc3339(now());
  LOG_INFO("pki", "tidy removed " << st.cert_store_deleted_count << " expired certificates and "
                                  << st.revoked_cert_deleted_count << " revocation entries");
  tidy_status_ = st;
  Response resp;
  resp.status = 202;
  resp.warnings.push_back(
      "Tidy operation finished (it runs synchronously here); see tidy-status for the counts.");
  return resp;
}

Result<Response> PkiEngine::tidy_status() {
  std::lock_guard lock(mu_);
  json::object out;
  out["state"] = tidy_status_.state;
  out["safety_buffer"] = tidy_status_.safety_buffer;
  out["tidy_cert_store"] = tidy_status_.tidy_cert_store;
  out["tidy_revoked_certs"] = tidy_status_.tidy_revoked_certs;
  out["cert_store_deleted_count"] = tidy_status_.cert_store_deleted_count;
  out["revoked_cert_deleted_count"] = tidy_status_.revoked_cert_deleted_count;
  out["time_started"] = tidy_status_.time_started;
  out["time_finished"] = tidy_status_.time_finished;
  out["error"] = nullptr;
  return Response::with_data(std::move(out));
}

// ---------------------------------------------------------------------------------------------
// URLs

Result<Response> PkiEngine::write_urls(const json::object& data) {
  ASSIGN_OR_RETURN(Urls cur, load_urls());
  auto take = [&](std::string_view key, std::vector<std::string>& dst) -> Status {
    if (data.if_contains(key) == nullptr) return ok_status();  // unchanged, as Vault does
    ASSIGN_OR_RETURN(auto v, field_string_list(data, key));
    for (const auto& u : v) {
      auto scheme = u.find("://");
      if (scheme == std::string::npos || scheme == 0 || u.size() == scheme + 3 ||
          u.find_first_of(" \t\r\n") != std::string::npos) {
        return invalid_argument("invalid URL in " + std::string(key) + ": " + u);
      }
    }
    dst = std::move(v);
    return ok_status();
  };
  RETURN_IF_ERROR(take("issuing_certificates", cur.issuing_certificates));
  RETURN_IF_ERROR(take("crl_distribution_points", cur.crl_distribution_points));
  RETURN_IF_ERROR(take("ocsp_servers", cur.ocsp_servers));
  RETURN_IF_ERROR(storage_.put_json(kUrlsKey, cur.to_json()));
  return Response::empty();
}

Result<Response> PkiEngine::read_urls() {
  ASSIGN_OR_RETURN(Urls u, load_urls());
  return Response::with_data(u.to_json());
}

}  // namespace

Result<std::unique_ptr<Engine>> make_pki_engine(EngineContext ctx, const MountEntry& entry) {
  (void)entry;  // no mount options
  return std::unique_ptr<Engine>(std::make_unique<PkiEngine>(std::move(ctx)));
}

}  // namespace custos::core
