// The SGX extensions of PCK certificates (OID 1.2.840.113741.1.13.1), per Intel's "SGX PCK
// Certificate and CRL Profile", section "Intel SGX Extensions". Parsed here with our own small DER
// reader so no ASN.1 template is needed: the value is a SEQUENCE of (OID, value) SEQUENCEs.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "base/bytes.h"
#include "base/status.h"

namespace custos::attestation::dcap {

inline constexpr std::string_view kSgxExtensionsOid = "1.2.840.113741.1.13.1";
// The same OID's DER content octets.
inline constexpr std::array<uint8_t, 9> kSgxExtensionsOidDer = {0x2a, 0x86, 0x48, 0x86, 0xf8,
                                                                0x4d, 0x01, 0x0d, 0x01};

struct PckExtensions {
  std::array<uint8_t, 16> ppid{};
  std::array<uint8_t, 16> cpu_svn_components{};  // SGX TCB components 1..16 (.2.1 - .2.16)
  uint16_t pce_svn = 0;                           // .2.17
  std::array<uint8_t, 16> cpu_svn{};              // .2.18
  std::array<uint8_t, 2> pce_id{};                // .3
  std::array<uint8_t, 6> fmspc{};                 // .4
  uint32_t sgx_type = 0;                          // .5: 0 Standard, 1 Scalable, 2 Scalable+Integrity
  std::optional<std::array<uint8_t, 16>> platform_instance_id;  // .6, Platform CA certificates
  std::optional<bool> dynamic_platform;  // .7.1
  std::optional<bool> cached_keys;       // .7.2
  std::optional<bool> smt_enabled;       // .7.3
};

// `der` is the extension's value (the SEQUENCE inside the OCTET STRING). Failures are
// "dcap.pck.extensions: ..." statuses.
Result<PckExtensions> parse_pck_extensions(ByteSpan der);

}  // namespace custos::attestation::dcap
