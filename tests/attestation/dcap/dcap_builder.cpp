#include "attestation/dcap/dcap_builder.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "attestation/dcap/pck.h"

namespace custos::testing::dcap {
namespace {

using std::chrono::hours;

// Test code: a failure to build fixtures is a broken test, so it aborts loudly.
template <typename T>
T must(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "dcap_builder: %s: %s\n", what, r.status().message().c_str());
    std::abort();
  }
  return std::move(*r);
}

crypto::CertificateSpec intel_spec(const std::string& cn, bool ca) {
  crypto::CertificateSpec s;
  s.subject_cn = cn;
  s.subject_extra = {{"O", "Intel Corporation"}, {"L", "Santa Clara"}, {"ST", "CA"}, {"C", "US"}};
  s.not_before = default_now() - hours(24 * 365);
  s.not_after = default_now() + hours(24 * 365 * 5);
  s.is_ca = ca;
  return s;
}

}  // namespace

SysTime default_now() {
  return from_unix_seconds(1735689600);
}  // 2025-01-01T00:00:00Z

DcapBuilder::DcapBuilder(PlatformSpec p) : platform(p) {
  using crypto::KeyType;
  root_key = must(crypto::PrivateKey::generate(KeyType::kEcP256), "root key");
  pck_ca_key = must(crypto::PrivateKey::generate(KeyType::kEcP256), "PCK CA key");
  pck_key = must(crypto::PrivateKey::generate(KeyType::kEcP256), "PCK key");
  tcb_key = must(crypto::PrivateKey::generate(KeyType::kEcP256), "TCB key");
  attestation_key = must(crypto::PrivateKey::generate(KeyType::kEcP256), "attestation key");
  root = must(crypto::issue_certificate(intel_spec("Intel SGX Root CA", true),
                                        root_key.public_key(), root_key, nullptr),
              "root");
  pck_ca = must(crypto::issue_certificate(intel_spec("Intel SGX PCK Platform CA", true),
                                          pck_ca_key.public_key(), root_key, &root),
                "PCK CA");
  tcb_signing = must(crypto::issue_certificate(intel_spec("Intel SGX TCB Signing", false),
                                               tcb_key.public_key(), root_key, &root),
                     "TCB signing");
  reissue_pck(platform, default_now() - hours(24 * 365), default_now() + hours(24 * 365 * 5));
}

void DcapBuilder::reissue_pck(const PlatformSpec& p, SysTime not_before, SysTime not_after) {
  platform = p;
  crypto::CertificateSpec s = intel_spec("Intel SGX PCK Certificate", false);
  s.not_before = not_before;
  s.not_after = not_after;
  s.extensions[std::string(attestation::dcap::kSgxExtensionsOid)] = sgx_extensions_der(p);
  pck = must(crypto::issue_certificate(s, pck_key.public_key(), pck_ca_key, &pck_ca), "PCK");
}

std::string DcapBuilder::pck_chain_pem() const {
  return pck.pem() + pck_ca.pem() + root.pem();
}
std::string DcapBuilder::signing_chain_pem() const {
  return tcb_signing.pem() + root.pem();
}

Bytes DcapBuilder::pck_crl(const std::vector<Bytes>& revoked, SysTime this_update,
                           SysTime next_update) const {
  return must(crypto::issue_crl(pck_ca, pck_ca_key, revoked, this_update, next_update), "PCK CRL")
      .der();
}
Bytes DcapBuilder::root_crl(const std::vector<Bytes>& revoked, SysTime this_update,
                            SysTime next_update) const {
  return must(crypto::issue_crl(root, root_key, revoked, this_update, next_update), "root CRL")
      .der();
}

TcbInfoSpec DcapBuilder::default_tcb_info(bool tdx) const {
  TcbInfoSpec s;
  s.id = tdx ? "TDX" : "SGX";
  s.issue_date = default_now() - hours(24);
  s.next_update = default_now() + hours(24 * 30);
  LevelSpec up;
  up.sgx_components = platform.cpu_svn_components;
  up.pce_svn = platform.pce_svn;
  up.tdx_components = {3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  LevelSpec old = up;
  for (auto& c : old.sgx_components) c = static_cast<uint8_t>(c > 0 ? c - 1 : 0);
  old.pce_svn = static_cast<uint16_t>(up.pce_svn - 1);
  old.tdx_components = {2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  old.status = "OutOfDate";
  old.advisory_ids = {"INTEL-SA-00001"};
  s.levels = {up, old};
  if (tdx) s.module_identities = {ModuleIdentitySpec{}};
  return s;
}

QeIdentitySpec DcapBuilder::default_qe_identity(bool tdx) const {
  QeIdentitySpec s;
  s.id = tdx ? "TD_QE" : "QE";
  s.issue_date = default_now() - hours(24);
  s.next_update = default_now() + hours(24 * 30);
  s.mrsigner_hex = std::string(64, 'A');
  return s;
}

std::string DcapBuilder::tcb_info_json(const TcbInfoSpec& s) const {
  return attestation::sim::tcb_info_json(s, platform);
}

std::string DcapBuilder::qe_identity_json(const QeIdentitySpec& s) const {
  return attestation::sim::qe_identity_json(s);
}

std::string DcapBuilder::sign_body(const std::string& key, const std::string& json) const {
  return must(attestation::sim::sign_pcs_body(key, json, tcb_key), "sign JSON");
}

attestation::Collateral DcapBuilder::collateral(bool tdx) const {
  return collateral(default_tcb_info(tdx), default_qe_identity(tdx));
}

attestation::Collateral DcapBuilder::collateral(const TcbInfoSpec& tcb,
                                                const QeIdentitySpec& qe) const {
  attestation::Collateral c;
  c["tcb_info"] = to_bytes(sign_body("tcbInfo", tcb_info_json(tcb)));
  c["tcb_info_chain"] = to_bytes(signing_chain_pem());
  c["qe_identity"] = to_bytes(sign_body("enclaveIdentity", qe_identity_json(qe)));
  c["qe_identity_chain"] = to_bytes(signing_chain_pem());
  c["pck_crl"] = pck_crl({}, default_now() - hours(24), default_now() + hours(24 * 30));
  c["pck_crl_chain"] = to_bytes(pck_ca.pem() + root.pem());
  c["root_crl"] = root_crl({}, default_now() - hours(24), default_now() + hours(24 * 365));
  return c;
}

QuoteSpec DcapBuilder::default_quote(bool tdx, uint16_t version) const {
  QuoteSpec q;
  q.tdx = tdx;
  q.version = tdx && version < 4 ? 4 : version;
  q.mr_enclave.fill(0x11);
  q.mr_signer.fill(0x22);
  q.isv_prod_id = 7;
  q.isv_svn = 3;
  q.qe_mrenclave.fill(0x77);
  q.qe_mrsigner.fill(0xaa);
  const char* rd = "generated by dcap_builder";
  std::memcpy(q.report_data.data(), rd, std::strlen(rd));
  return q;
}

Bytes DcapBuilder::quote(const QuoteSpec& s) const {
  std::string chain = pck_chain_pem();
  return must(attestation::sim::encode_quote(s, platform, {pck_key, attestation_key, chain}),
              "quote");
}

}  // namespace custos::testing::dcap
