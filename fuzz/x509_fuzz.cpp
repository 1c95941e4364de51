// Fuzzes the certificate and CRL parsers (PEM, DER and hex detection) and every accessor a
// verifier calls on an untrusted certificate.
#include <cstddef>
#include <cstdint>

#include "crypto/x509.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos;
  using namespace custos::crypto;
  ByteSpan in(data, size);

  if (auto cert = Certificate::from_any(in); cert.ok()) {
    (void)cert->der();
    (void)cert->pem();
    (void)cert->subject();
    (void)cert->issuer();
    (void)cert->subject_cn();
    (void)cert->serial();
    (void)cert->not_before();
    (void)cert->not_after();
    (void)cert->is_ca();
    (void)cert->dns_names();
    (void)cert->ip_addresses();
    (void)cert->extension("1.2.840.113741.1.13.1");
    (void)cert->extension("2.5.29.19");
    PublicKey key = cert->public_key();
    (void)key.to_jwk();
    (void)cert->verify_signature(key);
    ChainOptions opts;
    opts.at = cert->not_before();
    (void)verify_chain(*cert, {}, *cert, opts);
  }
  if (auto crl = Crl::from_any(in); crl.ok()) {
    (void)crl->der();
    (void)crl->issuer();
    (void)crl->this_update();
    (void)crl->next_update();
    (void)crl->entry_count();
    const uint8_t serial[] = {0x12, 0x34};
    (void)crl->is_revoked(serial);
  }
  (void)Certificate::chain_from_pem(as_string_view(in));
  return 0;
}
