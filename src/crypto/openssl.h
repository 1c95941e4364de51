// RAII owners for every OpenSSL object used in crypto/ (cf. CCF's openssl_wrappers.h), plus the
// error-queue helpers that turn a failed call into a Status. Only crypto/ includes this header.
//
// Each owner is a std::unique_ptr with a zero-size deleter bound to the matching *_free function,
// so it never converts implicitly to the raw pointer: call .get() where OpenSSL borrows and
// .release() where OpenSSL takes ownership (set0/push calls).
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "crypto/hash.h"

namespace custos::crypto::ossl {

// A deleter calling `F`; empty, so the unique_ptr is one pointer wide.
template <auto F>
struct Free {
  template <typename T>
  void operator()(T* p) const noexcept {
    F(p);
  }
};
template <typename T, auto F>
using Ptr = std::unique_ptr<T, Free<F>>;

// OPENSSL_free is a macro (it records file and line), so it needs a function to bind to.
inline void openssl_free(void* p) noexcept { OPENSSL_free(p); }
inline void x509_stack_free(STACK_OF(X509) * s) noexcept { sk_X509_pop_free(s, X509_free); }
inline void ext_stack_free(STACK_OF(X509_EXTENSION) * s) noexcept {
  sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
}
inline void bn_clear_free(BIGNUM* b) noexcept { BN_clear_free(b); }

using Bio = Ptr<BIO, &BIO_free_all>;
using Bignum = Ptr<BIGNUM, &BN_free>;
using SecretBignum = Ptr<BIGNUM, &bn_clear_free>;  // private scalars: cleared before freeing
using BnCtx = Ptr<BN_CTX, &BN_CTX_free>;
using EcdsaSig = Ptr<ECDSA_SIG, &ECDSA_SIG_free>;
using EcGroup = Ptr<EC_GROUP, &EC_GROUP_free>;
using EcPoint = Ptr<EC_POINT, &EC_POINT_free>;
using EvpCipherCtx = Ptr<EVP_CIPHER_CTX, &EVP_CIPHER_CTX_free>;
using EvpKdf = Ptr<EVP_KDF, &EVP_KDF_free>;
using EvpKdfCtx = Ptr<EVP_KDF_CTX, &EVP_KDF_CTX_free>;
using EvpMac = Ptr<EVP_MAC, &EVP_MAC_free>;
using EvpMacCtx = Ptr<EVP_MAC_CTX, &EVP_MAC_CTX_free>;
using EvpMdCtx = Ptr<EVP_MD_CTX, &EVP_MD_CTX_free>;
using EvpPkey = Ptr<EVP_PKEY, &EVP_PKEY_free>;
using EvpPkeyCtx = Ptr<EVP_PKEY_CTX, &EVP_PKEY_CTX_free>;
using OsslParamBld = Ptr<OSSL_PARAM_BLD, &OSSL_PARAM_BLD_free>;
using OsslParams = Ptr<OSSL_PARAM, &OSSL_PARAM_free>;
using OsslString = Ptr<char, &openssl_free>;       // strings OpenSSL allocates (BN_bn2dec, ...)
using OsslBuffer = Ptr<unsigned char, &openssl_free>;  // buffers from i2d_* with a NULL out
using Asn1BitString = Ptr<ASN1_BIT_STRING, &ASN1_BIT_STRING_free>;
using Asn1Integer = Ptr<ASN1_INTEGER, &ASN1_INTEGER_free>;
using Asn1Object = Ptr<ASN1_OBJECT, &ASN1_OBJECT_free>;
using Asn1OctetString = Ptr<ASN1_OCTET_STRING, &ASN1_OCTET_STRING_free>;
using Asn1Time = Ptr<ASN1_TIME, &ASN1_TIME_free>;
using BasicConstraints = Ptr<BASIC_CONSTRAINTS, &BASIC_CONSTRAINTS_free>;
using ExtendedKeyUsage = Ptr<EXTENDED_KEY_USAGE, &EXTENDED_KEY_USAGE_free>;
using GeneralName = Ptr<GENERAL_NAME, &GENERAL_NAME_free>;
using GeneralNames = Ptr<GENERAL_NAMES, &GENERAL_NAMES_free>;
using X509Ptr = Ptr<X509, &X509_free>;
using X509Crl = Ptr<X509_CRL, &X509_CRL_free>;
using X509Extension = Ptr<X509_EXTENSION, &X509_EXTENSION_free>;
using X509Extensions = Ptr<STACK_OF(X509_EXTENSION), &ext_stack_free>;
using X509Name = Ptr<X509_NAME, &X509_NAME_free>;
using X509Req = Ptr<X509_REQ, &X509_REQ_free>;
using X509Revoked = Ptr<X509_REVOKED, &X509_REVOKED_free>;
using X509Stack = Ptr<STACK_OF(X509), &x509_stack_free>;

// Empties the calling thread's OpenSSL error queue and returns its entries joined by "; "
// (empty when the queue was empty). Always call this after a failure so stale errors do not
// leak into the next, unrelated, failure's message.
std::string drain_errors();

// A Status with `code` whose message is `what` followed by the drained error queue.
Status error(Code code, std::string_view what);
inline Status internal(std::string_view what) { return error(Code::kInternal, what); }
inline Status invalid(std::string_view what) { return error(Code::kInvalidArgument, what); }

// OpenSSL lengths are int; spans are size_t. False if `n` does not fit.
inline bool fits_int(size_t n) { return n <= static_cast<size_t>(INT32_MAX); }

// The EVP_MD for an allowlisted hash (OpenSSL's static digests; never freed).
const EVP_MD* md(HashAlg alg);
// Fetches a cipher by name; aborts if the default provider lacks it. Call once and keep the
// result in a function-local static: fetched objects live for the process.
const EVP_CIPHER* cipher(const char* name);

// Aborts with a message: for failures of infallible APIs (digest, DRBG) where no caller could do
// anything safe with an error.
[[noreturn]] void fatal(std::string_view what);

}  // namespace custos::crypto::ossl
