// The storage barrier: every value above it is encrypted with AES-256-GCM under the active
// keyring term before it reaches the physical backend, and authenticated (with its key path as
// associated data, so ciphertexts cannot be swapped between paths) when read back.
//
// Layout (docs/formats/barrier.md):
//   core/seal-config      plaintext JSON {type, secret_shares, secret_threshold}
//   core/root-key         AEAD(unseal key, root key)          (Shamir seal)
//   core/keyring          AEAD(root key, keyring JSON)
//   everything else       [0x01][term u32 BE][nonce 12][ciphertext || tag 16]
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/status.h"
#include "storage/backend.h"

namespace custos::core {

struct KeyTerm {
  uint32_t term = 0;
  SecretBytes key;  // 32 bytes
  SysTime install_time;
};

class Barrier {
 public:
  explicit Barrier(storage::Backend& backend, const Clock& clock);
  ~Barrier();

  storage::Backend& physical() { return backend_; }
  // The physical backend's limit on one transaction's ops (0: none).
  size_t max_transaction_ops() const { return backend_.max_transaction_ops(); }

  // Whether a keyring exists (the store was initialised).
  Result<bool> initialized();
  // Creates the first keyring term under a new root key; returns the root key.
  Result<SecretBytes> initialize();
  // The same under `root_key`, written in one transaction with `with` (the seal's records: what
  // opens the root key), so a failure writes nothing. Leaves the barrier unsealed on success.
  Status initialize(const SecretBytes& root_key, std::vector<storage::Op> with);
  // Loads the keyring with the root key; fails with kDataLoss if the key is wrong.
  Status unseal(const SecretBytes& root_key);
  // Unsealed: reads the keyring again with the root key it holds (an HA standby taking over:
  // the active server may have added terms meanwhile). On failure the barrier is unchanged.
  Status reload();
  void seal();
  bool sealed() const;

  // Adds a keyring term; new writes use it, old terms still decrypt.
  Result<uint32_t> rotate();
  struct KeyStatus {
    uint32_t term;
    SysTime install_time;
    uint64_t encryptions;
  };
  Result<KeyStatus> key_status() const;

  // Encrypted logical storage. Fails with kUnavailable when sealed.
  Result<std::optional<SecretBytes>> get(std::string_view key);
  Status put(std::string_view key, ByteSpan value);
  Status del(std::string_view key);
  Result<std::vector<std::string>> list(std::string_view prefix);
  Status transaction(std::vector<storage::Op> ops);  // values are plaintext here

  // Derives a purpose-bound key from the root key (HKDF): batch tokens, audit HMAC, etc.
  Result<SecretBytes> derive_key(std::string_view purpose) const;

  // Plain helpers for the seal layer (values not encrypted by the keyring).
  Result<Bytes> encrypt_with(ByteSpan key, std::string_view path, ByteSpan plaintext) const;
  Result<SecretBytes> decrypt_with(ByteSpan key, std::string_view path, ByteSpan blob) const;

 private:
  Result<Bytes> seal_value(std::string_view key, ByteSpan plaintext);
  Result<SecretBytes> open_value(std::string_view key, ByteSpan blob) const;
  Status persist_keyring();
  Result<Bytes> keyring_blob(const SecretBytes& root_key, const std::map<uint32_t, KeyTerm>& terms,
                             uint32_t active) const;

  storage::Backend& backend_;
  const Clock& clock_;
  Status load_keyring_locked(const SecretBytes& root_key);  // mu_ held exclusively
  mutable std::shared_mutex mu_;
  bool sealed_ = true;
  SecretBytes root_key_;
  std::map<uint32_t, KeyTerm> terms_;
  uint32_t active_term_ = 0;
  std::atomic<uint64_t> encryptions_{0};
};

}  // namespace custos::core
