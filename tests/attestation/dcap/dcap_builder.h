// Generated DCAP evidence for tests (cf. Intel QVL's QuoteV4Generator / TcbInfoJsonGenerator):
// a test PKI shaped like Intel's (root CA, PCK Platform CA, PCK leaf with SGX extensions, TCB
// signing certificate), CRLs, signed TCB Info / QE Identity JSON, and SGX/TDX quotes signed with a
// test attestation key. The verifier trusts the test root through VerifierConfig::trusted_root.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "attestation/common/evidence.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "crypto/pkey.h"
#include "crypto/x509.h"

namespace custos::testing::dcap {

// 2025-01-01T00:00:00Z: the instant generated evidence is verified at unless a test moves it.
SysTime default_now();

struct PlatformSpec {
  std::array<uint8_t, 16> cpu_svn_components = {5, 5, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0};
  uint16_t pce_svn = 13;
  std::array<uint8_t, 6> fmspc = {0x00, 0x90, 0x6e, 0xa1, 0x00, 0x00};
  std::array<uint8_t, 2> pce_id = {0, 0};
  uint32_t sgx_type = 0;
};

struct LevelSpec {
  std::array<uint8_t, 16> sgx_components{};
  uint16_t pce_svn = 0;
  std::array<uint8_t, 16> tdx_components{};  // used for TDX TCB Info
  std::string status = "UpToDate";
  std::vector<std::string> advisory_ids;
};

struct ModuleIdentitySpec {
  std::string id = "TDX_01";
  std::string mrsigner_hex = std::string(96, '0');
  std::vector<std::pair<uint16_t, std::string>> levels = {{2, "UpToDate"}};  // isvsvn, status
};

struct TcbInfoSpec {
  int version = 3;
  std::string id = "SGX";  // "SGX" | "TDX" (v3)
  SysTime issue_date;
  SysTime next_update;
  std::string fmspc_hex;   // default: the platform's
  std::string pce_id_hex;  // default: the platform's
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
  std::string mrsigner_hex;  // default: the QE MRSIGNER the quote builder uses
  uint16_t isv_prod_id = 1;
  std::vector<std::pair<uint16_t, std::string>> levels = {{8, "UpToDate"}, {6, "OutOfDate"}};
};

struct QuoteSpec {
  uint16_t version = 3;
  bool tdx = false;
  bool td15 = false;  // v5 only: TD 1.5 body
  std::array<uint8_t, 64> report_data{};
  std::array<uint8_t, 16> attributes = {0x05, 0, 0, 0, 0, 0, 0, 0, 0xe7, 0, 0, 0, 0, 0, 0, 0};
  std::array<uint8_t, 8> td_attributes{};
  std::array<uint8_t, 16> tee_tcb_svn = {3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  std::array<uint8_t, 16> tee_tcb_svn2 = {3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  std::array<uint8_t, 48> mr_signer_seam{};
  // The QE report.
  std::array<uint8_t, 32> qe_mrsigner{};  // default filled by the builder
  uint16_t qe_isv_prod_id = 1;
  uint16_t qe_isv_svn = 8;
  uint32_t qe_misc_select = 0;
  std::array<uint8_t, 16> qe_attributes = {0x15, 0, 0, 0, 0, 0, 0, 0, 0xe7, 0, 0, 0, 0, 0, 0, 0};
  Bytes qe_auth_data = Bytes(32, 0xaa);
  size_t trailing_bytes = 0;
};

class DcapBuilder {
 public:
  // Generates the keys and certificates (valid default_now() - 1 year .. + 5 years).
  explicit DcapBuilder(PlatformSpec platform = {});

  PlatformSpec platform;
  crypto::PrivateKey root_key, pck_ca_key, pck_key, tcb_key, attestation_key;
  crypto::Certificate root, pck_ca, pck, tcb_signing;

  // Certificates as PEM text.
  std::string pck_chain_pem() const;      // leaf, CA, root
  std::string signing_chain_pem() const;  // TCB signing, root
  // Re-issues the PCK leaf (new serial) with other platform values or validity.
  void reissue_pck(const PlatformSpec& p, SysTime not_before, SysTime not_after);

  Bytes pck_crl(const std::vector<Bytes>& revoked, SysTime this_update, SysTime next_update) const;
  Bytes root_crl(const std::vector<Bytes>& revoked, SysTime this_update, SysTime next_update) const;

  TcbInfoSpec default_tcb_info(bool tdx = false) const;
  QeIdentitySpec default_qe_identity(bool tdx = false) const;
  std::string tcb_info_json(const TcbInfoSpec& spec) const;
  std::string qe_identity_json(const QeIdentitySpec& spec) const;
  // {"<key>":<json>,"signature":"<hex r||s by the TCB signing key>"}
  std::string sign_body(const std::string& key, const std::string& json) const;

  // The complete collateral for the defaults (or the given specs), valid at default_now().
  attestation::Collateral collateral(bool tdx = false) const;
  attestation::Collateral collateral(const TcbInfoSpec& tcb, const QeIdentitySpec& qe) const;

  QuoteSpec default_quote(bool tdx = false, uint16_t version = 3) const;
  Bytes quote(const QuoteSpec& spec) const;
};

// The DER value of the SGX extensions for `p` (exposed for the PCK extension parser tests).
Bytes sgx_extensions_der(const PlatformSpec& p);

}  // namespace custos::testing::dcap
