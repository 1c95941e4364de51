// The pinned trust anchor of Intel's DCAP PKI (ARCHITECTURE.md section 5: "PCK chain to the pinned
// Intel SGX Root CA"). Chains are accepted only when their root carries this certificate's public
// key: a certificate with the same name and another key (e.g. QVL's synthetic sample root) fails.
#pragma once

#include <string_view>

#include "base/bytes.h"

namespace custos::attestation::dcap {

// DER of the production "Intel SGX Root CA" (serial 22650cd6..., valid 2018-05-21..2049-12-31).
ByteSpan intel_sgx_root_ca_der();
inline constexpr std::string_view kIntelSgxRootCaSha256 =
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";

}  // namespace custos::attestation::dcap
