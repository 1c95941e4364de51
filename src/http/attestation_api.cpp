#include "http/attestation_api.h"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include "attestation/dcap/collateral.h"
#include "base/encoding.h"
#include "crypto/hash.h"

namespace custos::http {
namespace {

namespace json = boost::json;
using attestation::Service;
using attestation::TeeType;

constexpr size_t kMaxBody = 1 << 20;  // evidence plus collateral fits easily in 1 MiB

net::HttpResponse json_response(int status, const json::value& body) {
  net::HttpResponse r;
  r.status = status;
  r.headers.push_back({"Content-Type", "application/json"});
  r.body = json::serialize(body);
  return r;
}

net::HttpResponse raw_response(std::string content_type, std::string body) {
  net::HttpResponse r;
  r.headers.push_back({"Content-Type", std::move(content_type)});
  r.body = std::move(body);
  return r;
}

std::string query_param(std::string_view target, std::string_view name) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name && eq != std::string_view::npos) {
      auto v = percent_decode(pair.substr(eq + 1), true);
      return v.ok() ? *v : std::string();
    }
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return {};
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

// RFC 3986 unreserved characters stay; everything else is %XX (PCS issuer-chain headers).
std::string percent_encode(ByteSpan data) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (uint8_t c : data) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// Items whose values are binary (CRLs, certificates, TPM structures): PEM, hex or base64 in JSON.
bool binary_item(std::string_view name) {
  for (std::string_view b :
       {"pck_crl", "root_crl", "root_ca", "vcek", "vlek", "ak_cert", "ak_pub", "signature"}) {
    if (b == name) return true;
  }
  return false;
}

Result<attestation::Collateral> collateral_from_json(const json::value& v) {
  if (!v.is_object()) return invalid_argument("collateral: expected an object");
  const json::object& o = v.as_object();
  if (o.contains("tcb_info_issuer_chain")) {
    // A dcap-qvl bundle: its signed parts are JSON *strings*, which serialization keeps intact.
    return attestation::dcap::collateral_from_bundle(as_bytes(json::serialize(o)));
  }
  attestation::Collateral out;
  for (const auto& [key, value] : o) {
    std::string name(key);
    if (!value.is_string()) {
      return invalid_argument("collateral." + name +
                              ": expected a string (signed JSON must keep its exact bytes)");
    }
    std::string_view s(value.as_string());
    if (binary_item(name)) {
      auto b = attestation::decode_binary(as_bytes(s));
      if (!b.ok()) return invalid_argument("collateral." + name + ": " + b.status().message());
      out[name] = std::move(*b);
    } else {
      out[name] = to_bytes(s);
    }
  }
  return out;
}

Result<attestation::VerifyRequest> parse_verify_request(const Service& svc, std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return invalid_argument("request body must be a JSON object");
  const json::object& o = v.as_object();
  attestation::VerifyRequest req;

  const json::value* tee = o.if_contains("tee");
  if (!tee || !tee->is_string()) return invalid_argument("tee: required (sgx, tdx, snp, tpm, sim)");
  auto t = attestation::parse_tee(std::string_view(tee->as_string()));
  if (!t.ok()) return invalid_argument("tee: unknown (sgx, tdx, snp, tpm, sim)");
  const json::value* ev = o.if_contains("evidence");
  if (!ev || !ev->is_string()) return invalid_argument("evidence: required (base64, hex or PEM)");
  auto data = attestation::decode_binary(as_bytes(std::string_view(ev->as_string())));
  if (!data.ok()) return invalid_argument("evidence: " + data.status().message());
  req.evidence = attestation::Evidence{*t, std::move(*data)};

  if (const json::value* c = o.if_contains("collateral")) {
    ASSIGN_OR_RETURN(req.collateral, collateral_from_json(*c));
  }
  if (const json::value* p = o.if_contains("policy")) {
    std::string text = p->is_string() ? std::string(p->as_string()) : json::serialize(*p);
    ASSIGN_OR_RETURN(req.policy, attestation::parse_policy(text));
  }
  if (const json::value* at = o.if_contains("at")) {
    if (!at->is_string()) return invalid_argument("at: expected an RFC 3339 time");
    auto when = parse_rfc3339(std::string_view(at->as_string()));
    if (!when.ok()) return invalid_argument("at: expected an RFC 3339 time");
    req.at = *when;
  }
  if (const json::value* n = o.if_contains("nonce")) {
    if (!n->is_string()) return invalid_argument("nonce: expected hex");
    std::string hex(n->as_string());
    auto bytes = hex_decode(hex);
    if (!bytes.ok() || bytes->size() > 64)
      return invalid_argument("nonce: expected up to 64 bytes of hex");
    if (*t == TeeType::kTpm) {
      req.collateral["nonce"] = to_bytes(hex);
    } else {
      if (!req.policy) req.policy = svc.default_policy();
      req.policy->report_data = *bytes;
    }
  }
  if (const json::value* tok = o.if_contains("token")) {
    if (!tok->is_bool()) return invalid_argument("token: expected true or false");
    req.issue_token = tok->as_bool();
  }
  return req;
}

net::HttpResponse handle_verify(Service& svc, net::HttpRequest& req) {
  if (req.method != "POST" && req.method != "PUT") return error_response(405, "use POST");
  if (req.body.size() > kMaxBody) return error_response(413, "request body too large");
  auto parsed = parse_verify_request(svc, req.body);
  if (!parsed.ok()) return error_response(parsed.status());
  attestation::VerifyOutcome out = svc.verify(*parsed);
  return json_response(200, out.to_json());
}

std::string_view sqvs_message(attestation::TcbStatus s) {
  using attestation::TcbStatus;
  switch (s) {
    case TcbStatus::kUpToDate:
      return "SGX_QL_QV_RESULT_OK";
    case TcbStatus::kSwHardeningNeeded:
      return "SGX_QL_QV_RESULT_SW_HARDENING_NEEDED";
    case TcbStatus::kConfigurationNeeded:
      return "SGX_QL_QV_RESULT_CONFIG_NEEDED";
    case TcbStatus::kConfigurationAndSwHardeningNeeded:
      return "SGX_QL_QV_RESULT_CONFIG_AND_SW_HARDENING_NEEDED";
    case TcbStatus::kOutOfDate:
      return "SGX_QL_QV_RESULT_OUT_OF_DATE";
    case TcbStatus::kOutOfDateConfigurationNeeded:
      return "SGX_QL_QV_RESULT_OUT_OF_DATE_CONFIG_NEEDED";
    case TcbStatus::kRevoked:
      return "SGX_QL_QV_RESULT_REVOKED";
    case TcbStatus::kNotApplicable:
      break;
  }
  return "SGX_QL_QV_RESULT_UNSPECIFIED";
}

std::string field(const attestation::Claims& c, std::string_view name) {
  const json::value* v = c.fields.if_contains(name);
  if (!v) return {};
  return v->is_string() ? std::string(v->as_string()) : json::serialize(*v);
}

// Intel SecL SQVS: {"quote": base64, "userData": base64} -> the SGXResponse fields. Collateral
// comes from the cache (SQVS fetched it from SCS); the verdict is the TCB level, policy is the
// caller's business, as with SQVS.
net::HttpResponse handle_sqvs(Service& svc, net::HttpRequest& req) {
  if (req.method != "POST") return error_response(405, "use POST");
  if (req.body.size() > kMaxBody) return error_response(413, "request body too large");
  boost::system::error_code ec;
  json::value v = json::parse(req.body, ec);
  if (ec || !v.is_object()) return error_response(400, "request body must be a JSON object");
  const json::value* q = v.as_object().if_contains("quote");
  if (!q || !q->is_string()) return error_response(400, "quote: required (base64)");
  auto quote = base64_decode(strip_whitespace(std::string_view(q->as_string())));
  if (!quote.ok()) return error_response(400, "quote: invalid base64");
  std::optional<Bytes> user_data;
  if (const json::value* u = v.as_object().if_contains("userData");
      u && u->is_string() && !u->as_string().empty()) {
    auto ud = base64_decode(std::string_view(u->as_string()));
    if (!ud.ok()) return error_response(400, "userData: invalid base64");
    user_data = std::move(*ud);
  }
  attestation::VerifyRequest vr;
  vr.evidence = attestation::Evidence{TeeType::kSgx, std::move(*quote)};
  vr.issue_token = false;
  attestation::Policy any_tcb;  // SQVS reports the TCB level; it does not refuse on it
  any_tcb.tcb_statuses = std::vector<attestation::TcbStatus>{
      attestation::TcbStatus::kUpToDate,
      attestation::TcbStatus::kSwHardeningNeeded,
      attestation::TcbStatus::kConfigurationNeeded,
      attestation::TcbStatus::kConfigurationAndSwHardeningNeeded,
      attestation::TcbStatus::kOutOfDate,
      attestation::TcbStatus::kOutOfDateConfigurationNeeded};
  any_tcb.allow_debug = true;
  vr.policy = any_tcb;
  attestation::VerifyOutcome out = svc.verify(vr);
  if (!out.verified) {
    return json_response(
        400, json::object{{"Message", "SGX_QL_QV_RESULT_UNSPECIFIED"},
                          {"Reason", out.rejection->reason + ": " + out.rejection->message}});
  }
  const auto& c = *out.claims;
  json::object r;
  r["Message"] = sqvs_message(c.tcb_status);
  r["reportData"] = base64_encode(c.report_data);
  if (user_data) {
    Bytes h = crypto::sha256(*user_data);
    bool match = c.report_data.size() >= h.size() &&
                 constant_time_equal(h, ByteSpan(c.report_data).first(h.size()));
    r["userDataMatch"] = match ? "true" : "false";
  }
  r["EnclaveIssuer"] = field(c, "mrsigner");
  r["EnclaveMeasurement"] = field(c, "mrenclave");
  r["EnclaveIssuerProdID"] = field(c, "isv_prod_id");
  r["EnclaveIssuerExtProdID"] = field(c, "isv_ext_prod_id");
  r["ConfigSvn"] = field(c, "config_svn");
  r["IsvSvn"] = field(c, "isv_svn");
  r["ConfigId"] = field(c, "config_id");
  r["TcbLevel"] = attestation::tcb_status_name(c.tcb_status);
  return json_response(200, r);
}

net::HttpResponse collateral_response(const std::optional<attestation::CachedCollateral>& item,
                                      std::string_view chain_header, std::string_view what) {
  if (!item) return error_response(404, "no cached " + std::string(what));
  net::HttpResponse r = raw_response("application/json", to_string(item->body));
  if (!item->issuer_chain.empty()) {
    r.headers.push_back({std::string(chain_header), percent_encode(item->issuer_chain)});
  }
  return r;
}

// PCCS v4 reads. Unknown paths under the prefixes are 404.
net::HttpResponse handle_pccs(Service& svc, net::HttpRequest& req, TeeType tee) {
  if (req.method != "GET") return error_response(405, "use GET");
  std::string_view path = path_of(req.target);
  std::string_view prefix =
      tee == TeeType::kTdx ? "/tdx/certification/v4/" : "/sgx/certification/v4/";
  std::string_view rest = path.substr(prefix.size());
  const auto& cache = svc.cache();
  if (rest == "tcb") {
    std::string fmspc = query_param(req.target, "fmspc");
    if (fmspc.size() != 12 || !hex_decode(fmspc).ok())
      return error_response(400, "fmspc: 12 hex digits");
    return collateral_response(cache.tcb_info(tee, fmspc), "TCB-Info-Issuer-Chain",
                               "TCB info for FMSPC " + fmspc);
  }
  if (rest == "qe/identity") {
    return collateral_response(cache.qe_identity(tee == TeeType::kTdx ? "TD_QE" : "QE"),
                               "SGX-Enclave-Identity-Issuer-Chain", "QE identity");
  }
  if (tee == TeeType::kSgx && rest == "pckcrl") {
    std::string ca = query_param(req.target, "ca");
    if (ca != "processor" && ca != "platform")
      return error_response(400, "ca: processor or platform");
    auto crl = cache.pck_crl(ca);
    if (!crl) return error_response(404, "no cached PCK CRL for the " + ca + " CA");
    net::HttpResponse r;
    if (query_param(req.target, "encoding") == "der") {
      r = raw_response("application/pkix-crl", to_string(crl->body));
    } else {
      std::string pem = "-----BEGIN X509 CRL-----\n";
      std::string b64 = base64_encode(crl->body);
      for (size_t i = 0; i < b64.size(); i += 64) pem += b64.substr(i, 64) + "\n";
      pem += "-----END X509 CRL-----\n";
      r = raw_response("application/x-pem-file", std::move(pem));
    }
    if (!crl->issuer_chain.empty()) {
      r.headers.push_back({"SGX-PCK-CRL-Issuer-Chain", percent_encode(crl->issuer_chain)});
    }
    return r;
  }
  if (tee == TeeType::kSgx && rest == "rootcacrl") {
    auto crl = cache.root_crl();
    if (!crl) return error_response(404, "no cached root CA CRL");
    return raw_response("application/pkix-crl", to_string(crl->body));
  }
  return error_response(404, "not found");
}

net::HttpResponse handle_collateral_list(Service& svc, net::HttpRequest& req) {
  if (req.method != "GET" && req.method != "LIST") return error_response(405, "use GET");
  json::array items;
  for (const auto& c : svc.cache().list()) {
    json::object o{{"kind", c.kind}, {"key", c.key}, {"issued", format_rfc3339(c.issued)}};
    if (c.next_update) o["next_update"] = format_rfc3339(*c.next_update);
    items.push_back(std::move(o));
  }
  return json_response(200, json::object{{"collateral", std::move(items)}});
}

}  // namespace

void register_attestation_routes(Api& api, attestation::Service& svc) {
  Service* s = &svc;
  api.add_route("/attestation/v1/verify",
                [s](net::HttpRequest& r) { return handle_verify(*s, r); });
  api.add_route("/attestation/v1/collateral",
                [s](net::HttpRequest& r) { return handle_collateral_list(*s, r); });
  api.add_route("/svs/v1/sgx_qv_verify_quote",
                [s](net::HttpRequest& r) { return handle_sqvs(*s, r); });
  api.add_route("/.well-known/jwks.json", [s](net::HttpRequest& r) {
    if (r.method != "GET") return error_response(405, "use GET");
    return json_response(200, s->signer().jwks());
  });
  api.add_route("/sgx/certification/v4/",
                [s](net::HttpRequest& r) { return handle_pccs(*s, r, TeeType::kSgx); });
  api.add_route("/tdx/certification/v4/",
                [s](net::HttpRequest& r) { return handle_pccs(*s, r, TeeType::kTdx); });
}

}  // namespace custos::http
