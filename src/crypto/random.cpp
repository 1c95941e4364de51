#include "crypto/random.h"

#include <openssl/rand.h>

#include <algorithm>

#include "crypto/openssl.h"

namespace custos::crypto {

void random_fill(std::span<uint8_t> out) {
  constexpr size_t kChunk = 1 << 20;
  for (size_t pos = 0; pos < out.size(); pos += kChunk) {
    size_t n = std::min(kChunk, out.size() - pos);
    if (RAND_bytes(out.data() + pos, static_cast<int>(n)) != 1) ossl::fatal("RAND_bytes");
  }
}

Bytes random_bytes(size_t n) {
  Bytes out(n);
  random_fill(out);
  return out;
}

SecretBytes random_secret(size_t n) {
  SecretBytes out(n);
  random_fill(out.mutable_span());
  return out;
}

std::string random_uuid() {
  uint8_t b[16];
  random_fill(b);
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[b[i] >> 4];
    out += kHex[b[i] & 15];
  }
  return out;
}

}  // namespace custos::crypto
