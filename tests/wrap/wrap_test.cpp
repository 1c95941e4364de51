// wrap/: the key-wrapping formats both ends of a key release use (docs/formats/kbs.md §3).
#include "wrap/wrap.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "base/encoding.h"
#include "crypto/hash.h"

namespace custos::wrap {
namespace {

namespace json = boost::json;

const std::string kSecret = "a released key: 0123456789abcdef";

crypto::PrivateKey key_of(crypto::KeyType t, int bits = 0) {
  auto k = bits ? crypto::PrivateKey::generate(t, bits) : crypto::PrivateKey::generate(t);
  EXPECT_TRUE(k.ok()) << k.status().to_string();
  return std::move(*k);
}

json::object header_of(const json::object& jwe) {
  auto raw = base64url_decode(jwe.at("protected").as_string());
  return json::parse(as_string_view(*raw)).as_object();
}

struct JweCase {
  const char* name;
  crypto::KeyType type;
  int bits;
  JweAlg alg;
};

class JweRoundTrip : public ::testing::TestWithParam<JweCase> {};

TEST_P(JweRoundTrip, DecryptsWithTheRightKeyOnly) {
  const JweCase& c = GetParam();
  crypto::PrivateKey key = key_of(c.type, c.bits);
  auto jwe = jwe_encrypt(key.public_key(), c.alg, as_bytes(kSecret));
  ASSERT_TRUE(jwe.ok()) << jwe.status().to_string();
  json::object h = header_of(*jwe);
  EXPECT_EQ(h.at("alg").as_string(), jwe_alg_name(c.alg));
  EXPECT_EQ(h.at("enc").as_string(), "A256GCM");
  EXPECT_EQ(h.contains("epk"), c.alg != JweAlg::kRsaOaep256);
  // Direct ECDH-ES has no encrypted key (RFC 7518 §4.6); the other two do.
  EXPECT_EQ(jwe->at("encrypted_key").as_string().empty(), c.alg == JweAlg::kEcdhEs);

  auto plain = jwe_decrypt(key, *jwe);
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  EXPECT_EQ(plain->view(), kSecret);

  crypto::PrivateKey other = key_of(c.type, c.bits);
  EXPECT_FALSE(jwe_decrypt(other, *jwe).ok());
}

INSTANTIATE_TEST_SUITE_P(
    Algs, JweRoundTrip,
    ::testing::Values(JweCase{"rsa2048_oaep", crypto::KeyType::kRsa, 2048, JweAlg::kRsaOaep256},
                      JweCase{"p256_kw", crypto::KeyType::kEcP256, 0, JweAlg::kEcdhEsA256Kw},
                      JweCase{"p384_kw", crypto::KeyType::kEcP384, 0, JweAlg::kEcdhEsA256Kw},
                      JweCase{"p521_kw", crypto::KeyType::kEcP521, 0, JweAlg::kEcdhEsA256Kw},
                      JweCase{"p256_direct", crypto::KeyType::kEcP256, 0, JweAlg::kEcdhEs},
                      JweCase{"p384_direct", crypto::KeyType::kEcP384, 0, JweAlg::kEcdhEs}),
    [](const ::testing::TestParamInfo<JweCase>& p) { return std::string(p.param.name); });

TEST(Jwe, EveryTamperedMemberIsRefused) {
  crypto::PrivateKey key = key_of(crypto::KeyType::kEcP256);
  auto jwe = jwe_encrypt(key.public_key(), JweAlg::kEcdhEsA256Kw, as_bytes(kSecret));
  ASSERT_TRUE(jwe.ok());
  for (const char* member : {"protected", "encrypted_key", "iv", "ciphertext", "tag"}) {
    json::object t = *jwe;
    std::string v(t.at(member).as_string());
    ASSERT_FALSE(v.empty()) << member;
    // Flip one base64url character to another valid one.
    v[v.size() / 2] = v[v.size() / 2] == 'A' ? 'B' : 'A';
    t[member] = v;
    EXPECT_FALSE(jwe_decrypt(key, t).ok()) << member;
  }
  json::object missing = *jwe;
  missing.erase("tag");
  auto r = jwe_decrypt(key, missing);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tag"), std::string::npos) << r.status().message();
}

TEST(Jwe, KeyTypeAndAlgorithmMustAgree) {
  crypto::PrivateKey ec = key_of(crypto::KeyType::kEcP256);
  crypto::PrivateKey rsa = key_of(crypto::KeyType::kRsa, 2048);
  EXPECT_FALSE(jwe_encrypt(ec.public_key(), JweAlg::kRsaOaep256, as_bytes(kSecret)).ok());
  EXPECT_FALSE(jwe_encrypt(rsa.public_key(), JweAlg::kEcdhEs, as_bytes(kSecret)).ok());
  crypto::PrivateKey ed = key_of(crypto::KeyType::kEd25519);
  EXPECT_FALSE(jwe_encrypt(ed.public_key(), JweAlg::kEcdhEsA256Kw, as_bytes(kSecret)).ok());
  // An RSA JWE handed to an EC key (and the reverse) fails cleanly.
  auto to_rsa = jwe_encrypt(rsa.public_key(), JweAlg::kRsaOaep256, as_bytes(kSecret));
  ASSERT_TRUE(to_rsa.ok());
  EXPECT_FALSE(jwe_decrypt(ec, *to_rsa).ok());
  auto to_ec = jwe_encrypt(ec.public_key(), JweAlg::kEcdhEs, as_bytes(kSecret));
  ASSERT_TRUE(to_ec.ok());
  EXPECT_FALSE(jwe_decrypt(rsa, *to_ec).ok());
}

TEST(Jwe, UnsupportedEncIsRefused) {
  crypto::PrivateKey key = key_of(crypto::KeyType::kEcP256);
  auto jwe = jwe_encrypt(key.public_key(), JweAlg::kEcdhEs, as_bytes(kSecret));
  ASSERT_TRUE(jwe.ok());
  json::object h = header_of(*jwe);
  h["enc"] = "A128CBC-HS256";
  json::object t = *jwe;
  t["protected"] = base64url_encode(as_bytes(json::serialize(h)));
  auto r = jwe_decrypt(key, t);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("enc"), std::string::npos);
}

TEST(ConcatKdf, MatchesRfc7518SingleRoundLayout) {
  // §4.6.2 with empty PartyUInfo/PartyVInfo, one SHA-256 round: written out byte by byte.
  Bytes z(32);
  for (size_t i = 0; i < z.size(); ++i) z[i] = static_cast<uint8_t>(i);
  const std::string alg = "A256GCM";
  Bytes in = {0, 0, 0, 1};
  in.insert(in.end(), z.begin(), z.end());
  in.insert(in.end(), {0, 0, 0, static_cast<uint8_t>(alg.size())});
  in.insert(in.end(), alg.begin(), alg.end());
  in.insert(in.end(), {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0});
  SecretBytes k = concat_kdf(z, alg, 256);
  EXPECT_EQ(hex_encode(k.span()), hex_encode(crypto::sha256(in)));
  // Two rounds for 512 bits; the first 32 bytes are the one-round output only when the
  // keydatalen field agrees, so they differ here.
  SecretBytes k2 = concat_kdf(z, alg, 512);
  EXPECT_EQ(k2.size(), 64U);
  EXPECT_NE(hex_encode(k2.span().first(32)), hex_encode(k.span()));
}

TEST(Isecl, RoundTripAndTamper) {
  crypto::PrivateKey rsa = key_of(crypto::KeyType::kRsa, 2048);
  auto w = wrap_isecl(rsa.public_key(), as_bytes(kSecret));
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  auto plain = unwrap_isecl(rsa, w->wrapped_key, w->wrapped_swk);
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  EXPECT_EQ(plain->view(), kSecret);

  Bytes blob = *base64_decode(w->wrapped_key);
  blob[blob.size() - 1] ^= 1;
  EXPECT_FALSE(unwrap_isecl(rsa, base64_encode(blob), w->wrapped_swk).ok());
  EXPECT_FALSE(unwrap_isecl(rsa, base64_encode(Bytes(10)), w->wrapped_swk).ok());
  crypto::PrivateKey other = key_of(crypto::KeyType::kRsa, 2048);
  EXPECT_FALSE(unwrap_isecl(other, w->wrapped_key, w->wrapped_swk).ok());
  crypto::PrivateKey ec = key_of(crypto::KeyType::kEcP256);
  EXPECT_FALSE(wrap_isecl(ec.public_key(), as_bytes(kSecret)).ok());
}

TEST(Jwk, TeePublicKeysInBothSpellings) {
  crypto::PrivateKey rsa = key_of(crypto::KeyType::kRsa, 2048);
  auto std_jwk = json::parse(rsa.public_key().to_jwk()).as_object();
  auto k = public_key_from_jwk(std_jwk);
  ASSERT_TRUE(k.ok()) << k.status().to_string();
  EXPECT_EQ(k->to_der(), rsa.public_key().to_der());
  // Trustee's legacy form: k-mod / k-exp.
  json::object legacy{{"alg", "RSA1_5"}, {"k-mod", std_jwk.at("n")}, {"k-exp", std_jwk.at("e")}};
  auto l = public_key_from_jwk(legacy);
  ASSERT_TRUE(l.ok()) << l.status().to_string();
  EXPECT_EQ(l->to_der(), rsa.public_key().to_der());
  legacy.erase("k-exp");
  EXPECT_FALSE(public_key_from_jwk(legacy).ok());
  crypto::PrivateKey ed = key_of(crypto::KeyType::kEd25519);
  EXPECT_FALSE(public_key_from_jwk(json::parse(ed.public_key().to_jwk()).as_object()).ok());
}

}  // namespace
}  // namespace custos::wrap
