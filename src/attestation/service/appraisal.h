// Appraisal: checks verified claims against a policy. verify() (evidence.h) proves the evidence is
// genuine; appraise() decides whether this genuine evidence is acceptable. Never mixed (STYLE 13).
//
// Policies are JSON, in our form or in Intel SecL key-transfer-policy forms (flat v3/v4 and the
// nested v5 schema); both parse into the same Policy. Field reference: docs/attestation.md
// ("Appraisal policy"). Unknown keys are errors: a typo in a security policy must not widen it.
#pragma once

#include <array>
#include <boost/json/object.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attestation/common/evidence.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "base/status.h"

namespace custos::attestation {

// Lists are "any of": empty means "not constrained". Hex values are stored lowercase.
struct SgxPolicy {  // applies to "sgx" and "sim" claims
  std::vector<std::string> mrenclave;
  std::vector<std::string> mrsigner;
  std::vector<uint16_t> isv_prod_id;
  std::optional<uint16_t> min_isv_svn;
  std::vector<std::string> config_id;
  std::optional<uint16_t> min_config_svn;
  std::vector<std::string> isv_ext_prod_id;
  std::vector<std::string> isv_family_id;
};

struct TdxPolicy {
  std::vector<std::string> mrtd;
  std::array<std::vector<std::string>, 4> rtmr;
  std::vector<std::string> mrseam;
  std::vector<std::string> mrsignerseam;
  std::vector<std::string> mrconfigid;
  std::vector<std::string> mrowner;
  std::optional<uint8_t> min_seam_svn;  // TEE_TCB_SVN[0] (the TDX module's SVN) must be >=
  std::optional<uint8_t> seam_svn;      // ... must equal (ISecL v5 "seamsvn" compares equal)
};

struct SnpTcb {
  uint32_t bootloader = 0;
  uint32_t tee = 0;
  uint32_t snp = 0;
  uint32_t microcode = 0;
};

struct SnpPolicy {
  std::vector<std::string> measurement;
  std::vector<std::string> host_data;
  std::vector<std::string> id_key_digest;
  std::optional<SnpTcb> min_tcb;  // each component of reported_tcb must be >=
  std::optional<uint32_t> min_guest_svn;
  std::optional<uint32_t> max_vmpl;
};

struct TpmPolicy {
  // bank ("sha256") -> PCR index -> acceptable values (lowercase hex).
  std::map<std::string, std::map<int, std::vector<std::string>>> pcrs;
};

struct Policy {
  std::string id;  // goes into tokens as the appraisal policy id
  // Allowed TEEs. Empty: every hardware TEE (sgx, tdx, snp, tpm). "sim" is allowed only when
  // listed explicitly: simulated evidence proves nothing about hardware.
  std::vector<TeeType> tees;
  bool allow_debug = false;
  // Accepted TCB statuses. Unset: UpToDate, SWHardeningNeeded, ConfigurationNeeded,
  // ConfigurationAndSWHardeningNeeded and NotApplicable (OutOfDate* and Revoked are refused).
  std::optional<std::vector<TcbStatus>> tcb_statuses;
  // When set, every advisory ID in the claims must be listed here.
  std::optional<std::vector<std::string>> accepted_advisory_ids;
  // Advisory IDs that are refused even when the status is accepted.
  std::vector<std::string> rejected_advisory_ids;
  // Collateral older than this (now - latest issue date) is refused.
  std::optional<Seconds> max_collateral_age;
  // Expected report data: compared with the first size() bytes of the claims' report_data.
  std::optional<Bytes> report_data;
  SgxPolicy sgx;
  TdxPolicy tdx;
  SnpPolicy snp;
  TpmPolicy tpm;
  // ISecL key-transfer fields about the client's TLS certificate (client_permissions_*,
  // tls_client_certificate_*): not attestation claims; kept for the key broker to enforce.
  std::vector<std::string> client_permissions_any_of;
  std::vector<std::string> client_permissions_all_of;
  std::vector<std::string> client_issuer_cn_any_of;

  enum class Source { kNative, kIsecl, kIseclV5 };
  Source source = Source::kNative;

  bool allows(TeeType t) const;
  boost::json::object to_json() const;  // our native form
};

// Parses a policy document in any accepted form (detected by its keys). Errors are
// kInvalidArgument with the offending key path ("sgx.min_isv_svn: expected an integer").
Result<Policy> parse_policy(std::string_view json);

// One failed check: the claim, what the policy wanted, what the evidence had.
struct Denial {
  std::string claim;     // "sgx.mrenclave", "tcb_status", "tee", ...
  std::string expected;  // "any of [ab12..., cd34...]", ">= 3", "false"
  std::string actual;
};

struct Appraisal {
  bool pass = false;
  std::string policy_id;
  std::vector<Denial> denials;               // empty iff pass
  boost::json::object to_json() const;       // {pass, policy_id, denials:[{claim,expected,actual}]}
  std::vector<std::string> reasons() const;  // "claim: expected X, got Y"
};

// Applies `policy` to `claims` at time `now` (for collateral age/expiry). Checks everything and
// reports every failure, not only the first.
Appraisal appraise(const Claims& claims, const Policy& policy, SysTime now);

}  // namespace custos::attestation
