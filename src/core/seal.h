// Auto-unseal (docs/seal.md): a key the server never holds, inside an HSM, encrypts the root key,
// so the server unseals itself at start instead of waiting for Shamir shares. Recovery keys
// (Shamir shares of a separate random key that the seal also encrypts) authorise an operator to
// unseal again after a manual seal; they cannot decrypt anything themselves.
//
// Core sees only this interface; src/hsm/ implements it over PKCS#11.
#pragma once

#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/status.h"

namespace custos::core {

class AutoSeal {
 public:
  virtual ~AutoSeal() = default;

  // The seal type Vault reports in sys/seal-status ("pkcs11").
  virtual std::string type() const = 0;

  // Encrypts a small secret (a key) bound to `aad`; the blob is opaque to the caller and carries
  // what decrypt() needs (key label, mechanism, IV). Fails with kUnavailable when the HSM cannot
  // be reached, so the server stays sealed with a clear reason.
  virtual Result<Bytes> encrypt(ByteSpan plaintext, std::string_view aad) = 0;
  virtual Result<SecretBytes> decrypt(ByteSpan blob, std::string_view aad) = 0;
};

}  // namespace custos::core
