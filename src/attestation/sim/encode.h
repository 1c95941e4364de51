// Encoders for DCAP-shaped evidence and collateral: the SGX extensions of a PCK certificate, TCB
// Info / QE Identity JSON in PCS's layout, PCS signed bodies, and SGX/TDX quotes (v3, v4, v5).
// The sim TEE makes its evidence with these; the DCAP tests make their generated evidence with
// them too (tests/attestation/dcap/dcap_builder.h), so one encoder serves both (cf. Intel QVL's
// QuoteV4Generator / TcbInfoJsonGenerator). Layouts: docs/formats/collateral.md.
//
// These functions encode what they are given; they do not check that a spec makes sense (a
// negative test wants a TCB Info with an unknown status or a quote with a foreign QE MRSIGNER).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/status.h"
#include "crypto/pkey.h"

namespace custos::attestation::sim {

// The platform values a PCK certificate carries [PCK Certificate and CRL Profile, "Intel SGX
// Extensions"] and a quote header/QE report repeats.
struct PlatformSpec {
  std::array<uint8_t, 16> cpu_svn_components = {5, 5, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0};
  uint16_t pce_svn = 13;
  std::array<uint8_t, 6> fmspc = {0x00, 0x90, 0x6e, 0xa1, 0x00, 0x00};
  std::array<uint8_t, 2> pce_id = {0, 0};
  uint32_t sgx_type = 0;
};

// The DER value of the SGX extensions (OID 1.2.840.113741.1.13.1) for `p`: PPID (0x42 bytes),
// TCB (16 components, PCESVN, CPUSVN), PCE-ID, FMSPC, SGX type, and the configuration flags.
Bytes sgx_extensions_der(const PlatformSpec& p);

struct LevelSpec {
  std::array<uint8_t, 16> sgx_components{};
  uint16_t pce_svn = 0;
  std::array<uint8_t, 16> tdx_components{};  // used for TDX TCB Info
  std::string status = "UpToDate";
  std::vector<std::string> advisory_ids;
};

// Identity TCB levels (QE Identity, TDX module identities): ISVSVN and status. A level whose
// status is not UpToDate carries the advisory "INTEL-SA-00999".
using IdentityLevels = std::vector<std::pair<uint16_t, std::string>>;

struct ModuleIdentitySpec {
  std::string id = "TDX_01";
  std::string mrsigner_hex = std::string(96, '0');
  IdentityLevels levels = {{2, "UpToDate"}};
};

struct TcbInfoSpec {
  int version = 3;
  std::string id = "SGX";  // "SGX" | "TDX" (v3)
  SysTime issue_date;
  SysTime next_update;
  std::string fmspc_hex;   // empty: the platform's
  std::string pce_id_hex;  // empty: the platform's
  uint32_t evaluation_data_number = 17;
  std::vector<LevelSpec> levels;
  std::vector<ModuleIdentitySpec> module_identities;
};

struct QeIdentitySpec {
  std::string id = "QE";
  SysTime issue_date;
  SysTime next_update;
  std::string miscselect = "00000000";
  std::string miscselect_mask = "FFFFFFFF";
  std::string attributes = "11000000000000000000000000000000";
  std::string attributes_mask = "FBFFFFFFFFFFFFFF0000000000000000";
  std::string mrsigner_hex;  // 64 hex digits: the QE's MRSIGNER
  uint16_t isv_prod_id = 1;
  IdentityLevels levels = {{8, "UpToDate"}, {6, "OutOfDate"}};
};

// The "tcbInfo" / "enclaveIdentity" objects (the bytes PCS signs).
std::string tcb_info_json(const TcbInfoSpec& spec, const PlatformSpec& platform);
std::string qe_identity_json(const QeIdentitySpec& spec);
// {"<key>": <json> ,\n "signature":"<hex r||s by signer>"}: a PCS response body. The whitespace
// around the signed value is deliberate: verifiers must not depend on it.
Result<std::string> sign_pcs_body(std::string_view key, std::string_view json,
                                  const crypto::PrivateKey& signer);

struct QuoteSpec {
  uint16_t version = 3;
  bool tdx = false;
  bool td15 = false;  // v5 only: TD 1.5 body
  std::array<uint8_t, 64> report_data{};
  // The SGX report body (SGX quotes).
  std::array<uint8_t, 32> mr_enclave{};
  std::array<uint8_t, 32> mr_signer{};
  uint16_t isv_prod_id = 0;
  uint16_t isv_svn = 0;
  // INIT | MODE64BIT; XFRM x87|SSE|AVX|... Bit 1 of byte 0 is DEBUG.
  std::array<uint8_t, 16> attributes = {0x05, 0, 0, 0, 0, 0, 0, 0, 0xe7, 0, 0, 0, 0, 0, 0, 0};
  // The TD report body (TDX quotes).
  std::array<uint8_t, 8> td_attributes{};
  std::array<uint8_t, 16> tee_tcb_svn = {3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  std::array<uint8_t, 16> tee_tcb_svn2 = {3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  std::array<uint8_t, 48> mr_signer_seam{};
  // The QE report.
  std::array<uint8_t, 32> qe_mrenclave{};
  std::array<uint8_t, 32> qe_mrsigner{};
  uint16_t qe_isv_prod_id = 1;
  uint16_t qe_isv_svn = 8;
  uint32_t qe_misc_select = 0;
  std::array<uint8_t, 16> qe_attributes = {0x15, 0, 0, 0, 0, 0, 0, 0, 0xe7, 0, 0, 0, 0, 0, 0, 0};
  Bytes qe_auth_data = Bytes(32, 0xaa);
  size_t trailing_bytes = 0;  // zero bytes appended after the signature data
};

// Keys and certificates that sign a quote.
// A real QE certifies its attestation key once: every quote that key signs carries the same QE
// report and the same PCK signature over it. The memo does the same for the sim platform, so a
// quote costs one ECDSA signature, not two. Thread-safe; bounded.
class QeSignatureMemo {
 public:
  Result<Bytes> sign(const crypto::PrivateKey& pck_key, ByteSpan qe_report);

 private:
  std::mutex mu_;
  std::map<Bytes, Bytes> signatures_;  // QE report -> raw r||s
};

struct QuoteSigners {
  const crypto::PrivateKey& pck_key;          // signs the QE report
  const crypto::PrivateKey& attestation_key;  // signs header || body; bound in the QE report
  std::string_view pck_chain_pem;             // certification data type 5: leaf, CA, root
  QeSignatureMemo* qe_memo = nullptr;         // reuse QE report signatures (as a real QE does)
  ByteSpan attestation_key_xy = {};            // x||y of attestation_key, if known (else read)
};

// Encodes and signs a quote. Header QE SVN is spec.qe_isv_svn, PCE SVN and CPUSVN come from
// `platform`. v3 carries the QE report directly, v4/v5 inside certification data type 6.
Result<Bytes> encode_quote(const QuoteSpec& spec, const PlatformSpec& platform,
                           const QuoteSigners& signers);

}  // namespace custos::attestation::sim
