#include "crypto/shamir.h"

#include <array>
#include <string>

#include "crypto/gf256.h"
#include "crypto/random.h"

namespace custos::crypto {
namespace {

// A uniform value in [0, bound) from the DRBG, by rejection (no modulo bias). bound <= 256.
uint8_t uniform_below(unsigned bound) {
  const unsigned limit = 256 - (256 % bound);
  for (;;) {
    uint8_t b = 0;
    random_fill(std::span<uint8_t>(&b, 1));
    if (b < limit) return static_cast<uint8_t>(b % bound);
  }
}

// `n` distinct x coordinates drawn uniformly from 1..255 (a partial Fisher-Yates shuffle), as
// Vault does; x = 0 would be the secret itself.
std::array<uint8_t, 255> random_x_coordinates(size_t n) {
  std::array<uint8_t, 255> xs{};
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<uint8_t>(i + 1);
  for (size_t i = 0; i < n; ++i) {
    size_t j = i + uniform_below(static_cast<unsigned>(xs.size() - i));
    std::swap(xs[i], xs[j]);
  }
  return xs;
}

}  // namespace

Result<std::vector<SecretBytes>> shamir_split(ByteSpan secret, int parts, int threshold) {
  if (secret.empty()) return invalid_argument("shamir: cannot split an empty secret");
  const bool single = parts == 1 && threshold == 1;
  if (!single && (threshold < 2 || parts < threshold || parts > 255)) {
    return invalid_argument("shamir: need 2 <= threshold <= shares <= 255 (or 1 of 1), got " +
                            std::to_string(threshold) + " of " + std::to_string(parts));
  }
  const size_t n = static_cast<size_t>(parts);
  const size_t degree = static_cast<size_t>(threshold - 1);
  std::array<uint8_t, 255> xs = random_x_coordinates(n);

  std::vector<SecretBytes> shares;
  shares.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    SecretBytes share(secret.size() + 1);
    share.data()[secret.size()] = xs[i];
    shares.push_back(std::move(share));
  }
  // One random polynomial per secret byte: f(0) = the byte, `degree` random coefficients.
  SecretBytes coeffs = random_secret(degree * secret.size());
  for (size_t b = 0; b < secret.size(); ++b) {
    const uint8_t* c = coeffs.data() + b * degree;
    for (size_t i = 0; i < n; ++i) {
      // Horner: ((c[d-1] x + c[d-2]) x + ... + c[0]) x + secret.
      uint8_t y = 0;
      for (size_t k = degree; k > 0; --k) y = gf256::add(gf256::mul(y, xs[i]), c[k - 1]);
      y = gf256::add(gf256::mul(y, xs[i]), secret[b]);
      shares[i].data()[b] = y;
    }
  }
  return shares;
}

Result<SecretBytes> shamir_combine(const std::vector<SecretBytes>& shares) {
  if (shares.empty()) return invalid_argument("shamir: no shares given");
  const size_t len = shares[0].size();
  if (len < 2) return invalid_argument("shamir: a share must be at least 2 bytes");
  std::array<bool, 256> seen{};
  for (const SecretBytes& s : shares) {
    if (s.size() != len) return invalid_argument("shamir: shares have different lengths");
    uint8_t x = s.data()[len - 1];
    if (x == 0) return invalid_argument("shamir: share has x coordinate 0");
    if (seen[x]) return invalid_argument("shamir: duplicate share (same x coordinate)");
    seen[x] = true;
  }
  // Lagrange interpolation at 0. Subtraction is XOR in GF(2^8), so the basis polynomial for
  // share i at 0 is prod_{j != i} x_j / (x_i ^ x_j).
  const size_t secret_len = len - 1;
  SecretBytes basis(shares.size());
  for (size_t i = 0; i < shares.size(); ++i) {
    uint8_t xi = shares[i].data()[secret_len];
    uint8_t num = 1;
    uint8_t den = 1;
    for (size_t j = 0; j < shares.size(); ++j) {
      if (j == i) continue;
      uint8_t xj = shares[j].data()[secret_len];
      num = gf256::mul(num, xj);
      den = gf256::mul(den, gf256::add(xi, xj));
    }
    basis.data()[i] = gf256::div(num, den);
  }
  SecretBytes out(secret_len);
  for (size_t b = 0; b < secret_len; ++b) {
    uint8_t acc = 0;
    for (size_t i = 0; i < shares.size(); ++i) {
      acc = gf256::add(acc, gf256::mul(shares[i].data()[b], basis.data()[i]));
    }
    out.data()[b] = acc;
  }
  return out;
}

}  // namespace custos::crypto
