// Fuzzes the DCAP certificate reader (attestation/dcap/cert.h), DER and PEM, and checks it
// against OpenSSL: whatever it accepts, OpenSSL must parse with the same fields.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "attestation/dcap/cert.h"
#include "attestation/dcap/pck.h"
#include "crypto/x509.h"

namespace {

void check(custos::ByteSpan der) {
  using namespace custos;
  auto ours = attestation::dcap::PcsCert::from_der(der);
  if (!ours.ok()) return;
  (void)ours->extension(attestation::dcap::kSgxExtensionsOidDer);
  (void)ours->may_sign_certificates();
  (void)ours->may_sign_crls();
  (void)ours->verify_signature(ours->public_key());
  auto ossl = crypto::Certificate::from_der(der);
  if (!ossl.ok() || ossl->serial() != ours->serial() || ossl->not_before() != ours->not_before() ||
      ossl->not_after() != ours->not_after() ||
      ossl->public_key().to_der() != Bytes(ours->spki().begin(), ours->spki().end())) {
    std::abort();  // the two readers disagree on a certificate ours accepts
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  custos::ByteSpan in(data, size);
  check(in);
  if (auto blocks = custos::attestation::dcap::PcsCert::pem_blocks(custos::as_string_view(in));
      blocks.ok()) {
    for (const auto& b : *blocks) check(b);
  }
  return 0;
}
