// DCAP collateral: Intel PCS/PCCS JSON bodies (TCB Info v2/v3, Enclave Identity v2), dcap-qvl
// collateral bundles, and the named items of attestation::Collateral (docs/formats/collateral.md).
//
// Signed JSON: PCS signs the exact bytes of the "tcbInfo" / "enclaveIdentity" value as it appears
// in the response body. We never re-serialize: split_signed_json() finds that substring with a
// small scanner over the (already validated) body and the verifier checks the signature over it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attestation/common/evidence.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "base/status.h"

namespace custos::attestation::dcap {

// A TCB level of a TCB Info [PCS "TCB Info V2/V3: tcbLevels"].
struct TcbLevel {
  std::array<uint8_t, 16> sgx_components{};
  uint16_t pce_svn = 0;
  std::optional<std::array<uint8_t, 16>> tdx_components;  // v3 TDX only
  SysTime tcb_date;
  TcbStatus status = TcbStatus::kUpToDate;
  std::vector<std::string> advisory_ids;
};

// A TCB level of an Enclave Identity or a TDX module identity: keyed by ISVSVN alone.
struct IdentityTcbLevel {
  uint16_t isv_svn = 0;
  SysTime tcb_date;
  TcbStatus status = TcbStatus::kUpToDate;
  std::vector<std::string> advisory_ids;
};

struct TdxModule {
  std::array<uint8_t, 48> mr_signer{};
  std::array<uint8_t, 8> attributes{};
  std::array<uint8_t, 8> attributes_mask{};
};

struct TdxModuleIdentity {
  std::string id;  // "TDX_01", ...
  TdxModule module;
  std::vector<IdentityTcbLevel> levels;
};

struct TcbInfo {
  enum class Id { kSgx, kTdx };
  Id id = Id::kSgx;  // v2 has no "id" and is SGX only
  int version = 0;   // 2 or 3
  SysTime issue_date;
  SysTime next_update;
  std::array<uint8_t, 6> fmspc{};
  std::array<uint8_t, 2> pce_id{};
  uint32_t tcb_type = 0;
  uint32_t tcb_evaluation_data_number = 0;
  std::optional<TdxModule> tdx_module;
  std::vector<TdxModuleIdentity> tdx_module_identities;
  std::vector<TcbLevel> levels;  // in the order Intel lists them: highest first
};

struct EnclaveIdentity {
  std::string id;  // "QE", "QVE", "TD_QE"
  int version = 0;
  SysTime issue_date;
  SysTime next_update;
  uint32_t tcb_evaluation_data_number = 0;
  uint32_t misc_select = 0;  // the hex string read as a big-endian number, as QVL does
  uint32_t misc_select_mask = 0;
  std::array<uint8_t, 16> attributes{};
  std::array<uint8_t, 16> attributes_mask{};
  std::array<uint8_t, 32> mr_signer{};
  uint16_t isv_prod_id = 0;
  std::vector<IdentityTcbLevel> levels;
};

// The signed part of a PCS body {"<key>": {...}, "signature": "<hex r||s>"}.
struct SignedJson {
  std::string body;  // the exact bytes of the value of <key>
  Bytes signature;   // 64 bytes r || s
};

// Splits a PCS body. `key` is "tcbInfo" or "enclaveIdentity". Rejects duplicate top-level keys.
Result<SignedJson> split_signed_json(std::string_view pcs_body, std::string_view key);

// Parse the signed objects (the `body` of SignedJson). Failures are reason::fail() statuses with
// "dcap.tcb_info.malformed" / "dcap.qe_identity.malformed" (or .unsupported_version).
Result<TcbInfo> parse_tcb_info(std::string_view json);
Result<EnclaveIdentity> parse_enclave_identity(std::string_view json);

// A dcap-qvl QuoteCollateralV3 JSON bundle (tcb_info / qe_identity as raw JSON strings with hex
// r||s signatures, issuer chains PEM, CRLs hex DER) as named collateral items. TCB info and QE
// identity become PCS-shaped bodies whose signed substring is byte-identical to the bundle's.
Result<Collateral> collateral_from_bundle(ByteSpan json);

}  // namespace custos::attestation::dcap
