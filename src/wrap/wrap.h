// Wrapping a released key to the TEE's public key (docs/formats/kbs.md §3): the ISecL form
// (RSA-OAEP-256 of an AES-256-GCM session key + GCM ciphertext) and flattened JWE (RFC 7516 §7.2.2)
// with RSA-OAEP-256, ECDH-ES+A256KW or direct ECDH-ES, always enc A256GCM. Both ends of the wire
// use this one library: the key broker (kbs/) wraps, the workload (agent/) unwraps.
#pragma once

#include <string>

#include <boost/json/object.hpp>

#include "base/bytes.h"
#include "base/status.h"
#include "crypto/pkey.h"

namespace custos::wrap {

struct IseclWrapped {
  std::string wrapped_key;  // base64(iv(12) || ciphertext || tag(16))
  std::string wrapped_swk;  // base64(RSA-OAEP-SHA256(swk))
};

// `to` must be an RSA key.
Result<IseclWrapped> wrap_isecl(const crypto::PublicKey& to, ByteSpan plaintext);
Result<SecretBytes> unwrap_isecl(const crypto::PrivateKey& key, std::string_view wrapped_key,
                                 std::string_view wrapped_swk);

enum class JweAlg { kRsaOaep256, kEcdhEsA256Kw, kEcdhEs };
std::string_view jwe_alg_name(JweAlg alg);  // "RSA-OAEP-256", "ECDH-ES+A256KW", "ECDH-ES"

// {"protected","encrypted_key","iv","ciphertext","tag"}. RSA-OAEP-256 needs an RSA key, the
// ECDH-ES forms an EC key (P-256, P-384, P-521).
Result<boost::json::object> jwe_encrypt(const crypto::PublicKey& to, JweAlg alg,
                                        ByteSpan plaintext);
Result<SecretBytes> jwe_decrypt(const crypto::PrivateKey& key, const boost::json::object& jwe);

// RFC 7518 §4.6.2 Concat KDF (SHA-256), empty PartyUInfo/PartyVInfo.
SecretBytes concat_kdf(ByteSpan z, std::string_view algorithm_id, size_t key_bits);

// A TEE public key from a JWK: RSA (n/e, or Trustee's legacy k-mod/k-exp), EC P-256/P-384/P-521.
Result<crypto::PublicKey> public_key_from_jwk(const boost::json::object& jwk);

}  // namespace custos::wrap
