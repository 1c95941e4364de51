// TPM 2.0 quote verifier: a TPMS_ATTEST (TPM_ST_ATTEST_QUOTE) signed by an attestation key, the
// key pinned by the caller or certified by a configured CA, the nonce echoed in extraData, and
// pcrDigest recomputed from supplied PCR values. verify() proves authenticity and returns claims;
// which PCR values are acceptable is appraisal's job. Reason codes: docs/attestation-snp-tpm.md.
#pragma once

#include <vector>

#include "attestation/common/evidence.h"
#include "attestation/tpm/structures.h"
#include "crypto/x509.h"

namespace custos::attestation::tpm {

struct VerifierConfig {
  // SHA-1 signatures (and so SHA-1 pcrDigests) are collision-prone: rejected unless allowed.
  bool allow_sha1 = false;
  // CAs that may certify AKs ("ak_cert"). When empty, a self-signed certificate in the
  // collateral's "ak_ca" is used as the root: that is the caller pinning it, like "ak_pub".
  std::vector<crypto::Certificate> ak_roots;
  // When the AK arrives as TPMT_PUBLIC, require a restricted signing key (Part 1, 25.2: only a
  // restricted key guarantees the TPM built the TPM_GENERATED structure it signed).
  bool require_restricted_ak = true;
};

class TpmVerifier final : public Verifier {
 public:
  explicit TpmVerifier(VerifierConfig config = {});
  TeeType tee() const override { return TeeType::kTpm; }
  // Evidence: TPMS_ATTEST (binary, hex or base64). Collateral: "signature" (TPMT_SIGNATURE),
  // "ak_pub" (TPM2B_PUBLIC, TPMT_PUBLIC, PEM or DER SPKI) and/or "ak_cert" (+ "ak_ca" PEM chain),
  // "pcrs" (see pcrs.h), optional "nonce" (hex) that extraData must equal.
  VerifyResult verify(const Evidence& evidence, const Collateral& collateral,
                      const VerifyOptions& options) const override;

 private:
  VerifyResult verify_impl(const Evidence& evidence, const Collateral& collateral,
                           const VerifyOptions& options) const;
  VerifierConfig config_;
};

}  // namespace custos::attestation::tpm
