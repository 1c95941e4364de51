// Attestation result tokens: JWTs signed ES256 carrying EAR-style claims (IETF RATS "EAT
// Attestation Results", draft-ietf-rats-ear): one submodule per appraised TEE with its
// ear.status, plus Custos claims (TEE, measurements, TCB status, advisory IDs, report data).
// Public keys are served as a JWKS at /.well-known/jwks.json; verify_token() is what the key
// broker and tests use.
#pragma once

#include <boost/json/object.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attestation/common/evidence.h"
#include "attestation/service/appraisal.h"
#include "base/clock.h"
#include "base/status.h"
#include "crypto/pkey.h"

namespace custos::attestation {

inline constexpr std::string_view kEarProfile = "tag:github.com,2023:veraison/ear";

// EAR status tiers: affirming (passed, TCB up to date or not applicable), warning (passed with a
// TCB status that needs action), contraindicated (policy refused it).
std::string_view ear_status(const Claims& claims, const Appraisal& appraisal);

// The token payload (without iat/exp/iss, which sign() adds).
boost::json::object ear_payload(const Claims& claims, const Appraisal& appraisal);

class TokenSigner {
 public:
  // A fresh P-256 key (kept in memory: tokens from a previous process stop verifying).
  static Result<TokenSigner> generate(std::string issuer);
  // A P-256 private key in PEM (PKCS#8 or SEC1).
  static Result<TokenSigner> from_pem(std::string_view pem, std::string issuer);

  const std::string& key_id() const { return kid_; }  // RFC 7638 thumbprint, base64url
  const std::string& issuer() const { return issuer_; }
  const crypto::PublicKey& public_key() const { return public_key_; }

  // {"keys":[{"kty":"EC","crv":"P-256","x":..,"y":..,"kid":..,"alg":"ES256","use":"sig"}]}
  boost::json::object jwks() const;

  // Signs an arbitrary payload; adds iss, iat, exp (now + ttl) and a random jti.
  Result<std::string> sign(boost::json::object payload, SysTime now, Seconds ttl) const;
  // Signs the EAR for one appraisal.
  Result<std::string> sign_result(const Claims& claims, const Appraisal& appraisal, SysTime now,
                                  Seconds ttl) const;

 private:
  TokenSigner() = default;
  std::shared_ptr<const crypto::PrivateKey> key_;
  crypto::PublicKey public_key_;
  std::string kid_;
  std::string issuer_;
};

struct VerifiedToken {
  boost::json::object header;
  boost::json::object payload;
};

// Verifies a compact JWS: alg ES256 only, kid present in `jwks` ({"keys":[...]}), signature,
// exp/nbf against `now` (no skew). With `issuer` non-empty, iss must match.
// Failures: kInvalidArgument (malformed), kPermissionDenied (bad signature, expired, unknown kid).
Result<VerifiedToken> verify_token(std::string_view jwt, const boost::json::object& jwks,
                                   SysTime now, std::string_view issuer = {});

}  // namespace custos::attestation
