#include "attestation/sim/encode.h"

#include <cctype>
#include <cstdio>
#include <cstring>
#include <initializer_list>

#include "attestation/dcap/der.h"
#include "attestation/dcap/quote.h"
#include "base/encoding.h"
#include "crypto/hash.h"

namespace custos::attestation::sim {
namespace {

using dcap::der::tlv;

// An OID below 1.2.840.113741.1.13.1 (the SGX extensions arc).
Bytes sgx_oid(std::initializer_list<uint8_t> arcs) {
  Bytes c = {0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01};
  c.insert(c.end(), arcs.begin(), arcs.end());
  return tlv(0x06, c);
}

// A non-negative INTEGER (tag 0x02) or ENUMERATED (0x0a), minimally encoded.
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

// PCS writes hex in upper case.
std::string hex_upper(ByteSpan b) {
  std::string h = hex_encode(b);
  for (auto& c : h) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return h;
}

crypto::SignOptions raw_ecdsa_sha256() {
  crypto::SignOptions o;
  o.ec_format = crypto::SignOptions::EcFormat::kRaw;
  return o;
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
template <typename T>
void put_struct(Bytes& b, const T& s) {
  const auto* p = reinterpret_cast<const uint8_t*>(&s);
  b.insert(b.end(), p, p + sizeof(s));
}
std::array<uint8_t, 2> le16(uint16_t v) {
  return {static_cast<uint8_t>(v & 0xff), static_cast<uint8_t>(v >> 8)};
}

std::string levels_json(const IdentityLevels& levels) {
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

std::string tcb_info_json(const TcbInfoSpec& s, const PlatformSpec& platform) {
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
           "\"tcbLevels\":" +
           levels_json(m.levels) + "}";
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
        char name[40];
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

std::string qe_identity_json(const QeIdentitySpec& s) {
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

Result<std::string> sign_pcs_body(std::string_view key, std::string_view json,
                                  const crypto::PrivateKey& signer) {
  ASSIGN_OR_RETURN(Bytes sig, signer.sign(as_bytes(json), raw_ecdsa_sha256()));
  std::string out = "{\"";
  out += key;
  out += "\": ";
  out += json;
  out += " ,\n \"signature\":\"" + hex_encode(sig) + "\"}";
  return out;
}

Result<Bytes> QeSignatureMemo::sign(const crypto::PrivateKey& pck_key, ByteSpan qe_report) {
  Bytes key(qe_report.begin(), qe_report.end());
  {
    std::lock_guard lock(mu_);
    if (auto it = signatures_.find(key); it != signatures_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(Bytes sig, pck_key.sign(qe_report, raw_ecdsa_sha256()));
  std::lock_guard lock(mu_);
  if (signatures_.size() >= 64) signatures_.clear();
  signatures_.emplace(std::move(key), sig);
  return sig;
}

Result<Bytes> encode_quote(const QuoteSpec& s, const PlatformSpec& platform,
                           const QuoteSigners& signers) {
  namespace d = attestation::dcap;
  if (s.version < 3 || s.version > 5) {
    return invalid_argument("cannot encode quote version " + std::to_string(s.version));
  }
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
    r.mr_enclave = s.mr_enclave;
    r.mr_signer = s.mr_signer;
    r.isv_prod_id = le16(s.isv_prod_id);
    r.isv_svn = le16(s.isv_svn);
    r.report_data = s.report_data;
    put_struct(q, r);
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
    put_struct(q, t);
    if (s.td15) {
      d::Td15Extension e{};
      e.tee_tcb_svn2 = s.tee_tcb_svn2;
      e.mr_service_td.fill(0x66);
      put_struct(q, e);
    }
  }

  Bytes att_xy(signers.attestation_key_xy.begin(), signers.attestation_key_xy.end());
  if (att_xy.empty()) {
    ASSIGN_OR_RETURN(att_xy, signers.attestation_key.public_ec_xy());
  }
  if (att_xy.size() != d::kEcdsaKeySize) {
    return invalid_argument("the attestation key must be an EC P-256 key");
  }
  if (s.qe_auth_data.size() > 0xffff) return invalid_argument("QE auth data too long");
  d::EnclaveReport qe{};
  qe.cpu_svn = platform.cpu_svn_components;
  qe.misc_select = {static_cast<uint8_t>(s.qe_misc_select & 0xff),
                    static_cast<uint8_t>((s.qe_misc_select >> 8) & 0xff),
                    static_cast<uint8_t>((s.qe_misc_select >> 16) & 0xff),
                    static_cast<uint8_t>(s.qe_misc_select >> 24)};
  qe.attributes = s.qe_attributes;
  qe.mr_enclave = s.qe_mrenclave;
  qe.mr_signer = s.qe_mrsigner;
  qe.isv_prod_id = le16(s.qe_isv_prod_id);
  qe.isv_svn = le16(s.qe_isv_svn);
  // [QVL 4.1.2.4.10] QE report data = SHA-256(attestation key || QE auth data) || 32 zero bytes.
  crypto::Hasher h(crypto::HashAlg::kSha256);
  h.update(att_xy);
  h.update(s.qe_auth_data);
  Bytes binding = h.finish();
  std::memcpy(qe.report_data.data(), binding.data(), binding.size());
  ByteSpan qe_bytes(reinterpret_cast<const uint8_t*>(&qe), sizeof(qe));
  ASSIGN_OR_RETURN(Bytes qe_sig, signers.qe_memo
                                     ? signers.qe_memo->sign(signers.pck_key, qe_bytes)
                                     : signers.pck_key.sign(qe_bytes, raw_ecdsa_sha256()));
  ASSIGN_OR_RETURN(Bytes quote_sig, signers.attestation_key.sign(q, raw_ecdsa_sha256()));

  // QE report, signature, auth data, certification data type 5 (PEM chain).
  Bytes tail(qe_bytes.begin(), qe_bytes.end());
  tail.insert(tail.end(), qe_sig.begin(), qe_sig.end());
  put16(tail, static_cast<uint16_t>(s.qe_auth_data.size()));
  tail.insert(tail.end(), s.qe_auth_data.begin(), s.qe_auth_data.end());
  put16(tail, static_cast<uint16_t>(d::CertDataType::kPckChainPem));
  put32(tail, static_cast<uint32_t>(signers.pck_chain_pem.size()));
  tail.insert(tail.end(), signers.pck_chain_pem.begin(), signers.pck_chain_pem.end());

  Bytes sig_data = quote_sig;
  sig_data.insert(sig_data.end(), att_xy.begin(), att_xy.end());
  if (s.version == 3) {
    sig_data.insert(sig_data.end(), tail.begin(), tail.end());
  } else {
    put16(sig_data, static_cast<uint16_t>(d::CertDataType::kQeReportCertData));
    put32(sig_data, static_cast<uint32_t>(tail.size()));
    sig_data.insert(sig_data.end(), tail.begin(), tail.end());
  }
  put32(q, static_cast<uint32_t>(sig_data.size()));
  q.insert(q.end(), sig_data.begin(), sig_data.end());
  q.insert(q.end(), s.trailing_bytes, 0);
  return q;
}

}  // namespace custos::attestation::sim
