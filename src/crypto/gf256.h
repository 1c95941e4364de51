// Arithmetic in GF(2^8) with the AES reduction polynomial x^8+x^4+x^3+x+1 (0x11b), the field
// HashiCorp Vault's shamir package uses, so shares interoperate byte for byte.
//
// Table-free on purpose: log/exp tables index memory by secret values (a cache-timing channel).
// Multiplication is a fixed 8-round shift-and-add with masks instead of branches, and inversion is
// a fixed chain of squarings and multiplications (a^254 = a^-1), so the instruction and memory
// trace does not depend on the operands. Cost is irrelevant at Shamir's sizes.
#pragma once

#include <cstdint>

namespace custos::crypto::gf256 {

constexpr uint8_t add(uint8_t a, uint8_t b) { return static_cast<uint8_t>(a ^ b); }

constexpr uint8_t mul(uint8_t a, uint8_t b) {
  uint8_t r = 0;
  for (int i = 0; i < 8; ++i) {
    // mask is 0xff when the low bit of b is set, else 0.
    uint8_t mask = static_cast<uint8_t>(0u - (b & 1u));
    r = static_cast<uint8_t>(r ^ (a & mask));
    uint8_t carry = static_cast<uint8_t>(0u - ((a >> 7) & 1u));
    a = static_cast<uint8_t>((a << 1) ^ (0x1b & carry));
    b = static_cast<uint8_t>(b >> 1);
  }
  return r;
}

// Multiplicative inverse; inv(0) is 0 (callers never divide by zero: x coordinates are distinct).
constexpr uint8_t inv(uint8_t a) {
  // a^254 = a^2 * a^4 * a^8 * a^16 * a^32 * a^64 * a^128.
  uint8_t sq = mul(a, a);  // a^2
  uint8_t r = sq;
  for (int i = 0; i < 6; ++i) {
    sq = mul(sq, sq);
    r = mul(r, sq);
  }
  return r;
}

constexpr uint8_t div(uint8_t a, uint8_t b) { return mul(a, inv(b)); }

}  // namespace custos::crypto::gf256
