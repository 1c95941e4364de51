// AMD SEV-SNP evidence verifier: an ATTESTATION_REPORT signed by a VCEK or VLEK, the VEK chained
// to a pinned AMD root (VCEK -> ASK -> ARK, VLEK -> ASVK -> ARK), the reported TCB and chip ID
// bound to the VEK certificate. verify() proves authenticity and returns claims; policy (debug,
// measurement, minimum TCB, ...) is appraisal's job. Reason codes: docs/attestation-snp-tpm.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
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
  // Maximum number of verified VEK chains kept (least recently used evicted; 0 is read as 1).
  size_t cache_capacity = 256;
};

struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  size_t entries = 0;
};

// Performance: the VEK chain (certificate parsing, extensions, the RSA-PSS signatures of VEK and
// ASK/ASVK, names and roles) is verified once per distinct (report key kind, VEK bytes, ask_ark
// bytes) and cached; a lookup hashes those bytes and then compares them in full. Only these
// time-free results are cached (and only successes): validity of VEK, ASK/ASVK and ARK at
// VerifyOptions::at, the product check and every report check run on every call. Thread-safe:
// one verifier serves many threads.
class SnpVerifier final : public Verifier {
 public:
  explicit SnpVerifier(VerifierConfig config = {});
  ~SnpVerifier() override;
  SnpVerifier(const SnpVerifier&) = delete;
  SnpVerifier& operator=(const SnpVerifier&) = delete;

  TeeType tee() const override { return TeeType::kSnp; }
  // Collateral: "vcek" or "vlek" (PEM or DER), optional "ask_ark" (PEM chain: ASK and/or ASVK,
  // optionally the ARK, which must then be a pinned one).
  VerifyResult verify(const Evidence& evidence, const Collateral& collateral,
                      const VerifyOptions& options) const override;

  CacheStats cache_stats() const;

 private:
  struct VerifiedVek;
  class ChainCache;
  struct VekChainOutcome {
    explicit VekChainOutcome(std::shared_ptr<const VerifiedVek> v) : vek(std::move(v)) {}
    static VekChainOutcome failed(std::string reason, std::string message);
    std::shared_ptr<const VerifiedVek> vek;  // set on success
    std::optional<VerifyResult> rejection;   // set on failure
  };

  VerifyResult verify_impl(const Evidence& evidence, const Collateral& collateral,
                           const VerifyOptions& options) const;
  VekChainOutcome verify_vek_chain(bool is_vlek, ByteSpan vek_bytes,
                                   std::optional<ByteSpan> chain_bytes) const;

  std::vector<ProductAnchor> anchors_;
  Status init_status_;
  bool use_builtin_intermediates_ = true;
  std::unique_ptr<ChainCache> cache_;
};

}  // namespace custos::attestation::snp
