// PcsCert, the DER reader for PCS certificates: differential against OpenSSL on every real PCK
// chain in the shared vectors, and refusals of hand-built certificates outside the PCS profile.
#include "attestation/dcap/cert.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "attestation/dcap/der.h"
#include "attestation/dcap/pck.h"
#include "base/encoding.h"
#include "crypto/x509.h"

namespace custos::attestation::dcap {
namespace {

const std::string kVectors = CUSTOS_SOURCE_DIR "/../shared/vectors/";

Bytes read_path(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Every DER certificate found as PEM in the vector files (quotes carry their PCK chain as PEM in
// the certification data; the PCS sample data has chains and the root).
std::vector<Bytes> real_certificates() {
  std::vector<Bytes> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(kVectors)) {
    if (!e.is_regular_file() || e.file_size() > (4u << 20)) continue;
    Bytes data = read_path(e.path());
    auto blocks = PcsCert::pem_blocks(as_string_view(data), 64);
    if (!blocks.ok()) continue;
    for (auto& b : *blocks) out.push_back(std::move(b));
  }
  return out;
}

TEST(PcsCert, AgreesWithOpenSslOnEveryRealIntelCertificate) {
  std::vector<Bytes> certs = real_certificates();
  ASSERT_GE(certs.size(), 10u) << kVectors << " must hold the shared vectors";
  size_t intel = 0;
  for (const Bytes& der : certs) {
    auto ossl = crypto::Certificate::from_der(der);
    ASSERT_TRUE(ossl.ok());
    if (ossl->subject_cn().find("Intel SGX") == std::string::npos) continue;  // e.g. AMD, TPM
    ++intel;
    auto ours = PcsCert::from_der(der);
    ASSERT_TRUE(ours.ok()) << ossl->subject() << ": " << ours.status().message();
    EXPECT_EQ(ours->subject_cn(), ossl->subject_cn());
    EXPECT_EQ(ours->serial(), ossl->serial());
    EXPECT_EQ(ours->not_before(), ossl->not_before());
    EXPECT_EQ(ours->not_after(), ossl->not_after());
    EXPECT_EQ(ours->is_ca(), ossl->is_ca());
    EXPECT_EQ(ours->public_key().to_der(), ossl->public_key().to_der());
    EXPECT_EQ(Bytes(ours->spki().begin(), ours->spki().end()), ossl->public_key().to_der());
    auto ext = ossl->extension(kSgxExtensionsOid);
    auto our_ext = ours->extension(kSgxExtensionsOidDer);
    ASSERT_EQ(ext.has_value(), our_ext.has_value());
    if (ext) {
      EXPECT_EQ(*ext, Bytes(our_ext->begin(), our_ext->end()));
    }
    // Names are compared as bytes; they must be the encodings OpenSSL's subject/issuer read.
    EXPECT_EQ(ossl->subject() == ossl->issuer(),
              std::ranges::equal(ours->subject(), ours->issuer()));
    // Signatures over the exact tbs bytes: self-signed roots verify with their own key exactly
    // when OpenSSL says so (the negative vectors include a root with a flipped byte).
    if (ossl->subject() == ossl->issuer()) {
      EXPECT_EQ(ours->verify_signature(ours->public_key()).ok(),
                ossl->verify_signature(ossl->public_key()).ok())
          << hex_encode(ours->serial());
    }
  }
  EXPECT_GE(intel, 10u);
}

// --- Hand-built certificates ----------------------------------------------------------------

using der::tlv;
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
Bytes seq(std::initializer_list<Bytes> parts) {
  return tlv(0x30, cat(parts));
}
Bytes oid(std::initializer_list<uint8_t> v) {
  return tlv(0x06, Bytes(v));
}

const Bytes kEcdsaSha256 = seq({oid({0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02})});
const Bytes kEcdsaSha384 = seq({oid({0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03})});

Bytes name(const std::string& cn) {
  return seq({tlv(0x31, seq({oid({0x55, 0x04, 0x03}), tlv(0x0c, to_bytes(cn))}))});
}
Bytes utc(const std::string& s) {
  return tlv(0x17, to_bytes(s));
}
Bytes extension(std::initializer_list<uint8_t> id, bool critical, const Bytes& value) {
  return critical ? seq({oid(id), tlv(0x01, {0xff}), tlv(0x04, value)})
                  : seq({oid(id), tlv(0x04, value)});
}
Bytes ca_constraints() {
  return extension({0x55, 0x1d, 0x13}, true, seq({tlv(0x01, {0xff})}));
}
Bytes key_usage(uint8_t bits) {
  return extension({0x55, 0x1d, 0x0f}, true, tlv(0x03, {0x01, bits}));
}

struct Parts {
  Bytes version = tlv(0xa0, tlv(0x02, {0x02}));
  Bytes serial = tlv(0x02, {0x01, 0x02});
  Bytes alg = kEcdsaSha256;
  Bytes outer_alg = kEcdsaSha256;
  Bytes issuer = name("Test CA");
  Bytes validity = seq({utc("250101000000Z"), utc("350101000000Z")});
  Bytes subject = name("Test Leaf");
  std::optional<Bytes> spki;  // default: the key's
  std::vector<Bytes> extensions = {ca_constraints(), key_usage(0x06)};
  Bytes tbs_extra;  // after the extensions, inside the TBSCertificate
  Bytes trailing;   // after the signature
};

class PcsCertBuilt : public ::testing::Test {
 protected:
  crypto::PrivateKey key = *crypto::PrivateKey::generate(crypto::KeyType::kEcP256);

  Bytes build(const Parts& p, const crypto::PrivateKey* signer = nullptr) {
    Bytes exts;
    for (const Bytes& e : p.extensions) exts.insert(exts.end(), e.begin(), e.end());
    Bytes tbs = seq({p.version, p.serial, p.alg, p.issuer, p.validity, p.subject,
                     p.spki.value_or(key.public_key().to_der()),
                     p.extensions.empty() ? Bytes{} : tlv(0xa3, tlv(0x30, exts)), p.tbs_extra});
    auto sig = (signer ? signer : &key)->sign(tbs);
    EXPECT_TRUE(sig.ok());
    Bytes bits{0x00};
    bits.insert(bits.end(), sig->begin(), sig->end());
    return cat({seq({tbs, p.outer_alg, tlv(0x03, bits)}), p.trailing});
  }
  std::string refusal(const Parts& p) {
    auto c = PcsCert::from_der(build(p));
    return c.ok() ? "accepted" : c.status().message();
  }
};

TEST_F(PcsCertBuilt, ReadsTheFieldsOpenSslReads) {
  Bytes der = build(Parts{});
  auto ours = PcsCert::from_der(der);
  ASSERT_TRUE(ours.ok()) << ours.status().message();
  auto ossl = crypto::Certificate::from_der(der);
  ASSERT_TRUE(ossl.ok());
  EXPECT_EQ(ours->subject_cn(), "Test Leaf");
  EXPECT_EQ(ours->serial(), ossl->serial());
  EXPECT_EQ(ours->not_before(), ossl->not_before());
  EXPECT_EQ(ours->not_after(), ossl->not_after());
  EXPECT_TRUE(ours->is_ca());
  EXPECT_TRUE(ours->may_sign_certificates());
  EXPECT_TRUE(ours->may_sign_crls());
  EXPECT_EQ(Bytes(ours->issuer().begin(), ours->issuer().end()), name("Test CA"));
  EXPECT_TRUE(ours->verify_signature(key.public_key()).ok());
  auto other = crypto::PrivateKey::generate(crypto::KeyType::kEcP256);
  EXPECT_FALSE(ours->verify_signature(other->public_key()).ok());
}

TEST_F(PcsCertBuilt, SignatureCoversEveryTbsByte) {
  Bytes der = build(Parts{});
  // Flip a byte inside the subject's CN (tbs): it still parses, and no longer verifies.
  std::string text(der.begin(), der.end());
  size_t at = text.find("Test Leaf");
  ASSERT_NE(at, std::string::npos);
  der[at] ^= 0x01;
  auto c = PcsCert::from_der(der);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->verify_signature(key.public_key()).ok());
}

TEST_F(PcsCertBuilt, KeyUsageAndConstraints) {
  Parts leaf;
  leaf.extensions = {key_usage(0x80)};  // digitalSignature only, no basicConstraints
  auto c = PcsCert::from_der(build(leaf));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_FALSE(c->is_ca());
  EXPECT_FALSE(c->may_sign_certificates());
  EXPECT_FALSE(c->may_sign_crls());
  Parts certs_only;
  certs_only.extensions = {ca_constraints(), key_usage(0x04)};  // keyCertSign
  c = PcsCert::from_der(build(certs_only));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->may_sign_certificates());
  EXPECT_FALSE(c->may_sign_crls());
  Parts none;
  none.extensions = {};
  c = PcsCert::from_der(build(none));
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->is_ca());
  EXPECT_TRUE(c->may_sign_certificates());  // no keyUsage: every use (RFC 5280 4.2.1.3)
}

TEST_F(PcsCertBuilt, GeneralizedTimeAndTheUtcCentury) {
  Parts p;
  p.validity = seq({utc("491231235959Z"), tlv(0x18, to_bytes("20991231000000Z"))});
  auto c = PcsCert::from_der(build(p));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(format_rfc3339(c->not_before()), "2049-12-31T23:59:59Z");
  EXPECT_EQ(format_rfc3339(c->not_after()), "2099-12-31T00:00:00Z");
  p.validity = seq({utc("500101000000Z"), utc("350101000000Z")});
  c = PcsCert::from_der(build(p));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(format_rfc3339(c->not_before()), "1950-01-01T00:00:00Z");
}

TEST_F(PcsCertBuilt, RefusesWhatIsOutsideThePcsProfile) {
  auto expect_refused = [&](const Parts& p, const std::string& why) {
    std::string r = refusal(p);
    EXPECT_NE(r.find(why), std::string::npos) << "expected '" << why << "', got '" << r << "'";
  };
  Parts p;
  p.version = tlv(0xa0, tlv(0x02, {0x01}));
  expect_refused(p, "v3");
  p = Parts{};
  p.alg = p.outer_alg = kEcdsaSha384;
  expect_refused(p, "ecdsa-with-SHA256");
  p = Parts{};
  p.alg = kEcdsaSha384;
  expect_refused(p, "differ");
  p = Parts{};
  p.serial = tlv(0x02, {0x80});
  expect_refused(p, "serial");  // negative
  p = Parts{};
  p.serial = tlv(0x02, {0x00, 0x01});
  expect_refused(p, "serial");  // not minimal
  p = Parts{};
  p.extensions.push_back(extension({0x55, 0x80, 0x1d}, false, {0x05, 0x00}));
  expect_refused(p, "malformed extension");  // an OID subidentifier with a leading 0x80
  p = Parts{};
  p.validity = seq({utc("250230000000Z"), utc("350101000000Z")});  // February 30
  expect_refused(p, "time");
  p = Parts{};
  p.validity = seq({utc("2501010000Z"), utc("350101000000Z")});  // no seconds
  expect_refused(p, "time");
  p = Parts{};
  p.validity = seq({utc("250101000000+0100"), utc("350101000000Z")});
  expect_refused(p, "time");
  p = Parts{};
  p.extensions.push_back(extension({0x55, 0x1d, 0x1e}, true, seq({})));  // nameConstraints
  expect_refused(p, "unsupported critical extension");
  p = Parts{};
  p.extensions.push_back(key_usage(0x06));
  expect_refused(p, "duplicate extension");
  p = Parts{};
  p.extensions.push_back(
      seq({oid({0x55, 0x1d, 0x0e}), tlv(0x01, {0x00}), tlv(0x04, {0x04, 0x00})}));
  expect_refused(p, "critical flag");  // an explicit FALSE is not DER
  for (Bytes extra : {Bytes{0xa3}, Bytes{0x81, 0x01, 0x00}, tlv(0xa4, {})}) {
    p = Parts{};
    p.tbs_extra = extra;  // a broken header, an issuerUniqueID, an unknown field
    expect_refused(p, "malformed TBSCertificate");
  }
  p = Parts{};
  p.extensions = {};
  p.tbs_extra = {0x81, 0x01, 0x00};  // unique identifiers are refused, extensions or not
  expect_refused(p, "malformed TBSCertificate");
  p = Parts{};
  p.trailing = {0x00};
  expect_refused(p, "single DER SEQUENCE");
  p = Parts{};
  p.subject = seq({tlv(0x31, seq({oid({0x55, 0x04, 0x03}), tlv(0x04, to_bytes("x"))}))});
  expect_refused(p, "subject name");  // a name value that is no string
  p = Parts{};
  p.issuer = seq({tlv(0x31, seq({oid({0x55, 0x04, 0x03}), tlv(0x0c, {0xc0, 0x80})}))});
  expect_refused(p, "issuer name");  // overlong UTF-8 (OpenSSL refuses bad UTF-8 too)
  p = Parts{};
  p.subject = seq({tlv(0x31, seq({oid({0x55, 0x04, 0x06}), tlv(0x13, to_bytes("U*"))}))});
  expect_refused(p, "subject name");  // '*' is not a PrintableString character
  // Keys: P-384, RSA, a compressed point, a point off the curve.
  auto p384 = crypto::PrivateKey::generate(crypto::KeyType::kEcP384);
  p = Parts{};
  p.spki = p384->public_key().to_der();
  expect_refused(p, "P-256");
  auto rsa = crypto::PrivateKey::generate(crypto::KeyType::kRsa);
  p = Parts{};
  p.spki = rsa->public_key().to_der();
  expect_refused(p, "P-256");
  Bytes spki = key.public_key().to_der();
  Bytes point(spki.end() - 64, spki.end());
  Bytes alg(spki.begin() + 2, spki.end() - 68);  // the AlgorithmIdentifier TLV
  Bytes compressed{0x00, 0x02};
  compressed.insert(compressed.end(), point.begin(), point.begin() + 32);
  p = Parts{};
  p.spki = seq({alg, tlv(0x03, compressed)});
  expect_refused(p, "uncompressed");
  Bytes off_curve{0x00, 0x04};
  off_curve.insert(off_curve.end(), point.begin(), point.end());
  off_curve.back() ^= 0x01;
  p = Parts{};
  p.spki = seq({alg, tlv(0x03, off_curve)});
  expect_refused(p, "not a point on P-256");
}

TEST_F(PcsCertBuilt, EveryTruncationIsAnErrorNotACrash) {
  Bytes der = build(Parts{});
  for (size_t n = 0; n < der.size(); ++n) {
    EXPECT_FALSE(PcsCert::from_der(ByteSpan(der).first(n)).ok()) << n;
  }
  // Every single-byte corruption is either refused or still parses; none reads out of bounds
  // (ASan checks the latter in CI).
  for (size_t i = 0; i < der.size(); ++i) {
    Bytes bad = der;
    bad[i] ^= 0xff;
    (void)PcsCert::from_der(bad);
  }
}

TEST(PcsCertPem, BlocksInOrderTextBetweenIgnored) {
  auto key = crypto::PrivateKey::generate(crypto::KeyType::kEcP256);
  crypto::CertificateSpec spec;
  spec.subject_cn = "a";
  spec.not_before = from_unix_seconds(1700000000);
  spec.not_after = from_unix_seconds(1900000000);
  auto a = crypto::issue_certificate(spec, key->public_key(), *key, nullptr);
  spec.subject_cn = "b";
  auto b = crypto::issue_certificate(spec, key->public_key(), *key, nullptr);
  ASSERT_TRUE(a.ok() && b.ok());
  std::string crlf = b->pem();
  for (size_t i = 0; (i = crlf.find('\n', i)) != std::string::npos; i += 2) crlf.insert(i, "\r");
  auto blocks = PcsCert::pem_blocks("leading text\n" + a->pem() + "between\n" + crlf);
  ASSERT_TRUE(blocks.ok()) << blocks.status().message();
  ASSERT_EQ(blocks->size(), 2u);
  EXPECT_EQ((*blocks)[0], a->der());
  EXPECT_EQ((*blocks)[1], b->der());
  EXPECT_FALSE(PcsCert::pem_blocks("no blocks").ok());
  EXPECT_FALSE(PcsCert::pem_blocks(a->pem() + b->pem(), 1).ok());  // too many
  std::string cut = a->pem();
  cut.resize(cut.find("-----END"));
  EXPECT_FALSE(PcsCert::pem_blocks(cut).ok());
  std::string junk = a->pem();
  junk[junk.find('\n') + 3] = '*';
  EXPECT_FALSE(PcsCert::pem_blocks(junk).ok());
}

}  // namespace
}  // namespace custos::attestation::dcap

namespace custos::attestation::dcap {
namespace {

TEST(DerTlv, MinimalLengthsRoundTripThroughTheReader) {
  for (size_t n : {0u, 1u, 0x7fu, 0x80u, 0xffu, 0x100u, 0xffffu, 0x10000u}) {
    Bytes content(n, 0x5a);
    Bytes enc = der::tlv(0x04, content);
    size_t header = n < 0x80 ? 2 : n < 0x100 ? 3 : n < 0x10000 ? 4 : 5;
    EXPECT_EQ(enc.size(), header + n) << n;
    der::Reader r(enc);
    auto e = r.expect(0x04);
    ASSERT_TRUE(e) << n;
    EXPECT_EQ(e->value.size(), n);
    EXPECT_TRUE(r.empty());
  }
}

}  // namespace
}  // namespace custos::attestation::dcap
