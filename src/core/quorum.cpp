#include "core/quorum.h"

#include "base/encoding.h"
#include "crypto/random.h"
#include "crypto/shamir.h"

namespace custos::core {

Result<SecretBytes> decode_key_share(std::string_view key) {
  auto hex = hex_decode(key);
  if (hex.ok()) return SecretBytes(std::move(*hex));
  auto b64 = base64_decode(key);
  if (b64.ok()) return SecretBytes(std::move(*b64));
  return invalid_argument("'key' must be a valid hex or base64 string");
}

Result<SecretBytes> combine_key_shares(const std::vector<SecretBytes>& shares, int threshold) {
  if (shares.empty()) return invalid_argument("no key shares given");
  if (threshold == 1) return shares.front().clone();
  auto combined = crypto::shamir_combine(shares);
  if (!combined.ok()) {
    return invalid_argument("failed to combine key shares: " + combined.status().message());
  }
  return std::move(*combined);
}

Status check_share_counts(int shares, int threshold, const std::string& what) {
  if (shares < 1 || shares > 255) {
    return invalid_argument(what + "_shares must be between 1 and 255");
  }
  if (threshold < 1 || threshold > shares) {
    return invalid_argument(what + "_threshold must be between 1 and " + what + "_shares");
  }
  if (shares > 1 && threshold < 2) {
    return invalid_argument(what + "_threshold must be at least 2 when " + what +
                            "_shares is above 1");
  }
  return ok_status();
}

Result<std::vector<SecretBytes>> split_key_shares(const SecretBytes& key, int shares, int threshold,
                                                  const std::string& what) {
  RETURN_IF_ERROR(check_share_counts(shares, threshold, what));
  std::vector<SecretBytes> out;
  if (shares == 1) {
    out.push_back(key.clone());
    return out;
  }
  return crypto::shamir_split(key.span(), shares, threshold);
}

void ShareQuorum::start(int required) {
  shares_.clear();
  required_ = required;
  nonce_ = crypto::random_uuid();
}

void ShareQuorum::clear() {
  shares_.clear();
  required_ = 0;
  nonce_.clear();
}

Result<bool> ShareQuorum::add(std::string_view key, std::string_view nonce, Rules rules) {
  if (!started()) return invalid_argument("no operation in progress");
  if (rules == kOperation) {
    if (nonce.empty()) return invalid_argument("'nonce' must be specified");
    // The nonce is public (the status shows it): a plain comparison leaks nothing.
    if (nonce != nonce_) return invalid_argument("incorrect nonce supplied");
  }
  if (key.empty()) return invalid_argument("'key' must be specified");
  ASSIGN_OR_RETURN(SecretBytes share, decode_key_share(key));
  if (share.size() < 2 || share.size() > 128) return invalid_argument("invalid key length");
  for (const auto& s : shares_) {
    if (!(s == share)) continue;
    if (rules == kOperation) {
      return invalid_argument("given key has already been provided during this operation");
    }
    return progress() >= required_;  // unseal: the same share twice counts once
  }
  shares_.push_back(std::move(share));
  return progress() >= required_;
}

Result<SecretBytes> ShareQuorum::combine() {
  auto key = combine_key_shares(shares_, required_);
  shares_.clear();
  return key;
}

}  // namespace custos::core
