// Hashes, HMAC, HKDF. One primitive per function.
#pragma once

#include <memory>

#include "base/bytes.h"
#include "base/status.h"

namespace custos::crypto {

enum class HashAlg { kSha1, kSha256, kSha384, kSha512 };
size_t hash_size(HashAlg alg);
std::string_view hash_name(HashAlg alg);  // "sha256", ...

Bytes digest(HashAlg alg, ByteSpan data);
inline Bytes sha256(ByteSpan data) { return digest(HashAlg::kSha256, data); }
inline Bytes sha384(ByteSpan data) { return digest(HashAlg::kSha384, data); }

// Incremental hashing (for files and multi-part messages).
class Hasher {
 public:
  explicit Hasher(HashAlg alg);
  ~Hasher();
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  void update(ByteSpan data);
  Bytes finish();  // the hasher may not be used afterwards

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Bytes hmac(HashAlg alg, ByteSpan key, ByteSpan data);
inline Bytes hmac_sha256(ByteSpan key, ByteSpan data) { return hmac(HashAlg::kSha256, key, data); }

// RFC 5869 HKDF with SHA-256. `length` must be 1..8160 (255 * 32); any other length is a
// programming error and aborts. An empty salt means 32 zero bytes, as the RFC specifies.
SecretBytes hkdf_sha256(ByteSpan ikm, ByteSpan salt, ByteSpan info, size_t length);

}  // namespace custos::crypto
