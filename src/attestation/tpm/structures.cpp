#include "attestation/tpm/structures.h"

#include "base/encoding.h"
#include "base/reader.h"

namespace custos::attestation::tpm {
namespace {

// TPM2B_*: UINT16 size followed by that many bytes (Part 2, 10.4).
ByteSpan read_tpm2b(ByteReader& r) {
  uint16_t n = r.u16be();
  return r.bytes(n);
}

// TPMT_SYM_DEF_OBJECT (Part 2, 11.1.7): algorithm, then keyBits and mode unless TPM_ALG_NULL.
void skip_sym_def(ByteReader& r) {
  uint16_t a = r.u16be();
  if (a != alg::kNull) {
    r.u16be();
    r.u16be();
  }
}

// TPMT_*_SCHEME / TPMT_KDF_SCHEME: scheme, then a hash algorithm unless TPM_ALG_NULL (every
// scheme this verifier can meet has exactly one hashAlg detail; ECDAA would add a count).
uint16_t read_scheme(ByteReader& r) {
  uint16_t s = r.u16be();
  if (s != alg::kNull) r.u16be();
  return s;
}

Bytes left_pad(ByteSpan v, size_t n) {
  if (v.size() >= n) return Bytes(v.end() - static_cast<std::ptrdiff_t>(n), v.end());
  Bytes out(n - v.size(), 0);
  out.insert(out.end(), v.begin(), v.end());
  return out;
}

// TPMT_PUBLIC (Part 2, 12.2.4) for RSA and ECC keys.
Result<AkPublic> parse_tpmt_public(ByteSpan data) {
  ByteReader r(data);
  uint16_t type = r.u16be();
  uint16_t name_alg = r.u16be();
  uint32_t attrs = r.u32be();
  read_tpm2b(r);  // authPolicy
  RETURN_IF_ERROR(r.status("TPMT_PUBLIC"));
  AkPublic out;
  if (type == alg::kRsa) {
    // TPMS_RSA_PARMS (12.2.3.5): symmetric, scheme, keyBits, exponent; unique = modulus.
    skip_sym_def(r);
    read_scheme(r);
    r.u16be();  // keyBits (the modulus length is authoritative)
    uint32_t exponent = r.u32be();
    ByteSpan modulus = read_tpm2b(r);
    RETURN_IF_ERROR(r.status("TPMT_PUBLIC (RSA)"));
    if (exponent == 0) exponent = 65537;  // 0 means the default exponent 2^16+1
    Bytes e;
    for (int shift = 24; shift >= 0; shift -= 8) {
      uint8_t b = static_cast<uint8_t>((exponent >> shift) & 0xff);
      if (!e.empty() || b != 0) e.push_back(b);
    }
    ASSIGN_OR_RETURN(out.key, crypto::PublicKey::from_rsa(modulus, e));
  } else if (type == alg::kEcc) {
    // TPMS_ECC_PARMS (12.2.3.6): symmetric, scheme, curveID, kdf; unique = TPMS_ECC_POINT.
    skip_sym_def(r);
    read_scheme(r);
    uint16_t curve = r.u16be();
    read_scheme(r);  // kdf
    ByteSpan x = read_tpm2b(r);
    ByteSpan y = read_tpm2b(r);
    RETURN_IF_ERROR(r.status("TPMT_PUBLIC (ECC)"));
    crypto::KeyType kt = crypto::KeyType::kEcP256;
    size_t width = 0;
    switch (curve) {
      case kEccNistP256: kt = crypto::KeyType::kEcP256; width = 32; break;
      case kEccNistP384: kt = crypto::KeyType::kEcP384; width = 48; break;
      case kEccNistP521: kt = crypto::KeyType::kEcP521; width = 66; break;
      default: return invalid_argument("unsupported TPM ECC curve " + std::to_string(curve));
    }
    if (x.size() > width || y.size() > width) return invalid_argument("ECC point too large");
    Bytes xy = left_pad(x, width);
    Bytes yy = left_pad(y, width);
    xy.insert(xy.end(), yy.begin(), yy.end());
    ASSIGN_OR_RETURN(out.key, crypto::PublicKey::from_ec_xy(kt, xy));
  } else {
    return invalid_argument("unsupported TPM key type " + std::to_string(type));
  }
  if (!r.empty()) return invalid_argument("trailing bytes after TPMT_PUBLIC");
  out.object_attributes = attrs;
  out.name_alg = name_alg;
  // Name = nameAlg || H_nameAlg(TPMT_PUBLIC) (Part 1, 16 "Names").
  if (auto h = hash_from_tpm(name_alg)) {
    out.name = {static_cast<uint8_t>(name_alg >> 8), static_cast<uint8_t>(name_alg & 0xff)};
    Bytes d = crypto::digest(*h, data);
    out.name.insert(out.name.end(), d.begin(), d.end());
  }
  return out;
}

}  // namespace

std::optional<crypto::HashAlg> hash_from_tpm(uint16_t alg_id) {
  switch (alg_id) {
    case alg::kSha1: return crypto::HashAlg::kSha1;
    case alg::kSha256: return crypto::HashAlg::kSha256;
    case alg::kSha384: return crypto::HashAlg::kSha384;
    case alg::kSha512: return crypto::HashAlg::kSha512;
    default: return std::nullopt;
  }
}

uint16_t tpm_from_hash(crypto::HashAlg h) {
  switch (h) {
    case crypto::HashAlg::kSha1: return alg::kSha1;
    case crypto::HashAlg::kSha256: return alg::kSha256;
    case crypto::HashAlg::kSha384: return alg::kSha384;
    case crypto::HashAlg::kSha512: return alg::kSha512;
  }
  return 0;
}

uint16_t tpm_hash_from_name(std::string_view name) {
  if (name == "sha1") return alg::kSha1;
  if (name == "sha256") return alg::kSha256;
  if (name == "sha384") return alg::kSha384;
  if (name == "sha512") return alg::kSha512;
  return 0;
}

Result<QuoteAttest> parse_quote_attest(ByteSpan data) {
  ByteReader r(data);
  QuoteAttest q;
  q.magic = r.u32be();
  q.type = r.u16be();
  RETURN_IF_ERROR(r.status("TPMS_ATTEST header"));
  if (q.magic != kTpmGeneratedValue) return invalid_argument("TPMS_ATTEST magic is not TPM_GENERATED");
  if (q.type != kTpmStAttestQuote) {
    return invalid_argument("TPMS_ATTEST type is not TPM_ST_ATTEST_QUOTE");
  }
  ByteSpan signer = read_tpm2b(r);
  ByteSpan extra = read_tpm2b(r);
  q.qualified_signer.assign(signer.begin(), signer.end());
  q.extra_data.assign(extra.begin(), extra.end());
  q.clock = r.u64be();
  q.reset_count = r.u32be();
  q.restart_count = r.u32be();
  q.safe = r.u8() != 0;
  q.firmware_version = r.u64be();
  // TPMS_QUOTE_INFO: TPML_PCR_SELECTION then TPM2B_DIGEST.
  uint32_t count = r.u32be();
  RETURN_IF_ERROR(r.status("TPMS_ATTEST"));
  if (count > 16) return invalid_argument("TPML_PCR_SELECTION count too large");  // HASH_COUNT
  for (uint32_t i = 0; i < count; ++i) {
    PcrSelection sel;
    sel.hash = r.u16be();
    uint8_t size = r.u8();
    ByteSpan bits = r.bytes(size);
    RETURN_IF_ERROR(r.status("TPMS_PCR_SELECTION"));
    for (size_t byte = 0; byte < bits.size(); ++byte) {
      for (uint32_t bit = 0; bit < 8; ++bit) {
        if (bits[byte] & (1u << bit)) sel.indices.push_back(static_cast<uint32_t>(byte) * 8 + bit);
      }
    }
    q.pcr_select.push_back(std::move(sel));
  }
  ByteSpan digest = read_tpm2b(r);
  RETURN_IF_ERROR(r.status("TPMS_QUOTE_INFO"));
  q.pcr_digest.assign(digest.begin(), digest.end());
  if (!r.empty()) return invalid_argument("trailing bytes after TPMS_ATTEST");
  return q;
}

Result<Signature> parse_signature(ByteSpan data) {
  ByteReader r(data);
  Signature s;
  s.sig_alg = r.u16be();
  s.hash = r.u16be();
  RETURN_IF_ERROR(r.status("TPMT_SIGNATURE"));
  if (s.sig_alg == alg::kRsaSsa || s.sig_alg == alg::kRsaPss) {
    ByteSpan sig = read_tpm2b(r);
    s.rsa_sig.assign(sig.begin(), sig.end());
  } else if (s.sig_alg == alg::kEcdsa) {
    ByteSpan rr = read_tpm2b(r);
    ByteSpan ss = read_tpm2b(r);
    s.ecc_r.assign(rr.begin(), rr.end());
    s.ecc_s.assign(ss.begin(), ss.end());
  } else {
    return invalid_argument("unsupported TPMT_SIGNATURE algorithm " + std::to_string(s.sig_alg));
  }
  RETURN_IF_ERROR(r.status("TPMT_SIGNATURE"));
  if (!r.empty()) return invalid_argument("trailing bytes after TPMT_SIGNATURE");
  return s;
}

Result<AkPublic> parse_ak_public(ByteSpan data) {
  std::string_view text = as_string_view(data);
  if (text.find("-----BEGIN") != std::string_view::npos) {
    AkPublic out;
    ASSIGN_OR_RETURN(out.key, crypto::PublicKey::from_pem(text));
    return out;
  }
  if (data.size() >= 2 && data[0] == 0x30) {  // DER SEQUENCE: SubjectPublicKeyInfo
    auto der = crypto::PublicKey::from_der(data);
    if (der.ok()) {
      AkPublic out;
      out.key = std::move(der).value();
      return out;
    }
  }
  // TPM2B_PUBLIC: a size that covers the rest; otherwise a bare TPMT_PUBLIC.
  if (data.size() >= 2 && ((size_t{data[0]} << 8) | data[1]) == data.size() - 2) {
    return parse_tpmt_public(data.subspan(2));
  }
  return parse_tpmt_public(data);
}

Bytes decode_flexible(ByteSpan data, bool looks_binary) {
  if (looks_binary) return Bytes(data.begin(), data.end());
  std::string text = strip_whitespace(as_string_view(data));
  if (text.empty()) return Bytes(data.begin(), data.end());
  std::string_view t = text;
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) t.remove_prefix(2);
  if (auto h = hex_decode(t); h.ok()) return std::move(h).value();
  if (auto b = base64_decode(text); b.ok()) return std::move(b).value();
  return Bytes(data.begin(), data.end());
}

}  // namespace custos::attestation::tpm
