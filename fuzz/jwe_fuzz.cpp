// Fuzzes what a workload parses from a key broker's answer (src/wrap/): flattened JWE objects
// (JSON members, base64url, the protected header's JSON and its epk JWK), the ISecL pair, TEE
// JWKs in both spellings, and the base64 decoders underneath. The input is the JSON text.
#include <cstddef>
#include <cstdint>

#include <boost/json.hpp>

#include "base/encoding.h"
#include "crypto/pkey.h"
#include "wrap/wrap.h"

namespace {

// A fixed test key (not used anywhere else), so that seeds made for it decrypt.
constexpr std::string_view kEcKeyPem = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgM2gTct1WsEYc9H/R
ksMYETZ7GDjULfylOw6RndJasuqhRANCAASBS4H2/ASVuwg1UPSC0ksLn7NDXkH7
kCRPypnN/p1UuZQOtjRdNmv4JXWurzrDw+hzY5aRhtWyqxfABzSSGzkh
-----END PRIVATE KEY-----
)";

const custos::crypto::PrivateKey& ec_key() {
  static const custos::crypto::PrivateKey k = *custos::crypto::PrivateKey::from_pem(kEcKeyPem);
  return k;
}
const custos::crypto::PrivateKey& rsa_key() {
  static const custos::crypto::PrivateKey k =
      *custos::crypto::PrivateKey::generate(custos::crypto::KeyType::kRsa, 2048);
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)base64_decode(text);
  (void)base64url_decode(text);

  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec || !v.is_object()) return 0;
  const boost::json::object& o = v.as_object();
  (void)wrap::jwe_decrypt(ec_key(), o);
  (void)wrap::jwe_decrypt(rsa_key(), o);
  (void)wrap::public_key_from_jwk(o);
  const auto* wk = o.if_contains("wrapped_key");
  const auto* ws = o.if_contains("wrapped_swk");
  if (wk && ws && wk->is_string() && ws->is_string()) {
    (void)wrap::unwrap_isecl(rsa_key(), wk->as_string(), ws->as_string());
  }
  return 0;
}
