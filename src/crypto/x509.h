// X.509 certificates and CRLs: parsing (PEM or DER), chain verification at a given time with
// CRLs and a pinned root, extension access for attestation (PCK SGX extensions, VCEK TCB), and
// issuing certificates (dev TLS, the sim TEE's PKI, the PKI engine, test fixtures).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/status.h"
#include "crypto/pkey.h"

typedef struct x509_st X509;          // NOLINT
typedef struct X509_crl_st X509_CRL;  // NOLINT

namespace custos::crypto {

class Certificate {
 public:
  Certificate();
  ~Certificate();
  Certificate(const Certificate&);
  Certificate& operator=(const Certificate&);
  Certificate(Certificate&&) noexcept;
  Certificate& operator=(Certificate&&) noexcept;

  static Result<Certificate> from_der(ByteSpan der);
  static Result<Certificate> from_pem(std::string_view pem);  // the first certificate
  // Every certificate in a PEM text, in order (leaf first as files usually are).
  static Result<std::vector<Certificate>> chain_from_pem(std::string_view pem);
  // PEM or DER, detected.
  static Result<Certificate> from_any(ByteSpan data);

  Bytes der() const;
  std::string pem() const;
  // RFC 2253 form: RDNs in reverse encoding order, so the Intel SGX Root CA (encoded CN first)
  // reads "C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX Root CA". Compare names
  // with subject_cn() or, better, pin keys; do not hard-code these strings.
  std::string subject() const;
  std::string issuer() const;
  std::string subject_cn() const;
  Bytes serial() const;  // big-endian magnitude, no leading zeros
  SysTime not_before() const;
  SysTime not_after() const;
  bool is_ca() const;
  PublicKey public_key() const;
  Bytes fingerprint_sha256() const;
  std::vector<std::string> dns_names() const;
  std::vector<std::string> ip_addresses() const;
  // The DER contents (the OCTET STRING's value) of an extension by dotted OID, if present.
  std::optional<Bytes> extension(std::string_view oid) const;
  // OK if this certificate's signature verifies with `issuer_key`.
  Status verify_signature(const PublicKey& issuer_key) const;

  X509* raw() const;
  explicit Certificate(X509* owned);

 private:
  X509* x509_ = nullptr;
};

class Crl {
 public:
  Crl();
  ~Crl();
  Crl(const Crl&);
  Crl& operator=(const Crl&);
  Crl(Crl&&) noexcept;
  Crl& operator=(Crl&&) noexcept;

  static Result<Crl> from_der(ByteSpan der);
  static Result<Crl> from_pem(std::string_view pem);
  // DER, PEM or hex-encoded DER, detected.
  static Result<Crl> from_any(ByteSpan data);

  Bytes der() const;
  std::string pem() const;
  std::string issuer() const;
  Bytes issuer_der() const;  // the Name as encoded (compare with a certificate's raw subject)
  SysTime this_update() const;
  std::optional<SysTime> next_update() const;
  bool is_revoked(ByteSpan serial) const;
  size_t entry_count() const;
  Status verify_signature(const PublicKey& issuer_key) const;

  X509_CRL* raw() const;
  explicit Crl(X509_CRL* owned);

 private:
  X509_CRL* crl_ = nullptr;
};

struct ChainOptions {
  SysTime at;                // validity is checked at this instant
  std::vector<Crl> crls;     // each must be signed by a certificate in the chain and in date
  // Every issuing CA on the path (root included) must have a CRL in `crls`, i.e. every
  // certificate below the root is covered by a CRL from its issuer (DCAP: the PCK CRL and the
  // Root CA CRL). Without this flag, certificates without a matching CRL are not checked.
  bool require_crl_for_each_ca = false;
};

// Verifies leaf <- intermediates... <- root, where `trusted_root` is pinned by its public key
// (a certificate with the same name and another key is rejected). Checks signatures, validity at
// opts.at, CA flags, name chaining, and revocation by the given CRLs. Returns the path used,
// leaf first, root last. Failures are kPermissionDenied with a message naming the certificate
// and the reason (expired, revoked, not signed by the pinned root, ...).
Result<std::vector<Certificate>> verify_chain(const Certificate& leaf,
                                              const std::vector<Certificate>& intermediates,
                                              const Certificate& trusted_root,
                                              const ChainOptions& opts);

// Issuing certificates and CRLs.
struct CertificateSpec {
  std::string subject_cn;
  std::map<std::string, std::string> subject_extra;  // e.g. {"O": "Custos"}
  Bytes serial;  // empty: 16 random bytes
  SysTime not_before;
  SysTime not_after;
  bool is_ca = false;
  int path_len = -1;  // -1: unlimited
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  bool server_auth = false;
  bool client_auth = false;
  // Custom extensions: dotted OID -> DER contents; critical = false.
  std::map<std::string, Bytes> extensions;
};
// Signs `spec` for `subject_key` with `issuer_key`; self-signed when issuer is null.
Result<Certificate> issue_certificate(const CertificateSpec& spec, const PublicKey& subject_key,
                                      const PrivateKey& issuer_key, const Certificate* issuer);
Result<Crl> issue_crl(const Certificate& issuer, const PrivateKey& issuer_key,
                      const std::vector<Bytes>& revoked_serials, SysTime this_update,
                      SysTime next_update);

// Certificate signing requests (PKI engine).
struct CsrInfo {
  std::string subject_cn;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  PublicKey public_key;
};
Result<CsrInfo> parse_csr(std::string_view pem);  // verifies the CSR's self-signature
Result<std::string> make_csr(const PrivateKey& key, const std::string& cn,
                             const std::vector<std::string>& dns_names);

}  // namespace custos::crypto
