#include "crypto/openssl.h"

#include <cstdio>
#include <cstdlib>

namespace custos::crypto::ossl {

std::string drain_errors() {
  std::string out;
  const char* file = nullptr;
  int line = 0;
  const char* func = nullptr;
  const char* data = nullptr;
  int flags = 0;
  // Bounded so a pathological queue cannot produce an unbounded message.
  for (int n = 0; n < 16; ++n) {
    unsigned long e = ERR_get_error_all(&file, &line, &func, &data, &flags);
    if (e == 0) break;
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
    if (data != nullptr && (flags & ERR_TXT_STRING) != 0 && data[0] != '\0') {
      out += " (";
      out += data;
      out += ")";
    }
  }
  ERR_clear_error();
  return out;
}

Status error(Code code, std::string_view what) {
  std::string msg(what);
  std::string queue = drain_errors();
  if (!queue.empty()) {
    msg += ": ";
    msg += queue;
  }
  return {code, std::move(msg)};
}

namespace {
// Fetched once: the legacy EVP_sha256()-style objects make OpenSSL 3 look the implementation up
// again (name hashing and a global lock) at every init. Fetched objects are immutable and may be
// shared between threads; they live for the process.
const EVP_MD* fetch_md(const char* name) {
  EVP_MD* m = EVP_MD_fetch(nullptr, name, nullptr);
  if (m == nullptr) fatal(std::string("EVP_MD_fetch(") + name + ")");
  return m;
}
}  // namespace

const EVP_MD* md(HashAlg alg) {
  static const EVP_MD* const kSha1 = fetch_md("SHA1");
  static const EVP_MD* const kSha256 = fetch_md("SHA2-256");
  static const EVP_MD* const kSha384 = fetch_md("SHA2-384");
  static const EVP_MD* const kSha512 = fetch_md("SHA2-512");
  switch (alg) {
    case HashAlg::kSha1: return kSha1;
    case HashAlg::kSha256: return kSha256;
    case HashAlg::kSha384: return kSha384;
    case HashAlg::kSha512: return kSha512;
  }
  fatal("unknown hash algorithm");
}

const EVP_CIPHER* cipher(const char* name) {
  EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, name, nullptr);
  if (c == nullptr) fatal(std::string("EVP_CIPHER_fetch(") + name + ")");
  return c;
}

void fatal(std::string_view what) {
  std::string queue = drain_errors();
  std::fprintf(stderr, "custos crypto: fatal: %.*s: %s\n", static_cast<int>(what.size()),
               what.data(), queue.c_str());
  std::abort();
}

}  // namespace custos::crypto::ossl
