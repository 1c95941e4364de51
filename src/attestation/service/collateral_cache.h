// The collateral cache (PCCS/SCS role): Intel TCB Info by (TEE, FMSPC), QE identities by id, PCK
// CRLs by CA ("processor" / "platform"), the root CA CRL, each with its issuer chain and its
// validity window. Verification asks it for what a quote needs; stale collateral is refused with
// a message saying which item expired and when. Items keep their exact bytes (Intel signs the
// exact JSON substring), so what the PCCS read API serves verifies like the original.
// Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attestation/common/evidence.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "base/status.h"

namespace custos::attestation {

struct CachedCollateral {
  std::string kind;  // "tcb_info", "qe_identity", "pck_crl", "root_crl"
  std::string key;  // "sgx:00906ed50000", "tdx:...", "QE", "TD_QE", "processor", "platform", "root"
  Bytes body;       // exact bytes: PCS JSON body, or CRL DER
  Bytes issuer_chain;  // PEM
  SysTime issued;
  std::optional<SysTime> next_update;
};

struct ImportSummary {
  std::vector<std::string> imported;  // "tcb_info sgx:00906ed50000 (next update 2025-...)"
};

class CollateralCache {
 public:
  CollateralCache() = default;
  CollateralCache(const CollateralCache&) = delete;
  CollateralCache& operator=(const CollateralCache&) = delete;

  // Named items as in attestation::Collateral (tcb_info + tcb_info_chain, qe_identity +
  // qe_identity_chain, pck_crl + pck_crl_chain, root_crl). Each item's key is read from the item
  // itself (FMSPC and id from the JSON, CA from the CRL issuer). Signatures are not checked here:
  // the verifier checks them on every use. A newer item replaces an older one with the same key;
  // an older one never replaces a newer one.
  Result<ImportSummary> import_collateral(const Collateral& items);
  // A dcap-qvl QuoteCollateralV3 JSON bundle, or a directory of files named like the CLI flags
  // (tcb_info.json, tcb_info_chain.pem, qe_identity.json, ..., root_crl.der; any extension) or
  // containing bundles (*.json with "tcb_info_issuer_chain").
  Result<ImportSummary> import_bundle(ByteSpan json);
  Result<ImportSummary> import_path(const std::string& path);

  // Adds the DCAP items `quote` needs that `collateral` does not already have. Fails with
  // kFailedPrecondition when a needed item is missing or is outside its validity at `at`:
  // "collateral tcb_info sgx:00906ed50000 expired at 2025-07-19T10:01:18Z (verification time
  // 2025-07-20T00:00:00Z)".
  Status fill_for_quote(ByteSpan quote, Collateral& collateral, SysTime at) const;

  std::optional<CachedCollateral> tcb_info(TeeType tee, std::string_view fmspc_hex) const;
  std::optional<CachedCollateral> qe_identity(std::string_view id) const;  // "QE", "TD_QE"
  std::optional<CachedCollateral> pck_crl(std::string_view ca) const;  // "processor", "platform"
  std::optional<CachedCollateral> root_crl() const;
  std::vector<CachedCollateral> list() const;

 private:
  Status put(CachedCollateral item, ImportSummary& summary);
  std::optional<CachedCollateral> get(const std::string& kind, const std::string& key) const;

  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, CachedCollateral> items_;
  // PCK chain digest -> "fmspc/ca" (parsing the chain's certificates dominates a warm lookup).
  mutable std::map<Bytes, std::pair<std::string, std::string>> pck_memo_;
};

}  // namespace custos::attestation
