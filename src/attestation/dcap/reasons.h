// Rejection reason codes of the DCAP verifier: one per verification step, each tagged with the
// section of Intel's specifications it enforces. Stable strings: they appear in audit logs and
// docs/attestation.md ("DCAP") lists them. Internally a failure travels as a Status whose message
// is "<reason>: <detail>" (see reason_of()).
//
// Spec references:
//   [QL]   Intel SGX ECDSA Quote Library API, appendix "Quote Format" (v3), and the Intel TDX DCAP
//          Quoting Library API, appendix "Quote Format" (v4, v5).
//   [PCK]  Intel SGX PCK Certificate and Certificate Revocation List Profile.
//   [PCS]  Intel PCS API: TCB Info (v2, v3) and Enclave Identity (v2) JSON.
//   [QVL]  Intel QVL QuoteVerifier.cpp check numbers (4.1.2.4.x).
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace custos::attestation::dcap::reason {

// Quote structure [QL].
inline constexpr std::string_view kQuoteTruncated = "dcap.quote.truncated";
inline constexpr std::string_view kQuoteVersion = "dcap.quote.unsupported_version";
inline constexpr std::string_view kQuoteAttKeyType = "dcap.quote.unsupported_att_key_type";
inline constexpr std::string_view kQuoteTeeType = "dcap.quote.unsupported_tee_type";
inline constexpr std::string_view kQuoteBodyType = "dcap.quote.unsupported_body_type";
inline constexpr std::string_view kQuoteQeVendor = "dcap.quote.unsupported_qe_vendor";
inline constexpr std::string_view kQuoteSigDataSize = "dcap.quote.signature_data_size";
inline constexpr std::string_view kQuoteTeeMismatch = "dcap.quote.tee_mismatch";
inline constexpr std::string_view kCertDataType = "dcap.cert_data.unsupported_type";
inline constexpr std::string_view kCertDataMalformed = "dcap.cert_data.malformed";

// PCK chain and CRLs [PCK], [QVL 4.1.2.4.4-4.1.2.4.7].
inline constexpr std::string_view kPckChain = "dcap.pck_chain";  // prefix: .missing, .malformed, ...
inline constexpr std::string_view kPckExtensions = "dcap.pck.extensions";
inline constexpr std::string_view kPckRevoked = "dcap.pck.revoked";
inline constexpr std::string_view kPckCaRevoked = "dcap.pck_ca.revoked";
inline constexpr std::string_view kPckCrl = "dcap.pck_crl";    // prefix
inline constexpr std::string_view kRootCrl = "dcap.root_crl";  // prefix
inline constexpr std::string_view kRootCaUntrusted = "dcap.root_ca.untrusted";

// Collateral [PCS].
inline constexpr std::string_view kCollateralMalformed = "dcap.collateral.malformed";
inline constexpr std::string_view kTcbInfo = "dcap.tcb_info";              // prefix
inline constexpr std::string_view kTcbSigningChain = "dcap.tcb_info_chain";  // prefix
inline constexpr std::string_view kQeIdentity = "dcap.qe_identity";        // prefix
inline constexpr std::string_view kQeIdentityChain = "dcap.qe_identity_chain";  // prefix

// Quote checks [QVL 4.1.2.4.9-4.1.2.4.17].
inline constexpr std::string_view kTdxModuleMismatch = "dcap.tdx_module.mismatch";
inline constexpr std::string_view kTdxModuleNoLevel = "dcap.tdx_module.no_matching_level";
inline constexpr std::string_view kQeReportSignature = "dcap.qe_report.signature";
inline constexpr std::string_view kQeReportBinding = "dcap.qe_report.attestation_key_binding";
inline constexpr std::string_view kAttestationKey = "dcap.quote.attestation_key";
inline constexpr std::string_view kQuoteSignature = "dcap.quote.signature";
inline constexpr std::string_view kTcbNoMatchingLevel = "dcap.tcb.no_matching_level";
inline constexpr std::string_view kTcbRevoked = "dcap.tcb.revoked";

// Suffixes used with the prefixes above.
inline constexpr std::string_view kMissing = ".missing";
inline constexpr std::string_view kMalformed = ".malformed";
inline constexpr std::string_view kUntrustedRoot = ".untrusted_root";
inline constexpr std::string_view kSignature = ".signature";
inline constexpr std::string_view kNotCa = ".not_ca";
inline constexpr std::string_view kBadName = ".unexpected_subject";
inline constexpr std::string_view kExpired = ".expired";
inline constexpr std::string_view kNotYetValid = ".not_yet_valid";
inline constexpr std::string_view kRevoked = ".revoked";
inline constexpr std::string_view kIssuerMismatch = ".issuer_mismatch";
inline constexpr std::string_view kUnsupportedVersion = ".unsupported_version";
inline constexpr std::string_view kFmspcMismatch = ".fmspc_mismatch";
inline constexpr std::string_view kPceIdMismatch = ".pceid_mismatch";
inline constexpr std::string_view kTeeMismatch = ".tee_mismatch";
inline constexpr std::string_view kMrsigner = ".mrsigner_mismatch";
inline constexpr std::string_view kIsvProdId = ".isvprodid_mismatch";
inline constexpr std::string_view kMiscselect = ".miscselect_mismatch";
inline constexpr std::string_view kAttributes = ".attributes_mismatch";
inline constexpr std::string_view kNoMatchingLevel = ".no_matching_level";

// A failure with a reason code: Status(kPermissionDenied, "<reason>: <detail>").
inline Status fail(std::string_view reason, std::string_view detail) {
  std::string m(reason);
  m += ": ";
  m += detail;
  return Status(Code::kPermissionDenied, std::move(m));
}
inline Status fail(std::string_view prefix, std::string_view suffix, std::string_view detail) {
  return fail(std::string(prefix) + std::string(suffix), detail);
}

// The reason code of a Status made by fail() (or "dcap.internal" for any other Status).
inline std::string reason_of(const Status& s) {
  const std::string& m = s.message();
  size_t colon = m.find(": ");
  if (colon == std::string::npos || m.compare(0, 5, "dcap.") != 0) return "dcap.internal";
  return m.substr(0, colon);
}

}  // namespace custos::attestation::dcap::reason
