#include "kbs/broker.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>

#include "attestation/sim/sim.h"
#include "base/encoding.h"
#include "base/log.h"
#include "base/metrics.h"
#include "core/auth/cidr.h"
#include "core/tokens.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "crypto/x509.h"
#include "kbs/attest_auth.h"
#include "wrap/wrap.h"

namespace custos::kbs {

namespace json = boost::json;
using attestation::TeeType;
using wrap::JweAlg;

namespace {

constexpr std::array<std::string_view, 15> kReasons = {
    "released",          "request.invalid",    "nonce.missing",    "nonce.unknown",
    "nonce.replayed",    "nonce.expired",      "nonce.wrong_target", "nonce.capacity",
    "key.invalid",       "evidence.rejected",  "binding.mismatch", "policy.denied",
    "policy.unset",      "policy.client_cert", "session.invalid"};

Status bad_request(std::string m) { return invalid_argument("request.invalid: " + std::move(m)); }

Result<json::object> parse_object(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return bad_request("the body is not a JSON object");
  return std::move(v.as_object());
}

// Optional string member: empty when absent; an error when present with another type.
Result<std::string> opt_string(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return std::string();
  if (!v->is_string()) return bad_request("\"" + std::string(key) + "\" must be a string");
  return std::string(v->as_string());
}

Result<std::optional<int64_t>> opt_int(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return std::optional<int64_t>();
  if (v->is_int64()) return std::optional<int64_t>(v->as_int64());
  if (v->is_uint64() && v->as_uint64() < (1u << 30)) {
    return std::optional<int64_t>(static_cast<int64_t>(v->as_uint64()));
  }
  if (v->is_string()) {
    std::string s(v->as_string());
    if (!s.empty() && s.size() < 10 && std::all_of(s.begin(), s.end(), [](char c) {
          return c >= '0' && c <= '9';
        })) {
      return std::optional<int64_t>(std::stoll(s));
    }
  }
  return bad_request("\"" + std::string(key) + "\" must be an integer");
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string hash_hex(std::string_view s) { return hex_encode(crypto::sha256(as_bytes(s))); }

Bytes padded(Bytes digest, size_t size) {
  digest.resize(size, 0);
  return digest;
}

// ISecL curve names -> key type; canonical name out.
Result<crypto::KeyType> parse_curve(std::string_view name, std::string& canonical) {
  std::string n = lower(std::string(name));
  if (n == "secp256r1" || n == "prime256v1" || n == "p-256") {
    canonical = "secp256r1";
    return crypto::KeyType::kEcP256;
  }
  if (n == "secp384r1" || n == "p-384") {
    canonical = "secp384r1";
    return crypto::KeyType::kEcP384;
  }
  if (n == "secp521r1" || n == "p-521") {
    canonical = "secp521r1";
    return crypto::KeyType::kEcP521;
  }
  return bad_request("unsupported curve_type \"" + std::string(name) +
                     "\" (secp256r1, secp384r1, secp521r1)");
}

std::string curve_name(crypto::KeyType t) {
  switch (t) {
    case crypto::KeyType::kEcP256: return "secp256r1";
    case crypto::KeyType::kEcP384: return "secp384r1";
    case crypto::KeyType::kEcP521: return "secp521r1";
    default: return "";
  }
}

bool valid_segment(std::string_view s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 128) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

Status check_resource_path(const std::string& p) {
  size_t a = p.find('/');
  size_t b = a == std::string::npos ? a : p.find('/', a + 1);
  if (a == std::string::npos || b == std::string::npos || p.find('/', b + 1) != std::string::npos ||
      !valid_segment(p.substr(0, a)) || !valid_segment(p.substr(a + 1, b - a - 1)) ||
      !valid_segment(p.substr(b + 1))) {
    return bad_request("a resource path is <repository>/<type>/<tag> of [A-Za-z0-9._-]");
  }
  return ok_status();
}

bool valid_id(std::string_view id) { return valid_segment(id) && id.find('.') == std::string::npos; }

// The policy /kbs/v0/attest verifies with when no default resource policy is set: genuine
// evidence from any TEE. Resource reads are appraised later against their own policies.
attestation::Policy permissive_policy() {
  attestation::Policy p;
  p.id = "kbs-v0-verify";
  p.tees = {TeeType::kSgx, TeeType::kTdx, TeeType::kSnp, TeeType::kTpm, TeeType::kSim};
  p.allow_debug = true;
  p.tcb_statuses = std::vector<attestation::TcbStatus>{
      attestation::TcbStatus::kUpToDate, attestation::TcbStatus::kSwHardeningNeeded,
      attestation::TcbStatus::kConfigurationNeeded,
      attestation::TcbStatus::kConfigurationAndSwHardeningNeeded,
      attestation::TcbStatus::kOutOfDate, attestation::TcbStatus::kOutOfDateConfigurationNeeded,
      attestation::TcbStatus::kRevoked, attestation::TcbStatus::kNotApplicable};
  return p;
}

std::string join_reasons(const attestation::Appraisal& a) {
  std::string out;
  for (const auto& r : a.reasons()) {
    if (!out.empty()) out += "; ";
    out += r;
  }
  return out;
}

// "CN=foo" out of an RFC 2253 name.
std::string cn_of(const std::string& name) {
  size_t p = name.find("CN=");
  if (p == std::string::npos) return "";
  size_t e = name.find(',', p);
  return name.substr(p + 3, e == std::string::npos ? std::string::npos : e - p - 3);
}

Status check_client_cert(const attestation::Policy& p, std::string_view cert_der) {
  if (p.client_permissions_any_of.empty() && p.client_permissions_all_of.empty() &&
      p.client_issuer_cn_any_of.empty()) {
    return ok_status();
  }
  if (cert_der.empty()) {
    return permission_denied(
        "policy.client_cert: the transfer policy constrains the client certificate and the "
        "request carried none");
  }
  auto cert = crypto::Certificate::from_der(as_bytes(cert_der));
  if (!cert.ok()) return permission_denied("policy.client_cert: unreadable client certificate");
  std::vector<std::string> sans = cert->dns_names();
  auto has = [&sans](const std::string& s) {
    return std::find(sans.begin(), sans.end(), s) != sans.end();
  };
  if (!p.client_permissions_any_of.empty() &&
      std::none_of(p.client_permissions_any_of.begin(), p.client_permissions_any_of.end(), has)) {
    return permission_denied("policy.client_cert: no SAN of the client certificate is allowed");
  }
  if (!std::all_of(p.client_permissions_all_of.begin(), p.client_permissions_all_of.end(), has)) {
    return permission_denied("policy.client_cert: the client certificate lacks a required SAN");
  }
  if (!p.client_issuer_cn_any_of.empty()) {
    std::string cn = cn_of(cert->issuer());
    if (std::find(p.client_issuer_cn_any_of.begin(), p.client_issuer_cn_any_of.end(), cn) ==
        p.client_issuer_cn_any_of.end()) {
      return permission_denied("policy.client_cert: the client certificate's issuer is not allowed");
    }
  }
  return ok_status();
}

}  // namespace

std::string_view reason_of(const Status& st) {
  if (st.ok()) return kReasons[0];
  std::string_view m = st.message();
  size_t p = m.find(": ");
  if (p != std::string_view::npos) {
    std::string_view head = m.substr(0, p);
    for (auto r : kReasons) {
      if (r == head) return r;
    }
  }
  return "";
}

int reason_number(std::string_view reason) {
  for (size_t i = 0; i < kReasons.size(); ++i) {
    if (kReasons[i] == reason) return static_cast<int>(i);
  }
  return -1;
}

Result<TeeType> parse_tee_name(std::string_view name) {
  std::string n = lower(std::string(name));
  if (n == "sgx" || n == "intel-sgx") return TeeType::kSgx;
  if (n == "tdx" || n == "intel-tdx") return TeeType::kTdx;
  if (n == "snp" || n == "amd-sev-snp" || n == "sev-snp") return TeeType::kSnp;
  if (n == "tpm") return TeeType::kTpm;
  if (n == "sim" || n == "sample") return TeeType::kSim;
  return bad_request("unknown tee \"" + std::string(name.substr(0, 32)) +
                     "\" (sgx, tdx, snp, tpm, sim)");
}

namespace {
Status merge_collateral(const json::object& o, std::string_view key,
                        attestation::Collateral& out) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return ok_status();
  if (!v->is_object()) return bad_request("\"" + std::string(key) + "\" must be an object");
  for (const auto& [name, item] : v->as_object()) {
    if (!item.is_string()) {
      return bad_request("\"" + std::string(key) + "." + std::string(name) + "\" must be base64");
    }
    auto raw = base64_decode(item.as_string());
    if (!raw.ok()) {
      return bad_request("\"" + std::string(key) + "." + std::string(name) + "\" is not base64");
    }
    out[std::string(name)] = std::move(*raw);
  }
  return ok_status();
}
}  // namespace

Result<EvidenceInput> parse_evidence(const json::object& o, std::string_view quote_member,
                                     std::optional<TeeType> default_tee) {
  EvidenceInput ev;
  ASSIGN_OR_RETURN(std::string tee, opt_string(o, "tee"));
  if (!tee.empty()) {
    ASSIGN_OR_RETURN(ev.tee, parse_tee_name(tee));
  } else if (default_tee) {
    ev.tee = *default_tee;
  } else {
    return bad_request("missing \"tee\"");
  }
  ASSIGN_OR_RETURN(std::string quote, opt_string(o, quote_member));
  if (quote.empty()) return bad_request("missing \"" + std::string(quote_member) + "\"");
  auto raw = base64_decode(quote);
  if (!raw.ok()) return bad_request("\"" + std::string(quote_member) + "\" is not base64");
  ev.quote = std::move(*raw);
  ev.quote_sha256 = hex_encode(crypto::sha256(ev.quote));
  RETURN_IF_ERROR(merge_collateral(o, "collateral", ev.collateral));
  RETURN_IF_ERROR(merge_collateral(o, "tpm", ev.collateral));
  // The expected TPM nonce is ours to decide (the binding check), never the client's.
  ev.collateral.erase("nonce");
  return ev;
}

Result<Binding> nonce_key_binding(std::string_view nonce_b64, ByteSpan spki_der) {
  auto nonce = base64_decode(nonce_b64);
  if (!nonce.ok() || nonce->empty()) return bad_request("the nonce is not base64");
  Bytes input = std::move(*nonce);
  input.insert(input.end(), spki_der.begin(), spki_der.end());
  Bytes h = crypto::sha256(input);
  Binding b;
  b.report_data.push_back(padded(h, 64));
  b.tpm_nonce.push_back(std::move(h));
  return b;
}

// ---------------------------------------------------------------------------------------------

Broker::Broker(core::Core& core, attestation::Service& service, BrokerConfig config)
    : core_(core),
      service_(service),
      config_(std::move(config)),
      nonces_(core.clock(), config_.nonce_ttl, config_.max_nonces) {}

void Broker::register_auth_method() { core_.register_auth("attest", attest_auth_factory(*this)); }

Status Broker::authorize(std::string_view token, std::string_view remote_addr,
                         const std::string& path, core::Operation op) {
  if (token.empty()) return permission_denied("permission denied (missing client token)");
  ASSIGN_OR_RETURN(auto entry, core_.tokens()->lookup(token));
  if (!entry || !core::source_allowed(entry->bound_cidrs, remote_addr)) {
    return permission_denied("permission denied");
  }
  // The admin routes authorize before they parse their bodies: a rule with parameter
  // constraints on a kbs/ path therefore refuses them.
  ASSIGN_OR_RETURN(bool allowed, core_.acl_allows(*entry, path, op, nullptr));
  // A use is taken whatever the outcome, as for the Vault API; the admin call needs the token
  // no longer once authorized, so a last use revokes it at once.
  ASSIGN_OR_RETURN(bool last_use, core_.tokens()->use(*entry));
  if (last_use) {
    Status st = core_.tokens()->revoke(*entry);
    if (!st.ok()) LOG_WARN("kbs", "could not revoke a used-up token: " << st.message());
  }
  if (!allowed) return permission_denied("permission denied");
  return ok_status();
}

Status Broker::audit(const Decision& d) {
  // reason is one of kReasons: a bounded set of series.
  metrics::Registry::global()
      .counter("custos_kbs_decisions_total", "key and resource release decisions",
               {{"outcome", d.released ? "released" : "denied"}, {"reason", d.reason}})
      .inc();
  core::Request req;
  req.op = core::Operation::kUpdate;
  req.path = d.path;
  req.mount_point = "kbs/";
  req.mount_type = "kbs";
  req.remote_addr = d.remote_addr;
  req.request_id = crypto::random_uuid();
  req.data["released"] = d.released;
  req.data["reason_code"] = reason_number(d.reason);
  req.data["reason"] = d.reason;
  req.data["evidence_sha256"] = d.evidence_sha256;
  req.data["key_id"] = d.target;
  req.data["policy_id"] = d.policy_id;
  req.data["policy_version"] = d.policy_version;
  req.data["tee"] = d.tee;
  RETURN_IF_ERROR(core_.audit().log_request(req, nullptr));
  Result<core::Response> resp =
      d.released ? Result<core::Response>(core::Response::with_data(
                       json::object{{"released", true}, {"reason_code", 0}}))
                 : Result<core::Response>(permission_denied(d.message));
  return core_.audit().log_response(req, nullptr, resp);
}

Status Broker::deny(Decision d, const Status& st) {
  d.released = false;
  d.reason = std::string(reason_of(st));
  if (d.reason.empty()) d.reason = "request.invalid";
  d.message = st.message();
  Status a = audit(d);
  if (!a.ok()) LOG_WARN("kbs", "audit of a refusal failed: " << a.message());
  return st;
}

Result<Attested> Broker::verify_bound(const EvidenceInput& evidence, const Binding& binding,
                                      const attestation::Policy& policy) {
  attestation::VerifyRequest req;
  req.evidence = attestation::Evidence{evidence.tee, evidence.quote};
  req.collateral = evidence.collateral;
  if (auto it = config_.default_collateral.find(evidence.tee);
      it != config_.default_collateral.end()) {
    for (const auto& [name, item] : it->second) req.collateral.emplace(name, item);
  }
  req.policy = policy;
  req.issue_token = false;
  attestation::VerifyOutcome out = service_.verify(req);
  if (!out.verified) {
    const attestation::Rejection r = out.rejection.value_or(attestation::Rejection{"unknown", ""});
    if (r.reason.rfind("policy.", 0) == 0) {
      return permission_denied("policy.denied: " + r.reason + ": " + r.message);
    }
    return permission_denied("evidence.rejected: " + r.reason + ": " + r.message);
  }
  const auto& candidates =
      evidence.tee == TeeType::kTpm ? binding.tpm_nonce : binding.report_data;
  bool bound = false;
  for (const auto& c : candidates) bound |= constant_time_equal(out.claims->report_data, c);
  if (!bound) {
    return permission_denied(
        "binding.mismatch: the evidence's report data does not bind this nonce and public key");
  }
  Attested a;
  a.claims = std::move(*out.claims);
  a.appraisal = std::move(*out.appraisal);
  a.evidence_sha256 = evidence.quote_sha256.empty() ? hex_encode(crypto::sha256(evidence.quote))
                                                     : evidence.quote_sha256;
  return a;
}

// ---------------------------------------------------------------------------------------------
// /kbs/v1 keys

namespace {
json::object key_json(const json::object& meta, std::string_view base_url) {
  json::object info;
  info["id"] = meta.at("id");
  info["algorithm"] = meta.at("algorithm");
  if (const auto* v = meta.if_contains("key_length")) info["key_length"] = *v;
  if (const auto* v = meta.if_contains("curve_type")) info["curve_type"] = *v;
  json::object o;
  o["key_information"] = std::move(info);
  o["transfer_policy_id"] = meta.at("transfer_policy_id");
  o["transfer_link"] = std::string(base_url) + "/kbs/v1/keys/" +
                       std::string(meta.at("id").as_string()) + "/transfer";
  o["label"] = meta.at("label");
  o["usage"] = meta.at("usage");
  o["created_at"] = meta.at("created_at");
  return o;
}
}  // namespace

Result<json::object> Broker::create_key(const json::object& body, std::string_view base_url) {
  const auto* ki = body.if_contains("key_information");
  if (ki == nullptr || !ki->is_object()) return bad_request("missing \"key_information\" object");
  const json::object& info = ki->as_object();
  ASSIGN_OR_RETURN(std::string algorithm, opt_string(info, "algorithm"));
  algorithm = upper(algorithm);
  if (algorithm != "AES" && algorithm != "RSA" && algorithm != "EC") {
    return bad_request("key_information.algorithm must be AES, RSA or EC");
  }
  ASSIGN_OR_RETURN(std::string kmip, opt_string(info, "kmip_key_id"));
  if (!kmip.empty()) {
    return bad_request("no KMIP backend configured: register the key with key_string or let "
                       "the server generate it");
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> key_length, opt_int(info, "key_length"));
  ASSIGN_OR_RETURN(std::string curve, opt_string(info, "curve_type"));
  ASSIGN_OR_RETURN(std::string key_string, opt_string(info, "key_string"));
  ASSIGN_OR_RETURN(std::string policy_id, opt_string(body, "transfer_policy_id"));
  ASSIGN_OR_RETURN(std::string label, opt_string(body, "label"));
  ASSIGN_OR_RETURN(std::string usage, opt_string(body, "usage"));
  if (!policy_id.empty()) {
    if (!valid_id(policy_id)) return bad_request("bad transfer_policy_id");
    ASSIGN_OR_RETURN(auto rec, view().get_json("key-transfer-policies/" + policy_id));
    if (!rec) return bad_request("transfer policy " + policy_id + " does not exist");
  }

  json::object meta;
  SecretBytes material;
  if (algorithm == "AES") {
    if (!key_string.empty()) {
      auto raw = base64_decode(key_string);
      if (!raw.ok()) return bad_request("key_string is not base64");
      material = SecretBytes(std::move(*raw));
      if (key_length && *key_length != static_cast<int64_t>(material.size() * 8)) {
        return bad_request("key_length does not match key_string");
      }
      key_length = static_cast<int64_t>(material.size() * 8);
    }
    int64_t bits = key_length.value_or(256);
    if (bits != 128 && bits != 192 && bits != 256) {
      return bad_request("AES key_length must be 128, 192 or 256");
    }
    if (key_string.empty()) material = crypto::random_secret(static_cast<size_t>(bits / 8));
    meta["key_length"] = bits;
  } else {
    crypto::PrivateKey key;
    if (!key_string.empty()) {
      if (key_string.find("-----BEGIN") != std::string::npos) {
        auto k = crypto::PrivateKey::from_pem(key_string);
        if (!k.ok()) return bad_request("key_string is not a readable private key");
        key = std::move(*k);
      } else {
        auto der = base64_decode(key_string);
        if (!der.ok()) return bad_request("key_string is neither PEM nor base64 PKCS#8");
        auto k = crypto::PrivateKey::from_der(*der);
        secure_wipe(der->data(), der->size());
        if (!k.ok()) return bad_request("key_string is not a readable private key");
        key = std::move(*k);
      }
      bool rsa = key.type() == crypto::KeyType::kRsa;
      if (rsa != (algorithm == "RSA") || key.type() == crypto::KeyType::kEd25519) {
        return bad_request("key_string is not an " + algorithm + " key");
      }
    } else if (algorithm == "RSA") {
      int64_t bits = key_length.value_or(3072);
      if (bits != 2048 && bits != 3072 && bits != 4096) {
        return bad_request("RSA key_length must be 2048, 3072 or 4096");
      }
      ASSIGN_OR_RETURN(key, crypto::PrivateKey::generate(crypto::KeyType::kRsa,
                                                         static_cast<int>(bits)));
    } else {
      std::string canonical;
      ASSIGN_OR_RETURN(crypto::KeyType t, parse_curve(curve.empty() ? "secp256r1" : curve,
                                                      canonical));
      ASSIGN_OR_RETURN(key, crypto::PrivateKey::generate(t));
    }
    if (algorithm == "RSA") {
      meta["key_length"] = key.bits();
    } else {
      std::string canonical = curve_name(key.type());
      if (!curve.empty()) {
        std::string wanted;
        ASSIGN_OR_RETURN(auto t, parse_curve(curve, wanted));
        if (t != key.type()) return bad_request("curve_type does not match key_string");
      }
      meta["curve_type"] = canonical;
    }
    material = key.to_der();
  }
  std::string id = crypto::random_uuid();
  meta["id"] = id;
  meta["algorithm"] = algorithm;
  meta["transfer_policy_id"] = policy_id;
  meta["label"] = label;
  meta["usage"] = usage;
  meta["created_at"] = format_rfc3339(now());
  RETURN_IF_ERROR(view().put("key-material/" + id, material.span()));
  RETURN_IF_ERROR(view().put_json("keys/" + id, meta));
  return key_json(meta, base_url);
}

Result<json::array> Broker::list_keys(const std::map<std::string, std::string>& filters,
                                      std::string_view base_url) {
  ASSIGN_OR_RETURN(auto ids, view().list("keys/"));
  json::array out;
  auto filter = [&filters](const char* name) -> std::string {
    auto it = filters.find(name);
    return it == filters.end() ? "" : it->second;
  };
  std::string f_alg = upper(filter("algorithm"));
  std::string f_len = filter("keyLength");
  std::string f_curve = filter("curveType");
  std::string f_policy = filter("transferPolicyId");
  if (!f_curve.empty()) {
    std::string canonical;
    ASSIGN_OR_RETURN(auto t, parse_curve(f_curve, canonical));
    (void)t;
    f_curve = canonical;
  }
  for (const auto& id : ids) {
    ASSIGN_OR_RETURN(auto v, view().get_json("keys/" + id));
    if (!v || !v->is_object()) continue;
    const json::object& m = v->as_object();
    if (!f_alg.empty() && m.at("algorithm").as_string() != f_alg) continue;
    if (!f_len.empty()) {
      const auto* l = m.if_contains("key_length");
      if (l == nullptr || !l->is_int64() || std::to_string(l->as_int64()) != f_len) continue;
    }
    if (!f_curve.empty()) {
      const auto* c = m.if_contains("curve_type");
      if (c == nullptr || c->as_string() != f_curve) continue;
    }
    if (!f_policy.empty() && m.at("transfer_policy_id").as_string() != f_policy) continue;
    out.push_back(key_json(m, base_url));
  }
  return out;
}

Result<json::object> Broker::get_key(const std::string& id, std::string_view base_url) {
  if (!valid_id(id)) return not_found("no such key");
  ASSIGN_OR_RETURN(auto v, view().get_json("keys/" + id));
  if (!v || !v->is_object()) return not_found("no such key");
  return key_json(v->as_object(), base_url);
}

Status Broker::delete_key(const std::string& id) {
  if (!valid_id(id)) return not_found("no such key");
  ASSIGN_OR_RETURN(auto v, view().get_json("keys/" + id));
  if (!v) return not_found("no such key");
  RETURN_IF_ERROR(view().del("key-material/" + id));
  return view().del("keys/" + id);
}

// ---------------------------------------------------------------------------------------------
// key-transfer policies

namespace {
json::object policy_response(const json::object& rec) {
  json::object out = rec.at("document").as_object();
  out["id"] = rec.at("id");
  out["created_at"] = rec.at("created_at");
  out["updated_at"] = rec.at("updated_at");
  out["version"] = rec.at("version");
  return out;
}
}  // namespace

Result<json::object> Broker::put_transfer_policy(const json::object& body,
                                                 std::optional<std::string> id) {
  auto parsed = attestation::parse_policy(json::serialize(body));
  if (!parsed.ok()) return bad_request("transfer policy: " + parsed.status().message());
  std::string pid;
  if (id) {
    pid = *id;
  } else {
    ASSIGN_OR_RETURN(pid, opt_string(body, "id"));
    if (pid.empty()) pid = crypto::random_uuid();
  }
  if (!valid_id(pid)) return bad_request("bad policy id");
  ASSIGN_OR_RETURN(auto existing, view().get_json("key-transfer-policies/" + pid));
  json::object rec;
  std::string ts = format_rfc3339(now());
  rec["document"] = body;
  rec["id"] = pid;
  rec["updated_at"] = ts;
  if (existing && existing->is_object()) {
    rec["created_at"] = existing->as_object().at("created_at");
    rec["version"] = existing->as_object().at("version").to_number<int64_t>() + 1;
  } else {
    rec["created_at"] = ts;
    rec["version"] = 1;
  }
  RETURN_IF_ERROR(view().put_json("key-transfer-policies/" + pid, rec));
  return policy_response(rec);
}

Result<json::object> Broker::get_transfer_policy(const std::string& id) {
  if (!valid_id(id)) return not_found("no such transfer policy");
  ASSIGN_OR_RETURN(auto rec, view().get_json("key-transfer-policies/" + id));
  if (!rec || !rec->is_object()) return not_found("no such transfer policy");
  return policy_response(rec->as_object());
}

Result<json::array> Broker::list_transfer_policies() {
  ASSIGN_OR_RETURN(auto ids, view().list("key-transfer-policies/"));
  json::array out;
  for (const auto& id : ids) {
    auto p = get_transfer_policy(id);
    if (p.ok()) out.push_back(std::move(*p));
  }
  return out;
}

Status Broker::delete_transfer_policy(const std::string& id) {
  if (!valid_id(id)) return not_found("no such transfer policy");
  ASSIGN_OR_RETURN(auto rec, view().get_json("key-transfer-policies/" + id));
  if (!rec) return not_found("no such transfer policy");
  ASSIGN_OR_RETURN(auto keys, list_keys({{"transferPolicyId", id}}, ""));
  if (!keys.empty()) return bad_request("the policy is used by " + std::to_string(keys.size()) +
                                        " key(s)");
  return view().del("key-transfer-policies/" + id);
}

Result<attestation::Policy> Broker::load_transfer_policy(const std::string& id,
                                                         int64_t& version) {
  ASSIGN_OR_RETURN(auto rec, view().get_json("key-transfer-policies/" + id));
  if (!rec || !rec->is_object()) {
    return permission_denied("policy.unset: the key's transfer policy " + id + " does not exist");
  }
  const json::object& r = rec->as_object();
  version = r.at("version").to_number<int64_t>();
  auto p = attestation::parse_policy(json::serialize(r.at("document")));
  if (!p.ok()) return data_loss("stored transfer policy " + id + " does not parse");
  if (p->id.empty()) p->id = id;
  return std::move(*p);
}

// ---------------------------------------------------------------------------------------------
// /kbs/v1 transfer

Result<IssuedNonce> Broker::transfer_challenge(const std::string& key_id) {
  if (!valid_id(key_id)) return not_found("no such key");
  ASSIGN_OR_RETURN(auto v, view().get_json("keys/" + key_id));
  if (!v) return not_found("no such key");
  return nonces_.issue("v1:" + key_id);
}

Result<json::object> Broker::transfer(const std::string& key_id, const json::object& body,
                                      std::string_view client_cert_der,
                                      std::string_view remote_addr) {
  Decision d;
  d.path = "kbs/v1/keys/" + key_id + "/transfer";
  d.target = key_id;
  d.remote_addr = std::string(remote_addr);
  if (!valid_id(key_id)) return not_found("no such key");
  ASSIGN_OR_RETURN(auto meta_v, view().get_json("keys/" + key_id));
  if (!meta_v || !meta_v->is_object()) return not_found("no such key");
  const json::object& meta = meta_v->as_object();

  auto nonce = opt_string(body, "nonce");
  if (!nonce.ok()) return deny(d, nonce.status());
  // Single use whatever follows: a failed attempt cannot be retried with the same nonce.
  if (Status st = nonces_.consume(*nonce, "v1:" + key_id); !st.ok()) return deny(d, st);

  auto user_data = opt_string(body, "user_data");
  if (!user_data.ok()) return deny(d, user_data.status());
  auto spki = base64_decode(*user_data);
  if (user_data->empty() || !spki.ok()) {
    return deny(d, invalid_argument("key.invalid: user_data must be the base64 SPKI DER of the "
                                    "TEE public key"));
  }
  auto tee_key = crypto::PublicKey::from_der(*spki);
  if (!tee_key.ok()) {
    return deny(d, invalid_argument("key.invalid: user_data is not an allowed public key: " +
                                    tee_key.status().message()));
  }
  auto evidence = parse_evidence(body, "quote");
  if (!evidence.ok()) return deny(d, evidence.status());
  d.tee = std::string(attestation::tee_name(evidence->tee));
  d.evidence_sha256 = evidence->quote_sha256;

  std::string policy_id(meta.at("transfer_policy_id").as_string());
  d.policy_id = policy_id;
  if (policy_id.empty()) {
    return deny(d, permission_denied("policy.unset: the key has no transfer policy"));
  }
  auto policy = load_transfer_policy(policy_id, d.policy_version);
  if (!policy.ok()) return deny(d, policy.status());

  auto binding = nonce_key_binding(*nonce, *spki);
  if (!binding.ok()) return deny(d, binding.status());
  auto att = verify_bound(*evidence, *binding, *policy);
  if (!att.ok()) return deny(d, att.status());
  if (!att->appraisal.pass) {
    return deny(d, permission_denied("policy.denied: " + join_reasons(att->appraisal)));
  }
  if (Status st = check_client_cert(*policy, client_cert_der); !st.ok()) return deny(d, st);

  ASSIGN_OR_RETURN(auto material, view().get("key-material/" + key_id));
  if (!material) return data_loss("key material for " + key_id + " is missing");
  json::object out;
  if (tee_key->type() == crypto::KeyType::kRsa) {
    auto w = wrap::wrap_isecl(*tee_key, material->span());
    if (!w.ok()) return deny(d, w.status());
    out["wrapped_key"] = w->wrapped_key;
    out["wrapped_swk"] = w->wrapped_swk;
  } else if (tee_key->type() != crypto::KeyType::kEd25519) {
    auto jwe = wrap::jwe_encrypt(*tee_key, JweAlg::kEcdhEs, material->span());
    if (!jwe.ok()) return deny(d, jwe.status());
    out = std::move(*jwe);
  } else {
    return deny(d, invalid_argument("key.invalid: Ed25519 keys cannot receive a wrapped key"));
  }
  out["key_id"] = key_id;
  out["algorithm"] = meta.at("algorithm");
  d.released = true;
  d.reason = "released";
  // No audit line, no release (Vault's rule for audit devices that cannot write).
  RETURN_IF_ERROR(audit(d));
  return out;
}

// ---------------------------------------------------------------------------------------------
// /kbs/v0

void Broker::sweep_sessions_locked(SysTime t) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    it = it->second.expires_at <= t ? sessions_.erase(it) : std::next(it);
  }
  for (auto it = attested_.begin(); it != attested_.end();) {
    it = it->second->expires_at <= t ? attested_.erase(it) : std::next(it);
  }
}

Result<Broker::Challenge> Broker::v0_auth(const json::object& body) {
  ASSIGN_OR_RETURN(std::string version, opt_string(body, "version"));
  if (!version.empty() && version.rfind("0.", 0) != 0) {
    return bad_request("unsupported protocol version " + version.substr(0, 16));
  }
  ASSIGN_OR_RETURN(std::string tee_name, opt_string(body, "tee"));
  ASSIGN_OR_RETURN(TeeType tee, parse_tee_name(tee_name));
  Challenge c;
  c.session_id = core::random_base62(32);
  std::string key = hash_hex(c.session_id);
  SysTime t = now();
  {
    std::lock_guard lock(v0_mu_);
    if (sessions_.size() >= config_.max_sessions) sweep_sessions_locked(t);
    if (sessions_.size() >= config_.max_sessions) {
      return resource_exhausted("nonce.capacity: too many attestation sessions; retry later");
    }
  }
  ASSIGN_OR_RETURN(IssuedNonce n, nonces_.issue("v0:" + key));
  c.nonce = n.nonce;
  std::lock_guard lock(v0_mu_);
  sessions_[key] = V0Session{tee, n.nonce, n.expires_at, nullptr};
  return c;
}

Result<std::string> Broker::v0_attest(std::string_view session_id, std::string_view body_text,
                                      std::string_view remote_addr) {
  Decision d;
  d.path = "kbs/v0/attest";
  d.remote_addr = std::string(remote_addr);
  std::string key = hash_hex(session_id);
  V0Session session;
  {
    std::lock_guard lock(v0_mu_);
    auto it = sessions_.find(key);
    if (session_id.empty() || it == sessions_.end() || it->second.expires_at <= now()) {
      return deny(d, unauthenticated("session.invalid: no attestation session; POST /kbs/v0/auth "
                                     "first and send its kbs-session-id cookie"));
    }
    session = it->second;
  }
  auto body = parse_object(body_text);
  if (!body.ok()) return deny(d, body.status());

  // The runtime-data bytes R that the evidence must bind (docs/formats/kbs.md §5).
  std::string runtime;
  json::object runtime_obj;
  const json::value* rd = body->if_contains("runtime-data");
  if (rd != nullptr && rd->is_string()) {
    runtime = std::string(rd->as_string());
    auto o = parse_object(runtime);
    if (!o.ok()) return deny(d, bad_request("runtime-data is not a JSON object"));
    runtime_obj = std::move(*o);
  } else if (rd != nullptr && rd->is_object()) {
    runtime_obj = rd->as_object();
    runtime = json::serialize(runtime_obj);
  } else if (const auto* pk = body->if_contains("tee-pubkey"); pk != nullptr && pk->is_object()) {
    runtime_obj["nonce"] = session.nonce;
    runtime_obj["tee-pubkey"] = *pk;
    runtime = json::serialize(runtime_obj);
  } else {
    return deny(d, bad_request("missing runtime-data (or tee-pubkey)"));
  }
  auto nonce = opt_string(runtime_obj, "nonce");
  if (!nonce.ok()) return deny(d, nonce.status());
  if (Status st = nonces_.consume(*nonce, "v0:" + key); !st.ok()) return deny(d, st);

  const auto* jwk = runtime_obj.if_contains("tee-pubkey");
  if (jwk == nullptr || !jwk->is_object()) {
    return deny(d, invalid_argument("key.invalid: runtime-data has no tee-pubkey JWK"));
  }
  auto tee_key = wrap::public_key_from_jwk(jwk->as_object());
  if (!tee_key.ok() || tee_key->type() == crypto::KeyType::kEcP521) {
    return deny(d, invalid_argument("key.invalid: tee-pubkey must be an RSA or EC P-256/P-384 "
                                    "JWK"));
  }

  Result<EvidenceInput> evidence = bad_request("missing tee-evidence");
  if (const auto* ev = body->if_contains("tee-evidence"); ev != nullptr) {
    if (ev->is_object()) {
      evidence = parse_evidence(ev->as_object(), "quote", session.tee);
    } else if (ev->is_string() && !ev->as_string().empty() && ev->as_string()[0] == '{') {
      auto o = parse_object(ev->as_string());
      evidence = o.ok() ? parse_evidence(*o, "quote", session.tee)
                        : Result<EvidenceInput>(o.status());
    } else if (ev->is_string()) {
      evidence = parse_evidence(json::object{{"quote", ev->as_string()}}, "quote", session.tee);
    }
  }
  if (!evidence.ok()) return deny(d, evidence.status());
  d.tee = std::string(attestation::tee_name(evidence->tee));
  d.evidence_sha256 = evidence->quote_sha256;

  Binding binding;
  Bytes h256 = crypto::sha256(as_bytes(runtime));
  Bytes h384 = crypto::sha384(as_bytes(runtime));
  binding.report_data = {padded(h384, 64), padded(h256, 64)};
  binding.tpm_nonce = {h256, h384};

  std::string which;
  auto default_policy = load_resource_policy("", which);
  if (!default_policy.ok()) return deny(d, default_policy.status());
  attestation::Policy policy = default_policy->value_or(permissive_policy());
  d.policy_id = policy.id;
  auto att = verify_bound(*evidence, binding, policy);
  if (!att.ok()) return deny(d, att.status());

  json::object payload = attestation::ear_payload(att->claims, att->appraisal);
  std::string handle = crypto::random_uuid();
  payload["tee-pubkey"] = *jwk;
  payload["runtime_data_sha256"] = hex_encode(h256);
  payload["kbs_att"] = handle;
  ASSIGN_OR_RETURN(std::string token,
                   service_.signer().sign(std::move(payload), now(), config_.nonce_ttl));
  auto record = std::make_shared<V0Attestation>();
  record->claims = att->claims;
  record->tee_key = *tee_key;
  record->evidence_sha256 = att->evidence_sha256;
  record->expires_at = now() + config_.nonce_ttl;
  d.released = true;
  d.reason = "released";
  RETURN_IF_ERROR(audit(d));
  std::lock_guard lock(v0_mu_);
  auto it = sessions_.find(key);
  if (it != sessions_.end()) {
    it->second.attested = record;
    it->second.expires_at = record->expires_at;
  }
  attested_[handle] = record;
  return token;
}

Result<std::shared_ptr<const Broker::V0Attestation>> Broker::v0_find(std::string_view session_id,
                                                                     std::string_view bearer) {
  SysTime t = now();
  std::string handle;
  if (!bearer.empty()) {
    auto tok = attestation::verify_token(bearer, service_.signer().jwks(), t,
                                         service_.signer().issuer());
    if (!tok.ok()) {
      return unauthenticated("session.invalid: the attestation token does not verify: " +
                             tok.status().message());
    }
    const auto* h = tok->payload.if_contains("kbs_att");
    if (h == nullptr || !h->is_string()) {
      return unauthenticated("session.invalid: the token was not issued by /kbs/v0/attest");
    }
    handle = std::string(h->as_string());
  }
  std::lock_guard lock(v0_mu_);
  std::shared_ptr<const V0Attestation> att;
  if (!handle.empty()) {
    auto it = attested_.find(handle);
    if (it != attested_.end()) att = it->second;
  } else if (!session_id.empty()) {
    auto it = sessions_.find(hash_hex(session_id));
    if (it != sessions_.end()) att = it->second.attested;
  }
  if (!att || att->expires_at <= t) {
    return unauthenticated("session.invalid: no attested session; POST /kbs/v0/auth and "
                           "/kbs/v0/attest first");
  }
  return att;
}

Result<std::optional<attestation::Policy>> Broker::load_resource_policy(const std::string& path,
                                                                        std::string& which) {
  for (const std::string& key :
       {path.empty() ? std::string() : "resource-policy/r/" + path,
        std::string("resource-policy/default")}) {
    if (key.empty()) continue;
    ASSIGN_OR_RETURN(auto doc, view().get_json(key));
    if (!doc) continue;
    auto p = attestation::parse_policy(json::serialize(*doc));
    if (!p.ok()) return data_loss("stored resource policy does not parse");
    which = key;
    if (p->id.empty()) p->id = key == "resource-policy/default" ? "default" : path;
    return std::optional<attestation::Policy>(std::move(*p));
  }
  return std::optional<attestation::Policy>();
}

Result<json::object> Broker::v0_resource(std::string_view session_id, std::string_view bearer,
                                         const std::string& resource_path,
                                         std::string_view remote_addr) {
  Decision d;
  d.path = "kbs/v0/resource/" + resource_path;
  d.target = resource_path;
  d.remote_addr = std::string(remote_addr);
  if (Status st = check_resource_path(resource_path); !st.ok()) return deny(d, st);
  auto att = v0_find(session_id, bearer);
  if (!att.ok()) return deny(d, att.status());
  d.evidence_sha256 = (*att)->evidence_sha256;
  d.tee = std::string(attestation::tee_name((*att)->claims.tee));
  std::string which;
  auto policy = load_resource_policy(resource_path, which);
  if (!policy.ok()) return deny(d, policy.status());
  if (!*policy) {
    return deny(d, permission_denied("policy.unset: no resource policy; PUT "
                                     "/kbs/v0/resource-policy first"));
  }
  d.policy_id = (*policy)->id;
  attestation::Appraisal a = attestation::appraise((*att)->claims, **policy, now());
  if (!a.pass) return deny(d, permission_denied("policy.denied: " + join_reasons(a)));
  ASSIGN_OR_RETURN(auto value, view().get("resources/" + resource_path));
  if (!value) return deny(d, not_found("request.invalid: no such resource"));
  JweAlg alg = (*att)->tee_key.type() == crypto::KeyType::kRsa ? JweAlg::kRsaOaep256
                                                                : JweAlg::kEcdhEsA256Kw;
  auto jwe = wrap::jwe_encrypt((*att)->tee_key, alg, value->span());
  if (!jwe.ok()) return deny(d, jwe.status());
  d.released = true;
  d.reason = "released";
  RETURN_IF_ERROR(audit(d));
  return std::move(*jwe);
}

Status Broker::put_resource(const std::string& resource_path, ByteSpan value) {
  RETURN_IF_ERROR(check_resource_path(resource_path));
  if (value.size() > config_.max_resource_bytes) {
    return resource_exhausted("resource larger than " +
                              std::to_string(config_.max_resource_bytes) + " bytes");
  }
  return view().put("resources/" + resource_path, value);
}

Status Broker::delete_resource(const std::string& resource_path) {
  RETURN_IF_ERROR(check_resource_path(resource_path));
  ASSIGN_OR_RETURN(auto v, view().get("resources/" + resource_path));
  if (!v) return not_found("no such resource");
  return view().del("resources/" + resource_path);
}

Status Broker::put_resource_policy(const std::string& resource_path, const json::object& body) {
  if (!resource_path.empty()) RETURN_IF_ERROR(check_resource_path(resource_path));
  json::object doc = body;
  if (body.size() == 1 && body.contains("policy") && body.at("policy").is_string()) {
    std::string_view b64 = body.at("policy").as_string();
    auto raw = base64_decode(b64);
    if (!raw.ok()) raw = base64url_decode(b64);
    if (!raw.ok()) return bad_request("\"policy\" is not base64");
    ASSIGN_OR_RETURN(doc, parse_object(as_string_view(*raw)));
  }
  auto parsed = attestation::parse_policy(json::serialize(doc));
  if (!parsed.ok()) return bad_request("resource policy: " + parsed.status().message());
  return view().put_json(
      resource_path.empty() ? "resource-policy/default" : "resource-policy/r/" + resource_path,
      doc);
}

Result<json::object> Broker::get_resource_policy(const std::string& resource_path) {
  if (!resource_path.empty()) RETURN_IF_ERROR(check_resource_path(resource_path));
  ASSIGN_OR_RETURN(auto doc, view().get_json(resource_path.empty()
                                                 ? "resource-policy/default"
                                                 : "resource-policy/r/" + resource_path));
  if (!doc || !doc->is_object()) return not_found("no resource policy");
  return doc->as_object();
}

// ---------------------------------------------------------------------------------------------

Result<std::unique_ptr<Broker>> make_dev_broker(core::Core& core, attestation::Service& service,
                                                const attestation::sim::SimPlatform& sim,
                                                BrokerConfig config) {
  service.registry().add(std::make_unique<attestation::sim::SimVerifier>(sim.root()));
  config.default_collateral[TeeType::kSim] = sim.collateral();
  auto broker = std::make_unique<Broker>(core, service, std::move(config));
  broker->register_auth_method();
  if (!core.sealed()) {
    Status st = core.enable_auth("attest", "attest", "attestation login (dev: trusts the sim TEE)");
    if (!st.ok() && st.code() != Code::kAlreadyExists &&
        st.message().find("already in use") == std::string::npos) {
      return st;
    }
    auto existing = broker->get_resource_policy("");
    if (!existing.ok() && existing.status().code() == Code::kNotFound) {
      RETURN_IF_ERROR(broker->put_resource_policy(
          "", json::object{{"id", "dev-sim"}, {"tee", json::array{"sim"}}}));
    }
  }
  return broker;
}

}  // namespace custos::kbs
