#include "crypto/hash.h"

#include <algorithm>

#include "crypto/openssl.h"

namespace custos::crypto {
namespace {
const EVP_MD* md_for(HashAlg alg) { return ossl::md(alg); }
}  // namespace

size_t hash_size(HashAlg alg) {
  switch (alg) {
    case HashAlg::kSha1: return 20;
    case HashAlg::kSha256: return 32;
    case HashAlg::kSha384: return 48;
    case HashAlg::kSha512: return 64;
  }
  return 0;
}

std::string_view hash_name(HashAlg alg) {
  switch (alg) {
    case HashAlg::kSha1: return "sha1";
    case HashAlg::kSha256: return "sha256";
    case HashAlg::kSha384: return "sha384";
    case HashAlg::kSha512: return "sha512";
  }
  return "unknown";
}

// Hashing cannot fail for these built-in digests except on allocation failure, so the API has no
// error path and such a failure aborts (ossl::fatal).
Bytes digest(HashAlg alg, ByteSpan data) {
  Bytes out(hash_size(alg));
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, md_for(alg), nullptr) != 1 ||
      len != out.size()) {
    ossl::fatal("EVP_Digest");
  }
  return out;
}

struct Hasher::Impl {
  HashAlg alg;
  ossl::EvpMdCtx ctx;
};

Hasher::Hasher(HashAlg alg) : impl_(std::make_unique<Impl>(Impl{alg, ossl::EvpMdCtx(EVP_MD_CTX_new())})) {
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx.get(), md_for(alg), nullptr) != 1) {
    ossl::fatal("EVP_DigestInit_ex");
  }
}
Hasher::~Hasher() = default;
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;

void Hasher::update(ByteSpan data) {
  if (!impl_ || !impl_->ctx) return;  // moved-from or finished: a contract violation, ignored
  if (EVP_DigestUpdate(impl_->ctx.get(), data.data(), data.size()) != 1) {
    ossl::fatal("EVP_DigestUpdate");
  }
}

Bytes Hasher::finish() {
  if (!impl_ || !impl_->ctx) return {};
  Bytes out(hash_size(impl_->alg));
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(impl_->ctx.get(), out.data(), &len) != 1 || len != out.size()) {
    ossl::fatal("EVP_DigestFinal_ex");
  }
  impl_->ctx.reset();
  return out;
}

Bytes hmac(HashAlg alg, ByteSpan key, ByteSpan data) {
  // EVP_MAC objects are immutable once fetched and may be shared between threads.
  static EVP_MAC* const kHmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (kHmac == nullptr) ossl::fatal("EVP_MAC_fetch(HMAC)");
  ossl::EvpMacCtx ctx(EVP_MAC_CTX_new(kHmac));
  if (!ctx) ossl::fatal("EVP_MAC_CTX_new");
  // OSSL_PARAM wants a mutable char*; the provider only reads it.
  std::string md_name(hash_name(alg));
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string("digest", md_name.data(), 0),
      OSSL_PARAM_construct_end(),
  };
  // A zero-length key is legal HMAC; OpenSSL wants a non-null pointer for it.
  static const uint8_t kEmpty = 0;
  const uint8_t* key_ptr = key.empty() ? &kEmpty : key.data();
  Bytes out(hash_size(alg));
  size_t len = 0;
  if (EVP_MAC_init(ctx.get(), key_ptr, key.size(), params) != 1 ||
      EVP_MAC_update(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1 || len != out.size()) {
    ossl::fatal("HMAC");
  }
  return out;
}

// HKDF-Extract then HKDF-Expand (RFC 5869), written over HMAC so that edge cases the RFC allows
// (empty IKM, empty salt = HashLen zeros, empty info) need no provider-specific handling.
// `length` must be 1..255*32; anything else is a programming error and aborts.
SecretBytes hkdf_sha256(ByteSpan ikm, ByteSpan salt, ByteSpan info, size_t length) {
  constexpr size_t kHashLen = 32;
  if (length == 0 || length > 255 * kHashLen) ossl::fatal("hkdf_sha256: invalid output length");
  Bytes zero_salt(kHashLen, 0);
  SecretBytes prk(hmac(HashAlg::kSha256, salt.empty() ? ByteSpan(zero_salt) : salt, ikm));
  SecretBytes okm(length);
  SecretBytes block;  // T(i-1) || info || i
  SecretBytes t;
  size_t pos = 0;
  for (uint8_t i = 1; pos < length; ++i) {
    SecretBytes input(t.size() + info.size() + 1);
    std::copy(t.span().begin(), t.span().end(), input.data());
    std::copy(info.begin(), info.end(), input.data() + t.size());
    input.data()[input.size() - 1] = i;
    t = SecretBytes(hmac(HashAlg::kSha256, prk.span(), input.span()));
    size_t n = std::min(kHashLen, length - pos);
    std::copy(t.data(), t.data() + n, okm.data() + pos);
    pos += n;
  }
  return okm;
}

}  // namespace custos::crypto
