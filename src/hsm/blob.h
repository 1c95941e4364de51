// The stored form of a value encrypted by the PKCS#11 seal (docs/formats/barrier.md, "Auto-unseal
// blobs"):
//
//   "CS" | version 1 (u8) | mechanism (u32 BE) | key label length (u16 BE) | key label
//        | IV length (u8) | IV | ciphertext (with the GCM tag)
//
// The key label travels with the blob so a value stays readable after key_label names a new key.
#pragma once

#include <cstdint>
#include <string>

#include "base/bytes.h"
#include "base/status.h"

namespace custos::hsm {

struct SealBlob {
  uint64_t mechanism = 0;  // CKM_AES_GCM or CKM_RSA_PKCS_OAEP
  std::string key_label;
  Bytes iv;
  Bytes ciphertext;
};

inline constexpr size_t kMaxBlobLabel = 256;
inline constexpr size_t kMaxBlobIv = 32;
inline constexpr size_t kMaxBlobCiphertext = 8192;

Bytes encode_blob(const SealBlob& b);
// Bounds-checked; errors are kDataLoss ("seal blob: ...").
Result<SealBlob> parse_blob(ByteSpan in);

}  // namespace custos::hsm
