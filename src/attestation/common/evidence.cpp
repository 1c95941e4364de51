#include "attestation/common/evidence.h"

#include <array>
#include <utility>

#include <boost/json/array.hpp>
#include <boost/json/string.hpp>

#include "base/encoding.h"

namespace custos::attestation {
namespace {

constexpr std::array<std::pair<TeeType, std::string_view>, 5> kTeeNames{{
    {TeeType::kSgx, "sgx"},
    {TeeType::kTdx, "tdx"},
    {TeeType::kSnp, "snp"},
    {TeeType::kTpm, "tpm"},
    {TeeType::kSim, "sim"},
}};

// Intel's spellings (PCS TCB Info "tcbStatus" values) plus our kNotApplicable.
constexpr std::array<std::pair<TcbStatus, std::string_view>, 8> kTcbStatusNames{{
    {TcbStatus::kUpToDate, "UpToDate"},
    {TcbStatus::kSwHardeningNeeded, "SWHardeningNeeded"},
    {TcbStatus::kConfigurationNeeded, "ConfigurationNeeded"},
    {TcbStatus::kConfigurationAndSwHardeningNeeded, "ConfigurationAndSWHardeningNeeded"},
    {TcbStatus::kOutOfDate, "OutOfDate"},
    {TcbStatus::kOutOfDateConfigurationNeeded, "OutOfDateConfigurationNeeded"},
    {TcbStatus::kRevoked, "Revoked"},
    {TcbStatus::kNotApplicable, "NotApplicable"},
}};

}  // namespace

std::string_view tee_name(TeeType t) {
  for (const auto& [type, name] : kTeeNames) {
    if (type == t) return name;
  }
  return "unknown";
}

Result<TeeType> parse_tee(std::string_view name) {
  for (const auto& [type, n] : kTeeNames) {
    if (n == name) return type;
  }
  return invalid_argument("unknown TEE type");
}

std::string_view tcb_status_name(TcbStatus s) {
  for (const auto& [status, name] : kTcbStatusNames) {
    if (status == s) return name;
  }
  return "unknown";
}

Result<TcbStatus> parse_tcb_status(std::string_view name) {
  for (const auto& [status, n] : kTcbStatusNames) {
    if (n == name) return status;
  }
  return invalid_argument("unknown TCB status");
}

boost::json::object Claims::to_json() const {
  boost::json::object out;
  out["tee"] = tee_name(tee);
  out["debug"] = debug;
  out["tcb_status"] = tcb_status_name(tcb_status);
  boost::json::array advisories;
  for (const auto& id : advisory_ids) advisories.emplace_back(id);
  out["advisory_ids"] = std::move(advisories);
  out["report_data"] = hex_encode(report_data);
  if (collateral_expiry) out["collateral_expiry"] = format_rfc3339(*collateral_expiry);
  if (collateral_issued) out["collateral_issued"] = format_rfc3339(*collateral_issued);
  // Verifier-specific fields last; they never override the common ones above.
  for (const auto& [key, value] : fields) {
    if (!out.contains(key)) out[key] = value;
  }
  return out;
}

}  // namespace custos::attestation
