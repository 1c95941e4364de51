// Asymmetric keys: generate, import/export, sign/verify, RSA-OAEP, ECDH. Algorithm allowlist:
// EC P-256/P-384/P-521, Ed25519, RSA 2048..8192.
#pragma once

#include <memory>
#include <string>

#include "base/bytes.h"
#include "base/status.h"
#include "crypto/hash.h"

typedef struct evp_pkey_st EVP_PKEY;  // NOLINT: OpenSSL's type, opaque outside crypto/

namespace custos::crypto {

// Error codes: malformed input or a key outside the allowlist is kInvalidArgument; a signature
// that does not verify is kPermissionDenied (an authenticity failure, not a malformed request);
// a failed RSA-OAEP decryption is kDataLoss, like a bad AEAD tag.

enum class KeyType { kEcP256, kEcP384, kEcP521, kEd25519, kRsa };
std::string_view key_type_name(KeyType t);

struct SignOptions {
  HashAlg hash = HashAlg::kSha256;  // ignored for Ed25519
  enum class RsaPadding { kPkcs1, kPss } rsa_padding = RsaPadding::kPss;  // PSS salt = hash size
  // ECDSA signature encoding: DER (X.509, TLS) or raw r||s of fixed width (SGX quotes, JWS, SNP
  // uses little-endian r,s and converts before calling).
  enum class EcFormat { kDer, kRaw } ec_format = EcFormat::kDer;
  // RSA-PSS salt length in bytes; -1: the hash's length.
  int pss_salt_len = -1;
};

class PublicKey {
 public:
  PublicKey();
  ~PublicKey();
  PublicKey(const PublicKey&);
  PublicKey& operator=(const PublicKey&);
  PublicKey(PublicKey&&) noexcept;
  PublicKey& operator=(PublicKey&&) noexcept;

  static Result<PublicKey> from_pem(std::string_view pem);  // SubjectPublicKeyInfo
  static Result<PublicKey> from_der(ByteSpan spki_der);
  // Uncompressed point coordinates x||y (big-endian), as in SGX quotes' attestation key.
  static Result<PublicKey> from_ec_xy(KeyType curve, ByteSpan x_concat_y);
  static Result<PublicKey> from_rsa(ByteSpan modulus_be, ByteSpan exponent_be);
  static Result<PublicKey> from_ed25519(ByteSpan raw32);
  static Result<PublicKey> from_jwk(std::string_view jwk_json);  // EC P-256/384/521, RSA, OKP

  // A default-constructed key is empty: every operation on it fails (or returns empty output),
  // and type() is meaningless.
  bool empty() const { return pkey_ == nullptr; }
  KeyType type() const;
  int bits() const;
  std::string to_pem() const;
  Bytes to_der() const;  // SubjectPublicKeyInfo
  // JSON text: {"kty":...}, members in RFC 7638 order (so sha256(to_jwk()) is the thumbprint).
  std::string to_jwk() const;
  Result<Bytes> ec_xy() const;  // x||y for EC keys
  // RSA modulus and public exponent, big-endian without leading zeros.
  Status rsa_components(Bytes& modulus, Bytes& exponent) const;

  // OK if `sig` is a valid signature over `message` (hashed here with opts.hash).
  Status verify(ByteSpan message, ByteSpan sig, const SignOptions& opts = {}) const;
  // The same over an already computed digest (ECDSA and RSA only).
  Status verify_digest(ByteSpan digest, ByteSpan sig, const SignOptions& opts = {}) const;

  Result<Bytes> rsa_oaep_encrypt(ByteSpan plaintext, HashAlg hash = HashAlg::kSha256) const;

  EVP_PKEY* raw() const;  // for crypto/ internals only

  explicit PublicKey(EVP_PKEY* owned);

 private:
  EVP_PKEY* pkey_ = nullptr;
};

class PrivateKey {
 public:
  PrivateKey();
  ~PrivateKey();
  PrivateKey(const PrivateKey&) = delete;
  PrivateKey& operator=(const PrivateKey&) = delete;
  PrivateKey(PrivateKey&&) noexcept;
  PrivateKey& operator=(PrivateKey&&) noexcept;

  static Result<PrivateKey> generate(KeyType type, int rsa_bits = 2048);
  static Result<PrivateKey> from_pem(std::string_view pem);  // PKCS#8, or traditional EC/RSA
  static Result<PrivateKey> from_der(ByteSpan pkcs8_der);

  bool empty() const { return pkey_ == nullptr; }
  KeyType type() const;
  int bits() const;
  SecretString to_pem() const;  // PKCS#8 PEM
  SecretBytes to_der() const;   // PKCS#8 DER
  PublicKey public_key() const;
  // The public half's encodings, read straight from this key (cheaper than public_key().x()).
  Result<Bytes> public_ec_xy() const;  // x||y for EC keys
  std::string public_jwk() const;      // as PublicKey::to_jwk()

  Result<Bytes> sign(ByteSpan message, const SignOptions& opts = {}) const;
  Result<Bytes> sign_digest(ByteSpan digest, const SignOptions& opts = {}) const;
  Result<SecretBytes> rsa_oaep_decrypt(ByteSpan ciphertext, HashAlg hash = HashAlg::kSha256) const;
  // ECDSA over a digest of any length (longer ones are truncated to the curve order's size, as
  // ECDSA defines): PKCS#11's CKM_ECDSA. Raw r||s.
  Result<Bytes> ecdsa_sign_any_digest(ByteSpan digest) const;
  // RSA PKCS#1 v1.5 signature over bytes the caller has already encoded (a DigestInfo: PKCS#11's
  // CKM_RSA_PKCS); at most the modulus size less 11 bytes.
  Result<Bytes> rsa_pkcs1_sign_raw(ByteSpan encoded) const;
  // ECDH shared secret (raw x coordinate) with a peer key on the same curve.
  Result<SecretBytes> ecdh(const PublicKey& peer) const;

  EVP_PKEY* raw() const;  // for crypto/ internals only
  explicit PrivateKey(EVP_PKEY* owned);

 private:
  EVP_PKEY* pkey_ = nullptr;
};

// ECDSA signature conversions between DER and fixed-width raw r||s.
Result<Bytes> ecdsa_der_to_raw(ByteSpan der, size_t component_size);
Result<Bytes> ecdsa_raw_to_der(ByteSpan raw);

}  // namespace custos::crypto
