// Key shares collected toward a threshold, for the operations that a quorum of unseal (or, with
// an auto seal, recovery) key holders authorises: unseal, root token generation, rekeying and
// the verification of new shares (docs/quorum.md). Not thread-safe: Core guards each one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/status.h"

namespace custos::core {

// Decodes a key share given as hex or base64 (Vault accepts both).
Result<SecretBytes> decode_key_share(std::string_view key);

// Combines `threshold` shares into the key (one share is the key itself).
Result<SecretBytes> combine_key_shares(const std::vector<SecretBytes>& shares, int threshold);

// Checks share count and threshold the way Vault words it; `what` is "secret" or "recovery".
Status check_share_counts(int shares, int threshold, const std::string& what);

// Splits `key` into `shares` Shamir shares, `threshold` of which recombine it (one share: the
// key itself), after check_share_counts().
Result<std::vector<SecretBytes>> split_key_shares(const SecretBytes& key, int shares, int threshold,
                                                  const std::string& what);

class ShareQuorum {
 public:
  // Starts an attempt that needs `required` shares, under a fresh nonce.
  void start(int required);
  // Forgets the attempt and its shares.
  void clear();
  // Forgets the shares given so far; the attempt and its nonce stay.
  void clear_shares() { shares_.clear(); }

  bool started() const { return required_ > 0; }
  const std::string& nonce() const { return nonce_; }
  int required() const { return required_; }
  int progress() const { return static_cast<int>(shares_.size()); }

  // Vault's two rules: unseal takes no nonce and counts a repeated share once, silently; root
  // generation, rekey and verification require the attempt's nonce and refuse a repeated share.
  enum Rules { kUnseal, kOperation };
  // Adds one share; returns whether the threshold is reached.
  Result<bool> add(std::string_view key, std::string_view nonce, Rules rules);
  // The key the shares combine to; the shares are forgotten either way.
  Result<SecretBytes> combine();

 private:
  std::string nonce_;
  int required_ = 0;
  std::vector<SecretBytes> shares_;
};

}  // namespace custos::core
