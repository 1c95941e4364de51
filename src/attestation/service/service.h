// The attestation service: evidence decoding, the verifier registry (TeeType -> Verifier), the
// collateral cache, appraisal and token signing behind one call. The HTTP API
// (http/attestation_api.h), the CLI (cli/attest.h) and the key broker use this.
//
//   Evidence --registry.verify(collateral [+ cache], at)--> Claims --appraise(policy)--> Appraisal
//            --signer.sign_result()--> token (only when the appraisal passed)
#pragma once

#include <boost/json/object.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attestation/common/evidence.h"
#include "attestation/service/appraisal.h"
#include "attestation/service/collateral_cache.h"
#include "attestation/service/token.h"
#include "base/clock.h"
#include "crypto/x509.h"

namespace custos::attestation {

// Evidence and collateral files arrive as binary, PEM, hex or base64 text: detect and decode to
// binary. Binary is recognized by non-text bytes; text is tried as PEM (the first block's
// payload), then hex (optional 0x prefix), then base64. Fails with kInvalidArgument.
Result<Bytes> decode_binary(ByteSpan raw);

// The CLI flag names of collateral items ("tcb-info", "ak-pub", ...) -> item names ("tcb_info").
std::string collateral_item_name(std::string_view flag);
// Reads collateral files: item name -> path. "collateral" (a dcap-qvl bundle) expands into items;
// items given explicitly win over the bundle's. Fails on unreadable files.
Result<Collateral> load_collateral_files(const std::map<std::string, std::string>& item_paths);

class Registry {
 public:
  void add(std::unique_ptr<Verifier> verifier);  // replaces any verifier for the same TEE
  const Verifier* find(TeeType tee) const;

 private:
  std::map<TeeType, std::unique_ptr<Verifier>> verifiers_;
};

struct ServiceConfig {
  // The root the "sim" TEE's quotes chain to. Unset: sim evidence cannot verify.
  std::optional<crypto::Certificate> sim_root;
  // Test roots for SNP (unset: AMD's production ARKs) and AK roots for TPM.
  std::optional<std::vector<crypto::Certificate>> tpm_ak_roots;
  // Policy used when a request carries none. Its defaults refuse sim and debug.
  Policy default_policy;
  // Token signing key, PEM (P-256). Empty: a key generated at start.
  std::string token_key_pem;
  std::string token_issuer = "custos";
  Seconds token_ttl{300};
  const Clock* clock = nullptr;  // null: the system clock
};

struct VerifyRequest {
  Evidence evidence;
  Collateral collateral;         // may be empty for DCAP quotes when the cache has what they need
  std::optional<Policy> policy;  // unset: the service's default policy
  std::optional<SysTime> at;     // verification time; unset: now
  bool issue_token = true;
};

struct VerifyOutcome {
  bool verified = false;  // evidence genuine (verify passed)
  std::optional<Claims> claims;
  std::optional<Rejection> rejection;  // when !verified
  std::optional<Appraisal> appraisal;  // when verified
  std::string token;                   // when verified, appraisal passed and a token was asked for

  bool passed() const { return verified && appraisal && appraisal->pass; }
  std::vector<std::string> reasons() const;
  // {verified, passed, tee, tcb_status, advisory_ids, claims, reasons, appraisal, token?}
  boost::json::object to_json() const;
};

class Service {
 public:
  static Result<std::unique_ptr<Service>> create(ServiceConfig config);

  VerifyOutcome verify(const VerifyRequest& request) const;

  Registry& registry() { return registry_; }
  CollateralCache& cache() { return cache_; }
  const CollateralCache& cache() const { return cache_; }
  const TokenSigner& signer() const { return *signer_; }
  const Policy& default_policy() const { return config_.default_policy; }
  SysTime now() const;

 private:
  explicit Service(ServiceConfig config) : config_(std::move(config)) {}
  ServiceConfig config_;
  Registry registry_;
  CollateralCache cache_;
  std::optional<TokenSigner> signer_;
};

}  // namespace custos::attestation
