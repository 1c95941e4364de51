#include "kbs/nonce_store.h"

#include "base/encoding.h"
#include "crypto/hash.h"
#include "crypto/random.h"

namespace custos::kbs {

namespace {
constexpr size_t kNonceBytes = 32;

std::string key_of(std::string_view nonce) { return hex_encode(crypto::sha256(as_bytes(nonce))); }
}  // namespace

void NonceStore::sweep_locked(SysTime now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& e = it->second;
    if (!e.spent && e.expires_at <= now) {
      // Expired: no longer live, but remembered for one more TTL to name the failure.
      e.spent = true;
      --live_;
    }
    if (e.expires_at + ttl_ <= now) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

Result<IssuedNonce> NonceStore::issue(const std::string& target) {
  SysTime now = clock_.now();
  std::lock_guard lock(mu_);
  if (live_ >= capacity_) sweep_locked(now);
  if (live_ >= capacity_) {
    return resource_exhausted("nonce.capacity: too many outstanding challenges (" +
                              std::to_string(capacity_) + "); retry later");
  }
  IssuedNonce out;
  Bytes raw = crypto::random_bytes(kNonceBytes);
  out.nonce = base64_encode(raw);
  out.expires_at = now + ttl_;
  entries_[key_of(out.nonce)] = Entry{out.nonce, target, out.expires_at, false};
  ++live_;
  return out;
}

Status NonceStore::consume(std::string_view nonce, const std::string& target) {
  if (nonce.empty()) return unauthenticated("nonce.missing: no nonce in the request");
  SysTime now = clock_.now();
  std::lock_guard lock(mu_);
  auto it = entries_.find(key_of(nonce));
  if (it == entries_.end() || !constant_time_equal(it->second.nonce, nonce)) {
    return unauthenticated("nonce.unknown: the nonce was not issued by this server or is too old");
  }
  Entry& e = it->second;
  if (e.spent) {
    if (e.expires_at <= now) return unauthenticated("nonce.expired: the nonce has expired");
    return unauthenticated("nonce.replayed: the nonce was already used");
  }
  e.spent = true;
  --live_;
  if (e.expires_at <= now) return unauthenticated("nonce.expired: the nonce has expired");
  if (!constant_time_equal(e.target, target)) {
    return unauthenticated("nonce.wrong_target: the nonce was issued for another key or resource");
  }
  return ok_status();
}

size_t NonceStore::live() const {
  std::lock_guard lock(mu_);
  return live_;
}

}  // namespace custos::kbs
