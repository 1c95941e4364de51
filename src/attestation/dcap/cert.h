// X.509 certificates as Intel's PCS issues them for DCAP (PCK, PCK CA, TCB signing and root
// certificates), read by the bounds-checked DER reader of der.h instead of OpenSSL.
//
// Why not crypto::Certificate: OpenSSL 3.0's d2i_X509 decodes the key through the provider
// decoder machinery on every parse, which costs more than two ECDSA verifications; a cold DCAP
// verification parses three certificates. This reader accepts exactly the profile of the
// [PCK] certificate specification: X.509 v3, ecdsa-with-SHA256 signatures, P-256 keys, DER. Any
// other certificate is refused with a reason; nothing is guessed.
//
// What it checks while parsing: the DER structure (lengths nested, nothing trailing), the
// signature algorithm (inner and outer identical), the key (on the curve: the import checks it),
// the validity times, and the extensions (no duplicates; an unknown critical extension is
// refused, RFC 5280 4.2). What it leaves to the chain: signatures, names and validity at a time.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/status.h"
#include "crypto/pkey.h"

namespace custos::attestation::dcap {

class PcsCert {
 public:
  // One DER certificate. Errors are kInvalidArgument with the reason.
  static Result<PcsCert> from_der(ByteSpan der);
  // Every CERTIFICATE block of a PEM text, in order; text outside the blocks is ignored, as
  // PEM readers do. At most `max_certs` blocks.
  static Result<std::vector<Bytes>> pem_blocks(std::string_view pem, size_t max_certs = 16);

  const Bytes& der() const { return der_; }
  ByteSpan tbs() const { return span(tbs_); }
  // The Names as encoded: chaining compares them byte for byte (issuer == issuer's subject).
  ByteSpan subject() const { return span(subject_); }
  ByteSpan issuer() const { return span(issuer_); }
  const std::string& subject_cn() const { return subject_cn_; }
  const Bytes& serial() const { return serial_; }  // big-endian magnitude, no leading zeros
  SysTime not_before() const { return not_before_; }
  SysTime not_after() const { return not_after_; }
  // basicConstraints cA = TRUE.
  bool is_ca() const { return is_ca_; }
  // keyUsage bits (RFC 5280 4.2.1.3): absent keyUsage allows every use.
  bool may_sign_certificates() const { return !key_usage_ || (*key_usage_ & kKeyCertSign) != 0; }
  bool may_sign_crls() const { return !key_usage_ || (*key_usage_ & kCrlSign) != 0; }
  const crypto::PublicKey& public_key() const { return key_; }
  // The encoded SubjectPublicKeyInfo (compare keys by it: one key has one P-256 encoding here).
  ByteSpan spki() const { return span(spki_); }
  // The DER contents (the OCTET STRING's value) of an extension by its encoded OID value
  // (the OID's content octets, without tag and length).
  std::optional<ByteSpan> extension(ByteSpan oid) const;
  // OK if this certificate's signature verifies with `issuer_key`.
  Status verify_signature(const crypto::PublicKey& issuer_key) const;

 private:
  struct Range {
    size_t offset = 0;
    size_t size = 0;
  };
  struct Extension {
    Range oid;
    Range value;
  };
  static constexpr uint16_t kKeyCertSign = 1u << 5;  // bit 5 (DER bit order: 0x04 of octet 0)
  static constexpr uint16_t kCrlSign = 1u << 6;

  ByteSpan span(Range r) const { return ByteSpan(der_).subspan(r.offset, r.size); }
  Range range_of(ByteSpan inner) const;

  Bytes der_;
  Range tbs_, subject_, issuer_, spki_, signature_;
  std::string subject_cn_;
  Bytes serial_;
  SysTime not_before_, not_after_;
  bool is_ca_ = false;
  std::optional<uint16_t> key_usage_;
  std::vector<Extension> extensions_;
  crypto::PublicKey key_;
};

}  // namespace custos::attestation::dcap
