// What an engine may trust about a caller that logged in by attestation (auth/attest): the key
// its TEE bound into the evidence and the claims the attest method recorded. Shared by the
// ledger's attested entries and the PKI engine's attested certificates.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/status.h"
#include "core/request.h"

namespace custos::core {

struct AttestedCaller {
  Bytes public_key;            // SPKI DER of the key the TEE bound at login
  std::string public_key_b64;  // as recorded in the token (canonical DER, base64)
  boost::json::object claims;  // tee, tcb_status, evidence_sha256, measurements, ..., auth_path
  int64_t attested_at = 0;     // the login (the token's creation), unix seconds
};

// The attested caller behind req's token, or PermissionDenied naming what is missing: the token
// must come from an `attest` login (TokenEntry::auth_method_type, which Core alone sets:
// metadata a token's creator chose does not count), whose evidence bound a public key. `what`
// names the operation for the message ("an attested entry").
Result<AttestedCaller> attested_caller(const Request& req, std::string_view what);

}  // namespace custos::core
