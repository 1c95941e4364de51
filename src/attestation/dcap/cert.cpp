#include "attestation/dcap/cert.h"

#include <algorithm>
#include <array>
#include <cstdio>

#include "attestation/dcap/der.h"
#include "base/encoding.h"

namespace custos::attestation::dcap {
namespace {

// Tags beyond der.h's universal ones.
constexpr uint8_t kBitString = 0x03;
constexpr uint8_t kSet = 0x31;
constexpr uint8_t kUtcTime = 0x17;
constexpr uint8_t kGeneralizedTime = 0x18;
constexpr uint8_t kExplicit0 = 0xa0;  // [0] EXPLICIT version
constexpr uint8_t kExplicit3 = 0xa3;  // [3] EXPLICIT extensions

// OID content octets.
constexpr std::array<uint8_t, 8> kEcdsaWithSha256 = {0x2a, 0x86, 0x48, 0xce,
                                                     0x3d, 0x04, 0x03, 0x02};
constexpr std::array<uint8_t, 7> kEcPublicKey = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
constexpr std::array<uint8_t, 8> kPrime256v1 = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
constexpr std::array<uint8_t, 3> kCommonName = {0x55, 0x04, 0x03};
constexpr std::array<uint8_t, 3> kBasicConstraints = {0x55, 0x1d, 0x13};
constexpr std::array<uint8_t, 3> kKeyUsage = {0x55, 0x1d, 0x0f};
constexpr std::array<uint8_t, 3> kExtKeyUsage = {0x55, 0x1d, 0x25};
constexpr std::array<uint8_t, 3> kSubjectAltName = {0x55, 0x1d, 0x11};

template <size_t N>
bool equals(ByteSpan a, const std::array<uint8_t, N>& b) {
  return a.size() == N && std::equal(a.begin(), a.end(), b.begin());
}

Status bad(std::string_view what) {
  return invalid_argument("certificate: " + std::string(what));
}

// AlgorithmIdentifier for ecdsa-with-SHA256: the OID with absent parameters (RFC 5758 3.2).
bool is_ecdsa_sha256(const der::Element& alg) {
  der::Reader r(alg.value);
  auto oid = r.expect(der::kOid);
  return oid && equals(oid->value, kEcdsaWithSha256) && r.empty();
}

int digits(std::string_view s, size_t pos, size_t n) {
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

// UTCTime YYMMDDHHMMSSZ (years 1950-2049) or GeneralizedTime YYYYMMDDHHMMSSZ, as RFC 5280
// 4.1.2.5 requires them (seconds present, Zulu, no fractions).
std::optional<SysTime> parse_time(const der::Element& e) {
  std::string_view s = as_string_view(e.value);
  int year = 0;
  size_t p = 0;
  if (e.tag == kUtcTime && s.size() == 13) {
    year = digits(s, 0, 2);
    if (year < 0) return std::nullopt;
    year += year < 50 ? 2000 : 1900;
    p = 2;
  } else if (e.tag == kGeneralizedTime && s.size() == 15) {
    year = digits(s, 0, 4);
    p = 4;
  } else {
    return std::nullopt;
  }
  if (year < 0 || s.back() != 'Z') return std::nullopt;
  int mon = digits(s, p, 2), day = digits(s, p + 2, 2), hh = digits(s, p + 4, 2),
      mm = digits(s, p + 6, 2), ss = digits(s, p + 8, 2);
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hh < 0 || hh > 23 || mm < 0 || mm > 59 ||
      ss < 0 || ss > 59) {
    return std::nullopt;
  }
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (day > kDays[mon - 1] + (mon == 2 && leap ? 1 : 0)) return std::nullopt;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", year, mon, day, hh, mm, ss);
  auto t = parse_rfc3339(buf);
  if (!t.ok()) return std::nullopt;
  return *t;
}

// X.690 8.19: subidentifiers in base 128, none with a leading 0x80, the last octet ending one.
bool valid_oid(ByteSpan v) {
  if (v.empty() || (v.back() & 0x80) != 0) return false;
  bool start = true;
  for (uint8_t b : v) {
    if (start && b == 0x80) return false;
    start = (b & 0x80) == 0;
  }
  return true;
}

// X.690 8.3.2: an INTEGER's first nine bits are never all equal (minimal encoding).
bool minimal_integer(ByteSpan v) {
  return !v.empty() && !(v.size() > 1 &&
                         ((v[0] == 0x00 && (v[1] & 0x80) == 0) || (v[0] == 0xff && (v[1] & 0x80))));
}

// Strict UTF-8: shortest forms only, no surrogates, nothing above U+10FFFF.
bool valid_utf8(ByteSpan s) {
  for (size_t i = 0; i < s.size();) {
    uint8_t b = s[i];
    size_t n = b < 0x80             ? 0
               : (b & 0xe0) == 0xc0 ? 1
               : (b & 0xf0) == 0xe0 ? 2
               : (b & 0xf8) == 0xf0 ? 3
                                    : 4;
    if (n == 4 || s.size() - i - 1 < n) return false;
    uint32_t cp = n == 0 ? b : b & (0x3fu >> n);
    for (size_t k = 1; k <= n; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3fu);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

// The string types PCS names use, with their character sets: UTF8String, PrintableString and
// IA5String (X.520 DirectoryString choices plus IA5 for emailAddress).
bool valid_name_string(const der::Element& v) {
  switch (v.tag) {
    case 0x0c:
      return valid_utf8(v.value);
    case 0x13:
      return std::ranges::all_of(v.value, [](uint8_t c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               std::string_view(" '()+,-./:=?").find(static_cast<char>(c)) !=
                   std::string_view::npos;
      });
    case 0x16:
      return std::ranges::all_of(v.value, [](uint8_t c) { return c < 0x80; });
    default:
      return false;
  }
}

// The first commonName of a Name, if it is a string type.
std::optional<std::string> common_name(ByteSpan name) {
  der::Reader rdns(name);
  while (!rdns.empty()) {
    auto rdn = rdns.expect(kSet);
    if (!rdn) return std::nullopt;
    der::Reader atvs(rdn->value);
    while (!atvs.empty()) {
      auto atv = atvs.expect(der::kSequence);
      if (!atv) return std::nullopt;
      der::Reader fields(atv->value);
      auto type = fields.expect(der::kOid);
      auto value = fields.next();
      if (!type || !value || !fields.empty()) return std::nullopt;
      if (!equals(type->value, kCommonName)) continue;
      if (!valid_name_string(*value)) return std::nullopt;
      return to_string(value->value);
    }
  }
  return std::string();
}

// Checks a Name is a SEQUENCE OF SET OF AttributeTypeAndValue with string values (the chain
// compares Names as bytes, so only their structure and strings are checked).
bool well_formed_name(ByteSpan name) {
  der::Reader rdns(name);
  while (!rdns.empty()) {
    auto rdn = rdns.expect(kSet);
    if (!rdn || rdn->value.empty()) return false;
    der::Reader atvs(rdn->value);
    while (!atvs.empty()) {
      auto atv = atvs.expect(der::kSequence);
      if (!atv) return false;
      der::Reader fields(atv->value);
      auto type = fields.expect(der::kOid);
      auto value = fields.next();
      if (!type || !valid_oid(type->value) || !value || !valid_name_string(*value) ||
          !fields.empty()) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

PcsCert::Range PcsCert::range_of(ByteSpan inner) const {
  return Range{static_cast<size_t>(inner.data() - der_.data()), inner.size()};
}

Result<PcsCert> PcsCert::from_der(ByteSpan input) {
  PcsCert c;
  c.der_.assign(input.begin(), input.end());
  der::Reader top(c.der_);
  auto cert = top.expect(der::kSequence);
  if (!cert || !top.empty()) return bad("not a single DER SEQUENCE");
  der::Reader parts(cert->value);
  auto tbs = parts.expect(der::kSequence);
  auto outer_alg = parts.expect(der::kSequence);
  auto sig = parts.expect(kBitString);
  if (!tbs || !outer_alg || !sig || !parts.empty()) return bad("malformed Certificate");
  if (!is_ecdsa_sha256(*outer_alg)) return bad("signature algorithm is not ecdsa-with-SHA256");
  if (sig->value.size() < 2 || sig->value[0] != 0) return bad("malformed signature BIT STRING");
  c.tbs_ = c.range_of(tbs->raw);
  c.signature_ = c.range_of(sig->value.subspan(1));

  der::Reader t(tbs->value);
  auto version = t.expect(kExplicit0);
  if (!version) return bad("not an X.509 v3 certificate");
  {
    der::Reader v(version->value);
    auto n = v.expect(der::kInteger);
    if (!n || !v.empty() || !minimal_integer(n->value) || der::to_uint(*n) != 2u) {
      return bad("not an X.509 v3 certificate");
    }
  }
  auto serial = t.expect(der::kInteger);
  if (!serial || !minimal_integer(serial->value) || serial->value.size() > 21 ||
      (serial->value[0] & 0x80)) {
    return bad("malformed serial number");
  }
  ByteSpan sv = serial->value;
  while (sv.size() > 1 && sv[0] == 0) sv = sv.subspan(1);
  if (sv.size() == 1 && sv[0] == 0) sv = sv.subspan(1);
  c.serial_.assign(sv.begin(), sv.end());

  auto inner_alg = t.expect(der::kSequence);
  if (!inner_alg || !std::equal(inner_alg->raw.begin(), inner_alg->raw.end(),
                                outer_alg->raw.begin(), outer_alg->raw.end())) {
    return bad("inner and outer signature algorithms differ");
  }
  auto issuer = t.expect(der::kSequence);
  if (!issuer || !well_formed_name(issuer->value)) return bad("malformed issuer name");
  c.issuer_ = c.range_of(issuer->raw);
  auto validity = t.expect(der::kSequence);
  if (!validity) return bad("malformed validity");
  {
    der::Reader v(validity->value);
    auto nb = v.next();
    auto na = v.next();
    if (!nb || !na || !v.empty()) return bad("malformed validity");
    auto tb = parse_time(*nb);
    auto ta = parse_time(*na);
    if (!tb || !ta) return bad("malformed validity time");
    c.not_before_ = *tb;
    c.not_after_ = *ta;
  }
  auto subject = t.expect(der::kSequence);
  if (!subject || !well_formed_name(subject->value)) return bad("malformed subject name");
  c.subject_ = c.range_of(subject->raw);
  auto cn = common_name(subject->value);
  if (!cn) return bad("malformed subject commonName");
  c.subject_cn_ = std::move(*cn);

  auto spki = t.expect(der::kSequence);
  if (!spki) return bad("malformed subjectPublicKeyInfo");
  c.spki_ = c.range_of(spki->raw);
  {
    der::Reader s(spki->value);
    auto alg = s.expect(der::kSequence);
    auto key = s.expect(kBitString);
    if (!alg || !key || !s.empty()) return bad("malformed subjectPublicKeyInfo");
    der::Reader a(alg->value);
    auto type = a.expect(der::kOid);
    auto curve = a.expect(der::kOid);
    if (!type || !equals(type->value, kEcPublicKey) || !curve ||
        !equals(curve->value, kPrime256v1) || !a.empty()) {
      return bad("key is not an EC P-256 key");
    }
    // An uncompressed point: unused-bits octet 0, then 0x04 || x || y.
    if (key->value.size() != 66 || key->value[0] != 0 || key->value[1] != 0x04) {
      return bad("EC key is not an uncompressed P-256 point");
    }
    auto pub = crypto::PublicKey::from_ec_xy(crypto::KeyType::kEcP256, key->value.subspan(2));
    if (!pub.ok()) return bad("EC key is not a point on P-256");
    c.key_ = std::move(*pub);
  }

  // Then the extensions, and nothing else: unique identifiers (RFC 5280 4.1.2.8: conforming CAs
  // never generate them) are refused with everything else.
  if (!t.empty()) {
    auto next = t.next();
    if (!next || next->tag != kExplicit3 || !t.empty()) return bad("malformed TBSCertificate");
    der::Reader wrapper(next->value);
    auto list = wrapper.expect(der::kSequence);
    if (!list || !wrapper.empty() || list->value.empty()) return bad("malformed extensions");
    der::Reader exts(list->value);
    while (!exts.empty()) {
      auto ext = exts.expect(der::kSequence);
      if (!ext) return bad("malformed extension");
      der::Reader f(ext->value);
      auto oid = f.expect(der::kOid);
      auto v = f.next();
      bool critical = false;
      if (v && v->tag == der::kBoolean) {
        // DER: the DEFAULT FALSE value is omitted, so a present flag is TRUE (0xff).
        if (v->value.size() != 1 || v->value[0] != 0xff) return bad("malformed critical flag");
        critical = true;
        v = f.next();
      }
      if (!oid || !valid_oid(oid->value) || !v || v->tag != der::kOctetString || !f.empty()) {
        return bad("malformed extension");
      }
      for (const Extension& seen : c.extensions_) {
        ByteSpan s = c.span(seen.oid);
        if (std::equal(s.begin(), s.end(), oid->value.begin(), oid->value.end())) {
          return bad("duplicate extension");
        }
      }
      c.extensions_.push_back(Extension{c.range_of(oid->value), c.range_of(v->value)});
      if (equals(oid->value, kBasicConstraints)) {
        // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLen INTEGER OPTIONAL }
        der::Reader b(v->value);
        auto seq = b.expect(der::kSequence);
        if (!seq || !b.empty()) return bad("malformed basicConstraints");
        der::Reader bc(seq->value);
        auto first = bc.next();
        if (first && first->tag == der::kBoolean) {
          if (first->value.size() != 1 || first->value[0] != 0xff) {
            return bad("malformed basicConstraints");
          }
          c.is_ca_ = true;
          first = bc.next();
        }
        if (first && (first->tag != der::kInteger || !minimal_integer(first->value) ||
                      !der::to_uint(*first))) {
          return bad("malformed basicConstraints");
        }
        if (!bc.empty()) return bad("malformed basicConstraints");
      } else if (equals(oid->value, kKeyUsage)) {
        der::Reader k(v->value);
        auto bits = k.expect(kBitString);
        if (!bits || !k.empty() || bits->value.size() < 2 || bits->value.size() > 3 ||
            bits->value[0] > 7) {
          return bad("malformed keyUsage");
        }
        uint16_t usage = 0;
        for (size_t i = 0; i < 9; ++i) {
          size_t octet = 1 + i / 8;
          if (octet < bits->value.size() && (bits->value[octet] & (0x80 >> (i % 8))) != 0) {
            usage |= static_cast<uint16_t>(1u << i);
          }
        }
        c.key_usage_ = usage;
      } else if (critical && !equals(oid->value, kExtKeyUsage) &&
                 !equals(oid->value, kSubjectAltName)) {
        return bad("unsupported critical extension");
      }
    }
  }
  return c;
}

std::optional<ByteSpan> PcsCert::extension(ByteSpan oid) const {
  for (const Extension& e : extensions_) {
    ByteSpan s = span(e.oid);
    if (std::equal(s.begin(), s.end(), oid.begin(), oid.end())) return span(e.value);
  }
  return std::nullopt;
}

Status PcsCert::verify_signature(const crypto::PublicKey& issuer_key) const {
  crypto::SignOptions o;
  o.hash = crypto::HashAlg::kSha256;
  o.ec_format = crypto::SignOptions::EcFormat::kDer;
  return issuer_key.verify(tbs(), span(signature_), o);
}

Result<std::vector<Bytes>> PcsCert::pem_blocks(std::string_view pem, size_t max_certs) {
  constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
  constexpr std::string_view kEnd = "-----END CERTIFICATE-----";
  std::vector<Bytes> out;
  size_t pos = 0;
  while (true) {
    size_t b = pem.find(kBegin, pos);
    if (b == std::string_view::npos) break;
    size_t body = b + kBegin.size();
    size_t e = pem.find(kEnd, body);
    if (e == std::string_view::npos) return bad("PEM block without an END line");
    if (out.size() == max_certs) return bad("too many certificates");
    std::string b64;
    b64.reserve(e - body);
    for (char ch : pem.substr(body, e - body)) {
      if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') continue;
      b64.push_back(ch);
    }
    auto der = base64_decode(b64);
    if (!der.ok() || der->empty()) return bad("PEM block is not base64");
    out.push_back(std::move(*der));
    pos = e + kEnd.size();
  }
  if (out.empty()) return bad("no CERTIFICATE block");
  return out;
}

}  // namespace custos::attestation::dcap
