// Token signing, JWKS and verification, with tampering, expiry and key twins.
#include "attestation/service/token.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "base/encoding.h"
#include "crypto/pkey.h"

namespace custos::attestation {
namespace {

namespace json = boost::json;

SysTime at(const char* s) {
  return *parse_rfc3339(s);
}

Claims claims() {
  Claims c;
  c.tee = TeeType::kSgx;
  c.tcb_status = TcbStatus::kSwHardeningNeeded;
  c.advisory_ids = {"INTEL-SA-00615"};
  c.report_data = Bytes(64, 7);
  c.fields["mrenclave"] = std::string(64, 'a');
  c.fields["isv_svn"] = 2;
  c.fields["cpu_svn"] = "00";  // not a measurement the token carries
  return c;
}

TEST(Token, SignsEarAndVerifiesWithJwks) {
  auto signer = TokenSigner::generate("https://custos.test");
  ASSERT_TRUE(signer.ok());
  Appraisal a{true, "policy-1", {}};
  SysTime now = at("2025-07-01T00:00:00Z");
  auto jwt = signer->sign_result(claims(), a, now, Seconds(300));
  ASSERT_TRUE(jwt.ok());
  json::object jwks = signer->jwks();
  const auto& key = jwks.at("keys").as_array().at(0).as_object();
  EXPECT_EQ(key.at("kty").as_string(), "EC");
  EXPECT_EQ(key.at("crv").as_string(), "P-256");
  EXPECT_EQ(key.at("alg").as_string(), "ES256");
  EXPECT_EQ(key.at("kid").as_string(), signer->key_id());

  auto v = verify_token(*jwt, jwks, now + Seconds(10), "https://custos.test");
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  EXPECT_EQ(v->header.at("alg").as_string(), "ES256");
  EXPECT_EQ(v->header.at("kid").as_string(), signer->key_id());
  const auto& p = v->payload;
  EXPECT_EQ(p.at("eat_profile").as_string(), kEarProfile);
  EXPECT_EQ(p.at("exp").as_int64() - p.at("iat").as_int64(), 300);
  const auto& sub = p.at("submods").at("sgx").as_object();
  EXPECT_EQ(sub.at("ear.status").as_string(), "warning");
  EXPECT_EQ(sub.at("ear.appraisal-policy-id").as_string(), "policy-1");
  EXPECT_EQ(sub.at("custos.tcb_status").as_string(), "SWHardeningNeeded");
  EXPECT_EQ(sub.at("custos.advisory_ids").as_array().at(0).as_string(), "INTEL-SA-00615");
  EXPECT_EQ(sub.at("custos.measurements").at("mrenclave").as_string(), std::string(64, 'a'));
  EXPECT_FALSE(sub.at("custos.measurements").as_object().contains("cpu_svn"));
  EXPECT_EQ(sub.at("custos.report_data").as_string(), hex_encode(Bytes(64, 7)));
}

TEST(Token, EarStatus) {
  Claims c = claims();
  EXPECT_EQ(ear_status(c, Appraisal{false, "", {{"x", "y", "z"}}}), "contraindicated");
  c.tcb_status = TcbStatus::kUpToDate;
  EXPECT_EQ(ear_status(c, Appraisal{true, "", {}}), "affirming");
  c.tcb_status = TcbStatus::kNotApplicable;
  EXPECT_EQ(ear_status(c, Appraisal{true, "", {}}), "affirming");
}

TEST(Token, RejectsTamperingExpiryAndForeignKeys) {
  auto signer = TokenSigner::generate("custos");
  auto other = TokenSigner::generate("custos");
  ASSERT_TRUE(signer.ok() && other.ok());
  SysTime now = at("2025-07-01T00:00:00Z");
  auto jwt = signer->sign(json::object{{"x", 1}}, now, Seconds(60));
  ASSERT_TRUE(jwt.ok());
  EXPECT_TRUE(verify_token(*jwt, signer->jwks(), now).ok());
  // Expired (exp is exclusive) and not yet valid.
  EXPECT_EQ(verify_token(*jwt, signer->jwks(), now + Seconds(60)).status().code(),
            Code::kPermissionDenied);
  EXPECT_FALSE(verify_token(*jwt, signer->jwks(), now - Seconds(1)).ok());
  // Another key set.
  EXPECT_EQ(verify_token(*jwt, other->jwks(), now).status().code(), Code::kPermissionDenied);
  // Wrong issuer.
  EXPECT_FALSE(verify_token(*jwt, signer->jwks(), now, "someone-else").ok());
  // Payload swapped.
  std::string t = *jwt;
  size_t d1 = t.find('.');
  size_t d2 = t.find('.', d1 + 1);
  std::string forged = t.substr(0, d1 + 1) +
                       base64url_encode(as_bytes(R"({"x":2,"exp":99999999999})")) + t.substr(d2);
  EXPECT_EQ(verify_token(forged, signer->jwks(), now).status().code(), Code::kPermissionDenied);
  // alg none / HS256 header.
  std::string none =
      base64url_encode(as_bytes(R"({"alg":"none","kid":")" + signer->key_id() + "\"}")) +
      t.substr(d1);
  EXPECT_FALSE(verify_token(none, signer->jwks(), now).ok());
  // Garbage.
  for (const char* g : {"", "a.b", "a.b.c.d", "!!.??.**"})
    EXPECT_FALSE(verify_token(g, signer->jwks(), now).ok()) << g;
}

TEST(Token, FromPemKeepsKeyId) {
  auto key = crypto::PrivateKey::generate(crypto::KeyType::kEcP256);
  ASSERT_TRUE(key.ok());
  auto a = TokenSigner::from_pem(key->to_pem().str(), "custos");
  auto b = TokenSigner::from_pem(key->to_pem().str(), "custos");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->key_id(), b->key_id());
  auto rsa = crypto::PrivateKey::generate(crypto::KeyType::kEcP384);
  ASSERT_TRUE(rsa.ok());
  EXPECT_FALSE(TokenSigner::from_pem(rsa->to_pem().str(), "custos").ok());
}

}  // namespace
}  // namespace custos::attestation
