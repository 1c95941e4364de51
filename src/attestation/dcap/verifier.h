// The Intel DCAP quote verifier: SGX quotes v3/v4/v5 and TDX quotes v4/v5, checked the way Intel's
// Quote Verification Library does (QuoteVerifier.cpp, checks 4.1.2.4.x), against collateral given
// as attestation::Collateral items (docs/formats/collateral.md). verify() proves authenticity and
// returns claims; it applies no policy (appraisal does).
//
// Performance: everything that depends only on collateral bytes (JSON parsing, TCB-signing chain,
// signatures over TCB Info / QE Identity / CRLs) or only on the PCK chain bytes (PEM/DER parsing,
// chain signatures, SGX extensions) is verified once and cached by content (hash lookup, then a full
// byte comparison). The warm path is: parse the quote, two cache lookups, time-window comparisons,
// the QE report and quote ECDSA verifications, one SHA-256, and the TCB level walk.
#pragma once

#include <memory>
#include <optional>

#include "attestation/common/evidence.h"
#include "attestation/dcap/collateral.h"
#include "attestation/dcap/quote.h"
#include "crypto/x509.h"

namespace custos::attestation::dcap {

struct VerifierConfig {
  // What verify() (the Verifier interface) accepts: kSgx or kTdx quotes. verify_quote() takes both.
  TeeType tee = TeeType::kSgx;
  // The trust anchor, pinned by public key. Unset: the embedded production Intel SGX Root CA.
  // Set only by code that means to trust another PKI (the sim TEE, tests); collateral can never
  // replace it (a "root_ca" collateral item must carry the same key).
  std::optional<crypto::Certificate> trusted_root;
  // A TCB level (or QE / TDX module level) whose status is Revoked makes verification fail with
  // "dcap.tcb.revoked" instead of returning claims with tcb_status Revoked.
  bool reject_revoked_tcb = true;
  // Maximum entries per cache (parsed collateral sets, PCK chains, attestation keys).
  size_t cache_capacity = 256;
};

struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
};

class DcapVerifier final : public Verifier {
 public:
  explicit DcapVerifier(VerifierConfig config = {});
  ~DcapVerifier() override;
  DcapVerifier(const DcapVerifier&) = delete;
  DcapVerifier& operator=(const DcapVerifier&) = delete;

  TeeType tee() const override { return config_.tee; }
  VerifyResult verify(const Evidence& evidence, const Collateral& collateral,
                      const VerifyOptions& options) const override;

  // Verifies an SGX or TDX quote (binary) with full collateral.
  VerifyResult verify_quote(ByteSpan quote, const Collateral& collateral,
                            const VerifyOptions& options) const;

  // Authenticity only, without TCB collateral: PCK chain to the pinned root (signatures and
  // validity at `at`; no CRLs), QE report signature, attestation key binding and quote signature.
  // The claims carry tcb_status kNotApplicable and no collateral dates. For tooling and for
  // captured quotes that come without collateral; never a basis for releasing secrets.
  // `collateral` is consulted only for "pck_chain" (quotes with certification data type 1-4).
  VerifyResult verify_signatures_only(ByteSpan quote, const Collateral& collateral,
                                      SysTime at) const;

  CacheStats cache_stats() const;

 private:
  struct State;
  VerifierConfig config_;
  std::unique_ptr<State> state_;
};

}  // namespace custos::attestation::dcap
