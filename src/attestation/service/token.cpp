#include "attestation/service/token.h"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <utility>

#include "base/encoding.h"
#include "crypto/hash.h"
#include "crypto/random.h"

namespace custos::attestation {
namespace {

namespace json = boost::json;

crypto::SignOptions es256() {
  crypto::SignOptions o;
  o.hash = crypto::HashAlg::kSha256;
  o.ec_format = crypto::SignOptions::EcFormat::kRaw;
  return o;
}

// The measurement fields each TEE contributes to the token (the rest stay in the verify answer).
const std::vector<std::string_view>& measurement_fields(TeeType tee) {
  static const std::vector<std::string_view> kSgx = {
      "mrenclave",       "mrsigner",      "isv_prod_id", "isv_svn",     "config_id", "config_svn",
      "isv_ext_prod_id", "isv_family_id", "attributes",  "misc_select", "fmspc",     "pce_svn"};
  static const std::vector<std::string_view> kTdx = {
      "mrtd",          "rtmr0",        "rtmr1",       "rtmr2",   "rtmr3",
      "mrseam",        "mrsignerseam", "mrconfigid",  "mrowner", "mrownerconfig",
      "td_attributes", "xfam",         "tee_tcb_svn", "fmspc"};
  static const std::vector<std::string_view> kSnp = {
      "measurement", "host_data", "id_key_digest", "author_key_digest", "policy",
      "vmpl",        "guest_svn", "reported_tcb",  "chip_id",           "product"};
  static const std::vector<std::string_view> kTpm = {"pcrs", "nonce", "ak_name", "clock",
                                                     "firmware_version"};
  switch (tee) {
    case TeeType::kSgx:
    case TeeType::kSim:
      return kSgx;
    case TeeType::kTdx:
      return kTdx;
    case TeeType::kSnp:
      return kSnp;
    case TeeType::kTpm:
      return kTpm;
  }
  return kTpm;
}

}  // namespace

std::string_view ear_status(const Claims& claims, const Appraisal& appraisal) {
  if (!appraisal.pass) return "contraindicated";
  if (claims.tcb_status == TcbStatus::kUpToDate || claims.tcb_status == TcbStatus::kNotApplicable) {
    return "affirming";
  }
  return "warning";
}

json::object ear_payload(const Claims& claims, const Appraisal& appraisal) {
  json::object measurements;
  for (auto name : measurement_fields(claims.tee)) {
    if (const json::value* v = claims.fields.if_contains(name)) measurements[name] = *v;
  }
  json::array advisories;
  for (const auto& id : claims.advisory_ids) advisories.emplace_back(id);

  json::object submod;
  submod["ear.status"] = ear_status(claims, appraisal);
  submod["ear.appraisal-policy-id"] = appraisal.policy_id;
  submod["custos.tee"] = tee_name(claims.tee);
  submod["custos.debug"] = claims.debug;
  submod["custos.tcb_status"] = tcb_status_name(claims.tcb_status);
  submod["custos.advisory_ids"] = std::move(advisories);
  submod["custos.measurements"] = std::move(measurements);
  submod["custos.report_data"] = hex_encode(claims.report_data);
  if (claims.collateral_expiry) {
    submod["custos.collateral_expiry"] = format_rfc3339(*claims.collateral_expiry);
  }

  json::object payload;
  payload["eat_profile"] = kEarProfile;
  payload["ear.verifier-id"] =
      json::object{{"developer", "custos"}, {"build", "custos-attestation"}};
  payload["submods"] = json::object{{tee_name(claims.tee), std::move(submod)}};
  return payload;
}

Result<TokenSigner> TokenSigner::generate(std::string issuer) {
  ASSIGN_OR_RETURN(auto key, crypto::PrivateKey::generate(crypto::KeyType::kEcP256));
  TokenSigner s;
  s.public_key_ = key.public_key();
  s.key_ = std::make_shared<const crypto::PrivateKey>(std::move(key));
  s.kid_ = base64url_encode(crypto::sha256(as_bytes(s.public_key_.to_jwk())));
  s.issuer_ = std::move(issuer);
  return s;
}

Result<TokenSigner> TokenSigner::from_pem(std::string_view pem, std::string issuer) {
  ASSIGN_OR_RETURN(auto key, crypto::PrivateKey::from_pem(pem));
  if (key.type() != crypto::KeyType::kEcP256) {
    return invalid_argument("token signing key must be EC P-256 (ES256)");
  }
  TokenSigner s;
  s.public_key_ = key.public_key();
  s.key_ = std::make_shared<const crypto::PrivateKey>(std::move(key));
  s.kid_ = base64url_encode(crypto::sha256(as_bytes(s.public_key_.to_jwk())));
  s.issuer_ = std::move(issuer);
  return s;
}

json::object TokenSigner::jwks() const {
  boost::system::error_code ec;
  json::value jwk = json::parse(public_key_.to_jwk(), ec);
  json::object k = (!ec && jwk.is_object()) ? jwk.as_object() : json::object{};
  k["kid"] = kid_;
  k["alg"] = "ES256";
  k["use"] = "sig";
  return json::object{{"keys", json::array{std::move(k)}}};
}

Result<std::string> TokenSigner::sign(json::object payload, SysTime now, Seconds ttl) const {
  json::object header{{"alg", "ES256"}, {"typ", "JWT"}, {"kid", kid_}};
  int64_t iat = to_unix_seconds(now);
  payload["iss"] = issuer_;
  payload["iat"] = iat;
  payload["nbf"] = iat;
  payload["exp"] = iat + ttl.count();
  payload["jti"] = crypto::random_uuid();
  std::string signing_input = base64url_encode(as_bytes(json::serialize(header))) + "." +
                              base64url_encode(as_bytes(json::serialize(payload)));
  ASSIGN_OR_RETURN(Bytes sig, key_->sign(as_bytes(signing_input), es256()));
  return signing_input + "." + base64url_encode(sig);
}

Result<std::string> TokenSigner::sign_result(const Claims& claims, const Appraisal& appraisal,
                                             SysTime now, Seconds ttl) const {
  return sign(ear_payload(claims, appraisal), now, ttl);
}

Result<VerifiedToken> verify_token(std::string_view jwt, const json::object& jwks, SysTime now,
                                   std::string_view issuer) {
  size_t d1 = jwt.find('.');
  size_t d2 = d1 == std::string_view::npos ? d1 : jwt.find('.', d1 + 1);
  if (d2 == std::string_view::npos || jwt.find('.', d2 + 1) != std::string_view::npos) {
    return invalid_argument("token: not a compact JWS");
  }
  auto header_raw = base64url_decode(jwt.substr(0, d1));
  auto payload_raw = base64url_decode(jwt.substr(d1 + 1, d2 - d1 - 1));
  auto sig = base64url_decode(jwt.substr(d2 + 1));
  if (!header_raw.ok() || !payload_raw.ok() || !sig.ok()) {
    return invalid_argument("token: bad base64url");
  }
  boost::system::error_code ec;
  json::value header = json::parse(as_string_view(*header_raw), ec);
  if (ec || !header.is_object()) return invalid_argument("token: header is not a JSON object");
  json::value payload = json::parse(as_string_view(*payload_raw), ec);
  if (ec || !payload.is_object()) return invalid_argument("token: payload is not a JSON object");

  const json::value* alg = header.as_object().if_contains("alg");
  if (!alg || !alg->is_string() || alg->as_string() != "ES256") {
    return permission_denied("token: algorithm must be ES256");
  }
  const json::value* kid = header.as_object().if_contains("kid");
  if (!kid || !kid->is_string()) return permission_denied("token: no key id");

  const json::value* keys = jwks.if_contains("keys");
  if (!keys || !keys->is_array()) return invalid_argument("jwks: no keys array");
  const json::object* jwk = nullptr;
  for (const auto& k : keys->as_array()) {
    if (!k.is_object()) continue;
    const json::value* id = k.as_object().if_contains("kid");
    if (id && id->is_string() && id->as_string() == kid->as_string()) jwk = &k.as_object();
  }
  if (!jwk) return permission_denied("token: unknown key id");
  ASSIGN_OR_RETURN(auto key, crypto::PublicKey::from_jwk(json::serialize(*jwk)));
  if (key.type() != crypto::KeyType::kEcP256) return permission_denied("token: key is not P-256");
  Status st = key.verify(as_bytes(jwt.substr(0, d2)), *sig, es256());
  if (!st.ok()) return permission_denied("token: signature does not verify");

  const json::object& p = payload.as_object();
  int64_t t = to_unix_seconds(now);
  auto int_claim = [&p](std::string_view name) -> std::optional<int64_t> {
    const json::value* v = p.if_contains(name);
    if (v && v->is_int64()) return v->as_int64();
    if (v && v->is_uint64() && v->as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
      return static_cast<int64_t>(v->as_uint64());
    }
    return std::nullopt;
  };
  auto exp = int_claim("exp");
  if (!exp) return permission_denied("token: no exp");
  if (t >= *exp) return permission_denied("token: expired");
  if (auto nbf = int_claim("nbf"); nbf && t < *nbf)
    return permission_denied("token: not yet valid");
  if (!issuer.empty()) {
    const json::value* iss = p.if_contains("iss");
    if (!iss || !iss->is_string() || iss->as_string() != issuer) {
      return permission_denied("token: unexpected issuer");
    }
  }
  return VerifiedToken{std::move(header.as_object()), std::move(payload.as_object())};
}

}  // namespace custos::attestation
