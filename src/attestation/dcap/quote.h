// Intel DCAP quote parsing: SGX quote v3 (and the v4 SGX layout), TDX quote v4 (TD 1.0 body) and
// v5 (typed body: SGX, TD 1.0 or TD 1.5). Layouts follow the "Quote Format" appendices of the Intel
// SGX ECDSA Quote Library API and the Intel TDX DCAP Quoting Library API; docs/formats/collateral.md
// summarizes them. Every read is bounds-checked (base/reader.h); every fixed-size structure below
// is pinned to the spec's offsets with static_assert.
//
// A parsed Quote holds copies of the fixed-size structures and spans into the input for the
// variable parts (signed data, QE auth data, certification data): keep the input alive.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "base/bytes.h"
#include "base/status.h"

namespace custos::attestation::dcap {

inline constexpr uint16_t kQuoteV3 = 3;
inline constexpr uint16_t kQuoteV4 = 4;
inline constexpr uint16_t kQuoteV5 = 5;
inline constexpr uint16_t kAttKeyTypeEcdsaP256 = 2;
inline constexpr uint32_t kTeeTypeSgx = 0x00000000;
inline constexpr uint32_t kTeeTypeTdx = 0x00000081;
// Intel's QE vendor ID, 939A7233-F79C-4CA9-940A-0DB3957F0607.
inline constexpr std::array<uint8_t, 16> kIntelQeVendorId = {
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
    0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

// Certification data types [QL "Certification Data"].
enum class CertDataType : uint16_t {
  kPpidCleartext = 1,
  kPpidRsa2048 = 2,
  kPpidRsa3072 = 3,
  kPckLeaf = 4,
  kPckChainPem = 5,
  kQeReportCertData = 6,  // v4/v5: QE report + signature + auth data + nested type 1-5
  kPlatformManifest = 7,
};

// Body types of quote v5 (TDX DCAP QL "Quote Body Descriptor").
enum class BodyType : uint16_t { kSgxEnclave = 1, kTd10 = 2, kTd15 = 3 };

// Quote header, 48 bytes [QL "Quote Header"]. Integers are little-endian.
struct QuoteHeaderRaw {
  std::array<uint8_t, 2> version;
  std::array<uint8_t, 2> att_key_type;
  std::array<uint8_t, 4> tee_type;  // v3: reserved (zero)
  std::array<uint8_t, 2> qe_svn;    // v3/v4: QE SVN; v5: reserved
  std::array<uint8_t, 2> pce_svn;
  std::array<uint8_t, 16> qe_vendor_id;
  std::array<uint8_t, 20> user_data;
};
static_assert(sizeof(QuoteHeaderRaw) == 48);
static_assert(offsetof(QuoteHeaderRaw, tee_type) == 4);
static_assert(offsetof(QuoteHeaderRaw, qe_vendor_id) == 12);
static_assert(offsetof(QuoteHeaderRaw, user_data) == 28);

// SGX report body, 384 bytes [QL "Enclave Report Body"]; also the QE report.
struct EnclaveReport {
  std::array<uint8_t, 16> cpu_svn;
  std::array<uint8_t, 4> misc_select;
  std::array<uint8_t, 12> reserved1;
  std::array<uint8_t, 16> isv_ext_prod_id;
  std::array<uint8_t, 16> attributes;
  std::array<uint8_t, 32> mr_enclave;
  std::array<uint8_t, 32> reserved2;
  std::array<uint8_t, 32> mr_signer;
  std::array<uint8_t, 32> reserved3;
  std::array<uint8_t, 64> config_id;
  std::array<uint8_t, 2> isv_prod_id;
  std::array<uint8_t, 2> isv_svn;
  std::array<uint8_t, 2> config_svn;
  std::array<uint8_t, 42> reserved4;
  std::array<uint8_t, 16> isv_family_id;
  std::array<uint8_t, 64> report_data;

  uint32_t misc_select_value() const;
  uint16_t isv_prod_id_value() const;
  uint16_t isv_svn_value() const;
  uint16_t config_svn_value() const;
};
static_assert(sizeof(EnclaveReport) == 384);
static_assert(offsetof(EnclaveReport, misc_select) == 16);
static_assert(offsetof(EnclaveReport, isv_ext_prod_id) == 32);
static_assert(offsetof(EnclaveReport, attributes) == 48);
static_assert(offsetof(EnclaveReport, mr_enclave) == 64);
static_assert(offsetof(EnclaveReport, mr_signer) == 128);
static_assert(offsetof(EnclaveReport, config_id) == 192);
static_assert(offsetof(EnclaveReport, isv_prod_id) == 256);
static_assert(offsetof(EnclaveReport, isv_svn) == 258);
static_assert(offsetof(EnclaveReport, config_svn) == 260);
static_assert(offsetof(EnclaveReport, isv_family_id) == 304);
static_assert(offsetof(EnclaveReport, report_data) == 320);

// TD report body of TDX 1.0, 584 bytes [TDX DCAP QL "TD Quote Body"].
struct Td10ReportBody {
  std::array<uint8_t, 16> tee_tcb_svn;
  std::array<uint8_t, 48> mr_seam;
  std::array<uint8_t, 48> mr_signer_seam;
  std::array<uint8_t, 8> seam_attributes;
  std::array<uint8_t, 8> td_attributes;
  std::array<uint8_t, 8> xfam;
  std::array<uint8_t, 48> mr_td;
  std::array<uint8_t, 48> mr_config_id;
  std::array<uint8_t, 48> mr_owner;
  std::array<uint8_t, 48> mr_owner_config;
  std::array<uint8_t, 48> rtmr0;
  std::array<uint8_t, 48> rtmr1;
  std::array<uint8_t, 48> rtmr2;
  std::array<uint8_t, 48> rtmr3;
  std::array<uint8_t, 64> report_data;
};
static_assert(sizeof(Td10ReportBody) == 584);
static_assert(offsetof(Td10ReportBody, mr_signer_seam) == 64);
static_assert(offsetof(Td10ReportBody, seam_attributes) == 112);
static_assert(offsetof(Td10ReportBody, td_attributes) == 120);
static_assert(offsetof(Td10ReportBody, xfam) == 128);
static_assert(offsetof(Td10ReportBody, mr_td) == 136);
static_assert(offsetof(Td10ReportBody, rtmr0) == 328);
static_assert(offsetof(Td10ReportBody, report_data) == 520);

// The TDX 1.5 additions that follow a TD 1.0 body in a v5 body of type 3 (648 bytes in all).
struct Td15Extension {
  std::array<uint8_t, 16> tee_tcb_svn2;
  std::array<uint8_t, 48> mr_service_td;
};
static_assert(sizeof(Td15Extension) == 64);
inline constexpr size_t kTd15BodySize = sizeof(Td10ReportBody) + sizeof(Td15Extension);
static_assert(kTd15BodySize == 648);

inline constexpr size_t kEcdsaSignatureSize = 64;  // r || s, big-endian
inline constexpr size_t kEcdsaKeySize = 64;        // x || y, big-endian

struct Quote {
  QuoteHeaderRaw header;
  uint16_t version = 0;
  uint32_t tee_type = 0;
  BodyType body_type = BodyType::kSgxEnclave;
  std::optional<EnclaveReport> sgx_body;      // body_type kSgxEnclave
  std::optional<Td10ReportBody> td_body;      // kTd10 and kTd15
  std::optional<Td15Extension> td15_extension;  // kTd15

  ByteSpan signed_data;  // header || [v5 body descriptor] || body: what the attestation key signs
  std::array<uint8_t, kEcdsaSignatureSize> signature;
  std::array<uint8_t, kEcdsaKeySize> attestation_key;
  EnclaveReport qe_report;
  ByteSpan qe_report_raw;  // the 384 bytes the PCK key signed
  std::array<uint8_t, kEcdsaSignatureSize> qe_report_signature;
  ByteSpan qe_auth_data;
  CertDataType cert_data_type = CertDataType::kPckChainPem;  // innermost (type 6 unwrapped)
  ByteSpan cert_data;
  size_t trailing_bytes = 0;  // bytes after the signature data (tolerated, not signed)

  bool is_tdx() const { return tee_type == kTeeTypeTdx; }
  const std::array<uint8_t, 64>& report_data() const;
};

// Parses and structurally validates a quote. Failures are reason::fail() statuses
// ("dcap.quote.truncated: ...", "dcap.quote.unsupported_version: ...", ...).
Result<Quote> parse_quote(ByteSpan data);

}  // namespace custos::attestation::dcap
