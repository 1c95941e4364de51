// Token expiry, as Vault's expiration manager does it: every service token with a TTL has a
// lease of its own, kept at the token's expiry (created with the token, moved by each renewal,
// deleted with the token), so an expired token is revoked on time, with its children, the
// leases obtained with it and its cubbyhole, whether or not anyone presents it again.
// Lease IDs follow the token's creation path, as Vault's do:
//   auth/token/create/h<id>        auth/token/create, create-orphan
//   auth/token/create/<role>/h<id> a token role
//   auth/approle/login/h<id>       a login
//   auth/token/wrapping/h<id>      a response-wrapping token
// where <id> is the creation time (10 hex digits) and a digest derived from the token's hash
// (itself a hash of the token), so the ID tells nothing about the token but when it was made.
// sys/leases/revoke-prefix/auth/approle/ therefore revokes every token AppRole issued, and
// sys/leases/lookup shows a token's expiry.
#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>

#include "base/encoding.h"
#include "core/core.h"
#include "crypto/hash.h"

namespace custos::core {
namespace {

constexpr size_t kDigestChars = 32;
constexpr size_t kMaxPathChars = 256;

// Revoking a token's lease revokes the token (its tree, leases and cubbyhole).
class TokenExpiry final : public Engine {
 public:
  explicit TokenExpiry(std::function<TokenStore*()> tokens) : tokens_(std::move(tokens)) {}

  Result<Response> handle(Request& req) override {
    (void)req;
    return not_found("unsupported path");
  }

  Status revoke_secret(const boost::json::object& internal) override {
    ASSIGN_OR_RETURN(std::string hash, field_string(internal, "token_hash"));
    TokenStore* tokens = tokens_();
    if (hash.empty() || tokens == nullptr) return internal_error("a token lease is corrupt");
    // An expired token is revoked by the lookup itself; one whose last use is running is
    // revoked by that request; one already revoked is gone. Idempotent, as leases need.
    ASSIGN_OR_RETURN(std::optional<TokenEntry> e, tokens->lookup_hash(hash));
    if (!e) return ok_status();
    return tokens->revoke(*e);
  }

 private:
  std::function<TokenStore*()> tokens_;
};

bool safe_lease_path(std::string_view p) {
  if (p.empty() || p.size() > kMaxPathChars || p.find("..") != std::string_view::npos ||
      p.find("//") != std::string_view::npos || p.back() == '/') {
    return false;
  }
  for (char c : p) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '@' || c == '/';
    if (!ok) return false;
  }
  return true;
}

// "auth/<method>/...": the part of a lease ID before the digest.
std::string lease_base(const TokenEntry& e) {
  if (is_wrapping_token(e)) return "auth/token/wrapping";
  std::string path = e.path;
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.rfind("auth/", 0) != 0 || path.find('/', 5) == std::string::npos) {
    return "auth/token/create";
  }
  if (safe_lease_path(path)) return path;
  // A login path with characters a lease ID should not carry (a user name): the method's.
  std::string method = path.substr(0, path.find('/', 5));
  return safe_lease_path(method) ? method + "/login" : "auth/token/create";
}

}  // namespace

std::string token_lease_id(const TokenEntry& e) {
  // The creation time first, so the IDs of tokens issued together sort together: a lease's
  // record lands next to the previous one in the storage B-tree instead of at a random place.
  char when[24];
  std::snprintf(when, sizeof(when), "%010llx",
                static_cast<unsigned long long>(std::max<int64_t>(0, e.creation_time)));
  std::string digest =
      hex_encode(crypto::sha256(as_bytes("custos token lease\n" + e.hash))).substr(0, kDigestChars);
  return lease_base(e) + "/h" + when + digest;
}

std::shared_ptr<Engine> Core::make_token_expiry() {
  return std::make_shared<TokenExpiry>([this] { return tokens_.get(); });
}

namespace {

std::string lease_mount(const std::string& lease_id) {
  return lease_id.substr(0, lease_id.find('/', 5) + 1);  // "auth/<method>/"
}

}  // namespace

TokenStore::ExpiryHooks Core::token_expiry_hooks() {
  TokenStore::ExpiryHooks hooks;
  hooks.add = [this](const TokenEntry& e, WriteBatch& batch) -> std::function<void()> {
    if (e.type == "batch" || e.expire_time == 0) return {};
    std::string id = token_lease_id(e);
    return leases_->add_token_lease(id, lease_mount(id), e.hash, e.expire_time, batch);
  };
  hooks.track = [this](const TokenEntry& e) {
    if (e.type == "batch" || e.expire_time == 0) return ok_status();
    std::string id = token_lease_id(e);
    return leases_->track_token(id, lease_mount(id), e.hash, e.expire_time);
  };
  hooks.forget = [this](const TokenEntry& e) {
    if (e.type == "batch") return ok_status();
    return leases_->forget_token_lease(token_lease_id(e));
  };
  return hooks;
}

}  // namespace custos::core
