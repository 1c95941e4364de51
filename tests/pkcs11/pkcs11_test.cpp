// The PKCS#11 module's configuration and token object model (src/pkcs11/). The C ABI end to end
// (attestation, release, pkcs11-tool, nginx) is tests/integration/pkcs11_nginx.sh.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "crypto/hash.h"
#include "pkcs11/config.h"
#include "pkcs11/token.h"

namespace custos::pkcs11 {
namespace {

TEST(Pkcs11Config, ParsesEveryKeyAndKeyBlocks) {
  auto c = parse_module_config(R"(
kbs_addr = "https://kbs.example:8200"
ca_file = "/etc/custos/ca.pem"
tee = "tpm"
tcti = "swtpm:port=2321"
ak_context = "0x81010002"
pin = "1234"
token_label = "web"
key "tls" { id = "k1" }
key "sign" { id = "k2" }
)");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->kbs_addr, "https://kbs.example:8200");
  EXPECT_EQ(c->producer.tee, attestation::TeeType::kTpm);
  EXPECT_EQ(c->producer.tcti, "swtpm:port=2321");
  EXPECT_EQ(c->pin.str(), "1234");
  EXPECT_EQ(c->token_label, "web");
  ASSERT_EQ(c->keys.size(), 2u);
  EXPECT_EQ(c->keys[1].label, "sign");
  EXPECT_EQ(c->keys[1].id, "k2");
  EXPECT_TRUE(c->producer.program.empty()) << "the module measures its host, not a configured file";
}

TEST(Pkcs11Config, BadInputGetsAnErrorNamingTheLine) {
  struct Case {
    const char* text;
    const char* want;
  };
  const std::vector<Case> cases = {
      {"kbs_addr = \"x\"\nfoo = 1\nkey \"a\" { id = \"1\" }\n", "line 2: unknown key \"foo\""},
      {"kbs_addr = \"x\"\ntee = \"nitro\"\nkey \"a\" { id = \"1\" }\n", "line 2"},
      {"kbs_addr = \"x\"\nkey \"a\" { id = \"1\" }\nkey \"a\" { id = \"2\" }\n", "defined twice"},
      {"kbs_addr = \"x\"\nkey \"a\" { }\n", "needs an id"},
      {"kbs_addr = \"x\"\nkey { id = \"1\" }\n", "one label"},
      {"kbs_addr = \"x\"\nkbs_addr = \"y\"\nkey \"a\" { id = \"1\" }\n", "set twice"},
      {"kbs_addr = 3\nkey \"a\" { id = \"1\" }\n", "must be a string"},
      {"kbs_addr = \"x\"\n", "no key block"},
      {"key \"a\" { id = \"1\" }\n", "kbs_addr is required"},
      {"kbs_addr = \"x\"\nslot \"a\" {}\n", "unknown block"},
      {"kbs_addr = \"x\"\npin = \"\"\nkey \"a\" { id = \"1\" }\n", "pin must be"},
      {"kbs_addr = \"x\"\nisv_svn = 70000\nkey \"a\" { id = \"1\" }\n", "0 to 65535"},
      {"kbs_addr = \"x\nkey", "line"},
  };
  for (const Case& c : cases) {
    auto r = parse_module_config(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.status().message().find(c.want), std::string::npos)
        << c.text << " -> " << r.status().message();
  }
}

Bytes get(const Token& t, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type) {
  Bytes out;
  EXPECT_EQ(t.attribute(h, type, out), Token::Lookup::kFound) << type;
  return out;
}

CK_ULONG as_ulong(const Bytes& b) {
  CK_ULONG v = 0;
  EXPECT_EQ(b.size(), sizeof(v));
  std::memcpy(&v, b.data(), sizeof(v));
  return v;
}

struct Keys {
  Token token;
  crypto::PublicKey rsa_pub, ec_pub;
};

Keys make_token(bool with_pin) {
  auto rsa = crypto::PrivateKey::generate(crypto::KeyType::kRsa, 2048);
  auto ec = crypto::PrivateKey::generate(crypto::KeyType::kEcP384);
  EXPECT_TRUE(rsa.ok() && ec.ok());
  crypto::PublicKey rp = rsa->public_key(), ep = ec->public_key();
  std::vector<TokenKey> keys;
  keys.push_back(TokenKey{"rsa", "id-rsa", std::move(*rsa)});
  keys.push_back(TokenKey{"ec", "id-ec", std::move(*ec)});
  return Keys{Token(std::move(keys), with_pin), rp, ep};
}

TEST(Pkcs11Token, ObjectsCarryTheirPublicPartsAndHideTheirSecrets) {
  Keys k = make_token(false);
  const Token& t = k.token;
  ASSERT_EQ(t.object_count(), 4u);
  EXPECT_EQ(as_ulong(get(t, 1, CKA_CLASS)), CKO_PRIVATE_KEY);
  EXPECT_EQ(as_ulong(get(t, 2, CKA_CLASS)), CKO_PUBLIC_KEY);
  EXPECT_EQ(as_ulong(get(t, 3, CKA_KEY_TYPE)), CKK_EC);
  EXPECT_EQ(get(t, 1, CKA_LABEL), to_bytes("rsa"));
  EXPECT_EQ(get(t, 4, CKA_ID), to_bytes("id-ec"));
  EXPECT_EQ(get(t, 1, CKA_SENSITIVE), Bytes{CK_TRUE});
  EXPECT_EQ(get(t, 1, CKA_EXTRACTABLE), Bytes{CK_FALSE});
  EXPECT_EQ(get(t, 1, CKA_PRIVATE), Bytes{CK_FALSE}) << "without a PIN nothing is private";
  Bytes v;
  EXPECT_EQ(t.attribute(1, CKA_PRIVATE_EXPONENT, v), Token::Lookup::kSensitive);
  EXPECT_EQ(t.attribute(3, CKA_VALUE, v), Token::Lookup::kSensitive);
  EXPECT_EQ(t.attribute(2, CKA_PRIVATE_EXPONENT, v), Token::Lookup::kUnknownType);
  EXPECT_EQ(t.attribute(1, CKA_EC_POINT, v), Token::Lookup::kUnknownType);
  EXPECT_EQ(t.attribute(1, 0x7fff0000, v), Token::Lookup::kUnknownType);

  // RSA: modulus and exponent rebuild the registered public key.
  auto rebuilt =
      crypto::PublicKey::from_rsa(get(t, 2, CKA_MODULUS), get(t, 1, CKA_PUBLIC_EXPONENT));
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_EQ(rebuilt->to_der(), k.rsa_pub.to_der());
  EXPECT_EQ(as_ulong(get(t, 2, CKA_MODULUS_BITS)), 2048u);
  // EC: the P-384 OID and the point as a DER OCTET STRING around 04||x||y.
  EXPECT_EQ(get(t, 4, CKA_EC_PARAMS), (Bytes{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}));
  Bytes point = get(t, 4, CKA_EC_POINT);
  ASSERT_EQ(point.size(), 2u + 97u);
  EXPECT_EQ(point[0], 0x04);
  EXPECT_EQ(point[1], 97);
  auto xy = k.ec_pub.ec_xy();
  ASSERT_TRUE(xy.ok());
  EXPECT_EQ(Bytes(point.begin() + 3, point.end()), *xy);
}

TEST(Pkcs11Token, TemplatesMatchExactValuesAndPrivateKeysNeedALoginWithAPin) {
  Keys k = make_token(true);
  const Token& t = k.token;
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  char label[] = "ec";
  CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, label, 2}};
  std::vector<CK_OBJECT_HANDLE> found;
  for (CK_OBJECT_HANDLE h = 1; h <= t.object_count(); ++h) {
    if (t.matches(h, tmpl, 2)) found.push_back(h);
  }
  EXPECT_EQ(found, std::vector<CK_OBJECT_HANDLE>{3});
  CK_ATTRIBUTE prefix[] = {{CKA_LABEL, label, 1}};  // "e": not a match, lengths differ
  EXPECT_FALSE(t.matches(3, prefix, 1));
  EXPECT_FALSE(t.visible(3, /*logged_in=*/false));
  EXPECT_TRUE(t.visible(3, true));
  EXPECT_TRUE(t.visible(4, false));
  EXPECT_EQ(get(t, 3, CKA_PRIVATE), Bytes{CK_TRUE});
}

TEST(Pkcs11Token, SignaturesVerifyWithThePublicKeys) {
  Keys k = make_token(false);
  const Token& t = k.token;
  const Bytes msg = to_bytes("signed inside the attested process");
  const Bytes d256 = crypto::sha256(msg);

  auto sign_with = [&](CK_OBJECT_HANDLE h, CK_MECHANISM mech, const Bytes& data) {
    SignMechanism m;
    EXPECT_EQ(check_sign_mechanism(mech, t.key(h).key, m), CKR_OK);
    Bytes sig;
    EXPECT_EQ(sign(m, t.key(h).key, data, sig), CKR_OK);
    EXPECT_EQ(sig.size(), signature_length(t.key(h).key));
    return sig;
  };
  crypto::SignOptions pkcs1{crypto::HashAlg::kSha256, crypto::SignOptions::RsaPadding::kPkcs1};
  EXPECT_TRUE(
      k.rsa_pub.verify(msg, sign_with(1, {CKM_SHA256_RSA_PKCS, nullptr, 0}, msg), pkcs1).ok());

  // CKM_RSA_PKCS signs a DigestInfo the caller built (as TLS 1.2 stacks do).
  Bytes info = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  info.insert(info.end(), d256.begin(), d256.end());
  EXPECT_TRUE(k.rsa_pub.verify(msg, sign_with(1, {CKM_RSA_PKCS, nullptr, 0}, info), pkcs1).ok());

  CK_RSA_PKCS_PSS_PARAMS pss{CKM_SHA256, CKG_MGF1_SHA256, 32};
  crypto::SignOptions pss_opts{crypto::HashAlg::kSha256, crypto::SignOptions::RsaPadding::kPss};
  EXPECT_TRUE(
      k.rsa_pub
          .verify_digest(d256, sign_with(1, {CKM_RSA_PKCS_PSS, &pss, sizeof(pss)}, d256), pss_opts)
          .ok());

  // PSS with another salt length than the hash's: 20 bytes, and the longest that fits (222).
  for (CK_ULONG salt : {CK_ULONG{20}, CK_ULONG{222}}) {
    CK_RSA_PKCS_PSS_PARAMS p{CKM_SHA256, CKG_MGF1_SHA256, salt};
    crypto::SignOptions o = pss_opts;
    o.pss_salt_len = static_cast<int>(salt);
    EXPECT_TRUE(
        k.rsa_pub.verify_digest(d256, sign_with(1, {CKM_RSA_PKCS_PSS, &p, sizeof(p)}, d256), o)
            .ok())
        << "salt " << salt;
  }

  crypto::SignOptions ec_raw{crypto::HashAlg::kSha384, {}, crypto::SignOptions::EcFormat::kRaw};
  Bytes sig = sign_with(3, {CKM_ECDSA_SHA384, nullptr, 0}, msg);
  EXPECT_EQ(sig.size(), 96u);
  EXPECT_TRUE(k.ec_pub.verify(msg, sig, ec_raw).ok());
  const Bytes d384 = crypto::sha384(msg);
  EXPECT_TRUE(
      k.ec_pub.verify_digest(d384, sign_with(3, {CKM_ECDSA, nullptr, 0}, d384), ec_raw).ok());
  // CKM_ECDSA takes a digest of any length: SHA-1's 20 bytes (Java's NONEwithECDSA, say).
  const Bytes d1 = crypto::digest(crypto::HashAlg::kSha1, msg);
  crypto::SignOptions sha1_raw{crypto::HashAlg::kSha1, {}, crypto::SignOptions::EcFormat::kRaw};
  EXPECT_TRUE(k.ec_pub.verify_digest(d1, sign_with(3, {CKM_ECDSA, nullptr, 0}, d1), sha1_raw).ok());
}

TEST(Pkcs11Token, MechanismsAndInputsOutsideTheRulesAreRefused) {
  Keys k = make_token(false);
  const crypto::PrivateKey& rsa = k.token.key(1).key;
  const crypto::PrivateKey& ec = k.token.key(3).key;
  SignMechanism m;
  CK_MECHANISM ecdsa{CKM_ECDSA, nullptr, 0};
  EXPECT_EQ(check_sign_mechanism(ecdsa, rsa, m), CKR_KEY_TYPE_INCONSISTENT);
  CK_MECHANISM rsa_pkcs{CKM_RSA_PKCS, nullptr, 0};
  EXPECT_EQ(check_sign_mechanism(rsa_pkcs, ec, m), CKR_KEY_TYPE_INCONSISTENT);
  CK_MECHANISM aes{CKM_AES_GCM, nullptr, 0};
  EXPECT_EQ(check_sign_mechanism(aes, rsa, m), CKR_MECHANISM_INVALID);
  // PSS parameters must agree: no parameters, a short salt, another MGF, SHA-1.
  CK_MECHANISM pss{CKM_RSA_PKCS_PSS, nullptr, 0};
  EXPECT_EQ(check_sign_mechanism(pss, rsa, m), CKR_MECHANISM_PARAM_INVALID);
  // 2048-bit modulus: emLen 256, so a SHA-256 salt of at most 256 - 32 - 2 = 222 bytes.
  for (CK_RSA_PKCS_PSS_PARAMS p : {CK_RSA_PKCS_PSS_PARAMS{CKM_SHA256, CKG_MGF1_SHA256, 223},
                                   CK_RSA_PKCS_PSS_PARAMS{CKM_SHA256, CKG_MGF1_SHA384, 32},
                                   CK_RSA_PKCS_PSS_PARAMS{CKM_SHA_1, CKG_MGF1_SHA1, 20}}) {
    pss.pParameter = &p;
    pss.ulParameterLen = sizeof(p);
    EXPECT_EQ(check_sign_mechanism(pss, rsa, m), CKR_MECHANISM_PARAM_INVALID);
  }
  CK_RSA_PKCS_PSS_PARAMS mismatch{CKM_SHA384, CKG_MGF1_SHA384, 48};
  CK_MECHANISM sha256_pss{CKM_SHA256_RSA_PKCS_PSS, &mismatch, sizeof(mismatch)};
  EXPECT_EQ(check_sign_mechanism(sha256_pss, rsa, m), CKR_MECHANISM_PARAM_INVALID);

  Bytes sig;
  ASSERT_EQ(check_sign_mechanism(ecdsa, ec, m), CKR_OK);
  EXPECT_EQ(sign(m, ec, Bytes(), sig), CKR_DATA_LEN_RANGE) << "an empty digest";
  EXPECT_EQ(sign(m, ec, Bytes(2000, 1), sig), CKR_DATA_LEN_RANGE) << "no digest is that long";
  ASSERT_EQ(check_sign_mechanism(rsa_pkcs, rsa, m), CKR_OK);
  EXPECT_EQ(sign(m, rsa, Bytes(256 - 10, 1), sig), CKR_DATA_LEN_RANGE) << "too long to pad";
  EXPECT_EQ(sign(m, rsa, Bytes(), sig), CKR_DATA_LEN_RANGE);
}

}  // namespace
}  // namespace custos::pkcs11
