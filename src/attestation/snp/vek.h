// The AMD-specific X.509 extensions of a VCEK or VLEK certificate (AMD "Versioned Chip
// Endorsement Key (VCEK) Certificate and KDS Interface Specification" (pub. 57230), section
// "VCEK Certificate Extensions"; the VLEK specification (pub. 58369) reuses them):
//   1.3.6.1.4.1.3704.1.1    structVersion   INTEGER
//   1.3.6.1.4.1.3704.1.2    productName     IA5String ("Milan-B0", "Genoa", "Turin", ...)
//   1.3.6.1.4.1.3704.1.3.1  blSPL           INTEGER
//   1.3.6.1.4.1.3704.1.3.2  teeSPL          INTEGER
//   1.3.6.1.4.1.3704.1.3.3  snpSPL          INTEGER
//   1.3.6.1.4.1.3704.1.3.8  ucodeSPL        INTEGER
//   1.3.6.1.4.1.3704.1.3.9  fmcSPL          INTEGER (Turin)
//   1.3.6.1.4.1.3704.1.4    hwID            64 bytes (Milan/Genoa) or 8 bytes (Turin); VCEK only
//   1.3.6.1.4.1.3704.1.5    cspId           string; VLEK only
// The hwID value is the raw bytes in AMD's certificates; a few re-encoders wrap it in a nested
// OCTET STRING, which is accepted too.
#pragma once

#include <optional>
#include <string>

#include "attestation/snp/report.h"
#include "base/bytes.h"
#include "base/status.h"
#include "crypto/x509.h"

namespace custos::attestation::snp {

inline constexpr const char* kOidProductName = "1.3.6.1.4.1.3704.1.2";
inline constexpr const char* kOidBlSpl = "1.3.6.1.4.1.3704.1.3.1";
inline constexpr const char* kOidTeeSpl = "1.3.6.1.4.1.3704.1.3.2";
inline constexpr const char* kOidSnpSpl = "1.3.6.1.4.1.3704.1.3.3";
inline constexpr const char* kOidUcodeSpl = "1.3.6.1.4.1.3704.1.3.8";
inline constexpr const char* kOidFmcSpl = "1.3.6.1.4.1.3704.1.3.9";
inline constexpr const char* kOidHwId = "1.3.6.1.4.1.3704.1.4";
inline constexpr const char* kOidCspId = "1.3.6.1.4.1.3704.1.5";

struct VekExtensions {
  std::string product_name;  // as in the certificate, e.g. "Milan-B0"
  TcbVersion tcb;            // fmc set when the certificate carries fmcSPL
  std::optional<Bytes> hw_id;
  std::optional<std::string> csp_id;
};

// Missing SPL extensions are an error (a VEK is always issued for one TCB).
Result<VekExtensions> parse_vek_extensions(const crypto::Certificate& cert);

// The small DER helpers the extensions need; exposed for tests and the fuzz target.
Result<uint64_t> der_small_integer(ByteSpan der);          // INTEGER, non-negative, <= 8 bytes
Result<std::string> der_ia5_or_utf8_string(ByteSpan der);  // IA5String / UTF8String / PrintableString
Bytes unwrap_hw_id(ByteSpan value);

}  // namespace custos::attestation::snp
