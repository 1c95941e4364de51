// The token store: service tokens (stored hashed, never in plaintext), batch tokens (encrypted,
// self-contained, not stored), accessors, the parent/child tree, TTLs and use counts.
//
// Storage below the token view (docs/formats/barrier.md):
//   id/<sha256(token) hex>          TokenEntry JSON
//   accessor/<accessor>             {"hash": <sha256 hex>}
//   parent/<parent hash>/<child>    "" (one key per child, for tree revocation)
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/json/object.hpp>

#include "base/clock.h"
#include "core/view.h"

namespace custos::core {

// num_uses of a token whose last use is running; it is revoked when that request is done.
inline constexpr int64_t kRevocationPending = -1;

struct TokenEntry {
  std::string hash;  // sha256 of the token, hex: the storage key
  std::string accessor;
  std::string parent_hash;  // empty for orphans and root tokens
  std::vector<std::string> policies;  // sorted, unique
  boost::json::object meta;
  std::string display_name = "token";
  std::string path = "auth/token/create";
  std::string type = "service";  // or "batch"
  int64_t creation_time = 0;     // unix seconds
  int64_t creation_ttl = 0;      // seconds; 0 = no expiry
  int64_t explicit_max_ttl = 0;  // seconds; 0 = none
  int64_t expire_time = 0;       // unix seconds; 0 = never
  int64_t num_uses = 0;          // 0 = unlimited
  int64_t period = 0;
  bool renewable = false;
  bool orphan = false;
  int64_t last_renewal_time = 0;
  // token_bound_cidrs: the token is only accepted from these source blocks (empty: anywhere).
  std::vector<std::string> bound_cidrs;
  // The type of the auth method whose login minted the token ("attest", "userpass", ...), set by
  // Core alone (no API takes it); empty for tokens of the token store. Engines trust `meta` as an
  // auth method's own statement only with it (a token's creator can set any meta otherwise).
  std::string auth_method_type;

  bool is_root() const;
  boost::json::object to_json() const;
  static Result<TokenEntry> from_json(const boost::json::object& o);
};

struct TokenCreateParams {
  std::vector<std::string> policies;
  boost::json::object meta;
  std::string display_name = "token";
  std::string parent_hash;
  std::string type = "service";
  int64_t ttl = 0;  // seconds; 0 = default
  int64_t explicit_max_ttl = 0;
  int64_t num_uses = 0;
  int64_t period = 0;
  bool renewable = true;
  bool no_default_policy = false;
  bool orphan = false;
  std::string id;  // caller-chosen token (root/sudo only; dev root token)
  std::vector<std::string> bound_cidrs;  // validated CIDR blocks (core/auth/cidr.h)
  std::string path = "auth/token/create";
  std::string auth_method_type;  // TokenEntry::auth_method_type
  // A response-wrapping token (core/wrapping.cpp): the only tokens that may hold the
  // "response-wrapping" policy.
  bool wrapping = false;
};

// True for a token minted to wrap a response: its only policy is "response-wrapping".
bool is_wrapping_token(const TokenEntry& e);
// The ID of a token's own lease (core/token_leases.cpp): "auth/<method>/<path>/h<id>",
// <id> being the creation time and a digest derived from the token's hash.
std::string token_lease_id(const TokenEntry& e);

class TokenStore {
 public:
  TokenStore(View view, const Clock& clock, int64_t default_ttl, int64_t max_ttl);

  // Derives the batch-token key; called after unseal.
  Status load(Barrier& barrier);
  void clear_cache();

  // Returns the new token and its entry.
  Result<std::pair<std::string, TokenEntry>> create(const TokenCreateParams& params);
  // A valid, unexpired token's entry; nullopt for unknown or expired tokens (constant-time
  // comparison happens through the hash lookup: the token itself is never compared).
  Result<std::optional<TokenEntry>> lookup(std::string_view token);
  Result<std::optional<TokenEntry>> lookup_hash(const std::string& hash);
  Result<std::optional<TokenEntry>> lookup_accessor(std::string_view accessor);
  // Takes one use of a token limited to num_uses, before the request runs, as Vault does. Uses
  // are taken one at a time from the stored entry, so concurrent requests can never share one.
  // Returns true for the token's last use: the token is then marked for revocation (no other
  // request may use it) and the caller revokes it once its request is done. PermissionDenied
  // when no use is left (another request took the last one). `entry` is updated to the uses
  // left after this one (0 after the last), which is what lookup-self then shows, as in Vault.
  Result<bool> use(TokenEntry& entry);
  // Extends the TTL by `increment` seconds (0: by the creation TTL), capped by max TTLs. Works on
  // the stored entry, so a use taken since `entry` was read is kept.
  Result<TokenEntry> renew(const TokenEntry& entry, int64_t increment);
  // Revokes the token and, unless orphan_children, every descendant.
  Status revoke(const TokenEntry& entry, bool orphan_children = false);
  Result<std::vector<std::string>> list_accessors();
  // Whether a service token's entry is stored (expired or not), read past the cache.
  Result<bool> stored(const std::string& hash);

  // auth/token/tidy: the clean-up Vault's token tidy does, for what lazy expiry and interrupted
  // revocations leave behind. Revokes expired tokens (each with its tree, leases and
  // cubbyhole), revokes tokens whose parent is gone (a tree revocation cut short), and deletes
  // accessor entries whose token is gone. Reads entries past the cache, so it does not fill it.
  struct TidyReport {
    size_t expired = 0;
    size_t parentless = 0;
    size_t accessors = 0;
  };
  Result<TidyReport> tidy();
  // Called for every token revoked (tree revocation included), before its entry is deleted, so
  // leases obtained with it are revoked too. A failure stops the revocation.
  void set_revoke_hook(std::function<Status(const std::string& hash)> hook) {
    revoke_hook_ = std::move(hook);
  }
  // Core's side of token expiry (core/token_leases.cpp), which keeps each service token with
  // an expiry under a lease of its own, so the lease manager revokes it when it expires,
  // whether or not anyone presents it.
  struct ExpiryHooks {
    // A new token: adds its lease's writes to `batch` (keys from the barrier's root), committed
    // in one transaction with the token's own; returns what to run once they are.
    std::function<std::function<void()>(const TokenEntry&, WriteBatch& batch)> add;
    // Registers or moves the lease of a stored token: before a renewal is stored (a failure
    // fails the renewal), and by tidy for live tokens that may have none.
    std::function<Status(const TokenEntry&)> track;
    // A token just revoked: deletes its lease (not indexed with the leases obtained with the
    // token, which the revoke hook revokes, to spare a token's creation one more key).
    std::function<Status(const TokenEntry&)> forget;
  };
  void set_expiry_hooks(ExpiryHooks hooks) { expiry_ = std::move(hooks); }
  // Revokes (with their trees) the tokens created under `path_prefix` ("auth/approle/"): the
  // tokens an auth method issued, when it is disabled. Returns how many.
  Result<size_t> revoke_created_under(const std::string& path_prefix);

  int64_t default_ttl() const { return default_ttl_; }
  int64_t max_ttl() const { return max_ttl_; }

 private:
  Status save(const TokenEntry& e);
  // The stored entry (through the cache) as it is, expired or marked for revocation.
  Result<std::optional<TokenEntry>> load_hash(const std::string& hash);
  Status revoke_tree(const std::string& hash, int depth);
  Result<std::optional<TokenEntry>> decode_batch(std::string_view token);

  View view_;
  const Clock& clock_;
  int64_t default_ttl_;
  int64_t max_ttl_;
  SecretBytes batch_key_;
  std::mutex mu_;
  std::unordered_map<std::string, TokenEntry> cache_;  // guarded by mu_
  // Serializes the read-modify-write of entries (uses, renewals, orphaning): none may lose
  // another's change.
  std::mutex update_mu_;
  std::function<Status(const std::string& hash)> revoke_hook_;
  ExpiryHooks expiry_;
};

std::string token_hash(std::string_view token);
// Vault-style random identifiers: "hvs.<24 base62 chars>" tokens, base62 accessors.
std::string random_base62(size_t n);

}  // namespace custos::core
