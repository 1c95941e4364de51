#include "crypto/pkey.h"

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <array>
#include <cctype>
#include <cstring>
#include <map>
#include <optional>
#include <utility>

#include "base/encoding.h"
#include "crypto/openssl.h"
#include "crypto/pkey_internal.h"

namespace custos::crypto {
namespace {

struct CurveInfo {
  KeyType type;
  const char* group;    // OpenSSL's group name
  const char* jwk_crv;  // RFC 7518 name
  size_t field_size;    // bytes per coordinate and per r/s component
};

constexpr std::array<CurveInfo, 3> kCurves = {{
    {KeyType::kEcP256, "prime256v1", "P-256", 32},
    {KeyType::kEcP384, "secp384r1", "P-384", 48},
    {KeyType::kEcP521, "secp521r1", "P-521", 66},
}};

// The DER of an EC SubjectPublicKeyInfo with a named curve and an uncompressed point, up to and
// including the point's 0x04 tag (RFC 5480 section 2; SEC 1 section 2.3.3): the coordinates
// follow. Keys in exactly this form (all that TEEs, JWK conversions and OpenSSL produce) are
// parsed and written here directly, because OpenSSL 3's generic decoder/encoder look-up costs
// ten times the key import itself; every other form takes the generic path.
struct SpkiPrefix {
  KeyType type;
  std::string_view der;
};
constexpr std::array<SpkiPrefix, 3> kEcSpkiPrefixes = {{
    {KeyType::kEcP256,
     std::string_view("\x30\x59\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x86"
                      "\x48\xce\x3d\x03\x01\x07\x03\x42\x00\x04",
                      27)},
    {KeyType::kEcP384,
     std::string_view("\x30\x76\x30\x10\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x05\x2b\x81"
                      "\x04\x00\x22\x03\x62\x00\x04",
                      24)},
    {KeyType::kEcP521,
     std::string_view("\x30\x81\x9b\x30\x10\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x05\x2b"
                      "\x81\x04\x00\x23\x03\x81\x86\x00\x04",
                      26)},
}};

constexpr int kRsaMinBits = 2048;
constexpr int kRsaMaxBits = 8192;

const CurveInfo* curve_by_type(KeyType t) {
  for (const CurveInfo& c : kCurves) {
    if (c.type == t) return &c;
  }
  return nullptr;
}

const CurveInfo* curve_by_jwk(std::string_view crv) {
  for (const CurveInfo& c : kCurves) {
    if (crv == c.jwk_crv) return &c;
  }
  return nullptr;
}

bool is_ec(KeyType t) { return curve_by_type(t) != nullptr; }

Status bad_signature(std::string_view why) {
  ossl::drain_errors();
  std::string m = "signature verification failed";
  if (!why.empty()) {
    m += ": ";
    m += why;
  }
  return permission_denied(std::move(m));
}

// Reads everything written to a memory BIO.
std::string bio_to_string(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n <= 0 || data == nullptr) return {};
  return std::string(data, static_cast<size_t>(n));
}

ossl::Bio mem_bio(std::string_view text) {
  if (!ossl::fits_int(text.size())) return ossl::Bio();
  return ossl::Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Never prompt on a terminal for a passphrase: encrypted PEM keys are refused.
int no_password(char*, int, int, void*) { return -1; }

Result<Bytes> bn_to_fixed(const BIGNUM* bn, size_t width) {
  if (bn == nullptr || BN_num_bytes(bn) < 0 || static_cast<size_t>(BN_num_bytes(bn)) > width) {
    return ossl::internal("number does not fit its fixed width");
  }
  Bytes out(width);
  if (BN_bn2binpad(bn, out.data(), static_cast<int>(width)) != static_cast<int>(width)) {
    return ossl::internal("BN_bn2binpad");
  }
  return out;
}

Bytes bn_to_bytes(const BIGNUM* bn) {
  Bytes out(static_cast<size_t>(BN_num_bytes(bn)));
  BN_bn2bin(bn, out.data());
  return out;
}

Result<ossl::Bignum> bn_param(EVP_PKEY* pkey, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1 || bn == nullptr) {
    return ossl::internal(std::string("reading key parameter ") + name);
  }
  return ossl::Bignum(bn);
}

Result<ossl::EvpPkey> pkey_fromdata(const char* alg, const OSSL_PARAM* params) {
  ossl::EvpPkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, alg, nullptr));
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return ossl::internal("EVP_PKEY_fromdata_init");
  EVP_PKEY* raw = nullptr;
  // OSSL_PARAM arrays are read-only here; the API is not const-correct.
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, const_cast<OSSL_PARAM*>(params)) !=
          1 ||
      raw == nullptr) {
    return ossl::invalid("invalid public key parameters");
  }
  ossl::EvpPkey pkey(raw);
  // fromdata does not run every check (e.g. RSA modulus sanity); the public check does. For EC,
  // the quick check (point on the curve, not infinity: SP 800-56A partial validation) is the
  // whole check on the allowed curves: they have cofactor 1, so every point on the curve has the
  // group's prime order and the full check's n*Q = O multiplication cannot fail.
  ossl::EvpPkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  const bool ec = std::string_view(alg) == "EC";
  if (!check ||
      (ec ? EVP_PKEY_public_check_quick(check.get()) : EVP_PKEY_public_check(check.get())) != 1) {
    return ossl::invalid("public key fails validation");
  }
  return pkey;
}

Result<ossl::EvpPkey> pkey_fromdata(const char* alg, OSSL_PARAM_BLD* bld) {
  ossl::OsslParams params(OSSL_PARAM_BLD_to_param(bld));
  if (!params) return ossl::internal("OSSL_PARAM_BLD_to_param");
  return pkey_fromdata(alg, params.get());
}

// A parameters-only key per allowed curve, made once. EC keys are generated from it and public
// keys imported into copies of it: OpenSSL 3.0 otherwise rebuilds the curve's group for every key
// made by name (two Montgomery set-ups, each with a modular inversion), which costs as much as
// the ECDH or signature the key is made for. Copying the group is a few memcpys. The templates
// are never modified after start-up, so sharing them between threads is safe (OpenSSL allows
// concurrent read-only use of one EVP_PKEY).
EVP_PKEY* curve_template(const CurveInfo& c) {
  static const std::array<EVP_PKEY*, kCurves.size()> templates = [] {
    std::array<EVP_PKEY*, kCurves.size()> t{};
    for (size_t i = 0; i < kCurves.size(); ++i) {
      const std::array<OSSL_PARAM, 2> params = {
          OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                           const_cast<char*>(kCurves[i].group), 0),
          OSSL_PARAM_construct_end()};
      ossl::EvpPkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
      if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
          EVP_PKEY_fromdata(ctx.get(), &t[i], EVP_PKEY_KEY_PARAMETERS,
                            const_cast<OSSL_PARAM*>(params.data())) != 1 ||
          t[i] == nullptr) {
        ossl::fatal("cannot make the EC parameter template for a built-in curve");
      }
    }
    return t;
  }();
  return templates[static_cast<size_t>(&c - kCurves.data())];
}

// An EC public key from its SEC 1 encoded point (0x04 || x || y): a copy of the curve's template
// with the point set. Setting it decodes the point and checks that it lies on the curve (SEC 1
// §2.3.4, EC_POINT_oct2point); the quick public check below adds the point-at-infinity test.
Result<ossl::EvpPkey> ec_from_point(const CurveInfo& c, ByteSpan point) {
  if (point.size() != 1 + 2 * c.field_size || point[0] != 0x04) {
    return invalid_argument("EC public key must be an uncompressed point on " +
                            std::string(c.jwk_crv));
  }
  ossl::EvpPkey pkey(EVP_PKEY_new());
  if (!pkey || EVP_PKEY_copy_parameters(pkey.get(), curve_template(c)) != 1) {
    return ossl::internal("copying the EC parameters");
  }
  if (EVP_PKEY_set1_encoded_public_key(pkey.get(), point.data(), point.size()) != 1) {
    return ossl::invalid("invalid public key parameters");
  }
  ossl::EvpPkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (!check || EVP_PKEY_public_check_quick(check.get()) != 1) {
    return ossl::invalid("public key fails validation");
  }
  return pkey;
}

// The encoded public point of an EC key (uncompressed: OpenSSL's default form). Sized for P-521.
struct EncodedPoint {
  std::array<uint8_t, 1 + 2 * 66> bytes{};
  size_t size = 0;
  ByteSpan span() const { return ByteSpan(bytes.data(), size); }
};
Result<EncodedPoint> ec_point(EVP_PKEY* pkey, const CurveInfo& c) {
  EncodedPoint p;
  if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, p.bytes.data(),
                                      p.bytes.size(), &p.size) != 1 ||
      p.size != 1 + 2 * c.field_size || p.bytes[0] != 0x04) {
    return ossl::internal("reading the EC public point");
  }
  return p;
}

Result<PublicKey> wrap_public(ossl::EvpPkey pkey) {
  ASSIGN_OR_RETURN(KeyType t, internal::classify(pkey.get()));
  (void)t;
  return PublicKey(pkey.release());
}

// --- A minimal JSON reader for JWKs: one object, string members collected, the rest skipped.
// Nothing beyond what a JWK needs; depth and size bounded; duplicate members rejected.
class JsonObjectReader {
 public:
  explicit JsonObjectReader(std::string_view s) : s_(s) {}

  bool read(std::map<std::string, std::string>& strings) {
    ws();
    if (!eat('{')) return false;
    ws();
    if (eat('}')) return done();
    for (;;) {
      std::string key;
      ws();
      if (!string(key)) return false;
      ws();
      if (!eat(':')) return false;
      ws();
      if (seen_.count(key) != 0) return false;
      seen_[key] = true;
      if (peek() == '"') {
        std::string value;
        if (!string(value)) return false;
        strings[key] = std::move(value);
      } else if (!skip_value(0)) {
        return false;
      }
      ws();
      if (eat(',')) continue;
      if (eat('}')) return done();
      return false;
    }
  }

 private:
  bool done() {
    ws();
    return pos_ == s_.size();
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool eat(char c) {
    if (peek() != c || pos_ >= s_.size()) return false;
    ++pos_;
    return true;
  }
  void ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  static void utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  bool hex4(uint32_t& v) {
    if (pos_ + 4 > s_.size()) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      uint32_t d;
      if (c >= '0' && c <= '9') {
        d = static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        d = static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
      v = (v << 4) | d;
    }
    return true;
  }
  bool string(std::string& out) {
    if (!eat('"')) return false;
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) return false;
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t lo;
            if (!eat('\\') || !eat('u') || !hex4(lo) || lo < 0xdc00 || lo > 0xdfff) return false;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return false;
          }
          utf8(out, cp);
          break;
        }
        default: return false;
      }
    }
    return false;
  }
  bool skip_value(int depth) {
    if (depth > 32) return false;
    ws();
    char c = peek();
    if (c == '"') {
      std::string ignored;
      return string(ignored);
    }
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++pos_;
      ws();
      if (eat(close)) return true;
      for (;;) {
        ws();
        if (close == '}') {
          std::string ignored;
          if (!string(ignored)) return false;
          ws();
          if (!eat(':')) return false;
        }
        if (!skip_value(depth + 1)) return false;
        ws();
        if (eat(',')) continue;
        return eat(close);
      }
    }
    // true, false, null, numbers: a run of literal characters.
    size_t start = pos_;
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) != 0 ||
                                s_[pos_] == '-' || s_[pos_] == '+' || s_[pos_] == '.')) {
      ++pos_;
    }
    return pos_ > start;
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::map<std::string, bool> seen_;
};

Result<Bytes> jwk_member(const std::map<std::string, std::string>& m, const char* name) {
  auto it = m.find(name);
  if (it == m.end()) return invalid_argument(std::string("JWK is missing \"") + name + "\"");
  auto b = base64url_decode(it->second);
  if (!b.ok()) return invalid_argument(std::string("JWK member \"") + name + "\" is not base64url");
  return std::move(b).value();
}

std::string json_string(std::string_view s) {
  // Only our own fixed names and base64url text pass through here: nothing needs escaping.
  std::string out = "\"";
  out += s;
  out += '"';
  return out;
}

// The EVP_PKEY_CTX options for a signature with `opts` on key type `t`.
Status set_sig_params(EVP_PKEY_CTX* pctx, KeyType t, const SignOptions& opts) {
  if (t != KeyType::kRsa) return ok_status();
  if (opts.rsa_padding == SignOptions::RsaPadding::kPss) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(
            pctx, opts.pss_salt_len < 0 ? RSA_PSS_SALTLEN_DIGEST : opts.pss_salt_len) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, ossl::md(opts.hash)) <= 0) {
      return ossl::internal("setting RSA-PSS parameters");
    }
  } else if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) {
    return ossl::internal("setting RSA PKCS#1 v1.5 padding");
  }
  return ok_status();
}

Status set_oaep_params(EVP_PKEY_CTX* pctx, HashAlg hash) {
  if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(pctx, ossl::md(hash)) <= 0 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, ossl::md(hash)) <= 0) {
    return ossl::internal("setting RSA-OAEP parameters");
  }
  return ok_status();
}

// EVP_PKEY_sign on an initialised context: asks the length, then signs.
Result<Bytes> pkey_sign(EVP_PKEY_CTX* pctx, ByteSpan in) {
  size_t len = 0;
  if (EVP_PKEY_sign(pctx, nullptr, &len, in.data(), in.size()) != 1) {
    return ossl::internal("EVP_PKEY_sign (size)");
  }
  Bytes sig(len);
  if (EVP_PKEY_sign(pctx, sig.data(), &len, in.data(), in.size()) != 1) {
    return ossl::internal("EVP_PKEY_sign");
  }
  sig.resize(len);
  return sig;
}

Status check_digest_size(ByteSpan digest, const SignOptions& opts) {
  if (digest.size() != hash_size(opts.hash)) {
    return invalid_argument("digest length does not match the hash algorithm");
  }
  return ok_status();
}

}  // namespace

namespace internal {

Result<KeyType> classify(EVP_PKEY* pkey) {
  if (pkey == nullptr) return invalid_argument("empty key");
  if (EVP_PKEY_is_a(pkey, "EC")) {
    char group[64] = {};
    size_t len = 0;
    // Keys with explicit curve parameters have no group name and are refused: named curves only.
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &len) != 1) {
      ossl::drain_errors();
      return invalid_argument("EC key without a named curve is not allowed");
    }
    for (const CurveInfo& c : kCurves) {
      if (std::string_view(group, len) == c.group) return c.type;
    }
    return invalid_argument("EC curve " + std::string(group, len) + " is not allowed");
  }
  if (EVP_PKEY_is_a(pkey, "ED25519")) return KeyType::kEd25519;
  if (EVP_PKEY_is_a(pkey, "RSA") || EVP_PKEY_is_a(pkey, "RSA-PSS")) {
    int bits = EVP_PKEY_get_bits(pkey);
    if (bits < kRsaMinBits || bits > kRsaMaxBits) {
      return invalid_argument("RSA key size " + std::to_string(bits) + " is not allowed");
    }
    return KeyType::kRsa;
  }
  return invalid_argument("key algorithm is not allowed");
}

size_t ec_field_size(KeyType t) {
  const CurveInfo* c = curve_by_type(t);
  return c == nullptr ? 0 : c->field_size;
}

bool same_public_key(EVP_PKEY* a, EVP_PKEY* b) {
  return a != nullptr && b != nullptr && EVP_PKEY_eq(a, b) == 1;
}

}  // namespace internal

std::string_view key_type_name(KeyType t) {
  switch (t) {
    case KeyType::kEcP256: return "ec-p256";
    case KeyType::kEcP384: return "ec-p384";
    case KeyType::kEcP521: return "ec-p521";
    case KeyType::kEd25519: return "ed25519";
    case KeyType::kRsa: return "rsa";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// PublicKey

PublicKey::PublicKey() = default;
PublicKey::~PublicKey() { EVP_PKEY_free(pkey_); }
PublicKey::PublicKey(EVP_PKEY* owned) : pkey_(owned) {}
// Keys are immutable once built, so copies share the object by reference count.
PublicKey::PublicKey(const PublicKey& o) : pkey_(o.pkey_) {
  if (pkey_ != nullptr) EVP_PKEY_up_ref(pkey_);
}
PublicKey& PublicKey::operator=(const PublicKey& o) {
  if (this != &o) {
    if (o.pkey_ != nullptr) EVP_PKEY_up_ref(o.pkey_);
    EVP_PKEY_free(pkey_);
    pkey_ = o.pkey_;
  }
  return *this;
}
PublicKey::PublicKey(PublicKey&& o) noexcept : pkey_(std::exchange(o.pkey_, nullptr)) {}
PublicKey& PublicKey::operator=(PublicKey&& o) noexcept {
  if (this != &o) {
    EVP_PKEY_free(pkey_);
    pkey_ = std::exchange(o.pkey_, nullptr);
  }
  return *this;
}

EVP_PKEY* PublicKey::raw() const { return pkey_; }

Result<PublicKey> PublicKey::from_pem(std::string_view pem) {
  ossl::Bio bio = mem_bio(pem);
  if (!bio) return ossl::internal("BIO_new_mem_buf");
  ossl::EvpPkey pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, no_password, nullptr));
  if (!pkey) return ossl::invalid("not a PEM public key (SubjectPublicKeyInfo)");
  return wrap_public(std::move(pkey));
}

Result<PublicKey> PublicKey::from_der(ByteSpan spki_der) {
  if (!ossl::fits_int(spki_der.size())) return invalid_argument("public key too large");
  for (const SpkiPrefix& prefix : kEcSpkiPrefixes) {
    const CurveInfo& c = *curve_by_type(prefix.type);
    if (spki_der.size() == prefix.der.size() + 2 * c.field_size &&
        std::memcmp(spki_der.data(), prefix.der.data(), prefix.der.size()) == 0) {
      // The point starts at its 0x04 tag, the prefix's last byte.
      ASSIGN_OR_RETURN(ossl::EvpPkey pkey, ec_from_point(c, spki_der.subspan(prefix.der.size() - 1)));
      return wrap_public(std::move(pkey));
    }
  }
  const unsigned char* p = spki_der.data();
  ossl::EvpPkey pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki_der.size())));
  if (!pkey) return ossl::invalid("not a DER SubjectPublicKeyInfo");
  if (p != spki_der.data() + spki_der.size()) {
    return invalid_argument("trailing bytes after SubjectPublicKeyInfo");
  }
  return wrap_public(std::move(pkey));
}

Result<PublicKey> PublicKey::from_ec_xy(KeyType curve, ByteSpan x_concat_y) {
  const CurveInfo* c = curve_by_type(curve);
  if (c == nullptr) return invalid_argument("from_ec_xy needs an EC curve");
  if (x_concat_y.size() != 2 * c->field_size) {
    return invalid_argument("EC point must be " + std::to_string(2 * c->field_size) +
                            " bytes (x||y)");
  }
  EncodedPoint point;
  point.bytes[0] = 0x04;  // SEC 1 uncompressed point
  std::memcpy(point.bytes.data() + 1, x_concat_y.data(), x_concat_y.size());
  point.size = 1 + x_concat_y.size();
  ASSIGN_OR_RETURN(ossl::EvpPkey pkey, ec_from_point(*c, point.span()));
  return wrap_public(std::move(pkey));
}

Result<PublicKey> PublicKey::from_rsa(ByteSpan modulus_be, ByteSpan exponent_be) {
  if (modulus_be.empty() || exponent_be.empty() || !ossl::fits_int(modulus_be.size()) ||
      exponent_be.size() > 8) {
    return invalid_argument("invalid RSA modulus or exponent");
  }
  ossl::Bignum n(BN_bin2bn(modulus_be.data(), static_cast<int>(modulus_be.size()), nullptr));
  ossl::Bignum e(BN_bin2bn(exponent_be.data(), static_cast<int>(exponent_be.size()), nullptr));
  if (!n || !e) return ossl::internal("BN_bin2bn");
  ossl::OsslParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return ossl::internal("building RSA key parameters");
  }
  ASSIGN_OR_RETURN(ossl::EvpPkey pkey, pkey_fromdata("RSA", bld.get()));
  return wrap_public(std::move(pkey));
}

Result<PublicKey> PublicKey::from_ed25519(ByteSpan raw32) {
  if (raw32.size() != 32) return invalid_argument("Ed25519 public key must be 32 bytes");
  ossl::EvpPkey pkey(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw32.data(), raw32.size()));
  if (!pkey) return ossl::invalid("invalid Ed25519 public key");
  return wrap_public(std::move(pkey));
}

Result<PublicKey> PublicKey::from_jwk(std::string_view jwk_json) {
  if (jwk_json.size() > 64 * 1024) return invalid_argument("JWK too large");
  std::map<std::string, std::string> m;
  if (!JsonObjectReader(jwk_json).read(m)) return invalid_argument("JWK is not a JSON object");
  auto kty = m.find("kty");
  if (kty == m.end()) return invalid_argument("JWK is missing \"kty\"");
  if (kty->second == "EC") {
    auto crv = m.find("crv");
    const CurveInfo* c = crv == m.end() ? nullptr : curve_by_jwk(crv->second);
    if (c == nullptr) return invalid_argument("JWK EC curve missing or not allowed");
    ASSIGN_OR_RETURN(Bytes x, jwk_member(m, "x"));
    ASSIGN_OR_RETURN(Bytes y, jwk_member(m, "y"));
    // RFC 7518 6.2.1.2: coordinates are full-length octet strings.
    if (x.size() != c->field_size || y.size() != c->field_size) {
      return invalid_argument("JWK EC coordinates have the wrong length");
    }
    x.insert(x.end(), y.begin(), y.end());
    return from_ec_xy(c->type, x);
  }
  if (kty->second == "RSA") {
    ASSIGN_OR_RETURN(Bytes n, jwk_member(m, "n"));
    ASSIGN_OR_RETURN(Bytes e, jwk_member(m, "e"));
    return from_rsa(n, e);
  }
  if (kty->second == "OKP") {
    auto crv = m.find("crv");
    if (crv == m.end() || crv->second != "Ed25519") {
      return invalid_argument("JWK OKP curve missing or not allowed");
    }
    ASSIGN_OR_RETURN(Bytes x, jwk_member(m, "x"));
    return from_ed25519(x);
  }
  return invalid_argument("JWK key type is not allowed");
}

KeyType PublicKey::type() const {
  auto t = internal::classify(pkey_);
  return t.ok() ? *t : KeyType::kRsa;
}

int PublicKey::bits() const { return pkey_ == nullptr ? 0 : EVP_PKEY_get_bits(pkey_); }

std::string PublicKey::to_pem() const {
  if (pkey_ == nullptr) return {};
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey_) != 1) {
    ossl::drain_errors();
    return {};
  }
  return bio_to_string(bio.get());
}

Bytes PublicKey::to_der() const {
  if (pkey_ == nullptr) return {};
  if (auto t = internal::classify(pkey_); t.ok() && is_ec(*t)) {
    for (const SpkiPrefix& prefix : kEcSpkiPrefixes) {
      if (prefix.type != *t) continue;
      auto point = ec_point(pkey_, *curve_by_type(*t));
      if (!point.ok()) break;  // not uncompressed: the generic encoder below
      Bytes out(prefix.der.begin(), prefix.der.end());
      out.insert(out.end(), point->bytes.begin() + 1, point->bytes.begin() + static_cast<std::ptrdiff_t>(point->size));
      return out;
    }
  }
  unsigned char* buf = nullptr;
  int n = i2d_PUBKEY(pkey_, &buf);
  ossl::OsslBuffer owned(buf);
  if (n <= 0 || buf == nullptr) {
    ossl::drain_errors();
    return {};
  }
  return Bytes(buf, buf + n);
}

namespace {
// Both read only the public parameters, so they serve private keys too.
Result<Bytes> ec_xy_of(EVP_PKEY* pkey) {
  ASSIGN_OR_RETURN(KeyType t, internal::classify(pkey));
  const CurveInfo* c = curve_by_type(t);
  if (c == nullptr) return invalid_argument("ec_xy: not an EC key");
  ASSIGN_OR_RETURN(EncodedPoint point, ec_point(pkey, *c));
  return Bytes(point.bytes.begin() + 1, point.bytes.begin() + static_cast<std::ptrdiff_t>(point.size));
}

std::string jwk_of(EVP_PKEY* pkey) {
  auto t = internal::classify(pkey);
  if (!t.ok()) return {};
  std::string out;
  if (const CurveInfo* c = curve_by_type(*t)) {
    auto xy = ec_xy_of(pkey);
    if (!xy.ok()) return {};
    ByteSpan all(*xy);
    out = "{\"crv\":" + json_string(c->jwk_crv) + ",\"kty\":\"EC\",\"x\":" +
          json_string(base64url_encode(all.first(c->field_size))) +
          ",\"y\":" + json_string(base64url_encode(all.last(c->field_size))) + "}";
  } else if (*t == KeyType::kEd25519) {
    uint8_t raw[32];
    size_t len = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(pkey, raw, &len) != 1 || len != sizeof raw) {
      ossl::drain_errors();
      return {};
    }
    out = "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":" +
          json_string(base64url_encode(ByteSpan(raw, len))) + "}";
  } else {
    auto n = bn_param(pkey, OSSL_PKEY_PARAM_RSA_N);
    auto e = bn_param(pkey, OSSL_PKEY_PARAM_RSA_E);
    if (!n.ok() || !e.ok()) return {};
    out = "{\"e\":" + json_string(base64url_encode(bn_to_bytes(e->get()))) +
          ",\"kty\":\"RSA\",\"n\":" + json_string(base64url_encode(bn_to_bytes(n->get()))) + "}";
  }
  return out;
}
}  // namespace

Result<Bytes> PublicKey::ec_xy() const { return ec_xy_of(pkey_); }

Status PublicKey::rsa_components(Bytes& modulus, Bytes& exponent) const {
  ASSIGN_OR_RETURN(KeyType t, internal::classify(pkey_));
  if (t != KeyType::kRsa) return invalid_argument("not an RSA key");
  for (auto [name, out] :
       {std::pair{OSSL_PKEY_PARAM_RSA_N, &modulus}, std::pair{OSSL_PKEY_PARAM_RSA_E, &exponent}}) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(pkey_, name, &bn) != 1 || bn == nullptr) {
      return ossl::internal("EVP_PKEY_get_bn_param");
    }
    out->assign(static_cast<size_t>(BN_num_bytes(bn)), 0);
    BN_bn2bin(bn, out->data());
    BN_free(bn);
  }
  return ok_status();
}
std::string PublicKey::to_jwk() const { return jwk_of(pkey_); }

Status PublicKey::verify(ByteSpan message, ByteSpan sig, const SignOptions& opts) const {
  ASSIGN_OR_RETURN(KeyType t, internal::classify(pkey_));
  Bytes der_sig;
  ByteSpan to_check = sig;
  if (is_ec(t) && opts.ec_format == SignOptions::EcFormat::kRaw) {
    if (sig.size() != 2 * internal::ec_field_size(t)) {
      return bad_signature("raw ECDSA signature has the wrong length");
    }
    auto der = ecdsa_raw_to_der(sig);
    if (!der.ok()) return bad_signature("malformed raw ECDSA signature");
    der_sig = std::move(der).value();
    to_check = der_sig;
  }
  ossl::EvpMdCtx ctx(EVP_MD_CTX_new());
  if (!ctx) return ossl::internal("EVP_MD_CTX_new");
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  const EVP_MD* md = t == KeyType::kEd25519 ? nullptr : ossl::md(opts.hash);
  if (EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, pkey_) != 1) {
    return ossl::internal("EVP_DigestVerifyInit");
  }
  RETURN_IF_ERROR(set_sig_params(pctx, t, opts));
  int rc = EVP_DigestVerify(ctx.get(), to_check.data(), to_check.size(), message.data(),
                            message.size());
  if (rc != 1) return bad_signature("");
  return ok_status();
}

Status PublicKey::verify_digest(ByteSpan digest, ByteSpan sig, const SignOptions& opts) const {
  ASSIGN_OR_RETURN(KeyType t, internal::classify(pkey_));
  if (t == KeyType::kEd25519) return invalid_argument("Ed25519 cannot verify a precomputed digest");
  RETURN_IF_ERROR(check_digest_size(digest, opts));
  Bytes der_sig;
  ByteSpan to_check = sig;
  if (is_ec(t) && opts.ec_format == SignOptions::EcFormat::kRaw) {
    if (sig.size() != 2 * internal::ec_field_size(t)) {
      return bad_signature("raw ECDSA signature has the wrong length");
    }
    auto der = ecdsa_raw_to_der(sig);
    if (!der.ok()) return bad_signature("malformed raw ECDSA signature");
    der_sig = std::move(der).value();
    to_check = der_sig;
  }
  ossl::EvpPkeyCtx pctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_, nullptr));
  if (!pctx || EVP_PKEY_verify_init(pctx.get()) != 1 ||
      EVP_PKEY_CTX_set_signature_md(pctx.get(), ossl::md(opts.hash)) <= 0) {
    return ossl::internal("EVP_PKEY_verify_init");
  }
  RETURN_IF_ERROR(set_sig_params(pctx.get(), t, opts));
  int rc = EVP_PKEY_verify(pctx.get(), to_check.data(), to_check.size(), digest.data(),
                           digest.size());
  if (rc != 1) return bad_signature("");
  return ok_status();
}

Result<Bytes> PublicKey::rsa_oaep_encrypt(ByteSpan plaintext, HashAlg hash) const {
  ASSIGN_OR_RETURN(KeyType t, internal::classify(pkey_));
  if (t != KeyType::kRsa) return invalid_argument("RSA-OAEP needs an RSA key");
  ossl::EvpPkeyCtx pctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_, nullptr));
  if (!pctx || EVP_PKEY_encrypt_init(pctx.get()) != 1) {
    return ossl::internal("EVP_PKEY_encrypt_init");
  }
  RETURN_IF_ERROR(set_oaep_params(pctx.get(), hash));
  size_t len = 0;
  if (EVP_PKEY_encrypt(pctx.get(), nullptr, &len, plaintext.data(), plaintext.size()) != 1) {
    return ossl::invalid("RSA-OAEP encrypt");
  }
  Bytes out(len);
  if (EVP_PKEY_encrypt(pctx.get(), out.data(), &len, plaintext.data(), plaintext.size()) != 1) {
    // Typically the plaintext is too long for the modulus and hash.
    return ossl::invalid("RSA-OAEP encrypt");
  }
  out.resize(len);
  return out;
}

// ---------------------------------------------------------------------------------------------
// PrivateKey

PrivateKey::PrivateKey() = default;
PrivateKey::~PrivateKey() { EVP_PKEY_free(pkey_); }
PrivateKey::PrivateKey(EVP_PKEY* owned) : pkey_(owned) {}
PrivateKey::PrivateKey(PrivateKey&& o) noexcept : pkey_(std::exchange(o.pkey_, nullptr)) {}
PrivateKey& PrivateKey::operator=(PrivateKey&& o) noexcept {
  if (this != &o) {
    EVP_PKEY_free(pkey_);
    pkey_ = std::exchange(o.pkey_, nullptr);
  }
  return *this;
}
EVP_PKEY* PrivateKey::raw() const { return pkey_; }

Result<PrivateKey> PrivateKey::generate(KeyType type, int rsa_bits) {
  ossl::EvpPkeyCtx ctx;
  if (const CurveInfo* c = curve_by_type(type)) {
    // From the curve's template: the group is copied, not rebuilt (see curve_template).
    ctx.reset(EVP_PKEY_CTX_new_from_pkey(nullptr, curve_template(*c), nullptr));
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1) return ossl::internal("EC keygen init");
  } else if (type == KeyType::kEd25519) {
    ctx.reset(EVP_PKEY_CTX_new_from_name(nullptr, "ED25519", nullptr));
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1) return ossl::internal("Ed25519 keygen init");
  } else if (type == KeyType::kRsa) {
    if (rsa_bits < kRsaMinBits || rsa_bits > kRsaMaxBits) {
      return invalid_argument("RSA key size " + std::to_string(rsa_bits) + " is not allowed");
    }
    ctx.reset(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), rsa_bits) <= 0) {
      return ossl::internal("RSA keygen init");
    }
  } else {
    return invalid_argument("unknown key type");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_generate(ctx.get(), &raw) != 1 || raw == nullptr) {
    return ossl::internal("key generation");
  }
  return PrivateKey(raw);
}

Result<PrivateKey> PrivateKey::from_pem(std::string_view pem) {
  ossl::Bio bio = mem_bio(pem);
  if (!bio) return ossl::internal("BIO_new_mem_buf");
  ossl::EvpPkey pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr));
  if (!pkey) {
    // The error queue may quote decoder details but never key bytes.
    return ossl::invalid("not an unencrypted PEM private key");
  }
  ASSIGN_OR_RETURN(KeyType t, internal::classify(pkey.get()));
  (void)t;
  return PrivateKey(pkey.release());
}

Result<PrivateKey> PrivateKey::from_der(ByteSpan pkcs8_der) {
  if (!ossl::fits_int(pkcs8_der.size())) return invalid_argument("private key too large");
  const unsigned char* p = pkcs8_der.data();
  ossl::EvpPkey pkey(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(pkcs8_der.size())));
  if (!pkey) return ossl::invalid("not a DER private key");
  if (p != pkcs8_der.data() + pkcs8_der.size()) {
    return invalid_argument("trailing bytes after the private key");
  }
  ASSIGN_OR_RETURN(KeyType t, internal::classify(pkey.get()));
  (void)t;
  return PrivateKey(pkey.release());
}

KeyType PrivateKey::type() const {
  auto t = internal::classify(pkey_);
  return t.ok() ? *t : KeyType::kRsa;
}

int PrivateKey::bits() const { return pkey_ == nullptr ? 0 : EVP_PKEY_get_bits(pkey_); }

SecretString PrivateKey::to_pem() const {
  if (pkey_ == nullptr) return SecretString();
  // A memory BIO frees its buffer with OPENSSL_clear_free, so the PEM does not linger there.
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PKCS8PrivateKey(bio.get(), pkey_, nullptr, nullptr, 0, nullptr,
                                            nullptr) != 1) {
    ossl::drain_errors();
    return SecretString();
  }
  return SecretString(bio_to_string(bio.get()));
}

SecretBytes PrivateKey::to_der() const {
  if (pkey_ == nullptr) return SecretBytes();
  using Pkcs8 = ossl::Ptr<PKCS8_PRIV_KEY_INFO, &PKCS8_PRIV_KEY_INFO_free>;
  Pkcs8 p8(EVP_PKEY2PKCS8(pkey_));
  if (!p8) {
    ossl::drain_errors();
    return SecretBytes();
  }
  unsigned char* buf = nullptr;
  int n = i2d_PKCS8_PRIV_KEY_INFO(p8.get(), &buf);
  if (n <= 0 || buf == nullptr) {
    ossl::drain_errors();
    return SecretBytes();
  }
  SecretBytes out(ByteSpan(buf, static_cast<size_t>(n)));
  OPENSSL_clear_free(buf, static_cast<size_t>(n));
  return out;
}

PublicKey PrivateKey::public_key() const {
  if (pkey_ == nullptr) return PublicKey();
  // EC: a new key from the public point alone, so it has no private half at all.
  if (auto t = internal::classify(pkey_); t.ok() && is_ec(*t)) {
    const CurveInfo& c = *curve_by_type(*t);
    auto point = ec_point(pkey_, c);
    auto pub = point.ok() ? ec_from_point(c, point->span()) : Result<ossl::EvpPkey>(point.status());
    if (pub.ok()) return PublicKey(pub->release());
    ossl::drain_errors();  // an unusual point form: the generic round trip below
  }
  // A round trip through SubjectPublicKeyInfo yields an object with no private half at all.
  unsigned char* buf = nullptr;
  int n = i2d_PUBKEY(pkey_, &buf);
  ossl::OsslBuffer owned(buf);
  if (n <= 0 || buf == nullptr) {
    ossl::drain_errors();
    return PublicKey();
  }
  const unsigned char* p = buf;
  EVP_PKEY* pub = d2i_PUBKEY(nullptr, &p, n);
  if (pub == nullptr) ossl::drain_errors();
  return PublicKey(pub);
}

Result<Bytes> PrivateKey::public_ec_xy() const { return ec_xy_of(pkey_); }
std::string PrivateKey::public_jwk() const { return jwk_of(pkey_); }

Result<Bytes> PrivateKey::sign(ByteSpan message, const SignOptions& opts) const {
  ASSIGN_OR_RETURN(KeyType t, internal::classify(pkey_));
  ossl::EvpMdCtx ctx(EVP_MD_CTX_new());
  if (!ctx) return ossl::internal("EVP_MD_CTX_new");
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  const EVP_MD* md = t == KeyType::kEd25519 ? nullptr : ossl::md(opts.hash);
  if (EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, pkey_) != 1) {
    return ossl::internal("EVP_DigestSignInit");
  }
  RETURN_IF_ERROR(set_sig_params(pctx, t, opts));
  size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, message.data(), message.size()) != 1) {
    return ossl::internal("EVP_DigestSign (size)");
  }
  Bytes sig(len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(), message.size()) != 1) {
    return ossl::internal("EVP_DigestSign");
  }
  sig.resize(len);
  if (is_ec(t) && opts.ec_format == SignOptions::EcFormat::kRaw) {
    return ecdsa_der_to_raw(sig, internal::ec_field_size(t));
  }
  return sig;
}

Result<Bytes> PrivateKey::sign_digest(ByteSpan digest, const SignOptions& opts) const {
  ASSIGN_OR_RETURN(KeyType t, internal::classify(pkey_));
  if (t == KeyType::kEd25519) return invalid_argument("Ed25519 cannot sign a precomputed digest");
  RETURN_IF_ERROR(check_digest_size(digest, opts));
  ossl::EvpPkeyCtx pctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_, nullptr));
  if (!pctx || EVP_PKEY_sign_init(pctx.get()) != 1 ||
      EVP_PKEY_CTX_set_signature_md(pctx.get(), ossl::md(opts.hash)) <= 0) {
    return ossl::internal("EVP_PKEY_sign_init");
  }
  RETURN_IF_ERROR(set_sig_params(pctx.get(), t, opts));
  ASSIGN_OR_RETURN(Bytes sig, pkey_sign(pctx.get(), digest));
  if (is_ec(t) && opts.ec_format == SignOptions::EcFormat::kRaw) {
    return ecdsa_der_to_raw(sig, internal::ec_field_size(t));
  }
  return sig;
}

Result<Bytes> PrivateKey::ecdsa_sign_any_digest(ByteSpan digest) const {
  ASSIGN_OR_RETURN(KeyType t, internal::classify(pkey_));
  if (!is_ec(t)) return invalid_argument("ECDSA needs an EC key");
  if (digest.empty() || digest.size() > 1024) return invalid_argument("ECDSA: digest length");
  ossl::EvpPkeyCtx pctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_, nullptr));
  if (!pctx || EVP_PKEY_sign_init(pctx.get()) != 1) return ossl::internal("EVP_PKEY_sign_init");
  ASSIGN_OR_RETURN(Bytes sig, pkey_sign(pctx.get(), digest));
  return ecdsa_der_to_raw(sig, internal::ec_field_size(t));
}

Result<Bytes> PrivateKey::rsa_pkcs1_sign_raw(ByteSpan encoded) const {
  ASSIGN_OR_RETURN(KeyType t, internal::classify(pkey_));
  if (t != KeyType::kRsa) return invalid_argument("PKCS#1 v1.5 signing needs an RSA key");
  const size_t max = static_cast<size_t>(EVP_PKEY_get_size(pkey_));
  if (encoded.empty() || max < 11 || encoded.size() > max - 11) {
    return invalid_argument("PKCS#1 v1.5: the input does not fit the modulus");
  }
  ossl::EvpPkeyCtx pctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_, nullptr));
  if (!pctx || EVP_PKEY_sign_init(pctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx.get(), RSA_PKCS1_PADDING) <= 0) {
    return ossl::internal("EVP_PKEY_sign_init");
  }
  return pkey_sign(pctx.get(), encoded);
}

Result<SecretBytes> PrivateKey::rsa_oaep_decrypt(ByteSpan ciphertext, HashAlg hash) const {
  ASSIGN_OR_RETURN(KeyType t, internal::classify(pkey_));
  if (t != KeyType::kRsa) return invalid_argument("RSA-OAEP needs an RSA key");
  ossl::EvpPkeyCtx pctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_, nullptr));
  if (!pctx || EVP_PKEY_decrypt_init(pctx.get()) != 1) {
    return ossl::internal("EVP_PKEY_decrypt_init");
  }
  RETURN_IF_ERROR(set_oaep_params(pctx.get(), hash));
  size_t len = 0;
  if (EVP_PKEY_decrypt(pctx.get(), nullptr, &len, ciphertext.data(), ciphertext.size()) != 1) {
    ossl::drain_errors();
    return data_loss("RSA-OAEP decryption failed");
  }
  SecretBytes out(len);
  if (EVP_PKEY_decrypt(pctx.get(), out.data(), &len, ciphertext.data(), ciphertext.size()) != 1) {
    // One message for every failure: distinguishing them would be a padding oracle.
    ossl::drain_errors();
    return data_loss("RSA-OAEP decryption failed");
  }
  SecretBytes result(out.span().first(len));
  return result;
}

Result<SecretBytes> PrivateKey::ecdh(const PublicKey& peer) const {
  ASSIGN_OR_RETURN(KeyType t, internal::classify(pkey_));
  if (!is_ec(t)) return invalid_argument("ECDH needs an EC key");
  ASSIGN_OR_RETURN(KeyType pt, internal::classify(peer.raw()));
  if (pt != t) return invalid_argument("ECDH peer key is on another curve");
  ossl::EvpPkeyCtx pctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_, nullptr));
  if (!pctx || EVP_PKEY_derive_init(pctx.get()) != 1) return ossl::internal("EVP_PKEY_derive_init");
  // The peer point must be on the curve (invalid-curve attacks). On the allowed cofactor-1
  // curves the quick check is complete (see pkey_fromdata); set_peer_ex's own validation would
  // add the full check's redundant scalar multiplication.
  ossl::EvpPkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, peer.raw(), nullptr));
  if (!check || EVP_PKEY_public_check_quick(check.get()) != 1) {
    return ossl::invalid("ECDH peer key rejected");
  }
  if (EVP_PKEY_derive_set_peer_ex(pctx.get(), peer.raw(), 0) != 1) {
    return ossl::invalid("ECDH peer key rejected");
  }
  size_t len = 0;
  if (EVP_PKEY_derive(pctx.get(), nullptr, &len) != 1) return ossl::internal("EVP_PKEY_derive");
  SecretBytes out(len);
  if (EVP_PKEY_derive(pctx.get(), out.data(), &len) != 1) return ossl::internal("EVP_PKEY_derive");
  if (len != out.size()) return internal_error("ECDH: unexpected secret length");
  return out;
}

// ---------------------------------------------------------------------------------------------

Result<Bytes> ecdsa_der_to_raw(ByteSpan der, size_t component_size) {
  if (component_size == 0 || component_size > 66 || !ossl::fits_int(der.size())) {
    return invalid_argument("invalid ECDSA component size");
  }
  const unsigned char* p = der.data();
  ossl::EcdsaSig sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return ossl::invalid("malformed DER ECDSA signature");
  if (p != der.data() + der.size()) return invalid_argument("trailing bytes after ECDSA signature");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  auto rb = bn_to_fixed(r, component_size);
  auto sb = bn_to_fixed(s, component_size);
  if (!rb.ok() || !sb.ok()) return invalid_argument("ECDSA r or s is too large for the curve");
  Bytes out = std::move(rb).value();
  out.insert(out.end(), sb->begin(), sb->end());
  return out;
}

Result<Bytes> ecdsa_raw_to_der(ByteSpan raw) {
  if (raw.empty() || raw.size() % 2 != 0 || raw.size() > 2 * 66) {
    return invalid_argument("raw ECDSA signature must be r||s of equal, even length");
  }
  const size_t half = raw.size() / 2;
  ossl::Bignum r(BN_bin2bn(raw.data(), static_cast<int>(half), nullptr));
  ossl::Bignum s(BN_bin2bn(raw.data() + half, static_cast<int>(half), nullptr));
  ossl::EcdsaSig sig(ECDSA_SIG_new());
  if (!r || !s || !sig) return ossl::internal("allocating ECDSA signature");
  if (ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return ossl::internal("ECDSA_SIG_set0");
  // Ownership of r and s moved into sig.
  (void)r.release();
  (void)s.release();
  unsigned char* buf = nullptr;
  int n = i2d_ECDSA_SIG(sig.get(), &buf);
  ossl::OsslBuffer owned(buf);
  if (n <= 0 || buf == nullptr) return ossl::internal("i2d_ECDSA_SIG");
  return Bytes(buf, buf + n);
}

}  // namespace custos::crypto
