// Shamir secret sharing over GF(2^8), compatible with Vault's share format: each share is the
// secret-length y values followed by one byte, the x coordinate (1..255, distinct, random).
#pragma once

#include <vector>

#include "base/bytes.h"
#include "base/status.h"

namespace custos::crypto {

// 2 <= threshold <= parts <= 255, or parts == threshold == 1 (the share is the secret + x).
Result<std::vector<SecretBytes>> shamir_split(ByteSpan secret, int parts, int threshold);
// Needs at least `threshold` distinct shares of equal length; fewer give a wrong secret
// (undetectable here: the caller authenticates the result, e.g. by decrypting the keyring).
Result<SecretBytes> shamir_combine(const std::vector<SecretBytes>& shares);

}  // namespace custos::crypto
