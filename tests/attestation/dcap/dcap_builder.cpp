#include "attestation/dcap/dcap_builder.h"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <cstdlib>

#include "attestation/dcap/pck.h"
#include "attestation/dcap/quote.h"
#include "base/encoding.h"
#include "crypto/hash.h"

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

Bytes tlv(uint8_t tag, const Bytes& content) {
  Bytes out{tag};
  size_t n = content.size();
  if (n < 0x80) {
    out.push_back(static_cast<uint8_t>(n));
  } else if (n < 0x100) {
    out.push_back(0x81);
    out.push_back(static_cast<uint8_t>(n));
  } else {
    out.push_back(0x82);
    out.push_back(static_cast<uint8_t>(n >> 8));
    out.push_back(static_cast<uint8_t>(n & 0xff));
  }
  out.insert(out.end(), content.begin(), content.end());
  return out;
}

Bytes sgx_oid(std::initializer_list<uint8_t> arcs) {
  Bytes c = {0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01};
  c.insert(c.end(), arcs.begin(), arcs.end());
  return tlv(0x06, c);
}

Bytes der_uint(uint8_t tag, uint32_t v) {
  Bytes c;
  bool started = false;
  for (int shift = 24; shift >= 0; shift -= 8) {
    auto b = static_cast<uint8_t>((v >> shift) & 0xff);
    if (!started && b == 0 && shift > 0) continue;
    if (!started && (b & 0x80)) c.push_back(0);
    started = true;
    c.push_back(b);
  }
  return tlv(tag, c);
}

template <size_t N>
Bytes octets(const std::array<uint8_t, N>& a) {
  return tlv(0x04, Bytes(a.begin(), a.end()));
}

Bytes seq(std::initializer_list<Bytes> items) {
  Bytes c;
  for (const auto& i : items) c.insert(c.end(), i.begin(), i.end());
  return tlv(0x30, c);
}

std::string hex_upper(ByteSpan b) {
  std::string h = hex_encode(b);
  for (auto& c : h) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return h;
}

crypto::SignOptions raw_sha256() {
  crypto::SignOptions o;
  o.ec_format = crypto::SignOptions::EcFormat::kRaw;
  return o;
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

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v & 0xff));
  b.push_back(static_cast<uint8_t>(v >> 8));
}
void put32(Bytes& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>((v >> (8 * i)) & 0xff));
}
template <size_t N>
void put(Bytes& b, const std::array<uint8_t, N>& a) {
  b.insert(b.end(), a.begin(), a.end());
}

std::string levels_json(const std::vector<std::pair<uint16_t, std::string>>& levels) {
  std::string s = "[";
  for (size_t i = 0; i < levels.size(); ++i) {
    if (i) s += ",";
    s += "{\"tcb\":{\"isvsvn\":" + std::to_string(levels[i].first) +
         "},\"tcbDate\":\"2024-03-13T00:00:00Z\",\"tcbStatus\":\"" + levels[i].second + "\"";
    if (levels[i].second != "UpToDate") s += ",\"advisoryIDs\":[\"INTEL-SA-00999\"]";
    s += "}";
  }
  return s + "]";
}

}  // namespace

SysTime default_now() { return from_unix_seconds(1735689600); }  // 2025-01-01T00:00:00Z

Bytes sgx_extensions_der(const PlatformSpec& p) {
  Bytes tcb_content;
  for (uint8_t i = 1; i <= 16; ++i) {
    Bytes e = seq({sgx_oid({2, i}), der_uint(0x02, p.cpu_svn_components[i - 1])});
    tcb_content.insert(tcb_content.end(), e.begin(), e.end());
  }
  Bytes pce = seq({sgx_oid({2, 17}), der_uint(0x02, p.pce_svn)});
  tcb_content.insert(tcb_content.end(), pce.begin(), pce.end());
  Bytes cpusvn = seq({sgx_oid({2, 18}), octets(p.cpu_svn_components)});
  tcb_content.insert(tcb_content.end(), cpusvn.begin(), cpusvn.end());
  std::array<uint8_t, 16> ppid{};
  ppid.fill(0x42);
  return seq({
      seq({sgx_oid({1}), octets(ppid)}),
      seq({sgx_oid({2}), tlv(0x30, tcb_content)}),
      seq({sgx_oid({3}), octets(p.pce_id)}),
      seq({sgx_oid({4}), octets(p.fmspc)}),
      seq({sgx_oid({5}), der_uint(0x0a, p.sgx_type)}),
      seq({sgx_oid({7}), seq({seq({sgx_oid({7, 1}), tlv(0x01, {0x00})}),
                              seq({sgx_oid({7, 2}), tlv(0x01, {0xff})}),
                              seq({sgx_oid({7, 3}), tlv(0x01, {0xff})})})}),
  });
}

DcapBuilder::DcapBuilder(PlatformSpec p) : platform(p) {
  using crypto::KeyType;
  root_key = must(crypto::PrivateKey::generate(KeyType::kEcP256), "root key");
  pck_ca_key = must(crypto::PrivateKey::generate(KeyType::kEcP256), "PCK CA key");
  pck_key = must(crypto::PrivateKey::generate(KeyType::kEcP256), "PCK key");
  tcb_key = must(crypto::PrivateKey::generate(KeyType::kEcP256), "TCB key");
  attestation_key = must(crypto::PrivateKey::generate(KeyType::kEcP256), "attestation key");
  root = must(crypto::issue_certificate(intel_spec("Intel SGX Root CA", true), root_key.public_key(),
                                        root_key, nullptr),
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

std::string DcapBuilder::pck_chain_pem() const { return pck.pem() + pck_ca.pem() + root.pem(); }
std::string DcapBuilder::signing_chain_pem() const { return tcb_signing.pem() + root.pem(); }

Bytes DcapBuilder::pck_crl(const std::vector<Bytes>& revoked, SysTime this_update,
                           SysTime next_update) const {
  return must(crypto::issue_crl(pck_ca, pck_ca_key, revoked, this_update, next_update), "PCK CRL").der();
}
Bytes DcapBuilder::root_crl(const std::vector<Bytes>& revoked, SysTime this_update,
                            SysTime next_update) const {
  return must(crypto::issue_crl(root, root_key, revoked, this_update, next_update), "root CRL").der();
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
  std::string j = "{";
  if (s.version >= 3) j += "\"id\":\"" + s.id + "\",";
  j += "\"version\":" + std::to_string(s.version);
  j += ",\"issueDate\":\"" + format_rfc3339(s.issue_date) + "\"";
  j += ",\"nextUpdate\":\"" + format_rfc3339(s.next_update) + "\"";
  j += ",\"fmspc\":\"" + (s.fmspc_hex.empty() ? hex_upper(platform.fmspc) : s.fmspc_hex) + "\"";
  j += ",\"pceId\":\"" + (s.pce_id_hex.empty() ? hex_upper(platform.pce_id) : s.pce_id_hex) + "\"";
  j += ",\"tcbType\":0,\"tcbEvaluationDataNumber\":" + std::to_string(s.evaluation_data_number);
  const bool tdx = s.version >= 3 && s.id == "TDX";
  if (tdx) {
    j += ",\"tdxModule\":{\"mrsigner\":\"" + std::string(96, '0') +
         "\",\"attributes\":\"0000000000000000\",\"attributesMask\":\"FFFFFFFFFFFFFFFF\"}";
    j += ",\"tdxModuleIdentities\":[";
    for (size_t i = 0; i < s.module_identities.size(); ++i) {
      const auto& m = s.module_identities[i];
      if (i) j += ",";
      j += "{\"id\":\"" + m.id + "\",\"mrsigner\":\"" + m.mrsigner_hex +
           "\",\"attributes\":\"0000000000000000\",\"attributesMask\":\"FFFFFFFFFFFFFFFF\","
           "\"tcbLevels\":" + levels_json(m.levels) + "}";
    }
    j += "]";
  }
  j += ",\"tcbLevels\":[";
  for (size_t i = 0; i < s.levels.size(); ++i) {
    const LevelSpec& l = s.levels[i];
    if (i) j += ",";
    j += "{\"tcb\":{";
    if (s.version == 2) {
      for (size_t c = 0; c < 16; ++c) {
        char name[32];
        std::snprintf(name, sizeof(name), "\"sgxtcbcomp%02zusvn\":%u,", c + 1,
                      static_cast<unsigned>(l.sgx_components[c]));
        j += name;
      }
    } else {
      j += "\"sgxtcbcomponents\":[";
      for (size_t c = 0; c < 16; ++c) {
        if (c) j += ",";
        j += "{\"svn\":" + std::to_string(l.sgx_components[c]) + "}";
      }
      j += "],";
      if (tdx) {
        j += "\"tdxtcbcomponents\":[";
        for (size_t c = 0; c < 16; ++c) {
          if (c) j += ",";
          j += "{\"svn\":" + std::to_string(l.tdx_components[c]) + ",\"category\":\"OS/VMM\"}";
        }
        j += "],";
      }
    }
    j += "\"pcesvn\":" + std::to_string(l.pce_svn) + "}";
    j += ",\"tcbDate\":\"2024-03-13T00:00:00Z\",\"tcbStatus\":\"" + l.status + "\"";
    if (!l.advisory_ids.empty()) {
      j += ",\"advisoryIDs\":[";
      for (size_t a = 0; a < l.advisory_ids.size(); ++a) {
        if (a) j += ",";
        j += "\"" + l.advisory_ids[a] + "\"";
      }
      j += "]";
    }
    j += "}";
  }
  j += "]}";
  return j;
}

std::string DcapBuilder::qe_identity_json(const QeIdentitySpec& s) const {
  std::string j = "{\"id\":\"" + s.id + "\",\"version\":2";
  j += ",\"issueDate\":\"" + format_rfc3339(s.issue_date) + "\"";
  j += ",\"nextUpdate\":\"" + format_rfc3339(s.next_update) + "\"";
  j += ",\"tcbEvaluationDataNumber\":17";
  j += ",\"miscselect\":\"" + s.miscselect + "\",\"miscselectMask\":\"" + s.miscselect_mask + "\"";
  j += ",\"attributes\":\"" + s.attributes + "\",\"attributesMask\":\"" + s.attributes_mask + "\"";
  j += ",\"mrsigner\":\"" + s.mrsigner_hex + "\",\"isvprodid\":" + std::to_string(s.isv_prod_id);
  j += ",\"tcbLevels\":" + levels_json(s.levels) + "}";
  return j;
}

std::string DcapBuilder::sign_body(const std::string& key, const std::string& json) const {
  Bytes sig = must(tcb_key.sign(as_bytes(json), raw_sha256()), "sign JSON");
  // Whitespace around the signed object is legal and must not disturb verification.
  return "{\"" + key + "\": " + json + " ,\n \"signature\":\"" + hex_encode(sig) + "\"}";
}

attestation::Collateral DcapBuilder::collateral(bool tdx) const {
  return collateral(default_tcb_info(tdx), default_qe_identity(tdx));
}

attestation::Collateral DcapBuilder::collateral(const TcbInfoSpec& tcb, const QeIdentitySpec& qe) const {
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
  q.qe_mrsigner.fill(0xaa);
  const char* rd = "generated by dcap_builder";
  std::memcpy(q.report_data.data(), rd, std::strlen(rd));
  return q;
}

Bytes DcapBuilder::quote(const QuoteSpec& s) const {
  namespace d = attestation::dcap;
  Bytes q;
  put16(q, s.version);
  put16(q, d::kAttKeyTypeEcdsaP256);
  put32(q, s.tdx ? d::kTeeTypeTdx : d::kTeeTypeSgx);
  put16(q, s.qe_isv_svn);
  put16(q, platform.pce_svn);
  put(q, d::kIntelQeVendorId);
  q.insert(q.end(), 20, 0);
  if (s.version == 5) {
    uint16_t type = !s.tdx ? 1 : (s.td15 ? 3 : 2);
    put16(q, type);
    put32(q, static_cast<uint32_t>(!s.tdx ? 384 : (s.td15 ? 648 : 584)));
  }
  if (!s.tdx) {
    d::EnclaveReport r{};
    r.cpu_svn = platform.cpu_svn_components;
    r.attributes = s.attributes;
    r.mr_enclave.fill(0x11);
    r.mr_signer.fill(0x22);
    r.isv_prod_id = {7, 0};
    r.isv_svn = {3, 0};
    r.report_data = s.report_data;
    const auto* p = reinterpret_cast<const uint8_t*>(&r);
    q.insert(q.end(), p, p + sizeof(r));
  } else {
    d::Td10ReportBody t{};
    t.tee_tcb_svn = s.tee_tcb_svn;
    t.mr_seam.fill(0x33);
    t.mr_signer_seam = s.mr_signer_seam;
    t.td_attributes = s.td_attributes;
    t.xfam = {0xe7, 0x02, 0x06, 0, 0, 0, 0, 0};
    t.mr_td.fill(0x44);
    t.rtmr0.fill(0x55);
    t.report_data = s.report_data;
    const auto* p = reinterpret_cast<const uint8_t*>(&t);
    q.insert(q.end(), p, p + sizeof(t));
    if (s.td15) {
      d::Td15Extension e{};
      e.tee_tcb_svn2 = s.tee_tcb_svn2;
      e.mr_service_td.fill(0x66);
      const auto* pe = reinterpret_cast<const uint8_t*>(&e);
      q.insert(q.end(), pe, pe + sizeof(e));
    }
  }

  Bytes att_xy = must(attestation_key.public_key().ec_xy(), "attestation key xy");
  d::EnclaveReport qe{};
  qe.cpu_svn = platform.cpu_svn_components;
  qe.misc_select = {static_cast<uint8_t>(s.qe_misc_select & 0xff),
                    static_cast<uint8_t>((s.qe_misc_select >> 8) & 0xff),
                    static_cast<uint8_t>((s.qe_misc_select >> 16) & 0xff),
                    static_cast<uint8_t>(s.qe_misc_select >> 24)};
  qe.attributes = s.qe_attributes;
  qe.mr_enclave.fill(0x77);
  qe.mr_signer = s.qe_mrsigner;
  qe.isv_prod_id = {static_cast<uint8_t>(s.qe_isv_prod_id & 0xff),
                    static_cast<uint8_t>(s.qe_isv_prod_id >> 8)};
  qe.isv_svn = {static_cast<uint8_t>(s.qe_isv_svn & 0xff), static_cast<uint8_t>(s.qe_isv_svn >> 8)};
  crypto::Hasher h(crypto::HashAlg::kSha256);
  h.update(att_xy);
  h.update(s.qe_auth_data);
  Bytes binding = h.finish();
  std::memcpy(qe.report_data.data(), binding.data(), binding.size());
  ByteSpan qe_bytes(reinterpret_cast<const uint8_t*>(&qe), sizeof(qe));
  Bytes qe_sig = must(pck_key.sign(qe_bytes, raw_sha256()), "QE report signature");
  Bytes quote_sig = must(attestation_key.sign(q, raw_sha256()), "quote signature");

  std::string pem = pck_chain_pem();
  // QE report, signature, auth data, certification data type 5.
  Bytes tail(qe_bytes.begin(), qe_bytes.end());
  tail.insert(tail.end(), qe_sig.begin(), qe_sig.end());
  put16(tail, static_cast<uint16_t>(s.qe_auth_data.size()));
  tail.insert(tail.end(), s.qe_auth_data.begin(), s.qe_auth_data.end());
  put16(tail, 5);
  put32(tail, static_cast<uint32_t>(pem.size()));
  tail.insert(tail.end(), pem.begin(), pem.end());

  Bytes sig_data = quote_sig;
  sig_data.insert(sig_data.end(), att_xy.begin(), att_xy.end());
  if (s.version == 3) {
    sig_data.insert(sig_data.end(), tail.begin(), tail.end());
  } else {
    put16(sig_data, 6);
    put32(sig_data, static_cast<uint32_t>(tail.size()));
    sig_data.insert(sig_data.end(), tail.begin(), tail.end());
  }
  put32(q, static_cast<uint32_t>(sig_data.size()));
  q.insert(q.end(), sig_data.begin(), sig_data.end());
  q.insert(q.end(), s.trailing_bytes, 0);
  return q;
}

}  // namespace custos::testing::dcap
