// The PKCS#11 auto-unseal seal (Vault's seal "pkcs11"; docs/seal.md): loads the HSM's PKCS#11
// library, logs in to one token, and encrypts/decrypts the root key and the recovery key with a
// key that never leaves the HSM (AES-256-GCM by default, or RSA-OAEP).
//
// One session, guarded by a mutex: the seal is used at init and unseal only. When the HSM drops
// the session (restart, removed token), the next call opens a new one and retries once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/bytes.h"
#include "base/status.h"
#include "core/seal.h"

namespace custos::hsm {

struct Pkcs11SealOptions {
  std::string lib;               // path of the PKCS#11 library (required)
  std::optional<uint64_t> slot;  // slot id; or
  std::string token_label;       // token label (one of the two is required)
  SecretString pin;              // user PIN (required)
  std::string key_label;         // label of the seal key (required)
  uint64_t mechanism = 0x1087;   // CKM_AES_GCM; or CKM_RSA_PKCS_OAEP (0x9)
  bool generate_key = false;     // AES: create the key when no key has the label
  std::string rsa_oaep_hash = "sha256";
};

class Pkcs11Seal final : public core::AutoSeal {
 public:
  // Loads the library, finds the token, logs in and finds (or generates) the key. Every failure
  // is a clear error naming the step and the PKCS#11 return code; the PIN never appears in one.
  static Result<std::unique_ptr<Pkcs11Seal>> open(Pkcs11SealOptions options);
  ~Pkcs11Seal() override;

  std::string type() const override { return "pkcs11"; }
  Result<Bytes> encrypt(ByteSpan plaintext, std::string_view aad) override;
  Result<SecretBytes> decrypt(ByteSpan blob, std::string_view aad) override;

  struct Impl;

 private:
  explicit Pkcs11Seal(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "CKR_PIN_INCORRECT" for 0xA0, or "CKR_0x..." for codes without a name here.
std::string ckr_name(unsigned long rv);
// Parses Vault's mechanism setting: "0x1087", "4231", "CKM_AES_GCM", "CKM_RSA_PKCS_OAEP".
Result<uint64_t> parse_mechanism(std::string_view s);

}  // namespace custos::hsm
