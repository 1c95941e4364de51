// HTTP routes of the attestation service (beside the Vault API under /v1/):
//   POST /attestation/v1/verify          native: evidence + collateral + policy -> verdict, claims,
//                                        token (docs/attestation.md, "HTTP API")
//   GET  /attestation/v1/collateral      what the collateral cache holds
//   POST /svs/v1/sgx_qv_verify_quote     Intel SecL SQVS-compatible SGX quote verification
//   GET  /.well-known/jwks.json          token verification keys
//   GET  /sgx/certification/v4/{tcb?fmspc=, qe/identity, pckcrl?ca=, rootcacrl}
//   GET  /tdx/certification/v4/{tcb?fmspc=, qe/identity}
//                                        PCCS-compatible reads of the collateral cache
#pragma once

#include "attestation/service/service.h"
#include "http/api.h"

namespace custos::http {

// `svc` must outlive `api`.
void register_attestation_routes(Api& api, attestation::Service& svc);

}  // namespace custos::http
