#include "crypto/x509.h"

#include <arpa/inet.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "base/encoding.h"
#include "crypto/openssl.h"
#include "crypto/pkey_internal.h"
#include "crypto/random.h"

namespace custos::crypto {
namespace {

constexpr size_t kMaxInput = 1 << 20;  // certificates and CRLs above 1 MiB are refused
constexpr size_t kMaxChainDepth = 8;

// ---- time ----

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3u : 9u)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::optional<SysTime> to_systime(const ASN1_TIME* t) {
  if (t == nullptr) return std::nullopt;
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) {
    ossl::drain_errors();
    return std::nullopt;
  }
  int64_t days = days_from_civil(tm.tm_year + 1900, static_cast<unsigned>(tm.tm_mon + 1),
                                 static_cast<unsigned>(tm.tm_mday));
  return from_unix_seconds(days * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
}

Status set_time(ASN1_TIME* field, SysTime t) {
  // ASN1_TIME_set picks UTCTime for 1950..2049 and GeneralizedTime otherwise (RFC 5280 4.1.2.5).
  if (ASN1_TIME_set(field, static_cast<time_t>(to_unix_seconds(t))) == nullptr) {
    return ossl::invalid("time out of the range X.509 can encode");
  }
  return ok_status();
}

// ---- text helpers ----

std::string bio_to_string(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n <= 0 || data == nullptr) return {};
  return std::string(data, static_cast<size_t>(n));
}

ossl::Bio mem_bio(ByteSpan data) {
  if (!ossl::fits_int(data.size())) return ossl::Bio();
  return ossl::Bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string name_to_string(const X509_NAME* name) {
  if (name == nullptr) return {};
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  // RFC 2253 order (most specific first), UTF-8 kept as is rather than escaped as \XX.
  constexpr unsigned long kFlags = XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, kFlags) < 0) {
    ossl::drain_errors();
    return {};
  }
  return bio_to_string(bio.get());
}

std::string name_cn(const X509_NAME* name) {
  if (name == nullptr) return {};
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  ossl::OsslBuffer owned(utf8);
  if (n < 0 || utf8 == nullptr) {
    ossl::drain_errors();
    return {};
  }
  return std::string(reinterpret_cast<const char*>(utf8), static_cast<size_t>(n));
}

Bytes integer_magnitude(const ASN1_INTEGER* i) {
  ossl::Bignum bn(ASN1_INTEGER_to_BN(i, nullptr));
  if (!bn) {
    ossl::drain_errors();
    return {};
  }
  Bytes out(static_cast<size_t>(BN_num_bytes(bn.get())));
  BN_bn2bin(bn.get(), out.data());
  if (out.empty()) out.push_back(0);  // serial 0 exists in the wild (AMD VCEKs)
  return out;
}

Result<ossl::Asn1Integer> integer_from_magnitude(ByteSpan b) {
  if (b.empty() || b.size() > 64) return invalid_argument("serial must be 1..64 bytes");
  ossl::Bignum bn(BN_bin2bn(b.data(), static_cast<int>(b.size()), nullptr));
  if (!bn) return ossl::internal("BN_bin2bn");
  ossl::Asn1Integer i(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!i) return ossl::internal("BN_to_ASN1_INTEGER");
  return i;
}

Bytes strip_leading_zeros(ByteSpan b) {
  size_t i = 0;
  while (i + 1 < b.size() && b[i] == 0) ++i;
  return Bytes(b.begin() + static_cast<std::ptrdiff_t>(i), b.end());
}

std::string ip_to_string(const ASN1_OCTET_STRING* ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  const unsigned char* p = ASN1_STRING_get0_data(ip);
  int len = ASN1_STRING_length(ip);
  if (len == 4 && inet_ntop(AF_INET, p, buf, sizeof buf) != nullptr) return buf;
  if (len == 16 && inet_ntop(AF_INET6, p, buf, sizeof buf) != nullptr) return buf;
  return {};
}

void collect_names(const GENERAL_NAMES* gens, std::vector<std::string>* dns,
                   std::vector<std::string>* ips) {
  if (gens == nullptr) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(gens); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(gens, i);
    if (g->type == GEN_DNS && dns != nullptr) {
      const ASN1_IA5STRING* s = g->d.dNSName;
      dns->emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                        static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (g->type == GEN_IPADD && ips != nullptr) {
      std::string ip = ip_to_string(g->d.iPAddress);
      if (!ip.empty()) ips->push_back(std::move(ip));
    }
  }
}

// Builds a GENERAL_NAMES from DNS names and IP literals field by field (never through OpenSSL's
// "DNS:a,IP:b" config syntax, where a comma in a requested name would inject another entry).
Result<ossl::GeneralNames> make_general_names(const std::vector<std::string>& dns_names,
                                              const std::vector<std::string>& ip_addresses) {
  ossl::GeneralNames gens(sk_GENERAL_NAME_new_null());
  if (!gens) return ossl::internal("sk_GENERAL_NAME_new_null");
  for (const std::string& d : dns_names) {
    if (d.empty() || d.size() > 253) return invalid_argument("invalid DNS name in SAN");
    ossl::GeneralName g(GENERAL_NAME_new());
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    if (!g || s == nullptr ||
        ASN1_STRING_set(s, d.data(), static_cast<int>(d.size())) != 1) {
      ASN1_IA5STRING_free(s);
      return ossl::internal("building a DNS SAN");
    }
    GENERAL_NAME_set0_value(g.get(), GEN_DNS, s);
    if (sk_GENERAL_NAME_push(gens.get(), g.get()) <= 0) return ossl::internal("SAN push");
    (void)g.release();
  }
  for (const std::string& ip : ip_addresses) {
    ossl::Asn1OctetString octets(a2i_IPADDRESS(ip.c_str()));
    if (!octets) {
      ossl::drain_errors();
      return invalid_argument("invalid IP address in SAN");
    }
    ossl::GeneralName g(GENERAL_NAME_new());
    if (!g) return ossl::internal("GENERAL_NAME_new");
    GENERAL_NAME_set0_value(g.get(), GEN_IPADD, octets.release());
    if (sk_GENERAL_NAME_push(gens.get(), g.get()) <= 0) return ossl::internal("SAN push");
    (void)g.release();
  }
  return gens;
}

Result<ossl::Asn1Object> numeric_oid(std::string_view oid) {
  if (oid.empty() || oid.size() > 128 ||
      oid.find_first_not_of("0123456789.") != std::string_view::npos) {
    return invalid_argument("extension OID must be in dotted numeric form");
  }
  ossl::Asn1Object obj(OBJ_txt2obj(std::string(oid).c_str(), 1));
  if (!obj) return ossl::invalid("invalid OID");
  return obj;
}

bool allowed_signature_nid(int nid) {
  switch (nid) {
    case NID_ecdsa_with_SHA256:
    case NID_ecdsa_with_SHA384:
    case NID_ecdsa_with_SHA512:
    case NID_sha256WithRSAEncryption:
    case NID_sha384WithRSAEncryption:
    case NID_sha512WithRSAEncryption:
    case NID_rsassaPss:
    case NID_ED25519:
      return true;
    default:
      return false;
  }
}

// The digest to sign with for an issuer key: matched to the curve strength, none for Ed25519.
const EVP_MD* signing_md(KeyType t) {
  switch (t) {
    case KeyType::kEcP384: return EVP_sha384();
    case KeyType::kEcP521: return EVP_sha512();
    case KeyType::kEd25519: return nullptr;
    case KeyType::kEcP256:
    case KeyType::kRsa: return EVP_sha256();
  }
  return EVP_sha256();
}

Status check_input_size(size_t n) {
  if (n == 0) return invalid_argument("empty input");
  if (n > kMaxInput) return invalid_argument("input too large");
  return ok_status();
}

bool looks_like_pem(std::string_view s) { return s.find("-----BEGIN ") != std::string_view::npos; }

// Hex-encoded DER (Intel PCS serves CRLs this way), whitespace tolerated.
std::optional<Bytes> maybe_hex(ByteSpan data) {
  std::string text = strip_whitespace(as_string_view(data));
  if (text.empty()) return std::nullopt;
  auto b = hex_decode(text);
  if (!b.ok()) return std::nullopt;
  return std::move(b).value();
}

std::string hex_serial(const Bytes& b) { return hex_encode(b); }

std::string describe(const Certificate& c) {
  std::string s = c.subject();
  return s.empty() ? "certificate" : "certificate \"" + s + "\"";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Certificate

Certificate::Certificate() = default;
Certificate::~Certificate() { X509_free(x509_); }
Certificate::Certificate(X509* owned) : x509_(owned) {}
// Certificates are immutable once parsed or issued; copies share by reference count.
Certificate::Certificate(const Certificate& o) : x509_(o.x509_) {
  if (x509_ != nullptr) X509_up_ref(x509_);
}
Certificate& Certificate::operator=(const Certificate& o) {
  if (this != &o) {
    if (o.x509_ != nullptr) X509_up_ref(o.x509_);
    X509_free(x509_);
    x509_ = o.x509_;
  }
  return *this;
}
Certificate::Certificate(Certificate&& o) noexcept : x509_(std::exchange(o.x509_, nullptr)) {}
Certificate& Certificate::operator=(Certificate&& o) noexcept {
  if (this != &o) {
    X509_free(x509_);
    x509_ = std::exchange(o.x509_, nullptr);
  }
  return *this;
}
X509* Certificate::raw() const { return x509_; }

Result<Certificate> Certificate::from_der(ByteSpan der) {
  RETURN_IF_ERROR(check_input_size(der.size()));
  const unsigned char* p = der.data();
  ossl::X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!x) return ossl::invalid("not a DER X.509 certificate");
  if (p != der.data() + der.size()) return invalid_argument("trailing bytes after certificate");
  return Certificate(x.release());
}

Result<Certificate> Certificate::from_pem(std::string_view pem) {
  RETURN_IF_ERROR(check_input_size(pem.size()));
  ossl::Bio bio = mem_bio(as_bytes(pem));
  if (!bio) return ossl::internal("BIO_new_mem_buf");
  ossl::X509Ptr x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!x) return ossl::invalid("not a PEM certificate");
  return Certificate(x.release());
}

Result<std::vector<Certificate>> Certificate::chain_from_pem(std::string_view pem) {
  RETURN_IF_ERROR(check_input_size(pem.size()));
  ossl::Bio bio = mem_bio(as_bytes(pem));
  if (!bio) return ossl::internal("BIO_new_mem_buf");
  std::vector<Certificate> out;
  for (;;) {
    ossl::X509Ptr x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!x) {
      unsigned long e = ERR_peek_last_error();
      // Running out of PEM blocks is the normal end; anything else is a damaged block.
      if (!out.empty() && ERR_GET_LIB(e) == ERR_LIB_PEM &&
          ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ossl::drain_errors();
        break;
      }
      return ossl::invalid(out.empty() ? "no PEM certificate found"
                                       : "damaged PEM certificate after #" +
                                             std::to_string(out.size()));
    }
    out.emplace_back(x.release());
    if (out.size() > 64) return invalid_argument("too many certificates in PEM bundle");
  }
  return out;
}

Result<Certificate> Certificate::from_any(ByteSpan data) {
  RETURN_IF_ERROR(check_input_size(data.size()));
  if (data[0] == 0x30) return from_der(data);  // DER SEQUENCE
  if (looks_like_pem(as_string_view(data))) return from_pem(as_string_view(data));
  if (auto der = maybe_hex(data)) return from_der(*der);
  return invalid_argument("certificate is neither DER, PEM nor hex");
}

Bytes Certificate::der() const {
  if (x509_ == nullptr) return {};
  unsigned char* buf = nullptr;
  int n = i2d_X509(x509_, &buf);
  ossl::OsslBuffer owned(buf);
  if (n <= 0 || buf == nullptr) {
    ossl::drain_errors();
    return {};
  }
  return Bytes(buf, buf + n);
}

std::string Certificate::pem() const {
  if (x509_ == nullptr) return {};
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), x509_) != 1) {
    ossl::drain_errors();
    return {};
  }
  return bio_to_string(bio.get());
}

std::string Certificate::subject() const {
  return x509_ == nullptr ? std::string() : name_to_string(X509_get_subject_name(x509_));
}
std::string Certificate::issuer() const {
  return x509_ == nullptr ? std::string() : name_to_string(X509_get_issuer_name(x509_));
}
std::string Certificate::subject_cn() const {
  return x509_ == nullptr ? std::string() : name_cn(X509_get_subject_name(x509_));
}
Bytes Certificate::serial() const {
  return x509_ == nullptr ? Bytes() : integer_magnitude(X509_get0_serialNumber(x509_));
}
SysTime Certificate::not_before() const {
  if (x509_ == nullptr) return SysTime();
  return to_systime(X509_get0_notBefore(x509_)).value_or(SysTime());
}
SysTime Certificate::not_after() const {
  if (x509_ == nullptr) return SysTime();
  return to_systime(X509_get0_notAfter(x509_)).value_or(SysTime());
}
bool Certificate::is_ca() const {
  // basicConstraints cA = TRUE only; OpenSSL's looser X509_check_ca also counts v1 roots.
  return x509_ != nullptr && (X509_get_extension_flags(x509_) & EXFLAG_CA) != 0;
}

PublicKey Certificate::public_key() const {
  if (x509_ == nullptr) return PublicKey();
  EVP_PKEY* k = X509_get0_pubkey(x509_);
  if (k == nullptr) {
    ossl::drain_errors();
    return PublicKey();
  }
  // Only allowlisted keys leave this module; anything else reads as an empty key.
  if (!internal::classify(k).ok()) return PublicKey();
  EVP_PKEY_up_ref(k);
  return PublicKey(k);
}

Bytes Certificate::fingerprint_sha256() const { return sha256(der()); }

std::vector<std::string> Certificate::dns_names() const {
  std::vector<std::string> out;
  if (x509_ == nullptr) return out;
  ossl::GeneralNames gens(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(x509_, NID_subject_alt_name, nullptr, nullptr)));
  collect_names(gens.get(), &out, nullptr);
  return out;
}

std::vector<std::string> Certificate::ip_addresses() const {
  std::vector<std::string> out;
  if (x509_ == nullptr) return out;
  ossl::GeneralNames gens(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(x509_, NID_subject_alt_name, nullptr, nullptr)));
  collect_names(gens.get(), nullptr, &out);
  return out;
}

std::optional<Bytes> Certificate::extension(std::string_view oid) const {
  if (x509_ == nullptr) return std::nullopt;
  auto obj = numeric_oid(oid);
  if (!obj.ok()) return std::nullopt;
  int idx = X509_get_ext_by_OBJ(x509_, obj->get(), -1);
  if (idx < 0) return std::nullopt;
  const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(X509_get_ext(x509_, idx));
  if (data == nullptr) return std::nullopt;
  const unsigned char* p = ASN1_STRING_get0_data(data);
  return Bytes(p, p + ASN1_STRING_length(data));
}

Status Certificate::verify_signature(const PublicKey& issuer_key) const {
  if (x509_ == nullptr) return invalid_argument("empty certificate");
  if (issuer_key.empty()) return invalid_argument("empty or disallowed issuer key");
  if (!allowed_signature_nid(X509_get_signature_nid(x509_))) {
    return permission_denied(describe(*this) + " uses a signature algorithm that is not allowed");
  }
  if (X509_verify(x509_, issuer_key.raw()) != 1) {
    ossl::drain_errors();
    return permission_denied("signature of " + describe(*this) + " does not verify");
  }
  return ok_status();
}

// ---------------------------------------------------------------------------------------------
// Crl

Crl::Crl() = default;
Crl::~Crl() { X509_CRL_free(crl_); }
Crl::Crl(X509_CRL* owned) : crl_(owned) {}
Crl::Crl(const Crl& o) : crl_(o.crl_) {
  if (crl_ != nullptr) X509_CRL_up_ref(crl_);
}
Crl& Crl::operator=(const Crl& o) {
  if (this != &o) {
    if (o.crl_ != nullptr) X509_CRL_up_ref(o.crl_);
    X509_CRL_free(crl_);
    crl_ = o.crl_;
  }
  return *this;
}
Crl::Crl(Crl&& o) noexcept : crl_(std::exchange(o.crl_, nullptr)) {}
Crl& Crl::operator=(Crl&& o) noexcept {
  if (this != &o) {
    X509_CRL_free(crl_);
    crl_ = std::exchange(o.crl_, nullptr);
  }
  return *this;
}
X509_CRL* Crl::raw() const { return crl_; }

Result<Crl> Crl::from_der(ByteSpan der) {
  RETURN_IF_ERROR(check_input_size(der.size()));
  const unsigned char* p = der.data();
  ossl::X509Crl c(d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size())));
  if (!c) return ossl::invalid("not a DER CRL");
  if (p != der.data() + der.size()) return invalid_argument("trailing bytes after CRL");
  return Crl(c.release());
}

Result<Crl> Crl::from_pem(std::string_view pem) {
  RETURN_IF_ERROR(check_input_size(pem.size()));
  ossl::Bio bio = mem_bio(as_bytes(pem));
  if (!bio) return ossl::internal("BIO_new_mem_buf");
  ossl::X509Crl c(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
  if (!c) return ossl::invalid("not a PEM CRL");
  return Crl(c.release());
}

Result<Crl> Crl::from_any(ByteSpan data) {
  RETURN_IF_ERROR(check_input_size(data.size()));
  if (data[0] == 0x30) return from_der(data);
  if (looks_like_pem(as_string_view(data))) return from_pem(as_string_view(data));
  if (auto der = maybe_hex(data)) return from_der(*der);
  return invalid_argument("CRL is neither DER, PEM nor hex");
}

Bytes Crl::der() const {
  if (crl_ == nullptr) return {};
  unsigned char* buf = nullptr;
  int n = i2d_X509_CRL(crl_, &buf);
  ossl::OsslBuffer owned(buf);
  if (n <= 0 || buf == nullptr) {
    ossl::drain_errors();
    return {};
  }
  return Bytes(buf, buf + n);
}

std::string Crl::pem() const {
  if (crl_ == nullptr) return {};
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_CRL(bio.get(), crl_) != 1) {
    ossl::drain_errors();
    return {};
  }
  return bio_to_string(bio.get());
}

std::string Crl::issuer() const {
  return crl_ == nullptr ? std::string() : name_to_string(X509_CRL_get_issuer(crl_));
}
Bytes Crl::issuer_der() const {
  const unsigned char* der = nullptr;
  size_t len = 0;
  if (crl_ == nullptr || X509_NAME_get0_der(X509_CRL_get_issuer(crl_), &der, &len) != 1) {
    ossl::drain_errors();
    return {};
  }
  return Bytes(der, der + len);
}
SysTime Crl::this_update() const {
  if (crl_ == nullptr) return SysTime();
  return to_systime(X509_CRL_get0_lastUpdate(crl_)).value_or(SysTime());
}
std::optional<SysTime> Crl::next_update() const {
  if (crl_ == nullptr) return std::nullopt;
  return to_systime(X509_CRL_get0_nextUpdate(crl_));
}

bool Crl::is_revoked(ByteSpan serial) const {
  if (crl_ == nullptr) return false;
  Bytes want = strip_leading_zeros(serial);
  if (want.empty()) want.push_back(0);
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl_);
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i) {
    const X509_REVOKED* r = sk_X509_REVOKED_value(revoked, i);
    if (integer_magnitude(X509_REVOKED_get0_serialNumber(r)) == want) return true;
  }
  return false;
}

size_t Crl::entry_count() const {
  if (crl_ == nullptr) return 0;
  int n = sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl_));
  return n < 0 ? 0 : static_cast<size_t>(n);
}

Status Crl::verify_signature(const PublicKey& issuer_key) const {
  if (crl_ == nullptr) return invalid_argument("empty CRL");
  if (issuer_key.empty()) return invalid_argument("empty or disallowed issuer key");
  if (!allowed_signature_nid(X509_CRL_get_signature_nid(crl_))) {
    return permission_denied("CRL of \"" + issuer() + "\" uses a disallowed signature algorithm");
  }
  if (X509_CRL_verify(crl_, issuer_key.raw()) != 1) {
    ossl::drain_errors();
    return permission_denied("signature of the CRL of \"" + issuer() + "\" does not verify");
  }
  return ok_status();
}

// ---------------------------------------------------------------------------------------------
// Chain verification

namespace {

bool same_name(const X509_NAME* a, const X509_NAME* b) { return X509_NAME_cmp(a, b) == 0; }

Status check_validity(const Certificate& c, SysTime at) {
  auto nb = to_systime(X509_get0_notBefore(c.raw()));
  auto na = to_systime(X509_get0_notAfter(c.raw()));
  if (!nb || !na) return permission_denied(describe(c) + " has an unreadable validity period");
  if (at < *nb) {
    return permission_denied(describe(c) + " is not yet valid (notBefore " +
                             format_rfc3339(*nb) + ", checked at " + format_rfc3339(at) + ")");
  }
  if (at > *na) {
    return permission_denied(describe(c) + " has expired (notAfter " + format_rfc3339(*na) +
                             ", checked at " + format_rfc3339(at) + ")");
  }
  return ok_status();
}

// Structural checks every certificate on the path must pass (RFC 5280 6.1.3/6.1.4).
Status check_extensions(const Certificate& c) {
  uint32_t flags = X509_get_extension_flags(c.raw());
  if ((flags & EXFLAG_INVALID) != 0) return permission_denied(describe(c) + " has malformed extensions");
  if ((flags & EXFLAG_CRITICAL) != 0) {
    return permission_denied(describe(c) + " has an unsupported critical extension");
  }
  return ok_status();
}

// `issuer` signed `below` other CA certificates under it (excluding the leaf).
Status check_issuer(const Certificate& issuer, size_t cas_below) {
  if (!issuer.is_ca()) return permission_denied(describe(issuer) + " is not a CA");
  uint32_t ku = X509_get_key_usage(issuer.raw());
  if (ku != UINT32_MAX && (ku & KU_KEY_CERT_SIGN) == 0) {
    return permission_denied(describe(issuer) + " may not sign certificates (keyUsage)");
  }
  long path_len = X509_get_pathlen(issuer.raw());
  if (path_len >= 0 && static_cast<size_t>(path_len) < cas_below) {
    return permission_denied(describe(issuer) + " exceeds its pathLenConstraint");
  }
  return ok_status();
}

}  // namespace

Result<std::vector<Certificate>> verify_chain(const Certificate& leaf,
                                              const std::vector<Certificate>& intermediates,
                                              const Certificate& trusted_root,
                                              const ChainOptions& opts) {
  if (leaf.raw() == nullptr) return invalid_argument("empty leaf certificate");
  if (trusted_root.raw() == nullptr) return invalid_argument("empty trusted root");
  PublicKey root_key = trusted_root.public_key();
  if (root_key.empty()) return invalid_argument("trusted root has an empty or disallowed key");

  // 1. Build the path by name chaining, accepting an issuer only if its key verifies the
  // signature; the path must end at the pinned root's key. An impostor with the root's name
  // but another key fails the signature check and is never taken as the root.
  std::vector<Certificate> path{leaf};
  std::vector<bool> used(intermediates.size(), false);
  const bool leaf_is_root = leaf.der() == trusted_root.der();
  while (!leaf_is_root) {
    const Certificate& cur = path.back();
    const X509_NAME* want = X509_get_issuer_name(cur.raw());
    if (same_name(want, X509_get_subject_name(trusted_root.raw())) &&
        cur.verify_signature(root_key).ok()) {
      path.push_back(trusted_root);
      break;
    }
    if (path.size() >= kMaxChainDepth) {
      return permission_denied("certificate chain is too long");
    }
    bool found = false;
    for (size_t i = 0; i < intermediates.size() && !found; ++i) {
      if (used[i] || intermediates[i].raw() == nullptr) continue;
      if (!same_name(want, X509_get_subject_name(intermediates[i].raw()))) continue;
      PublicKey k = intermediates[i].public_key();
      if (k.empty() || !cur.verify_signature(k).ok()) continue;
      used[i] = true;
      path.push_back(intermediates[i]);
      found = true;
    }
    if (!found) {
      // Distinguish "signed by something with the root's name but not the pinned key".
      if (same_name(want, X509_get_subject_name(trusted_root.raw()))) {
        return permission_denied(describe(cur) +
                                 " is not signed by the pinned root key (issuer name matches, "
                                 "key does not)");
      }
      return permission_denied("no path from " + describe(cur) + " to the pinned root \"" +
                               trusted_root.subject() + "\"");
    }
  }
  if (leaf_is_root) path = {trusted_root};

  // 2. Per-certificate checks at opts.at.
  const size_t n = path.size();
  for (size_t i = 0; i < n; ++i) {
    const Certificate& c = path[i];
    RETURN_IF_ERROR(check_validity(c, opts.at));
    RETURN_IF_ERROR(check_extensions(c));
    // Signatures below the root were verified (allowlist included) while building the path;
    // the root's self-signature is irrelevant: it is trusted by its pinned key.
    if (i > 0) {
      // path[i] issued path[i-1]; CAs under it are path[1..i-1].
      RETURN_IF_ERROR(check_issuer(c, i - 1));
    }
  }

  // 3. Revocation. Every CRL must come from a certificate on the path (name and signature) and
  // be current at opts.at; then no certificate it covers may be listed.
  std::vector<bool> covered(n, false);  // covered[i]: a CRL from path[i+1] was checked
  for (const Crl& crl : opts.crls) {
    if (crl.raw() == nullptr) return invalid_argument("empty CRL");
    const X509_NAME* crl_issuer = X509_CRL_get_issuer(crl.raw());
    std::optional<size_t> signer;
    for (size_t i = 0; i < n && !signer; ++i) {
      if (!same_name(crl_issuer, X509_get_subject_name(path[i].raw()))) continue;
      if (crl.verify_signature(path[i].public_key()).ok()) signer = i;
    }
    if (!signer) {
      return permission_denied("CRL of \"" + crl.issuer() +
                               "\" is not signed by any certificate of the chain");
    }
    const Certificate& issuer = path[*signer];
    uint32_t ku = X509_get_key_usage(issuer.raw());
    if (ku != UINT32_MAX && (ku & KU_CRL_SIGN) == 0) {
      return permission_denied(describe(issuer) + " may not sign CRLs (keyUsage)");
    }
    auto this_update = to_systime(X509_CRL_get0_lastUpdate(crl.raw()));
    if (!this_update || opts.at < *this_update) {
      return permission_denied("CRL of \"" + crl.issuer() + "\" is not yet valid at " +
                               format_rfc3339(opts.at));
    }
    if (X509_CRL_get0_nextUpdate(crl.raw()) != nullptr) {
      auto next = to_systime(X509_CRL_get0_nextUpdate(crl.raw()));
      if (!next || opts.at > *next) {
        return permission_denied("CRL of \"" + crl.issuer() + "\" is out of date at " +
                                 format_rfc3339(opts.at));
      }
    }
    // The certificate directly below the signer is what this CRL speaks for.
    if (*signer == 0) continue;  // a CRL from the leaf itself covers nothing on this path
    const size_t subject_index = *signer - 1;
    const Certificate& subject = path[subject_index];
    Bytes serial = subject.serial();
    if (crl.is_revoked(serial)) {
      return permission_denied(describe(subject) + " (serial " + hex_serial(serial) +
                               ") is revoked by the CRL of \"" + crl.issuer() + "\"");
    }
    covered[subject_index] = true;
  }
  if (opts.require_crl_for_each_ca) {
    // Every certificate below the root must be covered by a CRL from its issuer.
    for (size_t i = 0; i + 1 < n; ++i) {
      if (!covered[i]) {
        return permission_denied("no CRL from \"" + path[i + 1].subject() + "\" (issuer of " +
                                 describe(path[i]) + ")");
      }
    }
  }
  return path;
}

// ---------------------------------------------------------------------------------------------
// Issuing

namespace {

Status add_ext_i2d(X509* x, int nid, void* value, bool critical) {
  if (X509_add1_ext_i2d(x, nid, value, critical ? 1 : 0, X509V3_ADD_DEFAULT) != 1) {
    return ossl::internal(std::string("adding extension ") + OBJ_nid2sn(nid));
  }
  return ok_status();
}

Status add_ext_conf(X509* x, X509V3_CTX* ctx, int nid, const char* value) {
  ossl::X509Extension ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(x, ext.get(), -1) != 1) {
    return ossl::internal(std::string("adding extension ") + OBJ_nid2sn(nid));
  }
  return ok_status();
}

Result<ossl::X509Name> build_name(const std::string& cn,
                                  const std::map<std::string, std::string>& extra) {
  ossl::X509Name name(X509_NAME_new());
  if (!name) return ossl::internal("X509_NAME_new");
  auto add = [&](const std::string& k, const std::string& v) -> Status {
    if (v.empty() || !ossl::fits_int(v.size())) return invalid_argument("empty name attribute " + k);
    if (X509_NAME_add_entry_by_txt(name.get(), k.c_str(), MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(v.data()),
                                   static_cast<int>(v.size()), -1, 0) != 1) {
      return ossl::invalid("invalid name attribute " + k);
    }
    return ok_status();
  };
  for (const auto& [k, v] : extra) RETURN_IF_ERROR(add(k, v));
  if (!cn.empty()) RETURN_IF_ERROR(add("CN", cn));
  return name;
}

Result<ossl::Asn1Integer> make_serial(const Bytes& requested) {
  if (!requested.empty()) return integer_from_magnitude(requested);
  Bytes b = random_bytes(16);
  b[0] = static_cast<uint8_t>((b[0] & 0x7f) | 0x40);  // positive, and a full 16 bytes
  return integer_from_magnitude(b);
}

Result<ossl::Asn1BitString> key_usage_bits(bool ca, KeyType subject_type) {
  ossl::Asn1BitString bits(ASN1_BIT_STRING_new());
  if (!bits) return ossl::internal("ASN1_BIT_STRING_new");
  // Bit numbers from RFC 5280 4.2.1.3.
  constexpr int kDigitalSignature = 0;
  constexpr int kKeyEncipherment = 2;
  constexpr int kKeyAgreement = 4;
  constexpr int kKeyCertSign = 5;
  constexpr int kCrlSign = 6;
  std::vector<int> set{kDigitalSignature};
  if (ca) {
    set.push_back(kKeyCertSign);
    set.push_back(kCrlSign);
  } else if (subject_type == KeyType::kRsa) {
    set.push_back(kKeyEncipherment);
  } else if (subject_type != KeyType::kEd25519) {
    set.push_back(kKeyAgreement);
  }
  for (int b : set) {
    if (ASN1_BIT_STRING_set_bit(bits.get(), b, 1) != 1) return ossl::internal("key usage bit");
  }
  return bits;
}

Status sign_with(X509* x, const PrivateKey& key) {
  ASSIGN_OR_RETURN(KeyType t, internal::classify(key.raw()));
  if (X509_sign(x, key.raw(), signing_md(t)) <= 0) return ossl::internal("signing certificate");
  return ok_status();
}

}  // namespace

Result<Certificate> issue_certificate(const CertificateSpec& spec, const PublicKey& subject_key,
                                      const PrivateKey& issuer_key, const Certificate* issuer) {
  if (subject_key.empty()) return invalid_argument("issue_certificate: empty subject key");
  ASSIGN_OR_RETURN(KeyType subject_type, internal::classify(subject_key.raw()));
  ASSIGN_OR_RETURN(KeyType issuer_type, internal::classify(issuer_key.raw()));
  (void)issuer_type;
  if (spec.not_after <= spec.not_before) {
    return invalid_argument("issue_certificate: not_after must be after not_before");
  }
  if (issuer != nullptr) {
    if (issuer->raw() == nullptr) return invalid_argument("issue_certificate: empty issuer");
    if (!internal::same_public_key(X509_get0_pubkey(issuer->raw()), issuer_key.raw())) {
      ossl::drain_errors();
      return invalid_argument("issue_certificate: issuer key does not match issuer certificate");
    }
  } else if (!internal::same_public_key(subject_key.raw(), issuer_key.raw())) {
    return invalid_argument("issue_certificate: a self-signed certificate needs its own key");
  }

  ossl::X509Ptr x(X509_new());
  if (!x || X509_set_version(x.get(), X509_VERSION_3) != 1) return ossl::internal("X509_new");
  ASSIGN_OR_RETURN(ossl::Asn1Integer serial, make_serial(spec.serial));
  if (X509_set_serialNumber(x.get(), serial.get()) != 1) return ossl::internal("serial");
  ASSIGN_OR_RETURN(ossl::X509Name subject, build_name(spec.subject_cn, spec.subject_extra));
  if (X509_set_subject_name(x.get(), subject.get()) != 1 ||
      X509_set_issuer_name(x.get(), issuer != nullptr ? X509_get_subject_name(issuer->raw())
                                                      : subject.get()) != 1) {
    return ossl::internal("setting names");
  }
  RETURN_IF_ERROR(set_time(X509_getm_notBefore(x.get()), spec.not_before));
  RETURN_IF_ERROR(set_time(X509_getm_notAfter(x.get()), spec.not_after));
  if (X509_set_pubkey(x.get(), subject_key.raw()) != 1) return ossl::internal("X509_set_pubkey");

  // basicConstraints (critical), keyUsage (critical), extKeyUsage, SAN, SKI/AKI.
  ossl::BasicConstraints bc(BASIC_CONSTRAINTS_new());
  if (!bc) return ossl::internal("BASIC_CONSTRAINTS_new");
  bc->ca = spec.is_ca ? 0xff : 0;
  if (spec.is_ca && spec.path_len >= 0) {
    bc->pathlen = ASN1_INTEGER_new();
    if (bc->pathlen == nullptr || ASN1_INTEGER_set(bc->pathlen, spec.path_len) != 1) {
      return ossl::internal("pathlen");
    }
  }
  RETURN_IF_ERROR(add_ext_i2d(x.get(), NID_basic_constraints, bc.get(), true));
  ASSIGN_OR_RETURN(ossl::Asn1BitString ku, key_usage_bits(spec.is_ca, subject_type));
  RETURN_IF_ERROR(add_ext_i2d(x.get(), NID_key_usage, ku.get(), true));
  if (spec.server_auth || spec.client_auth) {
    ossl::ExtendedKeyUsage eku(sk_ASN1_OBJECT_new_null());
    if (!eku) return ossl::internal("sk_ASN1_OBJECT_new_null");
    if ((spec.server_auth && sk_ASN1_OBJECT_push(eku.get(), OBJ_nid2obj(NID_server_auth)) <= 0) ||
        (spec.client_auth && sk_ASN1_OBJECT_push(eku.get(), OBJ_nid2obj(NID_client_auth)) <= 0)) {
      return ossl::internal("extKeyUsage");
    }
    RETURN_IF_ERROR(add_ext_i2d(x.get(), NID_ext_key_usage, eku.get(), false));
  }
  if (!spec.dns_names.empty() || !spec.ip_addresses.empty()) {
    ASSIGN_OR_RETURN(ossl::GeneralNames gens,
                     make_general_names(spec.dns_names, spec.ip_addresses));
    RETURN_IF_ERROR(add_ext_i2d(x.get(), NID_subject_alt_name, gens.get(), false));
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer->raw() : x.get(), x.get(), nullptr, nullptr, 0);
  RETURN_IF_ERROR(add_ext_conf(x.get(), &ctx, NID_subject_key_identifier, "hash"));
  if (issuer != nullptr) {
    RETURN_IF_ERROR(add_ext_conf(x.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  }
  for (const auto& [oid, contents] : spec.extensions) {
    ASSIGN_OR_RETURN(ossl::Asn1Object obj, numeric_oid(oid));
    if (X509_get_ext_by_OBJ(x.get(), obj.get(), -1) >= 0) {
      return invalid_argument("custom extension " + oid + " duplicates a standard one");
    }
    ossl::Asn1OctetString value(ASN1_OCTET_STRING_new());
    if (!value || !ossl::fits_int(contents.size()) ||
        ASN1_OCTET_STRING_set(value.get(), contents.data(), static_cast<int>(contents.size())) !=
            1) {
      return ossl::internal("extension value");
    }
    ossl::X509Extension ext(X509_EXTENSION_create_by_OBJ(nullptr, obj.get(), 0, value.get()));
    if (!ext || X509_add_ext(x.get(), ext.get(), -1) != 1) {
      return ossl::internal("adding extension " + oid);
    }
  }
  RETURN_IF_ERROR(sign_with(x.get(), issuer_key));
  return Certificate(x.release());
}

Result<Crl> issue_crl(const Certificate& issuer, const PrivateKey& issuer_key,
                      const std::vector<Bytes>& revoked_serials, SysTime this_update,
                      SysTime next_update) {
  if (issuer.raw() == nullptr) return invalid_argument("issue_crl: empty issuer");
  ASSIGN_OR_RETURN(KeyType issuer_type, internal::classify(issuer_key.raw()));
  if (!internal::same_public_key(X509_get0_pubkey(issuer.raw()), issuer_key.raw())) {
    ossl::drain_errors();
    return invalid_argument("issue_crl: issuer key does not match issuer certificate");
  }
  if (next_update <= this_update) return invalid_argument("issue_crl: next_update <= this_update");
  ossl::X509Crl crl(X509_CRL_new());
  if (!crl || X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer.raw())) != 1) {
    return ossl::internal("X509_CRL_new");
  }
  ossl::Asn1Time t1(ASN1_TIME_new());
  ossl::Asn1Time t2(ASN1_TIME_new());
  if (!t1 || !t2) return ossl::internal("ASN1_TIME_new");
  RETURN_IF_ERROR(set_time(t1.get(), this_update));
  RETURN_IF_ERROR(set_time(t2.get(), next_update));
  if (X509_CRL_set1_lastUpdate(crl.get(), t1.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), t2.get()) != 1) {
    return ossl::internal("CRL dates");
  }
  for (const Bytes& s : revoked_serials) {
    ASSIGN_OR_RETURN(ossl::Asn1Integer serial, integer_from_magnitude(strip_leading_zeros(s)));
    ossl::X509Revoked r(X509_REVOKED_new());
    if (!r || X509_REVOKED_set_serialNumber(r.get(), serial.get()) != 1 ||
        X509_REVOKED_set_revocationDate(r.get(), t1.get()) != 1 ||
        X509_CRL_add0_revoked(crl.get(), r.get()) != 1) {
      return ossl::internal("adding a revoked entry");
    }
    (void)r.release();  // owned by the CRL now
  }
  // cRLNumber (RFC 5280 5.2.3): the issue time in seconds, increasing for one issuer.
  ossl::Asn1Integer number(ASN1_INTEGER_new());
  if (!number || ASN1_INTEGER_set_int64(number.get(), to_unix_seconds(this_update)) != 1 ||
      X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return ossl::internal("cRLNumber");
  }
  if (X509_CRL_sort(crl.get()) != 1) return ossl::internal("X509_CRL_sort");
  if (X509_CRL_sign(crl.get(), issuer_key.raw(), signing_md(issuer_type)) <= 0) {
    return ossl::internal("signing CRL");
  }
  return Crl(crl.release());
}

// ---------------------------------------------------------------------------------------------
// CSRs

Result<std::string> make_csr(const PrivateKey& key, const std::string& cn,
                             const std::vector<std::string>& dns_names) {
  ASSIGN_OR_RETURN(KeyType t, internal::classify(key.raw()));
  ossl::X509Req req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1) {
    return ossl::internal("X509_REQ_new");
  }
  ASSIGN_OR_RETURN(ossl::X509Name name, build_name(cn, {}));
  if (X509_REQ_set_subject_name(req.get(), name.get()) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.raw()) != 1) {
    return ossl::internal("CSR subject/key");
  }
  if (!dns_names.empty()) {
    ASSIGN_OR_RETURN(ossl::GeneralNames gens, make_general_names(dns_names, {}));
    ossl::X509Extensions exts(sk_X509_EXTENSION_new_null());
    ossl::X509Extension san(X509V3_EXT_i2d(NID_subject_alt_name, 0, gens.get()));
    if (!exts || !san || sk_X509_EXTENSION_push(exts.get(), san.get()) <= 0) {
      return ossl::internal("CSR extensions");
    }
    (void)san.release();
    if (X509_REQ_add_extensions(req.get(), exts.get()) != 1) {
      return ossl::internal("X509_REQ_add_extensions");
    }
  }
  if (X509_REQ_sign(req.get(), key.raw(), signing_md(t)) <= 0) return ossl::internal("signing CSR");
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
    return ossl::internal("PEM_write_bio_X509_REQ");
  }
  return bio_to_string(bio.get());
}

Result<CsrInfo> parse_csr(std::string_view pem) {
  RETURN_IF_ERROR(check_input_size(pem.size()));
  ossl::Bio bio = mem_bio(as_bytes(pem));
  if (!bio) return ossl::internal("BIO_new_mem_buf");
  ossl::X509Req req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) return ossl::invalid("not a PEM certificate request");
  EVP_PKEY* k = X509_REQ_get0_pubkey(req.get());
  if (k == nullptr) return ossl::invalid("CSR has no readable public key");
  RETURN_IF_ERROR(internal::classify(k).status());
  if (!allowed_signature_nid(X509_REQ_get_signature_nid(req.get()))) {
    return invalid_argument("CSR signature algorithm is not allowed");
  }
  // Proof of possession: the request must be signed by the key it carries.
  if (X509_REQ_verify(req.get(), k) != 1) {
    ossl::drain_errors();
    return invalid_argument("CSR self-signature does not verify");
  }
  CsrInfo info;
  info.subject_cn = name_cn(X509_REQ_get_subject_name(req.get()));
  ossl::X509Extensions exts(X509_REQ_get_extensions(req.get()));
  if (exts) {
    for (int i = 0; i < sk_X509_EXTENSION_num(exts.get()); ++i) {
      X509_EXTENSION* e = sk_X509_EXTENSION_value(exts.get(), i);
      if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) != NID_subject_alt_name) continue;
      ossl::GeneralNames gens(static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(e)));
      if (!gens) return ossl::invalid("CSR has a malformed subjectAltName");
      collect_names(gens.get(), &info.dns_names, &info.ip_addresses);
    }
  }
  ossl::drain_errors();
  EVP_PKEY_up_ref(k);
  info.public_key = PublicKey(k);
  return info;
}

}  // namespace custos::crypto
