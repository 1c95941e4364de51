// The token's objects and what they can do, apart from the C ABI (module.cpp): each released key
// is two objects, its private key (sign only: never extractable, every secret attribute
// sensitive) and its public key. docs/pkcs11.md lists the attributes and mechanisms.
#pragma once

#include <p11-kit/pkcs11.h>

#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/status.h"
#include "crypto/pkey.h"

namespace custos::pkcs11 {

struct TokenKey {
  std::string label;  // CKA_LABEL
  std::string id;     // CKA_ID (the broker's key id)
  crypto::PrivateKey key;
};

class Token {
 public:
  // `private_objects`: the private keys carry CKA_PRIVATE (visible only after C_Login), as they
  // do when the token has a PIN.
  Token(std::vector<TokenKey> keys, bool private_objects);

  // Handles 1..2n: key i's private key is 2i+1, its public key 2i+2.
  size_t object_count() const { return 2 * keys_.size(); }
  bool valid(CK_OBJECT_HANDLE h) const { return h >= 1 && h <= object_count(); }
  bool is_private_key(CK_OBJECT_HANDLE h) const { return valid(h) && h % 2 == 1; }
  // Whether C_FindObjects shows it to a session in this login state.
  bool visible(CK_OBJECT_HANDLE h, bool logged_in) const;
  const TokenKey& key(CK_OBJECT_HANDLE h) const { return keys_[(h - 1) / 2]; }

  enum class Lookup { kFound, kUnknownType, kSensitive };
  // The attribute's value as PKCS#11 encodes it (CK_ULONG, CK_BBOOL, bytes).
  Lookup attribute(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, Bytes& out) const;
  // Whether every attribute of the template has exactly the given value.
  bool matches(CK_OBJECT_HANDLE h, const CK_ATTRIBUTE* tmpl, CK_ULONG count) const;

 private:
  std::vector<TokenKey> keys_;
  bool private_objects_;
};

// Signing mechanisms (C_GetMechanismList), and the checked form of one C_SignInit asked for.
std::vector<CK_MECHANISM_TYPE> sign_mechanisms();
bool is_rsa_mechanism(CK_MECHANISM_TYPE m);
bool is_ec_mechanism(CK_MECHANISM_TYPE m);

struct SignMechanism {
  CK_MECHANISM_TYPE type = 0;
  // RSA-PSS: the parameters' hash (checked against the digest's length when signing) and salt.
  std::optional<crypto::HashAlg> pss_hash;
  int pss_salt_len = -1;
};

// CKR_OK, CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID or CKR_KEY_TYPE_INCONSISTENT.
CK_RV check_sign_mechanism(const CK_MECHANISM& m, const crypto::PrivateKey& key,
                           SignMechanism& out);
// The signature's length for this key (RSA: the modulus; ECDSA: r||s).
size_t signature_length(const crypto::PrivateKey& key);
// Signs `data` (a digest, a DigestInfo or the message, as the mechanism defines) with `key`.
// CKR_DATA_LEN_RANGE for input the mechanism does not take.
CK_RV sign(const SignMechanism& m, const crypto::PrivateKey& key, ByteSpan data, Bytes& sig);

}  // namespace custos::pkcs11
