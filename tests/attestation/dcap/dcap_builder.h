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
#include "attestation/sim/encode.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "crypto/pkey.h"
#include "crypto/x509.h"

namespace custos::testing::dcap {

// 2025-01-01T00:00:00Z: the instant generated evidence is verified at unless a test moves it.
SysTime default_now();

// The spec types and encoders live in src/attestation/sim/encode.h (the sim TEE makes its evidence
// with them); the builder adds a test PKI shaped like Intel's and test defaults.
using attestation::sim::LevelSpec;
using attestation::sim::ModuleIdentitySpec;
using attestation::sim::PlatformSpec;
using attestation::sim::QeIdentitySpec;
using attestation::sim::QuoteSpec;
using attestation::sim::TcbInfoSpec;

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

  // MRENCLAVE 0x11.., MRSIGNER 0x22.., ISV product 7, SVN 3; QE MRENCLAVE 0x77.., MRSIGNER 0xaa...
  QuoteSpec default_quote(bool tdx = false, uint16_t version = 3) const;
  Bytes quote(const QuoteSpec& spec) const;
};

// The DER value of the SGX extensions for `p` (exposed for the PCK extension parser tests).
using attestation::sim::sgx_extensions_der;

}  // namespace custos::testing::dcap
