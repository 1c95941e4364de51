#include "wrap/wrap.h"

#include <boost/json.hpp>

#include "base/encoding.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/random.h"

namespace custos::wrap {

namespace {
constexpr size_t kCekSize = 32;
constexpr std::string_view kEnc = "A256GCM";

void put_be32(Bytes& out, uint32_t v) {
  out.push_back(static_cast<uint8_t>(v >> 24));
  out.push_back(static_cast<uint8_t>(v >> 16));
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

bool is_ec(crypto::KeyType t) {
  return t == crypto::KeyType::kEcP256 || t == crypto::KeyType::kEcP384 ||
         t == crypto::KeyType::kEcP521;
}

Result<std::string> member(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) {
    return invalid_argument("JWE: missing or non-string member \"" + std::string(key) + "\"");
  }
  return std::string(v->as_string());
}
}  // namespace

std::string_view jwe_alg_name(JweAlg alg) {
  switch (alg) {
    case JweAlg::kRsaOaep256: return "RSA-OAEP-256";
    case JweAlg::kEcdhEsA256Kw: return "ECDH-ES+A256KW";
    case JweAlg::kEcdhEs: return "ECDH-ES";
  }
  return "?";
}

SecretBytes concat_kdf(ByteSpan z, std::string_view algorithm_id, size_t key_bits) {
  size_t want = key_bits / 8;
  SecretBytes out(want);
  size_t filled = 0;
  for (uint32_t counter = 1; filled < want; ++counter) {
    Bytes input;
    put_be32(input, counter);
    input.insert(input.end(), z.begin(), z.end());
    put_be32(input, static_cast<uint32_t>(algorithm_id.size()));
    input.insert(input.end(), algorithm_id.begin(), algorithm_id.end());
    put_be32(input, 0);  // PartyUInfo: empty
    put_be32(input, 0);  // PartyVInfo: empty
    put_be32(input, static_cast<uint32_t>(key_bits));
    Bytes block = crypto::sha256(input);
    secure_wipe(input.data(), input.size());
    for (size_t i = 0; i < block.size() && filled < want; ++i) out.data()[filled++] = block[i];
    secure_wipe(block.data(), block.size());
  }
  return out;
}

Result<IseclWrapped> wrap_isecl(const crypto::PublicKey& to, ByteSpan plaintext) {
  if (to.empty() || to.type() != crypto::KeyType::kRsa) {
    return invalid_argument("key.invalid: the ISecL wrapping needs an RSA public key");
  }
  SecretBytes swk = crypto::random_secret(kCekSize);
  Bytes iv = crypto::random_bytes(crypto::kAeadNonceSize);
  ASSIGN_OR_RETURN(Bytes ct, crypto::aead_seal(crypto::AeadAlg::kAes256Gcm, swk.span(), iv,
                                               plaintext, {}));
  ASSIGN_OR_RETURN(Bytes wrapped_swk, to.rsa_oaep_encrypt(swk.span(), crypto::HashAlg::kSha256));
  Bytes blob = iv;
  blob.insert(blob.end(), ct.begin(), ct.end());
  return IseclWrapped{base64_encode(blob), base64_encode(wrapped_swk)};
}

Result<SecretBytes> unwrap_isecl(const crypto::PrivateKey& key, std::string_view wrapped_key,
                                 std::string_view wrapped_swk) {
  ASSIGN_OR_RETURN(Bytes swk_ct, base64_decode(wrapped_swk));
  ASSIGN_OR_RETURN(Bytes blob, base64_decode(wrapped_key));
  if (blob.size() < crypto::kAeadNonceSize + crypto::kAeadTagSize) {
    return invalid_argument("wrapped_key is too short");
  }
  ASSIGN_OR_RETURN(SecretBytes swk, key.rsa_oaep_decrypt(swk_ct, crypto::HashAlg::kSha256));
  ByteSpan all(blob);
  return crypto::aead_open(crypto::AeadAlg::kAes256Gcm, swk.span(),
                           all.first(crypto::kAeadNonceSize),
                           all.subspan(crypto::kAeadNonceSize), {});
}

Result<boost::json::object> jwe_encrypt(const crypto::PublicKey& to, JweAlg alg,
                                        ByteSpan plaintext) {
  if (to.empty()) return invalid_argument("key.invalid: no TEE public key");
  boost::json::object header;
  header["alg"] = jwe_alg_name(alg);
  header["enc"] = kEnc;
  SecretBytes cek;
  Bytes encrypted_key;
  if (alg == JweAlg::kRsaOaep256) {
    if (to.type() != crypto::KeyType::kRsa) {
      return invalid_argument("key.invalid: RSA-OAEP-256 needs an RSA key");
    }
    cek = crypto::random_secret(kCekSize);
    ASSIGN_OR_RETURN(encrypted_key, to.rsa_oaep_encrypt(cek.span(), crypto::HashAlg::kSha256));
  } else {
    if (!is_ec(to.type())) return invalid_argument("key.invalid: ECDH-ES needs an EC key");
    ASSIGN_OR_RETURN(crypto::PrivateKey eph, crypto::PrivateKey::generate(to.type()));
    ASSIGN_OR_RETURN(SecretBytes z, eph.ecdh(to));
    boost::system::error_code ec;
    boost::json::value epk = boost::json::parse(eph.public_jwk(), ec);
    if (ec || !epk.is_object()) return internal_error("could not encode the ephemeral key");
    header["epk"] = epk;
    if (alg == JweAlg::kEcdhEs) {
      cek = concat_kdf(z.span(), kEnc, kCekSize * 8);
    } else {
      SecretBytes kek = concat_kdf(z.span(), jwe_alg_name(alg), 256);
      cek = crypto::random_secret(kCekSize);
      ASSIGN_OR_RETURN(encrypted_key, crypto::aes_key_wrap(kek.span(), cek.span()));
    }
  }
  std::string protected_b64 = base64url_encode(as_bytes(boost::json::serialize(header)));
  Bytes iv = crypto::random_bytes(crypto::kAeadNonceSize);
  ASSIGN_OR_RETURN(Bytes sealed, crypto::aead_seal(crypto::AeadAlg::kAes256Gcm, cek.span(), iv,
                                                   plaintext, as_bytes(protected_b64)));
  ByteSpan s(sealed);
  boost::json::object out;
  out["protected"] = protected_b64;
  out["encrypted_key"] = base64url_encode(encrypted_key);
  out["iv"] = base64url_encode(iv);
  out["ciphertext"] = base64url_encode(s.first(s.size() - crypto::kAeadTagSize));
  out["tag"] = base64url_encode(s.last(crypto::kAeadTagSize));
  return out;
}

Result<SecretBytes> jwe_decrypt(const crypto::PrivateKey& key, const boost::json::object& jwe) {
  ASSIGN_OR_RETURN(std::string protected_b64, member(jwe, "protected"));
  ASSIGN_OR_RETURN(std::string ek_b64, member(jwe, "encrypted_key"));
  ASSIGN_OR_RETURN(std::string iv_b64, member(jwe, "iv"));
  ASSIGN_OR_RETURN(std::string ct_b64, member(jwe, "ciphertext"));
  ASSIGN_OR_RETURN(std::string tag_b64, member(jwe, "tag"));
  ASSIGN_OR_RETURN(Bytes header_raw, base64url_decode(protected_b64));
  boost::system::error_code ec;
  boost::json::value hv = boost::json::parse(as_string_view(header_raw), ec);
  if (ec || !hv.is_object()) return invalid_argument("JWE: protected header is not a JSON object");
  const auto& header = hv.as_object();
  ASSIGN_OR_RETURN(std::string alg, member(header, "alg"));
  ASSIGN_OR_RETURN(std::string enc, member(header, "enc"));
  if (enc != kEnc) return invalid_argument("JWE: unsupported enc " + enc);
  ASSIGN_OR_RETURN(Bytes encrypted_key, base64url_decode(ek_b64));
  SecretBytes cek;
  if (alg == jwe_alg_name(JweAlg::kRsaOaep256)) {
    ASSIGN_OR_RETURN(cek, key.rsa_oaep_decrypt(encrypted_key, crypto::HashAlg::kSha256));
  } else if (alg == jwe_alg_name(JweAlg::kEcdhEs) || alg == jwe_alg_name(JweAlg::kEcdhEsA256Kw)) {
    const auto* epk = header.if_contains("epk");
    if (epk == nullptr || !epk->is_object()) return invalid_argument("JWE: missing epk");
    ASSIGN_OR_RETURN(crypto::PublicKey peer,
                     crypto::PublicKey::from_jwk(boost::json::serialize(*epk)));
    ASSIGN_OR_RETURN(SecretBytes z, key.ecdh(peer));
    if (alg == jwe_alg_name(JweAlg::kEcdhEs)) {
      cek = concat_kdf(z.span(), kEnc, kCekSize * 8);
    } else {
      SecretBytes kek = concat_kdf(z.span(), alg, 256);
      ASSIGN_OR_RETURN(cek, crypto::aes_key_unwrap(kek.span(), encrypted_key));
    }
  } else {
    return invalid_argument("JWE: unsupported alg " + alg);
  }
  ASSIGN_OR_RETURN(Bytes iv, base64url_decode(iv_b64));
  ASSIGN_OR_RETURN(Bytes ct, base64url_decode(ct_b64));
  ASSIGN_OR_RETURN(Bytes tag, base64url_decode(tag_b64));
  if (iv.size() != crypto::kAeadNonceSize || tag.size() != crypto::kAeadTagSize) {
    return invalid_argument("JWE: bad iv or tag length");
  }
  ct.insert(ct.end(), tag.begin(), tag.end());
  return crypto::aead_open(crypto::AeadAlg::kAes256Gcm, cek.span(), iv, ct,
                           as_bytes(protected_b64));
}

Result<crypto::PublicKey> public_key_from_jwk(const boost::json::object& jwk) {
  if (jwk.contains("k-mod") || jwk.contains("k-exp")) {
    ASSIGN_OR_RETURN(std::string mod_b64, member(jwk, "k-mod"));
    ASSIGN_OR_RETURN(std::string exp_b64, member(jwk, "k-exp"));
    ASSIGN_OR_RETURN(Bytes mod, base64url_decode(mod_b64));
    ASSIGN_OR_RETURN(Bytes exp, base64url_decode(exp_b64));
    return crypto::PublicKey::from_rsa(mod, exp);
  }
  ASSIGN_OR_RETURN(crypto::PublicKey key, crypto::PublicKey::from_jwk(boost::json::serialize(jwk)));
  if (key.type() == crypto::KeyType::kEd25519) {
    return invalid_argument("Ed25519 keys cannot receive a wrapped key; use RSA or EC");
  }
  return key;
}

}  // namespace custos::wrap
