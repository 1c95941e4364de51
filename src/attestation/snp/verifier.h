// AMD SEV-SNP evidence verifier: an ATTESTATION_REPORT signed by a VCEK or VLEK, the VEK chained
// to a pinned AMD root (VCEK -> ASK -> ARK, VLEK -> ASVK -> ARK), the reported TCB and chip ID
// bound to the VEK certificate. verify() proves authenticity and returns claims; policy (debug,
// measurement, minimum TCB, ...) is appraisal's job. Reason codes: docs/attestation-snp-tpm.md.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "attestation/common/evidence.h"
#include "attestation/snp/report.h"
#include "crypto/x509.h"

namespace custos::attestation::snp {

// One product's root of trust.
struct ProductAnchor {
  std::string product;              // "Milan", "Genoa", "Turin"
  crypto::Certificate ark;          // pinned by its public key, not its name
  std::vector<crypto::Certificate> intermediates;  // ASK/ASVK used when collateral has none
  TcbLayout tcb_layout = TcbLayout::kMilanGenoa;
  std::optional<uint8_t> cpuid_family;  // checked against v3+ reports (19h Milan/Genoa, 1Ah Turin)
};

// AMD's production roots for Milan, Genoa and Turin (compiled in).
Result<std::vector<ProductAnchor>> amd_product_anchors();

struct VerifierConfig {
  // Roots to trust; unset means AMD's production ARKs. Tests put test ARKs here.
  std::optional<std::vector<ProductAnchor>> anchors;
  // When the collateral has no "ask_ark", use the anchors' compiled-in ASK/ASVK.
  bool use_builtin_intermediates = true;
};

class SnpVerifier final : public Verifier {
 public:
  explicit SnpVerifier(VerifierConfig config = {});
  TeeType tee() const override { return TeeType::kSnp; }
  // Collateral: "vcek" or "vlek" (PEM or DER), optional "ask_ark" (PEM chain: ASK and/or ASVK,
  // optionally the ARK, which must then be a pinned one).
  VerifyResult verify(const Evidence& evidence, const Collateral& collateral,
                      const VerifyOptions& options) const override;

 private:
  VerifyResult verify_impl(const Evidence& evidence, const Collateral& collateral,
                           const VerifyOptions& options) const;

  std::vector<ProductAnchor> anchors_;
  Status init_status_;
  bool use_builtin_intermediates_ = true;
};

}  // namespace custos::attestation::snp
