// TEE-neutral evidence, collateral and claims, and the Verifier interface every evidence type
// implements (cf. Open Enclave's plugin.h). verify() proves authenticity and returns claims; it
// never applies policy (appraisal.h does that).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/status.h"

namespace custos::attestation {

enum class TeeType { kSgx, kTdx, kSnp, kTpm, kSim };
std::string_view tee_name(TeeType t);  // "sgx", "tdx", "snp", "tpm", "sim"
Result<TeeType> parse_tee(std::string_view name);

// Intel's TCB statuses (plus kNotApplicable for TEEs without the concept, e.g. TPM).
enum class TcbStatus {
  kUpToDate,
  kSwHardeningNeeded,
  kConfigurationNeeded,
  kConfigurationAndSwHardeningNeeded,
  kOutOfDate,
  kOutOfDateConfigurationNeeded,
  kRevoked,
  kNotApplicable,
};
std::string_view tcb_status_name(TcbStatus s);  // Intel's spelling: "UpToDate", "SWHardeningNeeded", ...
Result<TcbStatus> parse_tcb_status(std::string_view name);

// Named collateral items, keyed like the CLI flags with '_' (docs/formats/collateral.md):
//   DCAP: tcb_info, tcb_info_chain, qe_identity, qe_identity_chain, pck_crl, pck_crl_chain,
//         root_crl, root_ca, pck_chain (for quotes with cert-data type 1-3)
//   SNP:  vcek (or vlek), ask_ark
//   TPM:  ak_pub | ak_cert + ak_ca, pcrs, signature, nonce
// Values are the file bytes as given (binary, PEM, hex or base64: each verifier detects).
using Collateral = std::map<std::string, Bytes>;

struct Evidence {
  TeeType tee = TeeType::kSgx;
  Bytes data;  // the quote / report / TPMS_ATTEST, decoded to binary
};

// What verification established. Measurements are lowercase hex in `fields`:
//   sgx/sim: mrenclave, mrsigner, isv_prod_id (int), isv_svn (int), attributes, misc_select,
//            cpu_svn, config_id, config_svn, isv_ext_prod_id, isv_family_id, fmspc, pce_id,
//            pce_svn (int), qe_svn (int), sgx_type (int)
//   tdx:     mrtd, rtmr0..rtmr3, mrseam, mrsignerseam, td_attributes, xfam, mrconfigid,
//            mrowner, mrownerconfig, mrservicetd (v5), tee_tcb_svn, fmspc, ...
//   snp:     measurement, host_data, id_key_digest, author_key_digest, report_id, policy (int),
//            vmpl (int), chip_id, reported_tcb {bootloader, tee, snp, microcode, fmc}, version (int)
//   tpm:     pcrs {"sha256": {"0": hex, ...}}, nonce, clock (int), firmware_version, ak_name
struct Claims {
  TeeType tee = TeeType::kSgx;
  bool debug = false;
  TcbStatus tcb_status = TcbStatus::kNotApplicable;
  std::vector<std::string> advisory_ids;
  Bytes report_data;  // 64 bytes for SGX/TDX/SNP; the TPM nonce (extraData) for TPM
  // Earliest expiry of any collateral used (for the "maximum collateral age" policy).
  std::optional<SysTime> collateral_expiry;
  std::optional<SysTime> collateral_issued;  // latest issue date of TCB info / QE identity
  boost::json::object fields;

  boost::json::object to_json() const;  // {tee, debug, tcb_status, advisory_ids, report_data, ...fields}
};

// A failed verification: a stable machine-readable reason code ("sgx.qe_report.signature",
// "snp.vcek.expired", ...) and a human message. Codes are listed in docs/attestation.md.
struct Rejection {
  std::string reason;
  std::string message;
};

class VerifyResult {
 public:
  static VerifyResult accept(Claims c) {
    VerifyResult r;
    r.claims_ = std::move(c);
    return r;
  }
  static VerifyResult reject(std::string reason, std::string message) {
    VerifyResult r;
    r.rejection_ = Rejection{std::move(reason), std::move(message)};
    return r;
  }
  bool ok() const { return claims_.has_value(); }
  const Claims& claims() const { return *claims_; }
  Claims& claims() { return *claims_; }
  const Rejection& rejection() const { return *rejection_; }

 private:
  std::optional<Claims> claims_;
  std::optional<Rejection> rejection_;
};

struct VerifyOptions {
  SysTime at;  // verification time; captured vectors are verified "as of" their window
};

class Verifier {
 public:
  virtual ~Verifier() = default;
  virtual TeeType tee() const = 0;
  virtual VerifyResult verify(const Evidence& evidence, const Collateral& collateral,
                              const VerifyOptions& options) const = 0;
};

}  // namespace custos::attestation
