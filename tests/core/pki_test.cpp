// The PKI engine against an in-memory barrier (no dispatcher): CA generation, roles, issue and
// sign with their name-policy rejections, revocation and the CRL, the intermediate flow across
// two mounts, tidy and URL config. Certificates are cross-checked with the openssl CLI.
#include "core/engines/pki.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/encoding.h"
#include "core/barrier.h"
#include "core/view.h"
#include "crypto/pkey.h"
#include "crypto/x509.h"
#include "storage/backend.h"

namespace custos::core {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using Op = Operation;

std::string str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return "<missing " + std::string(key) + ">";
  return std::string(v->as_string());
}

void expect_invalid(const Status& st, std::string_view fragment) {
  EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find(fragment), std::string::npos)
      << "\"" << st.message() << "\" lacks \"" << fragment << "\"";
}

// Runs a shell command; returns its exit status and fills `out` with stdout+stderr.
int run(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  std::string text;
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  int rc = ::pclose(p);
  if (out != nullptr) *out = text;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

class PkiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "custos-pki-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    backend_ = storage::open_inmem();
    barrier_ = std::make_unique<Barrier>(*backend_, clock_);
    ASSERT_TRUE(barrier_->initialize().ok());
    mount_.path = "pki/";
    mount_.type = "pki";
    mount_.uuid = "0000-pki";
    engine_ = new_engine("0000-pki");
    ASSERT_NE(engine_, nullptr);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::unique_ptr<Engine> new_engine(const std::string& uuid) {
    EngineContext ctx{View(*barrier_, "logical/" + uuid + "/"), clock_, mount_};
    auto e = make_pki_engine(ctx, mount_);
    EXPECT_TRUE(e.ok()) << e.status().to_string();
    return e.ok() ? std::move(*e) : nullptr;
  }

  Result<Response> call(Op op, const std::string& path, json::object data = {},
                        Engine* engine = nullptr) {
    Request req;
    req.op = op;
    req.path = "pki/" + path;
    req.mount_point = "pki/";
    req.mount_type = "pki";
    req.rel_path = path;
    req.data = std::move(data);
    return (engine != nullptr ? engine : engine_.get())->handle(req);
  }

  json::object ok(Op op, const std::string& path, json::object data = {},
                  Engine* engine = nullptr) {
    auto r = call(op, path, std::move(data), engine);
    EXPECT_TRUE(r.ok()) << path << ": " << r.status().to_string();
    if (!r.ok() || !r->data) return {};
    return *r->data;
  }

  Status fail(Op op, const std::string& path, json::object data = {}) {
    auto r = call(op, path, std::move(data));
    EXPECT_FALSE(r.ok()) << path << " unexpectedly succeeded";
    return r.ok() ? ok_status() : r.status();
  }

  std::string write_file(const std::string& name, std::string_view text) {
    std::string path = (fs::path(dir_) / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  // A root CA on `engine` (EC P-256 by default, fast to generate).
  json::object make_root(Engine* engine = nullptr, json::object extra = {}) {
    if (!extra.contains("common_name")) extra["common_name"] = "Custos Test Root";
    if (!extra.contains("key_type")) extra["key_type"] = "ec";
    return ok(Op::kUpdate, "root/generate/internal", std::move(extra), engine);
  }

  void make_web_role(json::object extra = {}) {
    json::object role{{"allowed_domains", json::array{"example.com"}},
                      {"allow_subdomains", true},
                      {"key_type", "ec"},
                      {"max_ttl", "72h"}};
    for (auto& [k, v] : extra) role[k] = v;
    ok(Op::kUpdate, "roles/web", std::move(role));
  }

  // openssl verify uses the real time: start a minute behind it, so tests can move forward a bit
  // and CRLs (thisUpdate = now) are not from the future.
  FakeClock clock_{std::chrono::system_clock::now() - std::chrono::minutes(1)};
  std::string dir_;
  std::unique_ptr<storage::Backend> backend_;
  std::unique_ptr<Barrier> barrier_;
  MountEntry mount_;
  std::unique_ptr<Engine> engine_;
};

// --- CA generation ---------------------------------------------------------------------------

TEST_F(PkiTest, GenerateRootServesCaInEveryForm) {
  auto root = make_root(nullptr, {{"ttl", "87600h"}, {"issuer_name", "root-2024"}});
  std::string pem = str(root, "certificate");
  auto cert = crypto::Certificate::from_pem(pem);
  ASSERT_TRUE(cert.ok());
  EXPECT_EQ(cert->subject_cn(), "Custos Test Root");
  EXPECT_TRUE(cert->is_ca());
  EXPECT_EQ(str(root, "issuing_ca"), pem);
  EXPECT_EQ(str(root, "issuer_name"), "root-2024");
  EXPECT_FALSE(root.contains("private_key"));  // internal: the key never leaves
  EXPECT_EQ(root.at("expiration").as_int64(), to_unix_seconds(cert->not_after()));
  // Colon-separated lowercase hex, as Vault prints serials.
  std::string serial = str(root, "serial_number");
  std::string hex = serial;
  std::erase(hex, ':');
  EXPECT_EQ(hex, hex_encode(cert->serial()));
  EXPECT_EQ(serial[2], ':');

  auto ca_pem = call(Op::kRead, "ca/pem");
  ASSERT_TRUE(ca_pem.ok() && ca_pem->raw_body);
  EXPECT_EQ(ca_pem->raw_content_type, "application/pem-certificate-chain");
  EXPECT_EQ(*ca_pem->raw_body, cert->pem());
  auto ca_der = call(Op::kRead, "ca");
  ASSERT_TRUE(ca_der.ok() && ca_der->raw_body);
  EXPECT_EQ(ca_der->raw_content_type, "application/pkix-cert");
  EXPECT_EQ(as_bytes(*ca_der->raw_body).size(), cert->der().size());
  EXPECT_EQ(to_bytes(*ca_der->raw_body), cert->der());
  EXPECT_EQ(str(ok(Op::kRead, "cert/ca"), "certificate") + "\n", cert->pem());
  EXPECT_EQ(str(ok(Op::kRead, "cert/" + serial), "certificate") + "\n", cert->pem());

  std::string text;
  ASSERT_EQ(run("openssl x509 -noout -text -in " + write_file("ca.pem", pem), &text), 0) << text;
  EXPECT_NE(text.find("CA:TRUE"), std::string::npos) << text;
  EXPECT_NE(text.find("Certificate Sign, CRL Sign"), std::string::npos) << text;

  // A second root is refused with Vault's warning; the first one stays.
  auto again = call(Op::kUpdate, "root/generate/internal", {{"common_name", "Other"}});
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->data.has_value());
  ASSERT_EQ(again->warnings.size(), 1u);
  EXPECT_NE(again->warnings[0].find("Refusing to generate a root"), std::string::npos);
  EXPECT_EQ(str(ok(Op::kRead, "cert/ca"), "certificate") + "\n", cert->pem());
}

TEST_F(PkiTest, ExportedRootReturnsItsKey) {
  auto root = ok(Op::kUpdate, "root/generate/exported",
                 {{"common_name", "Exported Root"}, {"key_type", "rsa"}, {"key_bits", 2048}});
  auto cert = crypto::Certificate::from_pem(str(root, "certificate"));
  auto key = crypto::PrivateKey::from_pem(str(root, "private_key"));
  ASSERT_TRUE(cert.ok() && key.ok());
  EXPECT_EQ(str(root, "private_key_type"), "rsa");
  EXPECT_EQ(cert->public_key().to_der(), key->public_key().to_der());
  EXPECT_EQ(cert->public_key().bits(), 2048);
}

TEST_F(PkiTest, GenerateRootRejectsBadInput) {
  expect_invalid(fail(Op::kUpdate, "root/generate/internal", {}), "common_name");
  expect_invalid(
      fail(Op::kUpdate, "root/generate/internal", {{"common_name", "x"}, {"key_type", "dsa"}}),
      "key_type");
  expect_invalid(fail(Op::kUpdate, "root/generate/internal",
                      {{"common_name", "x"}, {"key_type", "ec"}, {"key_bits", 224}}),
                 "bit length");
  expect_invalid(fail(Op::kUpdate, "root/generate/kms", {{"common_name", "x"}}), "kms");
  // Nothing to issue from yet.
  auto none = call(Op::kRead, "ca/pem");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->raw_body.has_value());
}

TEST_F(PkiTest, DeleteRootAllowsANewOne) {
  auto first = make_root();
  ASSERT_TRUE(call(Op::kDelete, "root").ok());
  auto second = make_root(nullptr, {{"common_name", "Second Root"}});
  EXPECT_NE(str(first, "serial_number"), str(second, "serial_number"));
  auto ca = crypto::Certificate::from_pem(str(ok(Op::kRead, "cert/ca"), "certificate"));
  ASSERT_TRUE(ca.ok());
  EXPECT_EQ(ca->subject_cn(), "Second Root");
}

// --- roles -----------------------------------------------------------------------------------

TEST_F(PkiTest, RolesWriteReadListDelete) {
  make_web_role();
  auto role = ok(Op::kRead, "roles/web");
  EXPECT_EQ(json::serialize(role.at("allowed_domains")), R"(["example.com"])");
  EXPECT_EQ(role.at("allow_subdomains"), true);
  EXPECT_EQ(role.at("allow_bare_domains"), false);
  EXPECT_EQ(role.at("allow_localhost"), true);
  EXPECT_EQ(role.at("server_flag"), true);
  EXPECT_EQ(str(role, "key_type"), "ec");
  EXPECT_EQ(role.at("key_bits"), 256);
  EXPECT_EQ(role.at("max_ttl"), 72 * 3600);
  ok(Op::kUpdate, "roles/other", {{"allowed_domains", "a.test,b.test"}});
  EXPECT_EQ(json::serialize(ok(Op::kRead, "roles/other").at("allowed_domains")),
            R"(["a.test","b.test"])");
  EXPECT_EQ(json::serialize(ok(Op::kList, "roles").at("keys")), R"(["other","web"])");
  ASSERT_TRUE(call(Op::kDelete, "roles/other").ok());
  EXPECT_EQ(fail(Op::kRead, "roles/other").code(), Code::kNotFound);
  EXPECT_EQ(json::serialize(ok(Op::kList, "roles").at("keys")), R"(["web"])");

  expect_invalid(fail(Op::kUpdate, "roles/bad", {{"key_type", "dsa"}}), "key_type");
  expect_invalid(fail(Op::kUpdate, "roles/bad", {{"generate_lease", true}}), "generate_lease");
  expect_invalid(fail(Op::kUpdate, "roles/bad", {{"ttl", "2h"}, {"max_ttl", "1h"}}), "max_ttl");
  expect_invalid(fail(Op::kUpdate, "roles/bad$name", {}), "invalid role name");
}

TEST_F(PkiTest, ExistenceCheckSeesRoles) {
  Request req;
  req.rel_path = "roles/web";
  auto before = engine_->exists(req);
  ASSERT_TRUE(before.ok());
  EXPECT_FALSE(*before);
  make_web_role();
  auto after = engine_->exists(req);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(*after);
}

// --- issue -----------------------------------------------------------------------------------

TEST_F(PkiTest, IssueCertificateThatOpensslVerifies) {
  auto root = make_root();
  make_web_role();
  auto out = ok(Op::kUpdate, "issue/web",
                {{"common_name", "www.example.com"},
                 {"alt_names", "api.example.com"},
                 {"ip_sans", "127.0.0.1"},
                 {"ttl", "1h"}});
  auto cert = crypto::Certificate::from_pem(str(out, "certificate"));
  auto key = crypto::PrivateKey::from_pem(str(out, "private_key"));
  ASSERT_TRUE(cert.ok() && key.ok());
  EXPECT_EQ(str(out, "private_key_type"), "ec");
  EXPECT_EQ(cert->public_key().to_der(), key->public_key().to_der());
  EXPECT_EQ(cert->subject_cn(), "www.example.com");
  EXPECT_FALSE(cert->is_ca());
  EXPECT_EQ(cert->dns_names(), (std::vector<std::string>{"www.example.com", "api.example.com"}));
  EXPECT_EQ(cert->ip_addresses(), std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(str(out, "issuing_ca"), str(root, "certificate"));
  ASSERT_TRUE(out.at("ca_chain").is_array());
  EXPECT_EQ(out.at("ca_chain").as_array().size(), 1u);
  auto lifetime = cert->not_after() - clock_.now();
  EXPECT_LE(lifetime, std::chrono::seconds(3600));
  EXPECT_GT(lifetime, std::chrono::seconds(3500));
  std::string serial = str(out, "serial_number");
  std::string hex = serial;
  std::erase(hex, ':');
  EXPECT_EQ(hex, hex_encode(cert->serial()));
  EXPECT_EQ(out.at("expiration").as_int64(), to_unix_seconds(cert->not_after()));

  std::string ca = write_file("ca.pem", str(root, "certificate"));
  std::string leaf = write_file("leaf.pem", str(out, "certificate"));
  std::string text;
  EXPECT_EQ(run("openssl verify -CAfile " + ca + " " + leaf, &text), 0) << text;
  EXPECT_EQ(run("openssl verify -purpose sslserver -CAfile " + ca + " " + leaf, &text), 0) << text;
  EXPECT_EQ(run("openssl verify -purpose sslclient -CAfile " + ca + " " + leaf, &text), 0) << text;
  EXPECT_EQ(run("openssl x509 -noout -checkhost api.example.com -in " + leaf, &text), 0);
  EXPECT_NE(text.find("does match"), std::string::npos) << text;

  // The issued certificate is stored and listed.
  EXPECT_EQ(str(ok(Op::kRead, "cert/" + serial), "certificate"), str(out, "certificate"));
  std::string dashed = serial;
  std::replace(dashed.begin(), dashed.end(), ':', '-');
  EXPECT_EQ(str(ok(Op::kRead, "cert/" + dashed), "certificate"), str(out, "certificate"));
  auto keys = json::serialize(ok(Op::kList, "certs").at("keys"));
  EXPECT_NE(keys.find(serial), std::string::npos) << keys;
  EXPECT_NE(keys.find(str(root, "serial_number")), std::string::npos) << keys;
}

TEST_F(PkiTest, IssueHonoursRoleFlagsAndKeyType) {
  make_root();
  make_web_role({{"server_flag", false}, {"key_type", "rsa"}, {"key_bits", 3072}});
  auto out = ok(Op::kUpdate, "issue/web", {{"common_name", "client.example.com"}});
  EXPECT_EQ(str(out, "private_key_type"), "rsa");
  auto cert = crypto::Certificate::from_pem(str(out, "certificate"));
  ASSERT_TRUE(cert.ok());
  EXPECT_EQ(cert->public_key().bits(), 3072);
  std::string text;
  ASSERT_EQ(run("openssl x509 -noout -ext extendedKeyUsage -in " +
                    write_file("c.pem", str(out, "certificate")),
                &text),
            0);
  EXPECT_NE(text.find("Client Authentication"), std::string::npos) << text;
  EXPECT_EQ(text.find("Server Authentication"), std::string::npos) << text;
}

TEST_F(PkiTest, NamesOutsideTheRoleAreRejected) {
  make_root();
  make_web_role({{"allow_ip_sans", false}});
  expect_invalid(fail(Op::kUpdate, "issue/web", {{"common_name", "www.evil.com"}}),
                 "common name www.evil.com not allowed by this role");
  // Bare domain needs allow_bare_domains.
  expect_invalid(fail(Op::kUpdate, "issue/web", {{"common_name", "example.com"}}),
                 "not allowed by this role");
  // A suffix that is not a label boundary does not count.
  expect_invalid(fail(Op::kUpdate, "issue/web", {{"common_name", "badexample.com"}}),
                 "not allowed by this role");
  expect_invalid(fail(Op::kUpdate, "issue/web",
                      {{"common_name", "www.example.com"}, {"alt_names", "x.evil.com"}}),
                 "subject alternate name x.evil.com not allowed");
  expect_invalid(
      fail(Op::kUpdate, "issue/web", {{"common_name", "www.example.com"}, {"ip_sans", "10.0.0.1"}}),
      "IP Subject Alternative Names are not allowed");
  expect_invalid(fail(Op::kUpdate, "issue/web", {{"common_name", "bad_name!.example.com"}}),
                 "not allowed by this role");
  expect_invalid(fail(Op::kUpdate, "issue/web", {}), "common_name");
  expect_invalid(fail(Op::kUpdate, "issue/nosuch", {{"common_name", "www.example.com"}}),
                 "unknown role");
  // What the role does allow.
  ok(Op::kUpdate, "issue/web", {{"common_name", "localhost"}});
  ok(Op::kUpdate, "issue/web", {{"common_name", "a.b.example.com"}});
  ok(Op::kUpdate, "issue/web", {{"common_name", "*.example.com"}});

  make_web_role(
      {{"allow_bare_domains", true}, {"allow_subdomains", false}, {"allow_localhost", false}});
  ok(Op::kUpdate, "issue/web", {{"common_name", "example.com"}});
  expect_invalid(fail(Op::kUpdate, "issue/web", {{"common_name", "www.example.com"}}),
                 "not allowed");
  expect_invalid(fail(Op::kUpdate, "issue/web", {{"common_name", "localhost"}}), "not allowed");

  ok(Op::kUpdate, "roles/glob",
     {{"allowed_domains", "*.svc.internal"}, {"allow_glob_domains", true}, {"key_type", "ec"}});
  ok(Op::kUpdate, "issue/glob", {{"common_name", "db.svc.internal"}});
  expect_invalid(fail(Op::kUpdate, "issue/glob", {{"common_name", "db.other.internal"}}),
                 "not allowed");

  ok(Op::kUpdate, "roles/any", {{"allow_any_name", true}, {"key_type", "ec"}});
  ok(Op::kUpdate, "issue/any", {{"common_name", "anything.test"}});
  // Without a CA nothing is issued.
  ASSERT_TRUE(call(Op::kDelete, "root").ok());
  expect_invalid(fail(Op::kUpdate, "issue/any", {{"common_name", "anything.test"}}), "no issuer");
}

TEST_F(PkiTest, TtlIsCappedByRoleAndCa) {
  make_root(nullptr, {{"ttl", "100h"}});
  make_web_role({{"max_ttl", "2h"}});
  auto r = call(Op::kUpdate, "issue/web", {{"common_name", "www.example.com"}, {"ttl", "10h"}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto cert = crypto::Certificate::from_pem(str(*r->data, "certificate"));
  ASSERT_TRUE(cert.ok());
  EXPECT_LE(cert->not_after() - clock_.now(), std::chrono::hours(2));
  EXPECT_GT(cert->not_after() - clock_.now(), std::chrono::hours(2) - std::chrono::minutes(1));
  ASSERT_FALSE(r->warnings.empty());
  EXPECT_NE(r->warnings[0].find("max_ttl"), std::string::npos);

  // Past the CA's notAfter: truncated by default, refused with leaf_not_after_behavior=err.
  make_web_role({{"max_ttl", "1000h"}});
  auto ca = crypto::Certificate::from_pem(str(ok(Op::kRead, "cert/ca"), "certificate"));
  ASSERT_TRUE(ca.ok());
  auto t = call(Op::kUpdate, "issue/web", {{"common_name", "www.example.com"}, {"ttl", "500h"}});
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  auto capped = crypto::Certificate::from_pem(str(*t->data, "certificate"));
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(to_unix_seconds(capped->not_after()), to_unix_seconds(ca->not_after()));
  make_web_role({{"max_ttl", "1000h"}, {"leaf_not_after_behavior", "err"}});
  expect_invalid(
      fail(Op::kUpdate, "issue/web", {{"common_name", "www.example.com"}, {"ttl", "500h"}}),
      "beyond the expiration of the CA certificate");
}

// --- sign ------------------------------------------------------------------------------------

TEST_F(PkiTest, SignCsr) {
  auto root = make_root();
  make_web_role();
  auto key = crypto::PrivateKey::generate(crypto::KeyType::kEcP256);
  ASSERT_TRUE(key.ok());
  auto csr = crypto::make_csr(*key, "svc.example.com", {"svc.example.com", "alt.example.com"});
  ASSERT_TRUE(csr.ok());
  auto out = ok(Op::kUpdate, "sign/web", {{"csr", *csr}, {"ttl", "30m"}});
  EXPECT_FALSE(out.contains("private_key"));
  auto cert = crypto::Certificate::from_pem(str(out, "certificate"));
  ASSERT_TRUE(cert.ok());
  EXPECT_EQ(cert->public_key().to_der(), key->public_key().to_der());
  EXPECT_EQ(cert->subject_cn(), "svc.example.com");
  EXPECT_EQ(cert->dns_names(), (std::vector<std::string>{"svc.example.com", "alt.example.com"}));
  std::string text;
  EXPECT_EQ(run("openssl verify -CAfile " + write_file("ca.pem", str(root, "certificate")) + " " +
                    write_file("leaf.pem", str(out, "certificate")),
                &text),
            0)
      << text;

  // The CSR's names go through the same policy.
  auto bad = crypto::make_csr(*key, "svc.evil.com", {});
  ASSERT_TRUE(bad.ok());
  expect_invalid(fail(Op::kUpdate, "sign/web", {{"csr", *bad}}), "not allowed by this role");
  // The role's key type applies to the CSR's key.
  auto rsa = crypto::PrivateKey::generate(crypto::KeyType::kRsa, 2048);
  ASSERT_TRUE(rsa.ok());
  auto rsa_csr = crypto::make_csr(*rsa, "svc.example.com", {});
  ASSERT_TRUE(rsa_csr.ok());
  expect_invalid(fail(Op::kUpdate, "sign/web", {{"csr", *rsa_csr}}), "type ec");
  expect_invalid(fail(Op::kUpdate, "sign/web", {{"csr", "not a csr"}}), "csr");
  expect_invalid(fail(Op::kUpdate, "sign/web", {}), "csr field is required");
  make_web_role({{"key_type", "any"}});
  ok(Op::kUpdate, "sign/web", {{"csr", *rsa_csr}});
  expect_invalid(fail(Op::kUpdate, "issue/web", {{"common_name", "svc.example.com"}}),
                 "only signing");
}

// --- revocation ------------------------------------------------------------------------------

TEST_F(PkiTest, RevokedSerialAppearsInTheCrl) {
  auto root = make_root();
  make_web_role();
  auto keep = ok(Op::kUpdate, "issue/web", {{"common_name", "keep.example.com"}});
  auto gone = ok(Op::kUpdate, "issue/web", {{"common_name", "gone.example.com"}});
  auto ca = crypto::Certificate::from_pem(str(root, "certificate"));
  auto keep_cert = crypto::Certificate::from_pem(str(keep, "certificate"));
  auto gone_cert = crypto::Certificate::from_pem(str(gone, "certificate"));
  ASSERT_TRUE(ca.ok() && keep_cert.ok() && gone_cert.ok());

  // Before: an empty, signed CRL.
  auto before = call(Op::kRead, "crl");
  ASSERT_TRUE(before.ok() && before->raw_body);
  EXPECT_EQ(before->raw_content_type, "application/pkix-crl");
  auto crl0 = crypto::Crl::from_der(as_bytes(*before->raw_body));
  ASSERT_TRUE(crl0.ok());
  EXPECT_EQ(crl0->entry_count(), 0u);

  clock_.advance(std::chrono::seconds(5));
  auto rev = ok(Op::kUpdate, "revoke", {{"serial_number", str(gone, "serial_number")}});
  EXPECT_EQ(rev.at("revocation_time").as_int64(), to_unix_seconds(clock_.now()));
  EXPECT_EQ(str(rev, "state"), "revoked");
  // Revoking again answers the original time.
  clock_.advance(std::chrono::seconds(5));
  auto again = ok(Op::kUpdate, "revoke", {{"serial_number", str(gone, "serial_number")}});
  EXPECT_EQ(again.at("revocation_time"), rev.at("revocation_time"));
  EXPECT_EQ(ok(Op::kRead, "cert/" + str(gone, "serial_number")).at("revocation_time"),
            rev.at("revocation_time"));
  EXPECT_EQ(ok(Op::kRead, "cert/" + str(keep, "serial_number")).at("revocation_time"), 0);

  auto der = call(Op::kRead, "crl");
  ASSERT_TRUE(der.ok() && der->raw_body);
  auto crl = crypto::Crl::from_der(as_bytes(*der->raw_body));
  ASSERT_TRUE(crl.ok());
  EXPECT_TRUE(crl->verify_signature(ca->public_key()).ok());
  EXPECT_EQ(crl->entry_count(), 1u);
  EXPECT_TRUE(crl->is_revoked(gone_cert->serial()));
  EXPECT_FALSE(crl->is_revoked(keep_cert->serial()));
  auto pem = call(Op::kRead, "crl/pem");
  ASSERT_TRUE(pem.ok() && pem->raw_body);
  EXPECT_EQ(*pem->raw_body, crl->pem());
  EXPECT_EQ(str(ok(Op::kRead, "cert/crl"), "certificate") + "\n", crl->pem());

  std::string crl_path = write_file("crl.pem", *pem->raw_body);
  std::string text;
  ASSERT_EQ(run("openssl crl -noout -text -in " + crl_path, &text), 0) << text;
  std::string upper = hex_encode(gone_cert->serial());
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_NE(text.find("Serial Number: " + upper), std::string::npos) << text;
  // And openssl's chain check with the CRL agrees.
  std::string ca_path = write_file("ca.pem", str(root, "certificate"));
  EXPECT_NE(run("openssl verify -crl_check -CAfile " + ca_path + " -CRLfile " + crl_path + " " +
                    write_file("gone.pem", str(gone, "certificate")),
                &text),
            0);
  EXPECT_NE(text.find("revoked"), std::string::npos) << text;
  EXPECT_EQ(run("openssl verify -crl_check -CAfile " + ca_path + " -CRLfile " + crl_path + " " +
                    write_file("keep.pem", str(keep, "certificate")),
                &text),
            0)
      << text;

  // Reject twins.
  expect_invalid(fail(Op::kUpdate, "revoke", {{"serial_number", "01:02:03"}}), "not found");
  expect_invalid(fail(Op::kUpdate, "revoke", {{"serial_number", "zz"}}), "invalid serial");
  expect_invalid(fail(Op::kUpdate, "revoke", {}), "serial_number");
  expect_invalid(fail(Op::kUpdate, "revoke", {{"serial_number", str(root, "serial_number")}}),
                 "CA");

  // The CRL survives a restart of the engine (it is stored, not only cached) and rotates.
  engine_ = new_engine("0000-pki");
  ASSERT_NE(engine_, nullptr);
  EXPECT_EQ(ok(Op::kRead, "crl/rotate").at("success"), true);
  auto rotated = call(Op::kRead, "crl");
  ASSERT_TRUE(rotated.ok() && rotated->raw_body);
  auto crl2 = crypto::Crl::from_der(as_bytes(*rotated->raw_body));
  ASSERT_TRUE(crl2.ok());
  EXPECT_TRUE(crl2->is_revoked(gone_cert->serial()));
}

// --- intermediates ---------------------------------------------------------------------------

TEST_F(PkiTest, IntermediateSignedByAnotherMount) {
  auto root_engine = new_engine("1111-root");
  ASSERT_NE(root_engine, nullptr);
  auto root = make_root(root_engine.get(), {{"common_name", "Offline Root"}});

  auto gen = ok(Op::kUpdate, "intermediate/generate/internal",
                {{"common_name", "Issuing CA"}, {"key_type", "ec"}, {"key_bits", 384}});
  std::string csr = str(gen, "csr");
  EXPECT_NE(csr.find("BEGIN CERTIFICATE REQUEST"), std::string::npos);
  EXPECT_FALSE(gen.contains("private_key"));

  auto signed_int =
      ok(Op::kUpdate, "root/sign-intermediate",
         {{"csr", csr}, {"common_name", "Issuing CA"}, {"ttl", "240h"}}, root_engine.get());
  auto int_cert = crypto::Certificate::from_pem(str(signed_int, "certificate"));
  ASSERT_TRUE(int_cert.ok());
  EXPECT_TRUE(int_cert->is_ca());
  EXPECT_EQ(str(signed_int, "issuing_ca"), str(root, "certificate"));

  // A certificate for another key is refused.
  expect_invalid(
      fail(Op::kUpdate, "intermediate/set-signed", {{"certificate", str(root, "certificate")}}),
      "does not match");
  auto set = call(
      Op::kUpdate, "intermediate/set-signed",
      {{"certificate", str(signed_int, "certificate") + "\n" + str(signed_int, "issuing_ca")}});
  ASSERT_TRUE(set.ok()) << set.status().to_string();
  // The pending key is consumed.
  expect_invalid(fail(Op::kUpdate, "intermediate/set-signed",
                      {{"certificate", str(signed_int, "certificate")}}),
                 "no pending intermediate key");

  make_web_role();
  auto leaf = ok(Op::kUpdate, "issue/web", {{"common_name", "app.example.com"}});
  EXPECT_EQ(str(leaf, "issuing_ca"), str(signed_int, "certificate"));
  ASSERT_EQ(leaf.at("ca_chain").as_array().size(), 2u);
  EXPECT_EQ(leaf.at("ca_chain").as_array()[1], root.at("certificate"));

  std::string root_path = write_file("root.pem", str(root, "certificate"));
  std::string int_path = write_file("int.pem", str(signed_int, "certificate"));
  std::string leaf_path = write_file("leaf.pem", str(leaf, "certificate"));
  std::string text;
  EXPECT_EQ(run("openssl verify -CAfile " + root_path + " -untrusted " + int_path + " " + leaf_path,
                &text),
            0)
      << text;
  // Without the intermediate the leaf does not chain to the root.
  EXPECT_NE(run("openssl verify -CAfile " + root_path + " " + leaf_path, &text), 0);

  auto leaf_cert = crypto::Certificate::from_pem(str(leaf, "certificate"));
  auto root_cert = crypto::Certificate::from_pem(str(root, "certificate"));
  ASSERT_TRUE(leaf_cert.ok() && root_cert.ok());
  crypto::ChainOptions opts;
  opts.at = clock_.now();
  auto path = crypto::verify_chain(*leaf_cert, {*int_cert}, *root_cert, opts);
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  EXPECT_EQ(path->size(), 3u);

  // ca_chain serves the intermediate and the root, and the intermediate signs its CRL.
  auto chain = call(Op::kRead, "ca_chain");
  ASSERT_TRUE(chain.ok() && chain->raw_body);
  auto certs = crypto::Certificate::chain_from_pem(*chain->raw_body);
  ASSERT_TRUE(certs.ok());
  EXPECT_EQ(certs->size(), 2u);
  auto crl_resp = call(Op::kRead, "crl");
  ASSERT_TRUE(crl_resp.ok() && crl_resp->raw_body);
  auto crl = crypto::Crl::from_der(as_bytes(*crl_resp->raw_body));
  ASSERT_TRUE(crl.ok());
  EXPECT_TRUE(crl->verify_signature(int_cert->public_key()).ok());
}

TEST_F(PkiTest, ExportedIntermediateAndCsrChecks) {
  auto gen = ok(Op::kUpdate, "intermediate/generate/exported",
                {{"common_name", "Int"}, {"key_type", "ed25519"}});
  auto key = crypto::PrivateKey::from_pem(str(gen, "private_key"));
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(str(gen, "private_key_type"), "ed25519");
  auto info = crypto::parse_csr(str(gen, "csr"));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->public_key.to_der(), key->public_key().to_der());
  EXPECT_EQ(info->subject_cn, "Int");
  // sign-intermediate needs an issuer and a valid CSR.
  expect_invalid(fail(Op::kUpdate, "root/sign-intermediate", {{"csr", str(gen, "csr")}}),
                 "no issuer");
  make_root();
  expect_invalid(fail(Op::kUpdate, "root/sign-intermediate", {{"csr", "garbage"}}), "csr");
  auto signed_int = ok(Op::kUpdate, "root/sign-intermediate",
                       {{"csr", str(gen, "csr")}, {"use_csr_values", true}});
  auto cert = crypto::Certificate::from_pem(str(signed_int, "certificate"));
  ASSERT_TRUE(cert.ok());
  EXPECT_EQ(cert->subject_cn(), "Int");
}

// --- tidy and URLs ---------------------------------------------------------------------------

TEST_F(PkiTest, TidyRemovesExpiredCertificates) {
  make_root();
  make_web_role();
  auto short_lived =
      ok(Op::kUpdate, "issue/web", {{"common_name", "a.example.com"}, {"ttl", "1h"}});
  auto long_lived =
      ok(Op::kUpdate, "issue/web", {{"common_name", "b.example.com"}, {"ttl", "72h"}});
  ok(Op::kUpdate, "revoke", {{"serial_number", str(short_lived, "serial_number")}});
  expect_invalid(fail(Op::kUpdate, "tidy", {}), "At least one operation");

  // Expired, but within the safety buffer: kept.
  clock_.advance(std::chrono::hours(2));
  auto r = call(Op::kUpdate, "tidy", {{"tidy_cert_store", true}, {"tidy_revoked_certs", true}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(ok(Op::kRead, "tidy-status").at("cert_store_deleted_count"), 0);
  ok(Op::kRead, "cert/" + str(short_lived, "serial_number"));

  // Past the buffer: gone from the store and from the CRL; the CA and live certs stay.
  clock_.advance(std::chrono::hours(1));
  ASSERT_TRUE(
      call(Op::kUpdate, "tidy",
           {{"tidy_cert_store", true}, {"tidy_revoked_certs", true}, {"safety_buffer", "30m"}})
          .ok());
  auto st = ok(Op::kRead, "tidy-status");
  EXPECT_EQ(str(st, "state"), "Finished");
  EXPECT_EQ(st.at("cert_store_deleted_count"), 1);
  EXPECT_EQ(st.at("revoked_cert_deleted_count"), 1);
  EXPECT_EQ(fail(Op::kRead, "cert/" + str(short_lived, "serial_number")).code(), Code::kNotFound);
  ok(Op::kRead, "cert/" + str(long_lived, "serial_number"));
  ok(Op::kRead, "cert/ca");
  auto crl_resp = call(Op::kRead, "crl");
  ASSERT_TRUE(crl_resp.ok() && crl_resp->raw_body);
  auto crl = crypto::Crl::from_der(as_bytes(*crl_resp->raw_body));
  ASSERT_TRUE(crl.ok());
  EXPECT_EQ(crl->entry_count(), 0u);
}

TEST_F(PkiTest, ConfigUrlsGoIntoIssuedCertificates) {
  make_root();
  make_web_role();
  ASSERT_TRUE(call(Op::kUpdate, "config/urls",
                   {{"issuing_certificates", "http://127.0.0.1:8200/v1/pki/ca"},
                    {"crl_distribution_points", json::array{"http://127.0.0.1:8200/v1/pki/crl"}}})
                  .ok());
  auto urls = ok(Op::kRead, "config/urls");
  EXPECT_EQ(json::serialize(urls.at("issuing_certificates")),
            R"(["http://127.0.0.1:8200/v1/pki/ca"])");
  EXPECT_EQ(json::serialize(urls.at("ocsp_servers")), "[]");
  expect_invalid(fail(Op::kUpdate, "config/urls", {{"ocsp_servers", "not a url"}}), "invalid URL");

  auto out = ok(Op::kUpdate, "issue/web", {{"common_name", "www.example.com"}});
  std::string text;
  ASSERT_EQ(
      run("openssl x509 -noout -text -in " + write_file("c.pem", str(out, "certificate")), &text),
      0);
  EXPECT_NE(text.find("CA Issuers - URI:http://127.0.0.1:8200/v1/pki/ca"), std::string::npos)
      << text;
  EXPECT_NE(text.find("X509v3 CRL Distribution Points"), std::string::npos) << text;
  EXPECT_NE(text.find("URI:http://127.0.0.1:8200/v1/pki/crl"), std::string::npos) << text;
}

TEST_F(PkiTest, SealedEngineRefusesAndUnknownPaths) {
  make_root();
  EXPECT_EQ(fail(Op::kRead, "nothing/here").code(), Code::kNotFound);
  EXPECT_EQ(fail(Op::kRead, "issue/web").code(), Code::kUnimplemented);
  barrier_->seal();
  EXPECT_EQ(fail(Op::kRead, "ca/pem").code(), Code::kUnavailable);
}

}  // namespace
}  // namespace custos::core
