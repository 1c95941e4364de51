// Client side of docs/formats/kbs.md. Section numbers in comments refer to that file.
#include "agent/fetch.h"

#include <algorithm>
#include <boost/json.hpp>
#include <optional>

#include "base/encoding.h"
#include "crypto/hash.h"
#include "ledger/attested.h"
#include "wrap/wrap.h"

namespace custos::agent {
namespace {

namespace json = boost::json;

constexpr size_t kNonceSize = 32;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

// A lent keep-alive client, or one made for this call.
class Http {
 public:
  explicit Http(const FetchOptions& o) : lent_(o.http) {
    if (!lent_) {
      net::ClientOptions co;
      co.ca_file = o.ca_file;
      co.insecure_skip_verify = o.insecure_skip_verify;
      owned_ = std::make_unique<net::HttpClient>(co);
    }
  }
  net::HttpClient& get() { return lent_ ? *lent_ : *owned_; }

 private:
  net::HttpClient* lent_;
  std::unique_ptr<net::HttpClient> owned_;
};

std::string base_url(const FetchOptions& o) {
  std::string a = o.kbs_addr;
  while (!a.empty() && a.back() == '/') a.pop_back();
  return a;
}

// Ids and resource path segments go into URLs unescaped, so only a safe alphabet is allowed.
Status check_segment(std::string_view what, std::string_view s) {
  if (s.empty() || s.size() > 256) return invalid_argument(std::string(what) + ": empty or too long");
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return invalid_argument(std::string(what) + " \"" + std::string(s) + "\": only [A-Za-z0-9._-] allowed");
  }
  if (s == "." || s == "..") return invalid_argument(std::string(what) + ": . and .. are not allowed");
  return ok_status();
}

Result<json::object> parse_object(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return internal_error(std::string(what) + ": not a JSON object");
  return std::move(v.as_object());
}

std::optional<std::string> string_member(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

// A non-2xx answer as a Status carrying the broker's reason (§4 errors, §5 problem JSON). The
// server's text is shown to the operator: it never contains secrets (§8).
Status broker_error(const net::HttpResponse& r, std::string_view what) {
  std::string reason;
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (!ec && v.is_object()) {
    const auto& o = v.as_object();
    if (auto d = string_member(o, "detail")) {
      reason = *d;
    } else {
      if (auto rc = string_member(o, "reason")) reason = *rc;
      if (const auto* e = o.if_contains("errors"); e && e->is_array()) {
        for (const auto& x : e->as_array()) {
          if (!x.is_string()) continue;
          std::string m(x.as_string());
          if (reason.empty()) {
            reason = m;
          } else if (m.find(reason) == std::string::npos) {
            reason += ": " + m;
          } else {
            reason = m;
          }
        }
      }
    }
  }
  if (reason.empty()) reason = "HTTP " + std::to_string(r.status);
  std::string msg = std::string(what) + " refused (HTTP " + std::to_string(r.status) + "): " + reason;
  switch (r.status) {
    case 400: return invalid_argument(msg);
    case 401: return unauthenticated(msg);
    case 403: return permission_denied(msg);
    case 404: return not_found(msg);
    case 429: return resource_exhausted(msg);
    default: return unavailable(msg);
  }
}

Result<net::HttpResponse> send(Http& http, std::string_view method, const std::string& url,
                               std::vector<net::Header> headers, std::string_view body) {
  if (!body.empty()) headers.push_back({"Content-Type", "application/json"});
  auto r = http.get().request(method, url, headers, body);
  if (!r.ok()) return unavailable("key broker " + url + ": " + r.status().message());
  return r;
}

// §2: the evidence fields every dialect carries.
void put_evidence(json::object& o, const ProducedEvidence& pe, std::string_view quote_member,
                  bool omit_collateral) {
  o["tee"] = attestation::tee_name(pe.evidence.tee);
  o[quote_member] = base64_encode(pe.evidence.data);
  if (!pe.collateral.empty() && !omit_collateral) {
    json::object c;
    for (const auto& [k, v] : pe.collateral) c[k] = base64_encode(v);
    o["collateral"] = std::move(c);
  }
}

// §1 rows 1-2: SHA-256(nonce_bytes || spki_der) || zeros(32).
Result<Bytes> sha256_binding(std::string_view nonce_b64, ByteSpan spki_der) {
  auto nonce = base64_decode(nonce_b64);
  if (!nonce.ok() || nonce->size() != kNonceSize) return internal_error("key broker sent a malformed nonce");
  Bytes input = std::move(*nonce);
  input.insert(input.end(), spki_der.begin(), spki_der.end());
  Bytes rd = crypto::sha256(input);
  rd.resize(kReportDataSize, 0);
  return rd;
}

// §3: the broker's answer, unwrapped with the ephemeral key (wrap/ is the broker's own code for
// the other direction). A failure to open it is reported as tampering or a wrong key.
Result<SecretBytes> unwrap_response(const json::object& o, const crypto::PrivateKey& key) {
  Result<SecretBytes> plain = internal_error("unreachable");
  if (o.contains("wrapped_key") || o.contains("wrapped_swk")) {
    auto wk = string_member(o, "wrapped_key");
    auto ws = string_member(o, "wrapped_swk");
    if (!wk || !ws) return internal_error("transfer response: missing wrapped_key or wrapped_swk");
    if (key.type() != crypto::KeyType::kRsa) {
      return internal_error("transfer response: an ISecL-wrapped key for a non-RSA key");
    }
    plain = wrap::unwrap_isecl(key, *wk, *ws);
  } else {
    plain = wrap::jwe_decrypt(key, o);
  }
  if (!plain.ok()) {
    return data_loss("cannot unwrap the released secret (wrong key or tampered response): " +
                     plain.status().message());
  }
  return plain;
}

Result<crypto::PrivateKey> ephemeral_for(const FetchOptions& o, const crypto::PrivateKey** use) {
  if (o.ephemeral) {
    *use = o.ephemeral;
    return crypto::PrivateKey();
  }
  ASSIGN_OR_RETURN(crypto::PrivateKey k, generate_ephemeral_key(o.key_type));
  return k;
}

}  // namespace

Result<crypto::PrivateKey> generate_ephemeral_key(WrapKeyType type) {
  return type == WrapKeyType::kEcP256 ? crypto::PrivateKey::generate(crypto::KeyType::kEcP256)
                                      : crypto::PrivateKey::generate(crypto::KeyType::kRsa, 3072);
}

Result<SecretBytes> fetch_key(const FetchOptions& o) {
  if (!o.producer) return invalid_argument("fetch: no evidence producer");
  RETURN_IF_ERROR(check_segment("key id", o.key_id));
  Http http(o);
  const std::string url = base_url(o) + "/kbs/v1/keys/" + o.key_id + "/transfer";

  // Challenge: a transfer without evidence is answered 401 + nonce (§4).
  ASSIGN_OR_RETURN(net::HttpResponse ch, send(http, "POST", url, {}, "{}"));
  if (ch.status != 401) {
    if (ch.status >= 200 && ch.status < 300) return internal_error("key broker released without evidence?");
    return broker_error(ch, "key " + o.key_id + ": challenge");
  }
  ASSIGN_OR_RETURN(json::object cho, parse_object(ch.body, "challenge"));
  auto nonce = string_member(cho, "nonce");
  if (!nonce) return internal_error("challenge: no nonce in the 401 answer");

  const crypto::PrivateKey* key = nullptr;
  ASSIGN_OR_RETURN(crypto::PrivateKey generated, ephemeral_for(o, &key));
  if (!key) key = &generated;
  Bytes spki = o.ephemeral && !o.ephemeral_spki.empty()
                   ? Bytes(o.ephemeral_spki.begin(), o.ephemeral_spki.end())
                   : key->public_key().to_der();
  ASSIGN_OR_RETURN(Bytes report_data, sha256_binding(*nonce, spki));
  auto pe = o.producer->produce(report_data);
  if (!pe.ok()) return pe.status().with_context("producing evidence");

  json::object body;
  body["nonce"] = *nonce;
  body["user_data"] = base64_encode(spki);
  put_evidence(body, *pe, "quote", o.omit_collateral);
  ASSIGN_OR_RETURN(net::HttpResponse tr, send(http, "POST", url, {}, json::serialize(body)));
  if (tr.status != 200) return broker_error(tr, "key " + o.key_id + ": transfer");
  ASSIGN_OR_RETURN(json::object out, parse_object(tr.body, "transfer response"));
  return unwrap_response(out, *key);
}

struct KbsV0Session::State {
  FetchOptions options;
  std::unique_ptr<Http> http;
  std::optional<crypto::PrivateKey> generated;
  const crypto::PrivateKey* key = nullptr;
  std::string cookie;  // "kbs-session-id=..."
  SecretString token;
};

KbsV0Session::KbsV0Session(std::unique_ptr<State> s) : state_(std::move(s)) {}
KbsV0Session::KbsV0Session(KbsV0Session&&) noexcept = default;
KbsV0Session& KbsV0Session::operator=(KbsV0Session&&) noexcept = default;
KbsV0Session::~KbsV0Session() = default;

Result<KbsV0Session> KbsV0Session::open(const FetchOptions& o) {
  if (!o.producer) return invalid_argument("fetch: no evidence producer");
  auto st = std::make_unique<State>();
  st->options = o;
  st->http = std::make_unique<Http>(o);
  const std::string base = base_url(o) + "/kbs/v0";
  std::string tee(attestation::tee_name(o.producer->tee()));

  // §5.1 auth: nonce + session cookie.
  json::object auth{{"version", "0.1.0"}, {"tee", tee}, {"extra-params", ""}};
  ASSIGN_OR_RETURN(net::HttpResponse ar, send(*st->http, "POST", base + "/auth", {}, json::serialize(auth)));
  if (ar.status != 200) return broker_error(ar, "kbs/v0 auth");
  ASSIGN_OR_RETURN(json::object ao, parse_object(ar.body, "auth response"));
  auto nonce = string_member(ao, "nonce");
  if (!nonce) return internal_error("kbs/v0 auth: no nonce");
  for (const auto& h : ar.headers) {
    if (!iequals(h.name, "Set-Cookie")) continue;
    std::string_view v = h.value;
    if (v.rfind("kbs-session-id=", 0) != 0) continue;
    st->cookie = std::string(v.substr(0, v.find(';')));
  }
  if (st->cookie.empty()) return internal_error("kbs/v0 auth: no kbs-session-id cookie");

  ASSIGN_OR_RETURN(crypto::PrivateKey generated, ephemeral_for(o, &st->key));
  if (!st->key) {
    st->generated = std::move(generated);
    st->key = &*st->generated;
  }
  // §5.2: runtime data sent as a string, so R is exactly these bytes; bound as SHA-384(R).
  json::string nonce_json(*nonce);
  std::string runtime = "{\"nonce\":" + json::serialize(nonce_json) +
                        ",\"tee-pubkey\":" + st->key->public_jwk() + "}";
  Bytes report_data = crypto::sha384(as_bytes(runtime));
  report_data.resize(kReportDataSize, 0);
  auto pe = o.producer->produce(report_data);
  if (!pe.ok()) return pe.status().with_context("producing evidence");
  json::object evidence;
  put_evidence(evidence, *pe, "quote", o.omit_collateral);
  json::object attest{{"runtime-data", runtime}, {"tee-evidence", std::move(evidence)}};
  ASSIGN_OR_RETURN(net::HttpResponse tr, send(*st->http, "POST", base + "/attest",
                                              {{"Cookie", st->cookie}}, json::serialize(attest)));
  if (tr.status != 200) return broker_error(tr, "kbs/v0 attest");
  ASSIGN_OR_RETURN(json::object to, parse_object(tr.body, "attest response"));
  auto token = string_member(to, "token");
  if (!token) return internal_error("kbs/v0 attest: no token");
  st->token = SecretString(std::move(*token));
  return KbsV0Session(std::move(st));
}

Result<SecretBytes> KbsV0Session::get_resource(std::string_view resource_path) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t slash = resource_path.find('/', start);
    parts.push_back(resource_path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (parts.size() != 3) return invalid_argument("resource must be repository/type/tag");
  for (auto p : parts) RETURN_IF_ERROR(check_segment("resource path segment", p));
  std::string url = base_url(state_->options) + "/kbs/v0/resource/" + std::string(resource_path);
  ASSIGN_OR_RETURN(net::HttpResponse r, send(*state_->http, "GET", url,
                                             {{"Cookie", state_->cookie},
                                              {"Authorization", "Bearer " + state_->token.str()}},
                                             {}));
  if (r.status != 200) return broker_error(r, "resource " + std::string(resource_path));
  ASSIGN_OR_RETURN(json::object jwe, parse_object(r.body, "resource response"));
  return unwrap_response(jwe, *state_->key);
}

Result<SecretBytes> fetch_resource(const FetchOptions& o) {
  ASSIGN_OR_RETURN(KbsV0Session s, KbsV0Session::open(o));
  return s.get_resource(o.resource);
}

Result<SecretString> attest_login(const FetchOptions& o, std::string_view role,
                                  std::string_view mount, const crypto::PrivateKey* bind_key,
                                  std::string* evidence_sha256) {
  if (!o.producer) return invalid_argument("login: no evidence producer");
  RETURN_IF_ERROR(check_segment("auth mount", mount));
  Http http(o);
  const std::string base = base_url(o) + "/v1/auth/" + std::string(mount);
  ASSIGN_OR_RETURN(net::HttpResponse nr, send(http, "POST", base + "/nonce", {}, "{}"));
  if (nr.status != 200) return broker_error(nr, "auth/" + std::string(mount) + "/nonce");
  ASSIGN_OR_RETURN(json::object no, parse_object(nr.body, "nonce response"));
  const json::value* data = no.if_contains("data");
  std::optional<std::string> nonce;
  if (data && data->is_object()) nonce = string_member(data->as_object(), "nonce");
  if (!nonce) return internal_error("auth/attest/nonce: no nonce");
  // The token comes back over the (TLS) connection, not wrapped (§6); a bound key only says
  // which key the workload signs with.
  Bytes spki;
  if (bind_key != nullptr) spki = bind_key->public_key().to_der();
  ASSIGN_OR_RETURN(Bytes report_data, sha256_binding(*nonce, spki));
  auto pe = o.producer->produce(report_data);
  if (!pe.ok()) return pe.status().with_context("producing evidence");
  json::object body;
  if (!role.empty()) body["role"] = role;
  body["nonce"] = *nonce;
  if (!spki.empty()) body["public_key"] = base64_encode(spki);
  put_evidence(body, *pe, "evidence", o.omit_collateral);
  ASSIGN_OR_RETURN(net::HttpResponse lr, send(http, "POST", base + "/login", {}, json::serialize(body)));
  if (lr.status != 200) return broker_error(lr, "auth/" + std::string(mount) + "/login");
  ASSIGN_OR_RETURN(json::object lo, parse_object(lr.body, "login response"));
  const json::value* auth = lo.if_contains("auth");
  std::optional<std::string> token;
  if (auth && auth->is_object()) token = string_member(auth->as_object(), "client_token");
  if (!token) return internal_error("login: no auth.client_token");
  if (evidence_sha256 != nullptr) {
    const json::value* meta = auth->as_object().if_contains("metadata");
    std::optional<std::string> ev;
    if (meta && meta->is_object()) ev = string_member(meta->as_object(), "evidence_sha256");
    if (!ev) return internal_error("login: no auth.metadata.evidence_sha256");
    *evidence_sha256 = *ev;
  }
  return SecretString(std::move(*token));
}

Result<std::string> append_attested(const FetchOptions& o, std::string_view role,
                                    std::string_view auth_mount, std::string_view ledger_mount,
                                    ByteSpan data, std::string_view content_type) {
  RETURN_IF_ERROR(check_segment("ledger mount", ledger_mount));
  ASSIGN_OR_RETURN(crypto::PrivateKey key, crypto::PrivateKey::generate(crypto::KeyType::kEcP256));
  std::string evidence;
  ASSIGN_OR_RETURN(SecretString token, attest_login(o, role, auth_mount, &key, &evidence));
  Http http(o);
  const std::string ledger_url = base_url(o) + "/v1/" + std::string(ledger_mount);
  ASSIGN_OR_RETURN(net::HttpResponse kr, send(http, "GET", ledger_url + "/public-key",
                                              {{"X-Vault-Token", token.str()}}, {}));
  if (kr.status != 200) return broker_error(kr, std::string(ledger_mount) + "/public-key");
  ASSIGN_OR_RETURN(json::object ko, parse_object(kr.body, "public-key response"));
  const json::value* kd = ko.if_contains("data");
  std::optional<std::string> log_id;
  if (kd && kd->is_object()) log_id = string_member(kd->as_object(), "log_id");
  if (!log_id) return internal_error("public-key response: no log_id");
  ASSIGN_OR_RETURN(
      Bytes sig,
      key.sign(as_bytes(ledger::attested_entry_message(*log_id, evidence, content_type, data))));
  json::object body{{"data", base64_encode(data)}, {"signature", base64_encode(sig)}};
  if (!content_type.empty()) body["content_type"] = content_type;
  ASSIGN_OR_RETURN(net::HttpResponse r,
                   send(http, "POST", ledger_url + "/entries", {{"X-Vault-Token", token.str()}},
                        json::serialize(body)));
  if (r.status != 200) return broker_error(r, std::string(ledger_mount) + "/entries");
  ASSIGN_OR_RETURN(json::object answer, parse_object(r.body, "append response"));
  const json::value* d = answer.if_contains("data");
  if (!d || !d->is_object()) return internal_error("append response: no data");
  return json::serialize(*d);
}

Result<SecretBytes> read_kv_field(const FetchOptions& o, const SecretString& token,
                                  std::string_view path, std::string_view field) {
  for (char c : path) {
    if (c == '?' || c == '#' || c == ' ' || c == '%') return invalid_argument("KV path: invalid character");
  }
  Http http(o);
  std::string url = base_url(o) + "/v1/" + std::string(path);
  ASSIGN_OR_RETURN(net::HttpResponse r, send(http, "GET", url, {{"X-Vault-Token", token.str()}}, {}));
  if (r.status != 200) return broker_error(r, "read " + std::string(path));
  // The body holds the secret in clear: parsed into a wiped buffer, then wiped itself.
  SecretString body(std::move(r.body));
  SecretBytes arena(body.str().size() * 2 + 4096);
  json::monotonic_resource mr(arena.data(), arena.size());
  boost::system::error_code ec;
  json::value parsed = json::parse(body.str(), ec, &mr);
  if (ec || !parsed.is_object()) return internal_error("read response: not a JSON object");
  const json::object& o2 = parsed.as_object();
  const json::value* data = o2.if_contains("data");
  if (!data || !data->is_object()) return not_found("read " + std::string(path) + ": no data");
  const json::object* d = &data->as_object();
  // kv v2 nests the secret in data.data.
  if (const json::value* inner = d->if_contains("data"); inner && inner->is_object() && d->contains("metadata")) {
    d = &inner->as_object();
  }
  const json::value* f = d->if_contains(field);
  if (!f) return not_found("read " + std::string(path) + ": no field " + std::string(field));
  if (!f->is_string()) return invalid_argument("read " + std::string(path) + ": field " + std::string(field) + " is not a string");
  SecretBytes out(as_bytes(f->as_string()));
  return out;
}

}  // namespace custos::agent
