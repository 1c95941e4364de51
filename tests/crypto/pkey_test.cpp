#include "crypto/pkey.h"

#include <gtest/gtest.h>

#include "base/encoding.h"
#include "crypto/random.h"
#include "crypto/test_util.h"

namespace custos::crypto {
namespace {

using testing::hex;
using testing::unhex;

// Test keys are generated once: RSA generation is slow and the tests only need distinct keys.
const PrivateKey& key_of(KeyType t, int slot = 0) {
  static std::map<std::pair<int, int>, PrivateKey> keys;
  auto k = std::make_pair(static_cast<int>(t), slot);
  auto it = keys.find(k);
  if (it == keys.end()) {
    auto g = PrivateKey::generate(t);
    EXPECT_TRUE(g.ok()) << g.status().to_string();
    it = keys.emplace(k, std::move(g).value()).first;
  }
  return it->second;
}

constexpr KeyType kAllTypes[] = {KeyType::kEcP256, KeyType::kEcP384, KeyType::kEcP521,
                                 KeyType::kEd25519, KeyType::kRsa};

Bytes tampered(ByteSpan b, size_t i = 0) {
  Bytes out(b.begin(), b.end());
  out[i % out.size()] ^= 0x01;
  return out;
}

TEST(Pkey, GenerateTypesAndBits) {
  EXPECT_EQ(key_of(KeyType::kEcP256).type(), KeyType::kEcP256);
  EXPECT_EQ(key_of(KeyType::kEcP256).bits(), 256);
  EXPECT_EQ(key_of(KeyType::kEcP384).bits(), 384);
  EXPECT_EQ(key_of(KeyType::kEcP521).bits(), 521);
  EXPECT_EQ(key_of(KeyType::kEd25519).type(), KeyType::kEd25519);
  EXPECT_EQ(key_of(KeyType::kRsa).bits(), 2048);
  EXPECT_EQ(key_of(KeyType::kRsa).public_key().type(), KeyType::kRsa);
  EXPECT_EQ(key_type_name(KeyType::kEcP384), "ec-p384");
}

TEST(Pkey, RsaSizeAllowlist) {
  EXPECT_EQ(PrivateKey::generate(KeyType::kRsa, 1024).status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(PrivateKey::generate(KeyType::kRsa, 16384).ok());
}

TEST(Pkey, SignVerifyEveryTypeWithRejectTwins) {
  auto msg = as_bytes("the quick brown fox");
  for (KeyType t : kAllTypes) {
    SCOPED_TRACE(std::string(key_type_name(t)));
    const PrivateKey& k = key_of(t);
    PublicKey pub = k.public_key();
    auto sig = k.sign(msg);
    ASSERT_TRUE(sig.ok()) << sig.status().to_string();
    EXPECT_TRUE(pub.verify(msg, *sig).ok());

    Status bad = pub.verify(as_bytes("the quick brown fog"), *sig);
    EXPECT_EQ(bad.code(), Code::kPermissionDenied);
    EXPECT_FALSE(pub.verify(msg, tampered(*sig, sig->size() / 2)).ok());
    EXPECT_FALSE(pub.verify(msg, Bytes(sig->begin(), sig->end() - 1)).ok());
    EXPECT_FALSE(pub.verify(msg, {}).ok());
    PublicKey other = key_of(t, 1).public_key();
    EXPECT_EQ(other.verify(msg, *sig).code(), Code::kPermissionDenied);
  }
}

TEST(Pkey, HashChoiceMatters) {
  auto msg = as_bytes("m");
  const PrivateKey& k = key_of(KeyType::kEcP384);
  SignOptions o384;
  o384.hash = HashAlg::kSha384;
  auto sig = k.sign(msg, o384);
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(k.public_key().verify(msg, *sig, o384).ok());
  EXPECT_FALSE(k.public_key().verify(msg, *sig).ok());  // verified as SHA-256
}

TEST(Pkey, EcdsaRawFormat) {
  auto msg = as_bytes("raw r||s");
  for (KeyType t : {KeyType::kEcP256, KeyType::kEcP384, KeyType::kEcP521}) {
    const PrivateKey& k = key_of(t);
    SignOptions raw;
    raw.ec_format = SignOptions::EcFormat::kRaw;
    auto sig = k.sign(msg, raw);
    ASSERT_TRUE(sig.ok());
    size_t width = t == KeyType::kEcP256 ? 32 : t == KeyType::kEcP384 ? 48 : 66;
    EXPECT_EQ(sig->size(), 2 * width);
    EXPECT_TRUE(k.public_key().verify(msg, *sig, raw).ok());
    EXPECT_FALSE(k.public_key().verify(msg, *sig).ok());  // raw bytes are not DER
    EXPECT_FALSE(k.public_key().verify(msg, tampered(*sig, 5), raw).ok());
    EXPECT_FALSE(k.public_key().verify(msg, Bytes(sig->begin(), sig->end() - 2), raw).ok());
    // DER and raw convert into each other.
    auto der = ecdsa_raw_to_der(*sig);
    ASSERT_TRUE(der.ok());
    EXPECT_TRUE(k.public_key().verify(msg, *der).ok());
    auto back = ecdsa_der_to_raw(*der, width);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, *sig);
  }
}

TEST(Pkey, EcdsaP256Rfc6979Vector) {
  // RFC 6979 A.2.5, P-256 with SHA-256, message "sample".
  auto pub = PublicKey::from_ec_xy(
      KeyType::kEcP256,
      unhex("60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
            "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299"));
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  Bytes sig = unhex(
      "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
      "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8");
  SignOptions raw;
  raw.ec_format = SignOptions::EcFormat::kRaw;
  EXPECT_TRUE(pub->verify(as_bytes("sample"), sig, raw).ok());
  EXPECT_TRUE(pub->verify_digest(sha256(as_bytes("sample")), sig, raw).ok());
  EXPECT_FALSE(pub->verify(as_bytes("test"), sig, raw).ok());
  EXPECT_FALSE(pub->verify(as_bytes("sample"), tampered(sig, 40), raw).ok());
}

TEST(Pkey, Ed25519Rfc8032Test1) {
  auto pub = PublicKey::from_ed25519(
      unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"));
  ASSERT_TRUE(pub.ok());
  Bytes sig = unhex(
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
      "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
  EXPECT_TRUE(pub->verify({}, sig).ok());
  EXPECT_FALSE(pub->verify(as_bytes("x"), sig).ok());
  EXPECT_FALSE(pub->verify({}, tampered(sig, 63)).ok());
  EXPECT_FALSE(PublicKey::from_ed25519(Bytes(31, 1)).ok());
  EXPECT_FALSE(pub->verify_digest(sha256({}), sig).ok());  // no prehash mode
}

TEST(Pkey, RsaPaddings) {
  auto msg = as_bytes("padding");
  const PrivateKey& k = key_of(KeyType::kRsa);
  SignOptions pss;  // default
  SignOptions pkcs1;
  pkcs1.rsa_padding = SignOptions::RsaPadding::kPkcs1;
  auto s_pss = k.sign(msg, pss);
  auto s_pkcs1 = k.sign(msg, pkcs1);
  ASSERT_TRUE(s_pss.ok() && s_pkcs1.ok());
  EXPECT_EQ(s_pss->size(), 256u);
  EXPECT_TRUE(k.public_key().verify(msg, *s_pss, pss).ok());
  EXPECT_TRUE(k.public_key().verify(msg, *s_pkcs1, pkcs1).ok());
  EXPECT_FALSE(k.public_key().verify(msg, *s_pss, pkcs1).ok());
  EXPECT_FALSE(k.public_key().verify(msg, *s_pkcs1, pss).ok());
  // PKCS#1 v1.5 is deterministic, PSS is salted.
  EXPECT_EQ(*k.sign(msg, pkcs1), *s_pkcs1);
  EXPECT_NE(*k.sign(msg, pss), *s_pss);
  SignOptions pss384;
  pss384.hash = HashAlg::kSha384;
  auto s384 = k.sign(msg, pss384);
  ASSERT_TRUE(s384.ok());
  EXPECT_TRUE(k.public_key().verify(msg, *s384, pss384).ok());
  EXPECT_FALSE(k.public_key().verify(msg, *s384, pss).ok());
}

TEST(Pkey, SignDigestMatchesSignMessage) {
  auto msg = as_bytes("digest me");
  for (KeyType t : {KeyType::kEcP256, KeyType::kEcP521, KeyType::kRsa}) {
    const PrivateKey& k = key_of(t);
    SignOptions o;
    o.hash = HashAlg::kSha512;
    auto sig = k.sign_digest(digest(HashAlg::kSha512, msg), o);
    ASSERT_TRUE(sig.ok()) << sig.status().to_string();
    EXPECT_TRUE(k.public_key().verify(msg, *sig, o).ok());
    EXPECT_TRUE(k.public_key().verify_digest(digest(HashAlg::kSha512, msg), *sig, o).ok());
    EXPECT_FALSE(
        k.public_key().verify_digest(digest(HashAlg::kSha512, as_bytes("other")), *sig, o).ok());
    // The digest length must match the declared hash.
    EXPECT_EQ(k.sign_digest(sha256(msg), o).status().code(), Code::kInvalidArgument);
  }
  EXPECT_FALSE(key_of(KeyType::kEd25519).sign_digest(sha256(msg)).ok());
}

TEST(Pkey, PemDerRoundTrips) {
  for (KeyType t : kAllTypes) {
    SCOPED_TRACE(std::string(key_type_name(t)));
    const PrivateKey& k = key_of(t);
    SecretString pem = k.to_pem();
    EXPECT_EQ(pem.str().rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);  // PKCS#8
    auto k2 = PrivateKey::from_pem(pem.str());
    ASSERT_TRUE(k2.ok()) << k2.status().to_string();
    EXPECT_EQ(k2->public_key().to_der(), k.public_key().to_der());
    auto k3 = PrivateKey::from_der(k.to_der().span());
    ASSERT_TRUE(k3.ok());
    EXPECT_EQ(k3->public_key().to_der(), k.public_key().to_der());

    PublicKey pub = k.public_key();
    std::string ppem = pub.to_pem();
    EXPECT_EQ(ppem.rfind("-----BEGIN PUBLIC KEY-----", 0), 0u);
    auto p2 = PublicKey::from_pem(ppem);
    ASSERT_TRUE(p2.ok());
    EXPECT_EQ(p2->to_der(), pub.to_der());
    auto p3 = PublicKey::from_der(pub.to_der());
    ASSERT_TRUE(p3.ok());
    EXPECT_EQ(p3->type(), t);
    // A key signed with the reloaded private key verifies with the original public key.
    auto sig = k3->sign(as_bytes("x"));
    ASSERT_TRUE(sig.ok());
    EXPECT_TRUE(pub.verify(as_bytes("x"), *sig).ok());
  }
}

// EC keys in the usual SubjectPublicKeyInfo form are read and written without OpenSSL's generic
// decoder (a speed path); the bytes must be exactly what the generic encoder writes, and the
// checks the same: a point off the curve is refused.
TEST(Pkey, EcSpkiFastPathMatchesGenericEncoding) {
  for (KeyType t : {KeyType::kEcP256, KeyType::kEcP384, KeyType::kEcP521}) {
    SCOPED_TRACE(std::string(key_type_name(t)));
    PublicKey pub = key_of(t).public_key();
    Bytes der = pub.to_der();
    // to_pem goes through OpenSSL's encoder: its body is the reference DER.
    std::string pem = pub.to_pem();
    std::string body;
    for (size_t i = pem.find('\n') + 1; i < pem.size() && pem.compare(i, 5, "-----") != 0;) {
      size_t nl = pem.find('\n', i);
      body += pem.substr(i, nl - i);
      i = nl + 1;
    }
    auto ref = base64_decode(body);
    ASSERT_TRUE(ref.ok());
    EXPECT_EQ(hex(der), hex(*ref));
    auto back = PublicKey::from_der(der);
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(back->type(), t);
    auto sig = key_of(t).sign(as_bytes("fast path"));
    ASSERT_TRUE(sig.ok());
    EXPECT_TRUE(back->verify(as_bytes("fast path"), *sig).ok());
    EXPECT_FALSE(key_of(t, 1).public_key().verify(as_bytes("fast path"), *sig).ok());

    Bytes off = der;
    off.back() ^= 1;  // y changed: not on the curve
    EXPECT_EQ(PublicKey::from_der(off).status().code(), Code::kInvalidArgument);
    auto xy = pub.ec_xy();
    ASSERT_TRUE(xy.ok());
    Bytes zero_point = der;  // x = y = 0: not on the curve either
    std::fill(zero_point.end() - static_cast<std::ptrdiff_t>(xy->size()), zero_point.end(), 0);
    EXPECT_FALSE(PublicKey::from_der(zero_point).ok());
    Bytes truncated(der.begin(), der.end() - 1);
    EXPECT_FALSE(PublicKey::from_der(truncated).ok());
  }
}

TEST(Pkey, PrivateKeyPublicEncodingsMatchPublicKey) {
  for (KeyType t : kAllTypes) {
    SCOPED_TRACE(std::string(key_type_name(t)));
    const PrivateKey& k = key_of(t);
    EXPECT_EQ(k.public_jwk(), k.public_key().to_jwk());
    EXPECT_NE(k.public_jwk(), key_of(t, 1).public_jwk());
    auto xy = k.public_ec_xy();
    EXPECT_EQ(xy.ok(), t != KeyType::kEd25519 && t != KeyType::kRsa);
    if (xy.ok()) {
      EXPECT_EQ(hex(*xy), hex(*k.public_key().ec_xy()));
    }
  }
  EXPECT_TRUE(PrivateKey().public_jwk().empty());
  EXPECT_FALSE(PrivateKey().public_ec_xy().ok());
}

TEST(Pkey, TraditionalEcPemAccepted) {
  const char* kPem =
      "-----BEGIN EC PRIVATE KEY-----\n"
      "MHcCAQEEIF4/H8uYgSAejwDDlcB+Xkkn+WF2G2nsLaEUNv3d7jTxoAoGCCqGSM49\n"
      "AwEHoUQDQgAE1JaKrKYhwjpJZVIsMY+BsLg9qX7xuKZ+y9/efhbI+EiKz5/qZzIP\n"
      "FnmjbBBryTsWS2j2bmEzKk+uxMJwni5c6w==\n"
      "-----END EC PRIVATE KEY-----\n";
  auto k = PrivateKey::from_pem(kPem);
  ASSERT_TRUE(k.ok()) << k.status().to_string();
  EXPECT_EQ(k->type(), KeyType::kEcP256);
}

TEST(Pkey, ImportRejects) {
  // Encrypted keys are refused without prompting for a passphrase.
  const char* kEncrypted =
      "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
      "MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgFqP0LHeB2WgICCAAw\n"
      "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEAQIEEGEWOFwmbp3Es1avvi/JfaAEgZB/\n"
      "ZbR+VzV3rnW8H2bXEbV8S9J+n3KwIBwdMSribfMwDIUTL4ITgTgfi19RkhXP3ijS\n"
      "6xhvOEufeXHmjhvcTgQV/4yEmvArXcE1O3faLKOtHsx4+rsWK7pTKDY+1rDaf5O0\n"
      "wc4fJR+4YNvHtFZpQgN/R0eXpQ6rlg0rsK19eo79xRUUw18J70YR3smaTxc0rA0=\n"
      "-----END ENCRYPTED PRIVATE KEY-----\n";
  EXPECT_EQ(PrivateKey::from_pem(kEncrypted).status().code(), Code::kInvalidArgument);
  // secp256k1 is not on the allowlist.
  const char* kSecp256k1 =
      "-----BEGIN PUBLIC KEY-----\n"
      "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEtkRVfH8ooYElr+KdjkVru5Za7ex9XIMe\n"
      "mcN7lZQ0p6WhHCa+MrFYs6mHjM8LzfWFxiZMIh3yZKVIJUiUePkgDQ==\n"
      "-----END PUBLIC KEY-----\n";
  auto k1 = PublicKey::from_pem(kSecp256k1);
  EXPECT_EQ(k1.status().code(), Code::kInvalidArgument);
  EXPECT_NE(k1.status().message().find("not allowed"), std::string::npos);
  // RSA-1024 is too small.
  const char* kRsa1024 =
      "-----BEGIN PUBLIC KEY-----\n"
      "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDjJUQzdcfshgQq7hRaPs9u/+vI\n"
      "HHusxh7TZuPVRgR9R584dfy/Y0SSwpqVvzqAER/eZTnzKkRO+e+i/Mt/vO5cZN7D\n"
      "QWPAFtxY5eGFTzjc/JSOSRbnrDkMCk7WqrzjFyhMhb4fkO9fESAj0HzgC6VUSNnW\n"
      "nyqUBo6UxPV35KBcTQIDAQAB\n"
      "-----END PUBLIC KEY-----\n";
  EXPECT_FALSE(PublicKey::from_pem(kRsa1024).ok());
  EXPECT_FALSE(PublicKey::from_pem("not a key").ok());
  EXPECT_FALSE(PublicKey::from_der(Bytes{0x30, 0x03, 0x02, 0x01, 0x01}).ok());
  Bytes der = key_of(KeyType::kEcP256).public_key().to_der();
  der.push_back(0);
  EXPECT_FALSE(PublicKey::from_der(der).ok());  // trailing garbage
  EXPECT_FALSE(PrivateKey::from_der(Bytes(10, 0x30)).ok());
  EXPECT_FALSE(PrivateKey::from_pem(key_of(KeyType::kEcP256).public_key().to_pem()).ok());
}

TEST(Pkey, EmptyKeysFailCleanly) {
  PublicKey empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_FALSE(empty.verify(as_bytes("x"), Bytes(64, 0)).ok());
  EXPECT_TRUE(empty.to_der().empty());
  EXPECT_TRUE(empty.to_pem().empty());
  EXPECT_TRUE(empty.to_jwk().empty());
  PrivateKey none;
  EXPECT_FALSE(none.sign(as_bytes("x")).ok());
  EXPECT_TRUE(none.public_key().empty());
  PublicKey copy = key_of(KeyType::kEcP256).public_key();
  PublicKey copy2 = copy;
  copy = empty;
  EXPECT_TRUE(copy.empty());
  EXPECT_FALSE(copy2.empty());
}

TEST(Pkey, EcXyRoundTripAndRejects) {
  for (KeyType t : {KeyType::kEcP256, KeyType::kEcP384, KeyType::kEcP521}) {
    PublicKey pub = key_of(t).public_key();
    auto xy = pub.ec_xy();
    ASSERT_TRUE(xy.ok());
    auto back = PublicKey::from_ec_xy(t, *xy);
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(back->to_der(), pub.to_der());
    // A point off the curve (y changed) is rejected, as is a wrong length or the wrong curve.
    Bytes off = *xy;
    off.back() ^= 1;
    EXPECT_FALSE(PublicKey::from_ec_xy(t, off).ok());
    EXPECT_FALSE(PublicKey::from_ec_xy(t, Bytes(xy->begin(), xy->end() - 1)).ok());
  }
  auto xy = key_of(KeyType::kEcP256).public_key().ec_xy();
  EXPECT_FALSE(PublicKey::from_ec_xy(KeyType::kEcP384, *xy).ok());
  EXPECT_FALSE(PublicKey::from_ec_xy(KeyType::kRsa, *xy).ok());
  EXPECT_FALSE(PublicKey::from_ec_xy(KeyType::kEcP256, Bytes(64, 0)).ok());
  EXPECT_FALSE(key_of(KeyType::kRsa).public_key().ec_xy().ok());
}

TEST(Pkey, FromRsaComponents) {
  PublicKey pub = key_of(KeyType::kRsa).public_key();
  // Pull n and e out of the JWK and rebuild the key from them.
  std::string jwk = pub.to_jwk();
  auto field = [&](const std::string& name) {
    size_t p = jwk.find("\"" + name + "\":\"") + name.size() + 4;
    return *base64url_decode(jwk.substr(p, jwk.find('"', p) - p));
  };
  auto rebuilt = PublicKey::from_rsa(field("n"), field("e"));
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().to_string();
  EXPECT_EQ(rebuilt->to_der(), pub.to_der());
  EXPECT_FALSE(PublicKey::from_rsa(Bytes(128, 0xff), Bytes{1, 0, 1}).ok());  // 1024 bits
  EXPECT_FALSE(PublicKey::from_rsa({}, Bytes{3}).ok());
}

TEST(Pkey, JwkRoundTripEveryType) {
  for (KeyType t : kAllTypes) {
    SCOPED_TRACE(std::string(key_type_name(t)));
    PublicKey pub = key_of(t).public_key();
    std::string jwk = pub.to_jwk();
    ASSERT_FALSE(jwk.empty());
    auto back = PublicKey::from_jwk(jwk);
    ASSERT_TRUE(back.ok()) << back.status().to_string() << " " << jwk;
    EXPECT_EQ(back->to_der(), pub.to_der());
  }
}

TEST(Pkey, JwkRfc7638Thumbprint) {
  // RFC 7638 section 3.1: the example RSA key and its SHA-256 thumbprint. Our to_jwk() emits the
  // required members in lexicographic order without whitespace, so it hashes to the thumbprint.
  std::string jwk =
      R"({"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",)"
      R"( "e":"AQAB", "alg":"RS256", "kid":"2011-04-29", "key_ops":["verify"], "ext":true})";
  auto pub = PublicKey::from_jwk(jwk);
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  EXPECT_EQ(base64url_encode(sha256(as_bytes(pub->to_jwk()))),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

TEST(Pkey, JwkRejects) {
  PublicKey pub = key_of(KeyType::kEcP256).public_key();
  std::string good = pub.to_jwk();
  ASSERT_TRUE(PublicKey::from_jwk(good).ok());
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  EXPECT_FALSE(PublicKey::from_jwk(replace("\"P-256\"", "\"P-384\"")).ok());
  EXPECT_FALSE(PublicKey::from_jwk(replace("\"P-256\"", "\"secp256k1\"")).ok());
  EXPECT_FALSE(PublicKey::from_jwk(replace("\"EC\"", "\"oct\"")).ok());
  EXPECT_FALSE(PublicKey::from_jwk(replace(",\"y\"", ",\"z\"")).ok());  // y missing
  EXPECT_FALSE(PublicKey::from_jwk(replace("{", "{\"kty\":\"EC\",")).ok());  // duplicate kty
  EXPECT_FALSE(PublicKey::from_jwk(good + "x").ok());
  EXPECT_FALSE(PublicKey::from_jwk(good.substr(0, good.size() - 1)).ok());
  EXPECT_FALSE(PublicKey::from_jwk("").ok());
  EXPECT_FALSE(PublicKey::from_jwk("[]").ok());
  EXPECT_FALSE(PublicKey::from_jwk(R"({"kty":"EC","crv":"P-256","x":"AA","y":"AA"})").ok());
  // A full-length point that is not on the curve.
  std::string zeros = base64url_encode(Bytes(32, 0));
  EXPECT_FALSE(PublicKey::from_jwk(R"({"kty":"EC","crv":"P-256","x":")" + zeros +
                                   R"(","y":")" + zeros + "\"}")
                   .ok());
  EXPECT_FALSE(PublicKey::from_jwk(R"({"kty":"OKP","crv":"X25519","x":"AAAA"})").ok());
  EXPECT_FALSE(PublicKey::from_jwk(R"({"kty":"EC","crv":"P-256","x":"!!","y":"AA"})").ok());
  // Escapes and nested values are understood, not tripped over.
  EXPECT_TRUE(PublicKey::from_jwk(replace("{", R"({"x5c":["a\"b"],"use":"s\u0069g","n":{"a":[1,2,{}]},)"))
                  .ok());
}

TEST(Pkey, RsaOaep) {
  const PrivateKey& k = key_of(KeyType::kRsa);
  SecretBytes secret = random_secret(32);
  auto ct = k.public_key().rsa_oaep_encrypt(secret.span());
  ASSERT_TRUE(ct.ok()) << ct.status().to_string();
  EXPECT_EQ(ct->size(), 256u);
  auto pt = k.rsa_oaep_decrypt(*ct);
  ASSERT_TRUE(pt.ok());
  EXPECT_TRUE(*pt == secret);

  auto ct1 = k.public_key().rsa_oaep_encrypt(secret.span(), HashAlg::kSha1);
  ASSERT_TRUE(ct1.ok());
  EXPECT_TRUE(k.rsa_oaep_decrypt(*ct1, HashAlg::kSha1).ok());
  // Reject twins: wrong hash, wrong key, tampered ciphertext.
  EXPECT_EQ(k.rsa_oaep_decrypt(*ct1).status().code(), Code::kDataLoss);
  EXPECT_EQ(key_of(KeyType::kRsa, 1).rsa_oaep_decrypt(*ct).status().code(), Code::kDataLoss);
  EXPECT_EQ(k.rsa_oaep_decrypt(tampered(*ct, 100)).status().code(), Code::kDataLoss);
  // Too long for a 2048-bit modulus with SHA-256 (max 190 bytes).
  EXPECT_FALSE(k.public_key().rsa_oaep_encrypt(Bytes(191, 1)).ok());
  EXPECT_TRUE(k.public_key().rsa_oaep_encrypt(Bytes(190, 1)).ok());
  EXPECT_FALSE(key_of(KeyType::kEcP256).public_key().rsa_oaep_encrypt(Bytes(16, 1)).ok());
}

TEST(Pkey, Ecdh) {
  for (KeyType t : {KeyType::kEcP256, KeyType::kEcP384, KeyType::kEcP521}) {
    const PrivateKey& a = key_of(t);
    const PrivateKey& b = key_of(t, 1);
    auto ab = a.ecdh(b.public_key());
    auto ba = b.ecdh(a.public_key());
    ASSERT_TRUE(ab.ok() && ba.ok()) << ab.status().to_string();
    EXPECT_TRUE(*ab == *ba);
    EXPECT_EQ(ab->size(), t == KeyType::kEcP256 ? 32u : t == KeyType::kEcP384 ? 48u : 66u);
    auto aa = a.ecdh(a.public_key());
    ASSERT_TRUE(aa.ok());
    EXPECT_FALSE(*aa == *ab);
  }
  EXPECT_FALSE(key_of(KeyType::kEcP256).ecdh(key_of(KeyType::kEcP384).public_key()).ok());
  EXPECT_FALSE(key_of(KeyType::kEd25519).ecdh(key_of(KeyType::kEd25519, 1).public_key()).ok());
  EXPECT_FALSE(key_of(KeyType::kEcP256).ecdh(PublicKey()).ok());
}

TEST(Pkey, EcdsaConversionRejects) {
  EXPECT_FALSE(ecdsa_raw_to_der({}).ok());
  EXPECT_FALSE(ecdsa_raw_to_der(Bytes(63, 1)).ok());
  auto der = ecdsa_raw_to_der(Bytes(64, 0x7f));
  ASSERT_TRUE(der.ok());
  EXPECT_FALSE(ecdsa_der_to_raw(*der, 16).ok());  // components do not fit
  Bytes trailing = *der;
  trailing.push_back(0);
  EXPECT_FALSE(ecdsa_der_to_raw(trailing, 32).ok());
  EXPECT_FALSE(ecdsa_der_to_raw(Bytes{0x30, 0x00}, 32).ok());
  // Leading zero bytes in raw components are restored on the way back.
  Bytes small(64, 0);
  small[31] = 5;
  small[63] = 7;
  auto d2 = ecdsa_raw_to_der(small);
  ASSERT_TRUE(d2.ok());
  EXPECT_EQ(*ecdsa_der_to_raw(*d2, 32), small);
}

}  // namespace
}  // namespace custos::crypto
