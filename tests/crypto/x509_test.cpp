#include "crypto/x509.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "base/encoding.h"
#include "crypto/test_util.h"

namespace custos::crypto {
namespace {

using testing::hex;
using testing::unhex;

SysTime at(std::string_view rfc3339) {
  auto t = parse_rfc3339(rfc3339);
  EXPECT_TRUE(t.ok()) << rfc3339;
  return t.ok() ? *t : SysTime();
}

// Real trust anchors live in shared/, beside the repository checkout (the CI layout). A missing
// directory is a broken checkout, so the test fails rather than skips.
std::optional<Bytes> read_vector(const std::string& rel) {
  std::string path = std::string(CUSTOS_SOURCE_DIR) + "/../shared/vectors/" + rel;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "missing test vector " << path
                  << " (shared/ must be checked out beside the repository)";
    return std::nullopt;
  }
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

PrivateKey new_key(KeyType t = KeyType::kEcP256) {
  auto k = PrivateKey::generate(t);
  EXPECT_TRUE(k.ok());
  return std::move(k).value();
}

CertificateSpec spec(const std::string& cn, bool ca, SysTime from, SysTime to) {
  CertificateSpec s;
  s.subject_cn = cn;
  s.subject_extra = {{"O", "Custos Test"}, {"C", "US"}};
  s.not_before = from;
  s.not_after = to;
  s.is_ca = ca;
  return s;
}

Certificate must(Result<Certificate> r) {
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? std::move(r).value() : Certificate();
}

// A three-level test PKI: root (2020..2040) -> intermediate (2021..2035) -> leaf (2024..2025).
struct Pki {
  PrivateKey root_key = new_key();
  PrivateKey int_key = new_key(KeyType::kEcP384);
  PrivateKey leaf_key = new_key();
  Certificate root;
  Certificate inter;
  Certificate leaf;

  Pki() {
    CertificateSpec rs = spec("Custos Test Root", true, at("2020-01-01T00:00:00Z"),
                              at("2040-01-01T00:00:00Z"));
    rs.path_len = 1;
    root = must(issue_certificate(rs, root_key.public_key(), root_key, nullptr));
    inter = must(issue_certificate(
        spec("Custos Test Intermediate", true, at("2021-01-01T00:00:00Z"),
             at("2035-01-01T00:00:00Z")),
        int_key.public_key(), root_key, &root));
    CertificateSpec ls = spec("leaf.custos.test", false, at("2024-01-01T00:00:00Z"),
                              at("2025-01-01T00:00:00Z"));
    ls.serial = {0x00, 0x12, 0x34};
    ls.dns_names = {"leaf.custos.test", "*.custos.test"};
    ls.ip_addresses = {"127.0.0.1", "::1", "10.1.2.3"};
    ls.server_auth = true;
    ls.client_auth = true;
    ls.extensions = {{"1.2.840.113741.1.13.1", Bytes{0x30, 0x03, 0x02, 0x01, 0x07}}};
    leaf = must(issue_certificate(ls, leaf_key.public_key(), int_key, &inter));
  }

  Crl crl(const Certificate& issuer, const PrivateKey& key, std::vector<Bytes> revoked,
          std::string_view from = "2024-01-01T00:00:00Z",
          std::string_view to = "2024-12-31T00:00:00Z") const {
    auto c = issue_crl(issuer, key, revoked, at(from), at(to));
    EXPECT_TRUE(c.ok()) << c.status().to_string();
    return c.ok() ? std::move(c).value() : Crl();
  }
};

const Pki& pki() {
  static const Pki p;
  return p;
}

ChainOptions opts_at(std::string_view t) {
  ChainOptions o;
  o.at = at(t);
  return o;
}

constexpr const char* kInside = "2024-06-01T00:00:00Z";

TEST(Certificate, Accessors) {
  const Pki& p = pki();
  EXPECT_EQ(p.leaf.subject(), "CN=leaf.custos.test,O=Custos Test,C=US");
  EXPECT_EQ(p.leaf.issuer(), "CN=Custos Test Intermediate,O=Custos Test,C=US");
  EXPECT_EQ(p.leaf.subject_cn(), "leaf.custos.test");
  EXPECT_EQ(hex(p.leaf.serial()), "1234");  // leading zero dropped
  EXPECT_EQ(p.root.serial().size(), 16u);   // random serial
  EXPECT_EQ(format_rfc3339(p.leaf.not_before()), "2024-01-01T00:00:00Z");
  EXPECT_EQ(format_rfc3339(p.leaf.not_after()), "2025-01-01T00:00:00Z");
  EXPECT_FALSE(p.leaf.is_ca());
  EXPECT_TRUE(p.inter.is_ca());
  EXPECT_TRUE(p.root.is_ca());
  EXPECT_EQ(p.leaf.public_key().to_der(), p.leaf_key.public_key().to_der());
  EXPECT_EQ(p.inter.public_key().type(), KeyType::kEcP384);
  EXPECT_EQ(p.leaf.fingerprint_sha256(), sha256(p.leaf.der()));
  EXPECT_EQ(p.leaf.dns_names(), (std::vector<std::string>{"leaf.custos.test", "*.custos.test"}));
  EXPECT_EQ(p.leaf.ip_addresses(), (std::vector<std::string>{"127.0.0.1", "::1", "10.1.2.3"}));
  EXPECT_TRUE(p.root.dns_names().empty());
  auto ext = p.leaf.extension("1.2.840.113741.1.13.1");
  ASSERT_TRUE(ext.has_value());
  EXPECT_EQ(hex(*ext), "3003020107");
  EXPECT_FALSE(p.leaf.extension("1.2.3.4").has_value());
  EXPECT_FALSE(p.leaf.extension("not an oid").has_value());
  // Standard extensions are reachable too: basicConstraints is a DER SEQUENCE.
  auto bc = p.root.extension("2.5.29.19");
  ASSERT_TRUE(bc.has_value());
  EXPECT_EQ((*bc)[0], 0x30);
  EXPECT_TRUE(p.leaf.verify_signature(p.int_key.public_key()).ok());
  EXPECT_EQ(p.leaf.verify_signature(p.root_key.public_key()).code(), Code::kPermissionDenied);
  EXPECT_TRUE(p.root.verify_signature(p.root.public_key()).ok());
}

TEST(Certificate, EncodingsAndDetection) {
  const Pki& p = pki();
  Bytes der = p.leaf.der();
  std::string pem = p.leaf.pem();
  EXPECT_EQ(pem.rfind("-----BEGIN CERTIFICATE-----", 0), 0u);
  auto a = Certificate::from_der(der);
  auto b = Certificate::from_pem(pem);
  auto c = Certificate::from_any(der);
  auto d = Certificate::from_any(as_bytes(pem));
  auto e = Certificate::from_any(as_bytes(hex_encode(der)));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok() && e.ok());
  for (const Certificate* x : {&*a, &*b, &*c, &*d, &*e}) EXPECT_EQ(x->der(), der);

  auto chain = Certificate::chain_from_pem(p.leaf.pem() + p.inter.pem() + "\n" + p.root.pem());
  ASSERT_TRUE(chain.ok()) << chain.status().to_string();
  ASSERT_EQ(chain->size(), 3u);
  EXPECT_EQ((*chain)[0].subject_cn(), "leaf.custos.test");
  EXPECT_EQ((*chain)[2].subject_cn(), "Custos Test Root");

  // Reject twins: truncated, trailing junk, garbage, empty, a damaged second PEM block.
  EXPECT_FALSE(Certificate::from_der(Bytes(der.begin(), der.end() - 1)).ok());
  Bytes junk = der;
  junk.push_back(0);
  EXPECT_FALSE(Certificate::from_der(junk).ok());
  EXPECT_FALSE(Certificate::from_any(as_bytes("hello world")).ok());
  EXPECT_FALSE(Certificate::from_any({}).ok());
  EXPECT_FALSE(Certificate::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").ok());
  EXPECT_FALSE(Certificate::chain_from_pem("").ok());
  std::string damaged = p.inter.pem();
  damaged[40] = damaged[40] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(Certificate::chain_from_pem(p.leaf.pem() + damaged).ok());
}

TEST(VerifyChain, AcceptsAndReturnsPath) {
  const Pki& p = pki();
  auto path = verify_chain(p.leaf, {p.inter}, p.root, opts_at(kInside));
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  ASSERT_EQ(path->size(), 3u);
  EXPECT_EQ((*path)[0].der(), p.leaf.der());
  EXPECT_EQ((*path)[1].der(), p.inter.der());
  EXPECT_EQ((*path)[2].der(), p.root.der());
  // Unrelated extra intermediates are ignored.
  auto with_extra = verify_chain(p.leaf, {p.root, p.leaf, p.inter}, p.root, opts_at(kInside));
  ASSERT_TRUE(with_extra.ok()) << with_extra.status().to_string();
  EXPECT_EQ(with_extra->size(), 3u);
  // The root on its own.
  auto root_only = verify_chain(p.root, {}, p.root, opts_at(kInside));
  ASSERT_TRUE(root_only.ok());
  EXPECT_EQ(root_only->size(), 1u);
}

TEST(VerifyChain, RejectsOutsideValidity) {
  const Pki& p = pki();
  auto expired = verify_chain(p.leaf, {p.inter}, p.root, opts_at("2025-01-01T00:00:01Z"));
  EXPECT_EQ(expired.status().code(), Code::kPermissionDenied);
  EXPECT_NE(expired.status().message().find("expired"), std::string::npos);
  auto early = verify_chain(p.leaf, {p.inter}, p.root, opts_at("2023-12-31T23:59:59Z"));
  EXPECT_NE(early.status().message().find("not yet valid"), std::string::npos);
  // Boundaries are inclusive.
  EXPECT_TRUE(verify_chain(p.leaf, {p.inter}, p.root, opts_at("2025-01-01T00:00:00Z")).ok());
  EXPECT_TRUE(verify_chain(p.leaf, {p.inter}, p.root, opts_at("2024-01-01T00:00:00Z")).ok());
  // An intermediate outside its validity fails the chain even if the leaf is fine.
  Certificate old_inter = must(issue_certificate(
      spec("Custos Test Intermediate", true, at("2021-01-01T00:00:00Z"),
           at("2022-01-01T00:00:00Z")),
      p.int_key.public_key(), p.root_key, &p.root));
  auto r = verify_chain(p.leaf, {old_inter}, p.root, opts_at(kInside));
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("Intermediate"), std::string::npos);
}

TEST(VerifyChain, HistoricAndFarFutureTimes) {
  PrivateKey k = new_key();
  Certificate old_root = must(issue_certificate(
      spec("Old Root", true, at("1985-01-01T00:00:00Z"), at("1990-01-01T00:00:00Z")),
      k.public_key(), k, nullptr));
  EXPECT_EQ(format_rfc3339(old_root.not_before()), "1985-01-01T00:00:00Z");
  EXPECT_TRUE(verify_chain(old_root, {}, old_root, opts_at("1987-06-01T00:00:00Z")).ok());
  EXPECT_FALSE(verify_chain(old_root, {}, old_root, opts_at("2024-06-01T00:00:00Z")).ok());
  Certificate future = must(issue_certificate(
      spec("Future Root", true, at("2055-01-01T00:00:00Z"), at("2099-01-01T00:00:00Z")),
      k.public_key(), k, nullptr));
  EXPECT_EQ(format_rfc3339(future.not_after()), "2099-01-01T00:00:00Z");
  EXPECT_TRUE(verify_chain(future, {}, future, opts_at("2060-01-01T00:00:00Z")).ok());
  EXPECT_FALSE(verify_chain(future, {}, future, opts_at("2050-01-01T00:00:00Z")).ok());
}

TEST(VerifyChain, ImpostorRootWithSameNameIsRejected) {
  const Pki& p = pki();
  PrivateKey evil = new_key();
  CertificateSpec rs = spec("Custos Test Root", true, at("2020-01-01T00:00:00Z"),
                            at("2040-01-01T00:00:00Z"));
  Certificate impostor = must(issue_certificate(rs, evil.public_key(), evil, nullptr));
  ASSERT_EQ(impostor.subject(), p.root.subject());
  Certificate evil_inter = must(issue_certificate(
      spec("Custos Test Intermediate", true, at("2021-01-01T00:00:00Z"),
           at("2035-01-01T00:00:00Z")),
      p.int_key.public_key(), evil, &impostor));
  // The genuine chain does not verify against the impostor as the pinned root...
  auto a = verify_chain(p.leaf, {p.inter}, impostor, opts_at(kInside));
  EXPECT_EQ(a.status().code(), Code::kPermissionDenied);
  EXPECT_NE(a.status().message().find("pinned root"), std::string::npos);
  // ...and an impostor-issued intermediate does not verify against the real root, even when the
  // impostor root is offered as an extra intermediate.
  EXPECT_FALSE(verify_chain(p.leaf, {evil_inter}, p.root, opts_at(kInside)).ok());
  EXPECT_FALSE(verify_chain(p.leaf, {evil_inter, impostor}, p.root, opts_at(kInside)).ok());
  EXPECT_FALSE(verify_chain(impostor, {}, p.root, opts_at(kInside)).ok());
}

TEST(VerifyChain, RejectsBrokenStructure) {
  const Pki& p = pki();
  // Missing intermediate.
  auto missing = verify_chain(p.leaf, {}, p.root, opts_at(kInside));
  EXPECT_NE(missing.status().message().find("no path"), std::string::npos);
  // Intermediate without CA:TRUE.
  Certificate not_ca = must(issue_certificate(
      spec("Custos Test Intermediate", false, at("2021-01-01T00:00:00Z"),
           at("2035-01-01T00:00:00Z")),
      p.int_key.public_key(), p.root_key, &p.root));
  auto r = verify_chain(p.leaf, {not_ca}, p.root, opts_at(kInside));
  EXPECT_NE(r.status().message().find("not a CA"), std::string::npos) << r.status().to_string();
  // A root with pathLen 0 may not have an intermediate CA below it.
  CertificateSpec rs = spec("Strict Root", true, at("2020-01-01T00:00:00Z"),
                            at("2040-01-01T00:00:00Z"));
  rs.path_len = 0;
  Certificate strict = must(issue_certificate(rs, p.root_key.public_key(), p.root_key, nullptr));
  CertificateSpec is = spec("Strict Intermediate", true, at("2021-01-01T00:00:00Z"),
                            at("2035-01-01T00:00:00Z"));
  Certificate inter = must(issue_certificate(is, p.int_key.public_key(), p.root_key, &strict));
  CertificateSpec ls = spec("leaf2", false, at("2024-01-01T00:00:00Z"),
                            at("2025-01-01T00:00:00Z"));
  Certificate leaf = must(issue_certificate(ls, p.leaf_key.public_key(), p.int_key, &inter));
  auto pl = verify_chain(leaf, {inter}, strict, opts_at(kInside));
  EXPECT_NE(pl.status().message().find("pathLenConstraint"), std::string::npos);
  // A leaf directly under the strict root is fine.
  Certificate direct = must(issue_certificate(ls, p.leaf_key.public_key(), p.root_key, &strict));
  EXPECT_TRUE(verify_chain(direct, {}, strict, opts_at(kInside)).ok());
}

TEST(VerifyChain, CrlAcceptsCleanAndRejectsRevoked) {
  const Pki& p = pki();
  ChainOptions o = opts_at(kInside);
  o.crls = {p.crl(p.inter, p.int_key, {{0x99}}), p.crl(p.root, p.root_key, {})};
  o.require_crl_for_each_ca = true;
  EXPECT_TRUE(verify_chain(p.leaf, {p.inter}, p.root, o).ok());

  ChainOptions revoked_leaf = opts_at(kInside);
  revoked_leaf.crls = {p.crl(p.inter, p.int_key, {{0x99}, {0x12, 0x34}})};
  auto r = verify_chain(p.leaf, {p.inter}, p.root, revoked_leaf);
  EXPECT_EQ(r.status().code(), Code::kPermissionDenied);
  EXPECT_NE(r.status().message().find("revoked"), std::string::npos);
  EXPECT_NE(r.status().message().find("1234"), std::string::npos);

  ChainOptions revoked_inter = opts_at(kInside);
  revoked_inter.crls = {p.crl(p.root, p.root_key, {p.inter.serial()})};
  auto ri = verify_chain(p.leaf, {p.inter}, p.root, revoked_inter);
  EXPECT_NE(ri.status().message().find("revoked"), std::string::npos);
  EXPECT_NE(ri.status().message().find("Intermediate"), std::string::npos);
}

TEST(VerifyChain, CrlMustBeGenuineAndCurrent) {
  const Pki& p = pki();
  // A CRL with the intermediate's name signed by another key is refused, not ignored.
  PrivateKey evil = new_key(KeyType::kEcP384);
  Certificate fake_inter = must(issue_certificate(
      spec("Custos Test Intermediate", true, at("2021-01-01T00:00:00Z"),
           at("2035-01-01T00:00:00Z")),
      evil.public_key(), evil, nullptr));
  ChainOptions forged = opts_at(kInside);
  forged.crls = {p.crl(fake_inter, evil, {})};
  auto f = verify_chain(p.leaf, {p.inter}, p.root, forged);
  EXPECT_NE(f.status().message().find("not signed"), std::string::npos);

  ChainOptions stale = opts_at("2024-12-31T00:00:01Z");
  stale.crls = {p.crl(p.inter, p.int_key, {})};
  EXPECT_NE(verify_chain(p.leaf, {p.inter}, p.root, stale).status().message().find("out of date"),
            std::string::npos);
  ChainOptions early = opts_at(kInside);
  early.crls = {p.crl(p.inter, p.int_key, {}, "2024-07-01T00:00:00Z", "2024-08-01T00:00:00Z")};
  EXPECT_FALSE(verify_chain(p.leaf, {p.inter}, p.root, early).ok());

  ChainOptions required = opts_at(kInside);
  required.require_crl_for_each_ca = true;
  required.crls = {p.crl(p.inter, p.int_key, {})};  // none from the root
  auto m = verify_chain(p.leaf, {p.inter}, p.root, required);
  EXPECT_NE(m.status().message().find("no CRL"), std::string::npos);
}

TEST(Crl, AccessorsAndEncodings) {
  const Pki& p = pki();
  Crl crl = p.crl(p.inter, p.int_key, {{0x00, 0x12, 0x34}, {0x05}});
  EXPECT_EQ(crl.issuer(), p.inter.subject());
  EXPECT_EQ(format_rfc3339(crl.this_update()), "2024-01-01T00:00:00Z");
  ASSERT_TRUE(crl.next_update().has_value());
  EXPECT_EQ(format_rfc3339(*crl.next_update()), "2024-12-31T00:00:00Z");
  EXPECT_EQ(crl.entry_count(), 2u);
  EXPECT_TRUE(crl.is_revoked(Bytes{0x12, 0x34}));
  EXPECT_TRUE(crl.is_revoked(Bytes{0x00, 0x00, 0x12, 0x34}));
  EXPECT_TRUE(crl.is_revoked(Bytes{0x05}));
  EXPECT_FALSE(crl.is_revoked(Bytes{0x12, 0x35}));
  EXPECT_FALSE(crl.is_revoked(Bytes{0x34}));
  EXPECT_TRUE(crl.verify_signature(p.int_key.public_key()).ok());
  EXPECT_EQ(crl.verify_signature(p.root_key.public_key()).code(), Code::kPermissionDenied);

  Bytes der = crl.der();
  for (const Bytes& in : {der, to_bytes(crl.pem()), to_bytes(hex_encode(der)),
                          to_bytes(hex_encode(der).substr(0, 20) + "\n" + hex_encode(der).substr(20))}) {
    auto back = Crl::from_any(in);
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(back->der(), der);
  }
  EXPECT_TRUE(Crl::from_pem(crl.pem()).ok());
  EXPECT_FALSE(Crl::from_any(as_bytes("zz")).ok());
  EXPECT_FALSE(Crl::from_der(Bytes(der.begin(), der.end() - 3)).ok());
  EXPECT_FALSE(Crl::from_any(p.leaf.der()).ok());  // a certificate is not a CRL
  EXPECT_FALSE(issue_crl(p.inter, p.root_key, {}, at("2024-01-01T00:00:00Z"),
                         at("2024-02-01T00:00:00Z"))
                   .ok());  // key does not match the issuer
}

TEST(Issue, MixedKeyTypes) {
  PrivateKey rsa = new_key(KeyType::kRsa);
  PrivateKey ed = new_key(KeyType::kEd25519);
  PrivateKey p521 = new_key(KeyType::kEcP521);
  Certificate root = must(issue_certificate(
      spec("RSA Root", true, at("2020-01-01T00:00:00Z"), at("2030-01-01T00:00:00Z")),
      rsa.public_key(), rsa, nullptr));
  Certificate mid = must(issue_certificate(
      spec("Ed Mid", true, at("2020-01-01T00:00:00Z"), at("2030-01-01T00:00:00Z")),
      ed.public_key(), rsa, &root));
  Certificate leaf = must(issue_certificate(
      spec("p521 leaf", false, at("2020-01-01T00:00:00Z"), at("2030-01-01T00:00:00Z")),
      p521.public_key(), ed, &mid));
  auto path = verify_chain(leaf, {mid}, root, opts_at(kInside));
  EXPECT_TRUE(path.ok()) << path.status().to_string();
  ChainOptions o = opts_at(kInside);
  auto c1 = issue_crl(mid, ed, {leaf.serial()}, at("2024-01-01T00:00:00Z"),
                      at("2025-01-01T00:00:00Z"));
  ASSERT_TRUE(c1.ok()) << c1.status().to_string();
  o.crls = {*c1};
  EXPECT_FALSE(verify_chain(leaf, {mid}, root, o).ok());
}

TEST(Issue, RejectsBadSpecs) {
  const Pki& p = pki();
  CertificateSpec s = spec("x", false, at("2024-01-01T00:00:00Z"), at("2025-01-01T00:00:00Z"));
  // Issuer key that does not belong to the issuer certificate.
  EXPECT_FALSE(issue_certificate(s, p.leaf_key.public_key(), p.root_key, &p.inter).ok());
  // Self-signed with someone else's key.
  EXPECT_FALSE(issue_certificate(s, p.leaf_key.public_key(), p.root_key, nullptr).ok());
  CertificateSpec bad_ip = s;
  bad_ip.ip_addresses = {"300.1.1.1"};
  EXPECT_FALSE(issue_certificate(bad_ip, p.leaf_key.public_key(), p.int_key, &p.inter).ok());
  CertificateSpec bad_oid = s;
  bad_oid.extensions = {{"foo", Bytes{0x05, 0x00}}};
  EXPECT_FALSE(issue_certificate(bad_oid, p.leaf_key.public_key(), p.int_key, &p.inter).ok());
  CertificateSpec dup = s;
  dup.extensions = {{"2.5.29.19", Bytes{0x30, 0x00}}};  // basicConstraints is ours to set
  EXPECT_FALSE(issue_certificate(dup, p.leaf_key.public_key(), p.int_key, &p.inter).ok());
  CertificateSpec backwards = s;
  std::swap(backwards.not_before, backwards.not_after);
  EXPECT_FALSE(issue_certificate(backwards, p.leaf_key.public_key(), p.int_key, &p.inter).ok());
  // A DNS name with a comma stays one name (no config-string injection).
  CertificateSpec comma = s;
  comma.dns_names = {"a.test,IP:1.2.3.4"};
  Certificate c = must(issue_certificate(comma, p.leaf_key.public_key(), p.int_key, &p.inter));
  EXPECT_EQ(c.dns_names(), std::vector<std::string>{"a.test,IP:1.2.3.4"});
  EXPECT_TRUE(c.ip_addresses().empty());
}

TEST(Csr, RoundTripAndTamper) {
  PrivateKey k = new_key();
  auto pem = make_csr(k, "svc.custos.test", {"svc.custos.test", "alt.custos.test"});
  ASSERT_TRUE(pem.ok()) << pem.status().to_string();
  auto info = parse_csr(*pem);
  ASSERT_TRUE(info.ok()) << info.status().to_string();
  EXPECT_EQ(info->subject_cn, "svc.custos.test");
  EXPECT_EQ(info->dns_names, (std::vector<std::string>{"svc.custos.test", "alt.custos.test"}));
  EXPECT_EQ(info->public_key.to_der(), k.public_key().to_der());

  auto no_san = make_csr(new_key(KeyType::kEd25519), "ed", {});
  ASSERT_TRUE(no_san.ok());
  auto ed = parse_csr(*no_san);
  ASSERT_TRUE(ed.ok()) << ed.status().to_string();
  EXPECT_TRUE(ed->dns_names.empty());

  // Flip one bit of the signature: the self-signature no longer verifies.
  std::string body = *pem;
  const std::string begin = "-----BEGIN CERTIFICATE REQUEST-----\n";
  const std::string end = "-----END CERTIFICATE REQUEST-----\n";
  std::string b64 = body.substr(begin.size(), body.size() - begin.size() - end.size());
  auto der = base64_decode(strip_whitespace(b64));
  ASSERT_TRUE(der.ok());
  der->back() ^= 0x01;
  std::string tampered = begin + base64_encode(*der) + "\n" + end;
  auto bad = parse_csr(tampered);
  EXPECT_FALSE(bad.ok());
  EXPECT_FALSE(parse_csr("not a csr").ok());
}

// ---- Real trust anchors ----

TEST(TrustAnchors, IntelSgxRootCa) {
  auto der = read_vector("_trust-anchors/intel/Intel_SGX_Root_CA.der");
  ASSERT_TRUE(der.has_value());
  auto root = Certificate::from_any(*der);
  ASSERT_TRUE(root.ok()) << root.status().to_string();
  EXPECT_EQ(hex(root->fingerprint_sha256()),
            "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3");
  EXPECT_EQ(root->subject_cn(), "Intel SGX Root CA");
  EXPECT_EQ(root->subject(),
            "C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX Root CA");
  EXPECT_TRUE(root->is_ca());
  EXPECT_EQ(root->public_key().type(), KeyType::kEcP256);
  EXPECT_EQ(format_rfc3339(root->not_before()).substr(0, 10), "2018-05-21");
  EXPECT_EQ(format_rfc3339(root->not_after()).substr(0, 10), "2049-12-31");
  EXPECT_TRUE(root->verify_signature(root->public_key()).ok());
  EXPECT_TRUE(verify_chain(*root, {}, *root, opts_at(kInside)).ok());
  EXPECT_FALSE(verify_chain(*root, {}, *root, opts_at("2017-01-01T00:00:00Z")).ok());

  // An impostor root with the same subject name (built by copying the name) and another key.
  PrivateKey evil = new_key();
  CertificateSpec s;
  s.subject_cn = "Intel SGX Root CA";
  s.not_before = at("2018-01-01T00:00:00Z");
  s.not_after = at("2049-01-01T00:00:00Z");
  s.is_ca = true;
  Certificate impostor = must(issue_certificate(s, evil.public_key(), evil, nullptr));
  Certificate fake_leaf = must(issue_certificate(
      spec("Intel SGX PCK Certificate", false, at("2020-01-01T00:00:00Z"),
           at("2030-01-01T00:00:00Z")),
      new_key().public_key(), evil, &impostor));
  EXPECT_FALSE(verify_chain(fake_leaf, {impostor}, *root, opts_at(kInside)).ok());
}

struct AmdGeneration {
  const char* name;
  const char* ark_cn;
};

TEST(TrustAnchors, AmdAskSignedByArkWithRsaPss) {
  for (AmdGeneration g : {AmdGeneration{"milan", "ARK-Milan"}, AmdGeneration{"genoa", "ARK-Genoa"},
                          AmdGeneration{"turin", "ARK-Turin"}}) {
    SCOPED_TRACE(g.name);
    auto ark_pem = read_vector(std::string("_trust-anchors/amd/virtee-sev/") + g.name + "/ark.pem");
    auto ask_pem = read_vector(std::string("_trust-anchors/amd/virtee-sev/") + g.name + "/ask.pem");
    ASSERT_TRUE(ark_pem && ask_pem);
    auto ark = Certificate::from_any(*ark_pem);
    auto ask = Certificate::from_any(*ask_pem);
    ASSERT_TRUE(ark.ok() && ask.ok());
    EXPECT_EQ(ark->subject_cn(), g.ark_cn);
    EXPECT_EQ(ark->public_key().type(), KeyType::kRsa);
    EXPECT_EQ(ark->public_key().bits(), 4096);
    // ASK <- ARK is RSA-PSS with SHA-384 and a 48-byte salt.
    EXPECT_TRUE(ask->verify_signature(ark->public_key()).ok());
    EXPECT_FALSE(ask->verify_signature(ask->public_key()).ok());
    auto path = verify_chain(*ask, {}, *ark, opts_at(kInside));
    ASSERT_TRUE(path.ok()) << path.status().to_string();
    EXPECT_EQ(path->size(), 2u);
    EXPECT_FALSE(verify_chain(*ask, {}, *ark, opts_at("2019-01-01T00:00:00Z")).ok());
  }
  // Cross-generation: Milan's ASK does not chain to Genoa's ARK.
  auto milan_ask = Certificate::from_any(*read_vector("_trust-anchors/amd/virtee-sev/milan/ask.pem"));
  auto genoa_ark = Certificate::from_any(*read_vector("_trust-anchors/amd/virtee-sev/genoa/ark.pem"));
  ASSERT_TRUE(milan_ask.ok() && genoa_ark.ok());
  EXPECT_FALSE(verify_chain(*milan_ask, {}, *genoa_ark, opts_at(kInside)).ok());
}

TEST(TrustAnchors, AmdBundleAndVcekChain) {
  auto bundle = read_vector("_trust-anchors/amd/go-sev-guest/ask_ark_milan.pem");
  ASSERT_TRUE(bundle.has_value());
  auto chain = Certificate::chain_from_pem(as_string_view(*bundle));
  ASSERT_TRUE(chain.ok()) << chain.status().to_string();
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ((*chain)[0].subject_cn(), "SEV-Milan");
  EXPECT_EQ((*chain)[1].subject_cn(), "ARK-Milan");
  EXPECT_EQ(hex((*chain)[1].fingerprint_sha256()),
            "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd");

  auto vcek_der = read_vector("snp-virtee-milan/vcek_milan.der");
  ASSERT_TRUE(vcek_der.has_value());
  auto vcek = Certificate::from_any(*vcek_der);
  ASSERT_TRUE(vcek.ok()) << vcek.status().to_string();
  EXPECT_EQ(vcek->serial(), Bytes{0x00});  // AMD issues VCEKs with serial 0
  EXPECT_EQ(vcek->public_key().type(), KeyType::kEcP384);
  // productName extension: an IA5String "Milan-B0".
  auto product = vcek->extension("1.3.6.1.4.1.3704.1.2");
  ASSERT_TRUE(product.has_value());
  EXPECT_EQ(to_string(*product), std::string("\x16\x08Milan-B0"));
  auto path = verify_chain(*vcek, {(*chain)[0]}, (*chain)[1], opts_at(kInside));
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  EXPECT_EQ(path->size(), 3u);
  EXPECT_FALSE(verify_chain(*vcek, {}, (*chain)[1], opts_at(kInside)).ok());
  EXPECT_FALSE(verify_chain(*vcek, {(*chain)[0]}, (*chain)[1], opts_at("2030-04-04T00:00:00Z")).ok());
}

}  // namespace
}  // namespace custos::crypto

namespace custos::crypto {
namespace {

// A CRL and its CA made with the openssl CLI (fuzz seeds): a cross-check against another
// implementation's encoder.
Bytes read_repo_file(const std::string& rel) {
  std::ifstream in(std::string(CUSTOS_SOURCE_DIR) + "/" + rel, std::ios::binary);
  EXPECT_TRUE(in.good()) << rel;
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(Crl, ParsesOpensslCliCrl) {
  auto ca = Certificate::from_any(read_repo_file("fuzz/corpus/x509/seed_ca.pem"));
  ASSERT_TRUE(ca.ok()) << ca.status().to_string();
  for (const char* f : {"seed_crl.der", "seed_crl.pem", "seed_crl_hex.txt"}) {
    SCOPED_TRACE(f);
    auto crl = Crl::from_any(read_repo_file(std::string("fuzz/corpus/x509/") + f));
    ASSERT_TRUE(crl.ok()) << crl.status().to_string();
    EXPECT_EQ(crl->issuer(), "CN=Fuzz Seed CA");
    EXPECT_EQ(crl->entry_count(), 1u);
    EXPECT_TRUE(crl->is_revoked(Bytes{0x12, 0x34}));
    EXPECT_FALSE(crl->is_revoked(Bytes{0x12}));
    EXPECT_TRUE(crl->verify_signature(ca->public_key()).ok());
    EXPECT_TRUE(crl->next_update().has_value());
    EXPECT_LT(crl->this_update(), *crl->next_update());
  }
}

}  // namespace
}  // namespace custos::crypto
