// Helpers shared by pkey.cpp and x509.cpp; not part of the crypto API.
#pragma once

#include "base/status.h"
#include "crypto/pkey.h"

namespace custos::crypto::internal {

// The allowlisted type of `pkey`, or InvalidArgument for anything outside the allowlist (other
// curves, explicit curve parameters, RSA outside 2048..8192, DSA, ...).
Result<KeyType> classify(EVP_PKEY* pkey);
// Bytes per coordinate (and per ECDSA r/s component) for an EC key type; 0 otherwise.
size_t ec_field_size(KeyType t);
// True if both keys are present and the same public key (parameters and point/modulus).
bool same_public_key(EVP_PKEY* a, EVP_PKEY* b);

}  // namespace custos::crypto::internal
