// Helpers for the SNP tests: reading the shared vectors, and a generator of SNP evidence signed
// by a test ARK -> ASK -> VCEK hierarchy (cf. Intel QVL's QuoteV4Generator).
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "attestation/snp/report.h"
#include "attestation/snp/verifier.h"
#include "base/clock.h"
#include "base/encoding.h"
#include "crypto/pkey.h"
#include "crypto/x509.h"

namespace custos::attestation::snp::testing {

inline std::string vector_path(const std::string& rel) {
  return std::string(CUSTOS_SOURCE_DIR "/../shared/vectors/") + rel;
}

// Reads a vector file; a missing file is a test failure (the vectors are part of the suite).
inline Bytes read_vector(const std::string& rel) {
  std::string path = vector_path(rel);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "missing test vector " << path
                  << " (shared/vectors must sit beside the repository)";
    return {};
  }
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline SysTime at(const char* rfc3339) {
  auto t = parse_rfc3339(rfc3339);
  EXPECT_TRUE(t.ok()) << rfc3339;
  return t.ok() ? *t : SysTime{};
}

inline VerifyResult run(const SnpVerifier& v, const Bytes& report, const Collateral& c,
                        SysTime when) {
  Evidence e;
  e.tee = TeeType::kSnp;
  e.data = report;
  VerifyOptions o;
  o.at = when;
  return v.verify(e, c, o);
}

inline std::string reason(const VerifyResult& r) { return r.ok() ? "accepted" : r.rejection().reason; }

// DER encodings for the VCEK extensions.
inline Bytes der_int(uint8_t v) {
  if (v & 0x80) return {0x02, 0x02, 0x00, v};
  return {0x02, 0x01, v};
}
inline Bytes der_ia5(const std::string& s) {
  Bytes out{0x16, static_cast<uint8_t>(s.size())};
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

// A test AMD-like hierarchy for one product.
struct TestPki {
  crypto::PrivateKey ark_key, ask_key, vcek_key;
  crypto::Certificate ark, ask, vcek;
  std::array<uint8_t, 64> hw_id{};
  std::string product = "Milan";
  TcbVersion tcb{3, 0, 8, 115, std::nullopt};
  SysTime not_before = from_unix_seconds(1700000000);  // 2023-11-14
  SysTime not_after = from_unix_seconds(1900000000);   // 2030-03-17
};

struct PkiOptions {
  std::string product = "Milan";
  TcbVersion tcb{3, 0, 8, 115, std::nullopt};
  bool vlek = false;
  std::string ark_cn;  // default "ARK-<product>"
};

inline void make_pki(TestPki& p, const PkiOptions& o = {}) {
  p.product = o.product;
  p.tcb = o.tcb;
  p.ark_key = *crypto::PrivateKey::generate(crypto::KeyType::kEcP384);
  p.ask_key = *crypto::PrivateKey::generate(crypto::KeyType::kEcP384);
  p.vcek_key = *crypto::PrivateKey::generate(crypto::KeyType::kEcP384);
  for (size_t i = 0; i < p.hw_id.size(); ++i) p.hw_id[i] = static_cast<uint8_t>(0xA0 ^ i);

  crypto::CertificateSpec ark;
  ark.subject_cn = o.ark_cn.empty() ? "ARK-" + o.product : o.ark_cn;
  ark.subject_extra = {{"O", "Advanced Micro Devices"}};
  ark.not_before = p.not_before;
  ark.not_after = p.not_after + std::chrono::hours(24 * 365);
  ark.is_ca = true;
  auto ark_cert = crypto::issue_certificate(ark, p.ark_key.public_key(), p.ark_key, nullptr);
  ASSERT_TRUE(ark_cert.ok()) << ark_cert.status().message();
  p.ark = *ark_cert;

  crypto::CertificateSpec ask;
  ask.subject_cn = (o.vlek ? "SEV-VLEK-" : "SEV-") + o.product;
  ask.subject_extra = {{"O", "Advanced Micro Devices"}};
  ask.not_before = p.not_before;
  ask.not_after = p.not_after + std::chrono::hours(24 * 300);
  ask.is_ca = true;
  ask.path_len = 0;
  auto ask_cert = crypto::issue_certificate(ask, p.ask_key.public_key(), p.ark_key, &p.ark);
  ASSERT_TRUE(ask_cert.ok()) << ask_cert.status().message();
  p.ask = *ask_cert;

  crypto::CertificateSpec vcek;
  vcek.subject_cn = o.vlek ? "SEV-VLEK" : "SEV-VCEK";
  vcek.subject_extra = {{"O", "Advanced Micro Devices"}};
  vcek.serial = {0x01};
  vcek.not_before = p.not_before;
  vcek.not_after = p.not_after;
  vcek.extensions["1.3.6.1.4.1.3704.1.2"] = der_ia5(o.product == "Milan" ? "Milan-B0" : o.product);
  vcek.extensions["1.3.6.1.4.1.3704.1.3.1"] = der_int(o.tcb.bootloader);
  vcek.extensions["1.3.6.1.4.1.3704.1.3.2"] = der_int(o.tcb.tee);
  vcek.extensions["1.3.6.1.4.1.3704.1.3.3"] = der_int(o.tcb.snp);
  vcek.extensions["1.3.6.1.4.1.3704.1.3.8"] = der_int(o.tcb.microcode);
  if (o.tcb.fmc) vcek.extensions["1.3.6.1.4.1.3704.1.3.9"] = der_int(*o.tcb.fmc);
  if (!o.vlek) {
    size_t n = o.product == "Turin" ? 8 : 64;
    vcek.extensions["1.3.6.1.4.1.3704.1.4"] = Bytes(p.hw_id.begin(), p.hw_id.begin() + n);
  } else {
    vcek.extensions["1.3.6.1.4.1.3704.1.5"] = Bytes{'t', 'e', 's', 't'};
  }
  auto vcek_cert = crypto::issue_certificate(vcek, p.vcek_key.public_key(), p.ask_key, &p.ask);
  ASSERT_TRUE(vcek_cert.ok()) << vcek_cert.status().message();
  p.vcek = *vcek_cert;
  if (o.product == "Turin") {
    p.hw_id = {};
    for (size_t i = 0; i < 8; ++i) p.hw_id[i] = static_cast<uint8_t>(0xA0 ^ i);
  }
}

inline ProductAnchor anchor_for(const TestPki& p) {
  ProductAnchor a;
  a.product = p.product;
  a.ark = p.ark;
  a.intermediates = {p.ask};
  a.tcb_layout = p.product == "Turin" ? TcbLayout::kTurin : TcbLayout::kMilanGenoa;
  a.cpuid_family = p.product == "Turin" ? 0x1A : 0x19;
  return a;
}

inline uint64_t encode_tcb(const TcbVersion& t, TcbLayout layout) {
  auto b = [](uint8_t v, int i) { return uint64_t{v} << (8 * i); };
  if (layout == TcbLayout::kTurin) {
    return b(t.fmc.value_or(0), 0) | b(t.bootloader, 1) | b(t.tee, 2) | b(t.snp, 3) |
           b(t.microcode, 7);
  }
  return b(t.bootloader, 0) | b(t.tee, 1) | b(t.snp, 6) | b(t.microcode, 7);
}

struct ReportSpec {
  uint32_t version = 2;
  uint64_t policy = 0x30000;  // SMT allowed, reserved bit 17 set
  uint32_t vmpl = 0;
  uint32_t signing_key = 0;
  bool mask_chip_id = false;
  std::optional<TcbVersion> reported_tcb;  // default: the PKI's
  std::optional<std::array<uint8_t, 64>> chip_id;  // default: the PKI's hwID
  uint8_t cpuid_family = 0x19;
  std::array<uint8_t, 48> measurement{};
  std::array<uint8_t, 64> report_data{};
};

inline void put_le(Bytes& b, size_t off, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) b[off + i] = static_cast<uint8_t>((v >> (8 * i)) & 0xff);
}

inline Bytes make_report(const TestPki& p, const ReportSpec& s,
                         const crypto::PrivateKey* signer = nullptr) {
  TcbLayout layout = p.product == "Turin" ? TcbLayout::kTurin : TcbLayout::kMilanGenoa;
  Bytes r(kReportSize, 0);
  put_le(r, off::kVersion, s.version, 4);
  put_le(r, off::kPolicy, s.policy, 8);
  put_le(r, off::kVmpl, s.vmpl, 4);
  put_le(r, off::kSignatureAlgo, kSigAlgoEcdsaP384Sha384, 4);
  uint64_t tcb = encode_tcb(s.reported_tcb.value_or(p.tcb), layout);
  put_le(r, off::kCurrentTcb, tcb, 8);
  put_le(r, off::kSignerInfo, (s.mask_chip_id ? 2u : 0u) | (s.signing_key << 2), 4);
  std::copy(s.report_data.begin(), s.report_data.end(), r.begin() + off::kReportData);
  std::copy(s.measurement.begin(), s.measurement.end(), r.begin() + off::kMeasurement);
  put_le(r, off::kReportedTcb, tcb, 8);
  if (s.version >= 3) {
    r[off::kCpuidFamId] = s.cpuid_family;
    r[off::kCpuidModId] = 0x01;
    r[off::kCpuidStep] = 0x01;
  }
  if (!s.mask_chip_id) {
    auto chip = s.chip_id.value_or(p.hw_id);
    std::copy(chip.begin(), chip.end(), r.begin() + off::kChipId);
  }
  put_le(r, off::kCommittedTcb, tcb, 8);
  put_le(r, off::kLaunchTcb, tcb, 8);
  r[off::kCurrentMajor] = 1;
  r[off::kCurrentMinor] = 55;
  r[off::kCurrentBuild] = 7;
  crypto::SignOptions so;
  so.hash = crypto::HashAlg::kSha384;
  so.ec_format = crypto::SignOptions::EcFormat::kRaw;
  const crypto::PrivateKey& key = signer ? *signer : p.vcek_key;
  auto sig = key.sign(ByteSpan(r).subspan(0, kSignedSize), so);
  EXPECT_TRUE(sig.ok());
  if (!sig.ok() || sig->size() != 96) return r;
  for (size_t i = 0; i < 48; ++i) {
    r[off::kSignatureR + i] = (*sig)[47 - i];
    r[off::kSignatureS + i] = (*sig)[95 - i];
  }
  return r;
}

inline Collateral collateral_for(const TestPki& p, bool with_chain = true, bool vlek = false) {
  Collateral c;
  c[vlek ? "vlek" : "vcek"] = p.vcek.der();
  if (with_chain) c["ask_ark"] = to_bytes(p.ask.pem() + p.ark.pem());
  return c;
}

}  // namespace custos::attestation::snp::testing
