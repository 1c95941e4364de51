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

const EVP_MD* md(HashAlg alg) {
  switch (alg) {
    case HashAlg::kSha1: return EVP_sha1();
    case HashAlg::kSha256: return EVP_sha256();
    case HashAlg::kSha384: return EVP_sha384();
    case HashAlg::kSha512: return EVP_sha512();
  }
  fatal("unknown hash algorithm");
}

void fatal(std::string_view what) {
  std::string queue = drain_errors();
  std::fprintf(stderr, "custos crypto: fatal: %.*s: %s\n", static_cast<int>(what.size()),
               what.data(), queue.c_str());
  std::abort();
}

}  // namespace custos::crypto::ossl
