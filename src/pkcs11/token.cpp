#include "pkcs11/token.h"

#include <cstring>
#include <utility>

#include "crypto/hash.h"

namespace custos::pkcs11 {
namespace {

Bytes ulong_value(CK_ULONG v) {
  Bytes out(sizeof(CK_ULONG));
  std::memcpy(out.data(), &v, sizeof(v));
  return out;
}

Bytes bool_value(bool v) {
  return Bytes{static_cast<uint8_t>(v ? CK_TRUE : CK_FALSE)};
}

Bytes text_value(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

bool is_ec(crypto::KeyType t) {
  return t == crypto::KeyType::kEcP256 || t == crypto::KeyType::kEcP384 ||
         t == crypto::KeyType::kEcP521;
}

// DER of the curve's OID (CKA_EC_PARAMS: the namedCurve choice of ECParameters).
Bytes ec_params(crypto::KeyType t) {
  switch (t) {
    case crypto::KeyType::kEcP256:
      return {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    case crypto::KeyType::kEcP384:
      return {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
    default:
      return {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23};
  }
}

// CKA_EC_POINT: the uncompressed point in a DER OCTET STRING.
Result<Bytes> ec_point(const crypto::PrivateKey& key) {
  ASSIGN_OR_RETURN(Bytes xy, key.public_ec_xy());
  const size_t len = xy.size() + 1;
  Bytes out{0x04};
  if (len < 0x80) {
    out.push_back(static_cast<uint8_t>(len));
  } else {
    out.push_back(0x81);
    out.push_back(static_cast<uint8_t>(len));
  }
  out.push_back(0x04);
  out.insert(out.end(), xy.begin(), xy.end());
  return out;
}

size_t ec_field_bytes(crypto::KeyType t) {
  switch (t) {
    case crypto::KeyType::kEcP256:
      return 32;
    case crypto::KeyType::kEcP384:
      return 48;
    default:
      return 66;
  }
}

std::optional<crypto::HashAlg> hash_of(CK_MECHANISM_TYPE m) {
  switch (m) {
    case CKM_SHA_1:
      return crypto::HashAlg::kSha1;
    case CKM_SHA256:
      return crypto::HashAlg::kSha256;
    case CKM_SHA384:
      return crypto::HashAlg::kSha384;
    case CKM_SHA512:
      return crypto::HashAlg::kSha512;
    default:
      return std::nullopt;
  }
}

CK_RSA_PKCS_MGF_TYPE mgf_of(crypto::HashAlg h) {
  switch (h) {
    case crypto::HashAlg::kSha1:
      return CKG_MGF1_SHA1;
    case crypto::HashAlg::kSha256:
      return CKG_MGF1_SHA256;
    case crypto::HashAlg::kSha384:
      return CKG_MGF1_SHA384;
    default:
      return CKG_MGF1_SHA512;
  }
}

// The hash of a hash-and-sign mechanism.
std::optional<crypto::HashAlg> hash_and_sign(CK_MECHANISM_TYPE m) {
  switch (m) {
    case CKM_SHA256_RSA_PKCS:
    case CKM_SHA256_RSA_PKCS_PSS:
    case CKM_ECDSA_SHA256:
      return crypto::HashAlg::kSha256;
    case CKM_SHA384_RSA_PKCS:
    case CKM_SHA384_RSA_PKCS_PSS:
    case CKM_ECDSA_SHA384:
      return crypto::HashAlg::kSha384;
    case CKM_SHA512_RSA_PKCS:
    case CKM_SHA512_RSA_PKCS_PSS:
    case CKM_ECDSA_SHA512:
      return crypto::HashAlg::kSha512;
    default:
      return std::nullopt;
  }
}

bool is_pss(CK_MECHANISM_TYPE m) {
  return m == CKM_RSA_PKCS_PSS || m == CKM_SHA256_RSA_PKCS_PSS || m == CKM_SHA384_RSA_PKCS_PSS ||
         m == CKM_SHA512_RSA_PKCS_PSS;
}

}  // namespace

Token::Token(std::vector<TokenKey> keys, bool private_objects)
    : keys_(std::move(keys)), private_objects_(private_objects) {}

bool Token::visible(CK_OBJECT_HANDLE h, bool logged_in) const {
  if (!valid(h)) return false;
  return !(is_private_key(h) && private_objects_ && !logged_in);
}

Token::Lookup Token::attribute(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, Bytes& out) const {
  const TokenKey& k = key(h);
  const bool priv = is_private_key(h);
  const crypto::KeyType kt = k.key.type();
  const bool rsa = kt == crypto::KeyType::kRsa;
  switch (type) {
    case CKA_CLASS:
      out = ulong_value(priv ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY);
      return Lookup::kFound;
    case CKA_KEY_TYPE:
      out = ulong_value(rsa ? CKK_RSA : CKK_EC);
      return Lookup::kFound;
    case CKA_LABEL:
      out = text_value(k.label);
      return Lookup::kFound;
    case CKA_ID:
      out = text_value(k.id);
      return Lookup::kFound;
    case CKA_TOKEN:
      out = bool_value(true);
      return Lookup::kFound;
    case CKA_PRIVATE:
      out = bool_value(priv && private_objects_);
      return Lookup::kFound;
    case CKA_MODIFIABLE:
    case CKA_LOCAL:
    case CKA_DERIVE:
    case CKA_WRAP:
    case CKA_UNWRAP:
    case CKA_TRUSTED:
      out = bool_value(false);
      return Lookup::kFound;
    case CKA_SIGN:
    case CKA_SENSITIVE:
    case CKA_ALWAYS_SENSITIVE:
    case CKA_NEVER_EXTRACTABLE:
      if (!priv) return Lookup::kUnknownType;
      out = bool_value(true);
      return Lookup::kFound;
    case CKA_EXTRACTABLE:
    case CKA_DECRYPT:
    case CKA_SIGN_RECOVER:
    case CKA_ALWAYS_AUTHENTICATE:
    case CKA_WRAP_WITH_TRUSTED:
      if (!priv) return Lookup::kUnknownType;
      out = bool_value(false);
      return Lookup::kFound;
    case CKA_VERIFY:
    case CKA_ENCRYPT:
    case CKA_VERIFY_RECOVER:
      if (priv) return Lookup::kUnknownType;
      out = bool_value(type == CKA_VERIFY);
      return Lookup::kFound;
    case CKA_MODULUS:
    case CKA_PUBLIC_EXPONENT:
    case CKA_MODULUS_BITS: {
      if (!rsa) return Lookup::kUnknownType;
      if (type == CKA_MODULUS_BITS) {
        out = ulong_value(static_cast<CK_ULONG>(k.key.bits()));
        return Lookup::kFound;
      }
      Bytes n, e;
      if (!k.key.public_key().rsa_components(n, e).ok()) return Lookup::kUnknownType;
      out = type == CKA_MODULUS ? std::move(n) : std::move(e);
      return Lookup::kFound;
    }
    case CKA_EC_PARAMS:
      if (!is_ec(kt)) return Lookup::kUnknownType;
      out = ec_params(kt);
      return Lookup::kFound;
    case CKA_EC_POINT: {
      if (!is_ec(kt)) return Lookup::kUnknownType;
      Result<Bytes> p = ec_point(k.key);
      if (!p.ok()) return Lookup::kUnknownType;
      out = std::move(*p);
      return Lookup::kFound;
    }
    case CKA_VALUE:
    case CKA_PRIVATE_EXPONENT:
    case CKA_PRIME_1:
    case CKA_PRIME_2:
    case CKA_EXPONENT_1:
    case CKA_EXPONENT_2:
    case CKA_COEFFICIENT:
      if (!priv) return Lookup::kUnknownType;
      return Lookup::kSensitive;
    default:
      return Lookup::kUnknownType;
  }
}

bool Token::matches(CK_OBJECT_HANDLE h, const CK_ATTRIBUTE* tmpl, CK_ULONG count) const {
  for (CK_ULONG i = 0; i < count; ++i) {
    Bytes value;
    if (attribute(h, tmpl[i].type, value) != Lookup::kFound) return false;
    if (tmpl[i].ulValueLen != value.size()) return false;
    if (!value.empty() && (tmpl[i].pValue == nullptr ||
                           std::memcmp(tmpl[i].pValue, value.data(), value.size()) != 0)) {
      return false;
    }
  }
  return true;
}

std::vector<CK_MECHANISM_TYPE> sign_mechanisms() {
  return {
      CKM_RSA_PKCS,     CKM_SHA256_RSA_PKCS,     CKM_SHA384_RSA_PKCS,     CKM_SHA512_RSA_PKCS,
      CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS,
      CKM_ECDSA,        CKM_ECDSA_SHA256,        CKM_ECDSA_SHA384,        CKM_ECDSA_SHA512};
}

bool is_rsa_mechanism(CK_MECHANISM_TYPE m) {
  return m == CKM_RSA_PKCS || m == CKM_SHA256_RSA_PKCS || m == CKM_SHA384_RSA_PKCS ||
         m == CKM_SHA512_RSA_PKCS || is_pss(m);
}

bool is_ec_mechanism(CK_MECHANISM_TYPE m) {
  return m == CKM_ECDSA || m == CKM_ECDSA_SHA256 || m == CKM_ECDSA_SHA384 || m == CKM_ECDSA_SHA512;
}

CK_RV check_sign_mechanism(const CK_MECHANISM& m, const crypto::PrivateKey& key,
                           SignMechanism& out) {
  const bool rsa = key.type() == crypto::KeyType::kRsa;
  if (!is_rsa_mechanism(m.mechanism) && !is_ec_mechanism(m.mechanism)) {
    return CKR_MECHANISM_INVALID;
  }
  if (rsa != is_rsa_mechanism(m.mechanism) || (!rsa && !is_ec(key.type()))) {
    return CKR_KEY_TYPE_INCONSISTENT;
  }
  out = SignMechanism{m.mechanism, std::nullopt};
  if (!is_pss(m.mechanism)) return CKR_OK;
  // PSS: MGF1 with the message's hash, and a salt that fits the modulus (RFC 8017 9.1.1:
  // emLen >= hLen + sLen + 2). TLS 1.3 uses a salt as long as the hash; other signers the
  // longest that fits.
  if (m.pParameter == nullptr || m.ulParameterLen != sizeof(CK_RSA_PKCS_PSS_PARAMS)) {
    return CKR_MECHANISM_PARAM_INVALID;
  }
  CK_RSA_PKCS_PSS_PARAMS p;
  std::memcpy(&p, m.pParameter, sizeof(p));
  std::optional<crypto::HashAlg> h = hash_of(p.hashAlg);
  std::optional<crypto::HashAlg> fixed = hash_and_sign(m.mechanism);
  if (!h || *h == crypto::HashAlg::kSha1 || (fixed && *fixed != *h) || p.mgf != mgf_of(*h)) {
    return CKR_MECHANISM_PARAM_INVALID;
  }
  const size_t em_len = static_cast<size_t>((key.bits() - 1 + 7) / 8);
  if (p.sLen + crypto::hash_size(*h) + 2 > em_len) return CKR_MECHANISM_PARAM_INVALID;
  out.pss_hash = *h;
  out.pss_salt_len = static_cast<int>(p.sLen);
  return CKR_OK;
}

size_t signature_length(const crypto::PrivateKey& key) {
  if (key.type() == crypto::KeyType::kRsa) return static_cast<size_t>((key.bits() + 7) / 8);
  return 2 * ec_field_bytes(key.type());
}

CK_RV sign(const SignMechanism& m, const crypto::PrivateKey& key, ByteSpan data, Bytes& sig) {
  crypto::SignOptions opts;
  opts.ec_format = crypto::SignOptions::EcFormat::kRaw;
  Result<Bytes> r = invalid_argument("unsupported");
  if (m.type == CKM_RSA_PKCS) {
    if (data.empty() || data.size() + 11 > signature_length(key)) return CKR_DATA_LEN_RANGE;
    r = key.rsa_pkcs1_sign_raw(data);
  } else if (m.type == CKM_RSA_PKCS_PSS) {
    opts.hash = *m.pss_hash;
    opts.rsa_padding = crypto::SignOptions::RsaPadding::kPss;
    opts.pss_salt_len = m.pss_salt_len;
    if (data.size() != crypto::hash_size(opts.hash)) return CKR_DATA_LEN_RANGE;
    r = key.sign_digest(data, opts);
  } else if (m.type == CKM_ECDSA) {
    // A digest of any length; ECDSA truncates a longer one to the order's size.
    if (data.empty() || data.size() > 1024) return CKR_DATA_LEN_RANGE;
    r = key.ecdsa_sign_any_digest(data);
  } else if (std::optional<crypto::HashAlg> h = hash_and_sign(m.type)) {
    opts.hash = *h;
    opts.rsa_padding = is_pss(m.type) ? crypto::SignOptions::RsaPadding::kPss
                                      : crypto::SignOptions::RsaPadding::kPkcs1;
    opts.pss_salt_len = m.pss_salt_len;
    r = key.sign(data, opts);
  } else {
    return CKR_MECHANISM_INVALID;
  }
  if (!r.ok()) return CKR_FUNCTION_FAILED;
  sig = std::move(*r);
  return CKR_OK;
}

}  // namespace custos::pkcs11
