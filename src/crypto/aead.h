// Authenticated encryption. Nonces are 12 bytes; tags 16 bytes appended to the ciphertext.
#pragma once

#include "base/bytes.h"
#include "base/status.h"

namespace custos::crypto {

enum class AeadAlg { kAes256Gcm, kAes128Gcm, kChaCha20Poly1305 };
constexpr size_t kAeadNonceSize = 12;
constexpr size_t kAeadTagSize = 16;
size_t aead_key_size(AeadAlg alg);

// Returns ciphertext || tag.
Result<Bytes> aead_seal(AeadAlg alg, ByteSpan key, ByteSpan nonce, ByteSpan plaintext,
                        ByteSpan aad);
// Input is ciphertext || tag. Fails with kDataLoss (not InvalidArgument) on a bad tag so callers
// can tell tampering from misuse.
Result<SecretBytes> aead_open(AeadAlg alg, ByteSpan key, ByteSpan nonce,
                              ByteSpan ciphertext_and_tag, ByteSpan aad);

// AES key wrap (RFC 3394; JWE's A128KW/A256KW): keys of 16 bytes or more in 8-byte blocks.
// Unwrap fails with kDataLoss when the integrity check fails.
Result<Bytes> aes_key_wrap(ByteSpan kek, ByteSpan key);
Result<SecretBytes> aes_key_unwrap(ByteSpan kek, ByteSpan wrapped);
// AES key wrap with padding (RFC 5649), for wrapping keys to keys of any length.
Result<Bytes> aes_key_wrap_pad(ByteSpan kek, ByteSpan key);
Result<SecretBytes> aes_key_unwrap_pad(ByteSpan kek, ByteSpan wrapped);

}  // namespace custos::crypto
