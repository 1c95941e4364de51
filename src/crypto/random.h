// Cryptographically secure randomness (OpenSSL's DRBG).
#pragma once

#include <span>
#include <string>

#include "base/bytes.h"

namespace custos::crypto {

void random_fill(std::span<uint8_t> out);  // aborts if the DRBG fails: nothing safe to do then
Bytes random_bytes(size_t n);
SecretBytes random_secret(size_t n);
// A random identifier: 128 bits as a UUID string (version 4 layout).
std::string random_uuid();

}  // namespace custos::crypto
