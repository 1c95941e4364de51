#include "crypto/aead.h"

#include <algorithm>

#include "crypto/openssl.h"

namespace custos::crypto {
namespace {

const EVP_CIPHER* cipher_for(AeadAlg alg) {
  switch (alg) {
    case AeadAlg::kAes256Gcm: {
      static const EVP_CIPHER* const c = ossl::cipher("AES-256-GCM");
      return c;
    }
    case AeadAlg::kAes128Gcm: {
      static const EVP_CIPHER* const c = ossl::cipher("AES-128-GCM");
      return c;
    }
    case AeadAlg::kChaCha20Poly1305: {
      static const EVP_CIPHER* const c = ossl::cipher("ChaCha20-Poly1305");
      return c;
    }
  }
  return nullptr;
}

Status check_params(AeadAlg alg, ByteSpan key, ByteSpan nonce) {
  if (cipher_for(alg) == nullptr) return invalid_argument("unknown AEAD algorithm");
  if (key.size() != aead_key_size(alg)) return invalid_argument("AEAD key has the wrong size");
  if (nonce.size() != kAeadNonceSize) return invalid_argument("AEAD nonce must be 12 bytes");
  return ok_status();
}

// Feeds `data` to EVP_{En,De}cryptUpdate in int-sized pieces. `out` may be null for AAD.
template <typename UpdateFn>
bool update_all(UpdateFn fn, EVP_CIPHER_CTX* ctx, uint8_t* out, ByteSpan data) {
  constexpr size_t kChunk = 1 << 30;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t n = std::min(kChunk, data.size() - pos);
    int written = 0;
    if (fn(ctx, out == nullptr ? nullptr : out + pos, &written, data.data() + pos,
           static_cast<int>(n)) != 1) {
      return false;
    }
    // Stream-like AEADs output exactly what they consume; anything else breaks our layout.
    if (out != nullptr && static_cast<size_t>(written) != n) return false;
    pos += n;
  }
  return true;
}

}  // namespace

size_t aead_key_size(AeadAlg alg) {
  switch (alg) {
    case AeadAlg::kAes256Gcm: return 32;
    case AeadAlg::kAes128Gcm: return 16;
    case AeadAlg::kChaCha20Poly1305: return 32;
  }
  return 0;
}

Result<Bytes> aead_seal(AeadAlg alg, ByteSpan key, ByteSpan nonce, ByteSpan plaintext,
                        ByteSpan aad) {
  RETURN_IF_ERROR(check_params(alg, key, nonce));
  ossl::EvpCipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return ossl::internal("EVP_CIPHER_CTX_new");
  if (EVP_EncryptInit_ex(ctx.get(), cipher_for(alg), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_IVLEN, static_cast<int>(kAeadNonceSize),
                          nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), nonce.data()) != 1) {
    return ossl::internal("AEAD seal: init");
  }
  if (!update_all(EVP_EncryptUpdate, ctx.get(), nullptr, aad)) {
    return ossl::internal("AEAD seal: aad");
  }
  Bytes out(plaintext.size() + kAeadTagSize);
  if (!update_all(EVP_EncryptUpdate, ctx.get(), out.data(), plaintext)) {
    return ossl::internal("AEAD seal: encrypt");
  }
  int final_len = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), out.data() + plaintext.size(), &final_len) != 1 ||
      final_len != 0) {
    return ossl::internal("AEAD seal: final");
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kAeadTagSize),
                          out.data() + plaintext.size()) != 1) {
    return ossl::internal("AEAD seal: tag");
  }
  return out;
}

Result<SecretBytes> aead_open(AeadAlg alg, ByteSpan key, ByteSpan nonce,
                              ByteSpan ciphertext_and_tag, ByteSpan aad) {
  RETURN_IF_ERROR(check_params(alg, key, nonce));
  // Too short to hold a tag: the stored data was cut, which is corruption, not misuse.
  if (ciphertext_and_tag.size() < kAeadTagSize) return data_loss("AEAD input shorter than the tag");
  ByteSpan ciphertext = ciphertext_and_tag.first(ciphertext_and_tag.size() - kAeadTagSize);
  ByteSpan tag = ciphertext_and_tag.last(kAeadTagSize);
  ossl::EvpCipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return ossl::internal("EVP_CIPHER_CTX_new");
  if (EVP_DecryptInit_ex(ctx.get(), cipher_for(alg), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_IVLEN, static_cast<int>(kAeadNonceSize),
                          nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), nonce.data()) != 1) {
    return ossl::internal("AEAD open: init");
  }
  // The ctrl takes a non-const pointer but only copies the tag in.
  Bytes tag_copy(tag.begin(), tag.end());
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kAeadTagSize),
                          tag_copy.data()) != 1) {
    return ossl::internal("AEAD open: set tag");
  }
  if (!update_all(EVP_DecryptUpdate, ctx.get(), nullptr, aad)) {
    return ossl::internal("AEAD open: aad");
  }
  SecretBytes out(ciphertext.size());
  if (!update_all(EVP_DecryptUpdate, ctx.get(), out.data(), ciphertext)) {
    return ossl::internal("AEAD open: decrypt");
  }
  int final_len = 0;
  uint8_t scratch[16];
  if (EVP_DecryptFinal_ex(ctx.get(), scratch, &final_len) != 1) {
    // The plaintext is unauthenticated; do not let any of it out.
    out.wipe();
    ossl::drain_errors();
    return data_loss("AEAD authentication failed (wrong key, nonce, AAD, or tampered data)");
  }
  return out;
}

namespace {

enum class Wrap { kRfc3394, kRfc5649 };

const EVP_CIPHER* wrap_cipher(size_t kek_size, Wrap mode) {
  const bool pad = mode == Wrap::kRfc5649;
  switch (kek_size) {
    case 16: {
      static const EVP_CIPHER* const kw = ossl::cipher("AES-128-WRAP");
      static const EVP_CIPHER* const kwp = ossl::cipher("AES-128-WRAP-PAD");
      return pad ? kwp : kw;
    }
    case 24: {
      static const EVP_CIPHER* const kw = ossl::cipher("AES-192-WRAP");
      static const EVP_CIPHER* const kwp = ossl::cipher("AES-192-WRAP-PAD");
      return pad ? kwp : kw;
    }
    case 32: {
      static const EVP_CIPHER* const kw = ossl::cipher("AES-256-WRAP");
      static const EVP_CIPHER* const kwp = ossl::cipher("AES-256-WRAP-PAD");
      return pad ? kwp : kw;
    }
    default: return nullptr;
  }
}

Result<Bytes> key_wrap(Wrap mode, ByteSpan kek, ByteSpan key) {
  const EVP_CIPHER* cipher = wrap_cipher(kek.size(), mode);
  if (cipher == nullptr) return invalid_argument("key wrap: KEK must be 16, 24 or 32 bytes");
  // RFC 3394 wraps whole 64-bit blocks, at least two; RFC 5649 pads any non-empty key.
  const bool bad_size = mode == Wrap::kRfc3394 ? key.size() < 16 || key.size() % 8 != 0
                                                : key.empty();
  if (bad_size || !ossl::fits_int(key.size() + 16)) {
    return invalid_argument(mode == Wrap::kRfc3394
                                ? "key wrap: the key to wrap must be a multiple of 8 bytes, "
                                  "at least 16 (RFC 3394)"
                                : "key wrap: key to wrap has an invalid size");
  }
  ossl::EvpCipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return ossl::internal("EVP_CIPHER_CTX_new");
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  if (EVP_EncryptInit_ex(ctx.get(), cipher, nullptr, kek.data(), nullptr) != 1) {
    return ossl::internal("key wrap: init");
  }
  // The key (padded to a multiple of 8 for RFC 5649), plus the 8-byte integrity block.
  Bytes out((key.size() + 7) / 8 * 8 + 8);
  int len = 0;
  if (EVP_EncryptUpdate(ctx.get(), out.data(), &len, key.data(), static_cast<int>(key.size())) !=
      1) {
    return ossl::internal("key wrap");
  }
  int final_len = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), out.data() + len, &final_len) != 1) {
    return ossl::internal("key wrap: final");
  }
  out.resize(static_cast<size_t>(len + final_len));
  return out;
}

Result<SecretBytes> key_unwrap(Wrap mode, ByteSpan kek, ByteSpan wrapped) {
  const EVP_CIPHER* cipher = wrap_cipher(kek.size(), mode);
  if (cipher == nullptr) return invalid_argument("key unwrap: KEK must be 16, 24 or 32 bytes");
  const size_t min = mode == Wrap::kRfc3394 ? 24 : 16;
  if (wrapped.size() < min || wrapped.size() % 8 != 0 || !ossl::fits_int(wrapped.size())) {
    return data_loss("key unwrap: wrapped key has an invalid size");
  }
  ossl::EvpCipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return ossl::internal("EVP_CIPHER_CTX_new");
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  if (EVP_DecryptInit_ex(ctx.get(), cipher, nullptr, kek.data(), nullptr) != 1) {
    return ossl::internal("key unwrap: init");
  }
  SecretBytes out(wrapped.size());
  int len = 0;
  if (EVP_DecryptUpdate(ctx.get(), out.data(), &len, wrapped.data(),
                        static_cast<int>(wrapped.size())) != 1 ||
      len <= 0) {
    ossl::drain_errors();
    return data_loss("key unwrap: integrity check failed (wrong KEK or tampered data)");
  }
  int final_len = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), out.data() + len, &final_len) != 1) {
    ossl::drain_errors();
    return data_loss("key unwrap: integrity check failed");
  }
  SecretBytes result(out.span().first(static_cast<size_t>(len + final_len)));
  return result;
}

}  // namespace

Result<Bytes> aes_key_wrap(ByteSpan kek, ByteSpan key) { return key_wrap(Wrap::kRfc3394, kek, key); }
Result<SecretBytes> aes_key_unwrap(ByteSpan kek, ByteSpan wrapped) {
  return key_unwrap(Wrap::kRfc3394, kek, wrapped);
}
Result<Bytes> aes_key_wrap_pad(ByteSpan kek, ByteSpan key) {
  return key_wrap(Wrap::kRfc5649, kek, key);
}
Result<SecretBytes> aes_key_unwrap_pad(ByteSpan kek, ByteSpan wrapped) {
  return key_unwrap(Wrap::kRfc5649, kek, wrapped);
}

}  // namespace custos::crypto
