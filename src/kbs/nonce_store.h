// Single-use challenge nonces (docs/formats/kbs.md, "nonce"): 32 random bytes, base64, bound to a
// target (a key id, a session, an auth mount), with a TTL from an injected Clock. Kept in memory:
// a restart invalidates outstanding challenges, which only costs the client a retry.
//
// Entries are keyed by SHA-256 of the nonce, and the nonce itself is compared in constant time,
// so lookups leak nothing about outstanding nonces through timing. Spent and expired entries are
// kept for one extra TTL so a replay is reported as "nonce.replayed"/"nonce.expired" rather than
// "nonce.unknown"; only live entries count against the capacity.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>

#include "base/clock.h"
#include "base/status.h"

namespace custos::kbs {

struct IssuedNonce {
  std::string nonce;  // base64 of 32 bytes
  SysTime expires_at;
};

class NonceStore {
 public:
  NonceStore(const Clock& clock, Seconds ttl, size_t capacity)
      : clock_(clock), ttl_(ttl), capacity_(capacity) {}

  // kResourceExhausted ("nonce.capacity: ...") when `capacity` live nonces are outstanding.
  Result<IssuedNonce> issue(const std::string& target);
  // Consumes the nonce (whatever the outcome of the request it authorizes). Failures are
  // kUnauthenticated with a message starting with the reason code: nonce.missing,
  // nonce.unknown, nonce.replayed, nonce.expired, nonce.wrong_target.
  Status consume(std::string_view nonce, const std::string& target);

  size_t live() const;
  Seconds ttl() const { return ttl_; }

 private:
  struct Entry {
    std::string nonce;
    std::string target;
    SysTime expires_at;
    bool spent = false;
  };
  void sweep_locked(SysTime now);

  const Clock& clock_;
  Seconds ttl_;
  size_t capacity_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // sha256(nonce) hex -> entry
  size_t live_ = 0;
};

}  // namespace custos::kbs
