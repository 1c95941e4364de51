// RFC 3394 AES key wrap for JWE's A256KW. The one place outside crypto/ that includes OpenSSL:
// crypto/aead.h only offers the padded variant (RFC 5649), whose output JOSE clients reject.
// TODO(crypto owner): move into crypto/aead.h as aes_key_wrap()/aes_key_unwrap() and drop this.
#include <openssl/evp.h>

#include <memory>

#include "kbs/wrap.h"

namespace custos::kbs {

namespace {
struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

const EVP_CIPHER* cipher_for(size_t kek_size) {
  switch (kek_size) {
    case 16: return EVP_aes_128_wrap();
    case 24: return EVP_aes_192_wrap();
    case 32: return EVP_aes_256_wrap();
    default: return nullptr;
  }
}

// Runs one wrap or unwrap; returns false on any OpenSSL failure (for unwrap: the integrity check).
bool run(bool encrypt, ByteSpan kek, ByteSpan in, Bytes& out) {
  const EVP_CIPHER* cipher = cipher_for(kek.size());
  if (cipher == nullptr) return false;
  Ctx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return false;
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  if (EVP_CipherInit_ex(ctx.get(), cipher, nullptr, kek.data(), nullptr, encrypt ? 1 : 0) != 1) {
    return false;
  }
  out.assign(in.size() + 16, 0);
  int len = 0;
  if (EVP_CipherUpdate(ctx.get(), out.data(), &len, in.data(), static_cast<int>(in.size())) != 1 ||
      len < 0) {
    return false;
  }
  int fin = 0;
  if (EVP_CipherFinal_ex(ctx.get(), out.data() + len, &fin) != 1 || fin < 0) return false;
  out.resize(static_cast<size_t>(len) + static_cast<size_t>(fin));
  return true;
}
}  // namespace

Result<Bytes> aes_kw_wrap(ByteSpan kek, ByteSpan key) {
  if (key.size() < 16 || key.size() % 8 != 0 || key.size() > 4096) {
    return invalid_argument("AES-KW: the key to wrap must be a multiple of 8 bytes, at least 16");
  }
  Bytes out;
  if (!run(true, kek, key, out)) return internal_error("AES-KW: wrap failed");
  return out;
}

Result<SecretBytes> aes_kw_unwrap(ByteSpan kek, ByteSpan wrapped) {
  if (wrapped.size() < 24 || wrapped.size() % 8 != 0 || wrapped.size() > 4104) {
    return invalid_argument("AES-KW: wrapped key has a bad length");
  }
  Bytes out;
  if (!run(false, kek, wrapped, out)) {
    SecretBytes wipe(std::move(out));
    return data_loss("AES-KW: integrity check failed");
  }
  return SecretBytes(std::move(out));
}

}  // namespace custos::kbs
