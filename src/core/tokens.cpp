#include "core/tokens.h"

#include <algorithm>
#include <boost/json.hpp>
#include <map>
#include <set>

#include "base/encoding.h"
#include "base/metrics.h"
#include "core/engine.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "policy/policy.h"

namespace custos::core {
namespace {

constexpr std::string_view kServicePrefix = "hvs.";
constexpr std::string_view kBatchPrefix = "hvb.";
constexpr int kMaxTreeDepth = 256;

std::vector<std::string> normalize_policies(std::vector<std::string> p, bool add_default) {
  std::set<std::string> s;
  for (auto& x : p) {
    if (!x.empty()) s.insert(std::move(x));
  }
  if (s.count("root")) return {"root"};
  if (add_default) s.insert("default");
  return {s.begin(), s.end()};
}

}  // namespace

bool is_wrapping_token(const TokenEntry& e) {
  return e.type == "service" && e.policies.size() == 1 &&
         e.policies.front() == policy::kResponseWrappingPolicyName;
}

namespace {

// Vault's vault_token_creation counter, by token type and the auth method that issued it
// (params.path: "auth/<method>/...").
void count_creation(const TokenCreateParams& params) {
  std::string method = "token";
  if (params.path.rfind("auth/", 0) == 0) {
    size_t end = params.path.find('/', 5);
    method = params.path.substr(5, end == std::string::npos ? std::string::npos : end - 5);
  }
  // Counters live as long as the registry: each thread looks one up once per label pair, so
  // token creation does not take the registry's lock (which a scrape holds while it renders).
  thread_local std::map<std::pair<std::string, std::string>, metrics::Counter*> seen;
  auto key = std::make_pair(std::move(method), params.type);
  auto it = seen.find(key);
  if (it == seen.end()) {
    metrics::Counter& c = metrics::Registry::global().counter(
        "vault_token_creation", "tokens created",
        {{"auth_method", key.first}, {"token_type", key.second}});
    it = seen.emplace(std::move(key), &c).first;
  }
  it->second->inc();
}

}  // namespace

std::string random_base62(size_t n) {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out;
  out.reserve(n);
  while (out.size() < n) {
    Bytes b = crypto::random_bytes(n * 2);
    for (uint8_t c : b) {
      if (c < 248 && out.size() < n) out += kAlphabet[c % 62];  // 248 = 4*62: no modulo bias
    }
  }
  return out;
}

std::string token_hash(std::string_view token) { return hex_encode(crypto::sha256(as_bytes(token))); }

bool TokenEntry::is_root() const {
  return policies.size() == 1 && policies[0] == "root";
}

boost::json::object TokenEntry::to_json() const {
  boost::json::object o;
  o["hash"] = hash;
  o["accessor"] = accessor;
  o["parent"] = parent_hash;
  boost::json::array p;
  for (const auto& x : policies) p.emplace_back(x);
  o["policies"] = std::move(p);
  o["meta"] = meta;
  o["display_name"] = display_name;
  o["path"] = path;
  o["type"] = type;
  o["creation_time"] = creation_time;
  o["creation_ttl"] = creation_ttl;
  o["explicit_max_ttl"] = explicit_max_ttl;
  o["expire_time"] = expire_time;
  o["num_uses"] = num_uses;
  o["period"] = period;
  o["renewable"] = renewable;
  o["orphan"] = orphan;
  o["last_renewal_time"] = last_renewal_time;
  if (!bound_cidrs.empty()) o["bound_cidrs"] = to_string_array(bound_cidrs);
  if (!auth_method_type.empty()) o["auth_method_type"] = auth_method_type;
  return o;
}

Result<TokenEntry> TokenEntry::from_json(const boost::json::object& o) {
  TokenEntry e;
  auto s = [&](const char* k) {
    const auto* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  auto i = [&](const char* k) -> int64_t {
    const auto* v = o.if_contains(k);
    return v && v->is_int64() ? v->as_int64() : 0;
  };
  auto b = [&](const char* k) {
    const auto* v = o.if_contains(k);
    return v && v->is_bool() && v->as_bool();
  };
  e.hash = s("hash");
  e.accessor = s("accessor");
  e.parent_hash = s("parent");
  if (const auto* p = o.if_contains("policies"); p && p->is_array()) {
    for (const auto& x : p->as_array()) {
      if (x.is_string()) e.policies.emplace_back(x.as_string());
    }
  }
  if (const auto* m = o.if_contains("meta"); m && m->is_object()) e.meta = m->as_object();
  e.display_name = s("display_name");
  e.path = s("path");
  e.type = s("type");
  e.creation_time = i("creation_time");
  e.creation_ttl = i("creation_ttl");
  e.explicit_max_ttl = i("explicit_max_ttl");
  e.expire_time = i("expire_time");
  e.num_uses = i("num_uses");
  e.period = i("period");
  e.renewable = b("renewable");
  e.orphan = b("orphan");
  e.last_renewal_time = i("last_renewal_time");
  e.auth_method_type = s("auth_method_type");
  if (const auto* c = o.if_contains("bound_cidrs"); c && c->is_array()) {
    for (const auto& x : c->as_array()) {
      if (!x.is_string()) return data_loss("token entry is corrupt");
      e.bound_cidrs.emplace_back(x.as_string());
    }
  }
  if (e.hash.empty()) return data_loss("token entry is incomplete");
  return e;
}

TokenStore::TokenStore(View view, const Clock& clock, int64_t default_ttl, int64_t max_ttl)
    : view_(std::move(view)), clock_(clock), default_ttl_(default_ttl), max_ttl_(max_ttl) {}

Status TokenStore::load(Barrier& barrier) {
  ASSIGN_OR_RETURN(SecretBytes k, barrier.derive_key("custos/batch-tokens/v1"));
  std::lock_guard lock(mu_);
  batch_key_ = std::move(k);
  cache_.clear();
  return ok_status();
}

void TokenStore::clear_cache() {
  std::lock_guard lock(mu_);
  cache_.clear();
  batch_key_.wipe();
}

Status TokenStore::save(const TokenEntry& e) {
  RETURN_IF_ERROR(view_.put_json("id/" + e.hash, e.to_json()));
  std::lock_guard lock(mu_);
  cache_[e.hash] = e;
  return ok_status();
}

Result<std::pair<std::string, TokenEntry>> TokenStore::create(const TokenCreateParams& params) {
  TokenEntry e;
  int64_t now = to_unix_seconds(clock_.now());
  for (const auto& name : params.policies) {
    if (!params.wrapping &&
        policy::normalize_policy_name(name) == policy::kResponseWrappingPolicyName) {
      // Held only by tokens Core mints to wrap a response: unwrap trusts that policy.
      return invalid_argument("the \"response-wrapping\" policy cannot be given to a token");
    }
  }
  e.policies = normalize_policies(params.policies, !params.no_default_policy);
  e.meta = params.meta;
  e.display_name = params.display_name.empty() ? "token" : params.display_name;
  if (e.display_name != "root" && e.display_name.rfind("token", 0) != 0) {
    e.display_name = "token-" + e.display_name;
  }
  e.path = params.path;
  e.type = params.type;
  e.creation_time = now;
  e.num_uses = params.num_uses;
  e.period = params.period;
  e.explicit_max_ttl = params.explicit_max_ttl;
  e.orphan = params.orphan || params.parent_hash.empty();
  e.parent_hash = params.orphan ? "" : params.parent_hash;
  e.last_renewal_time = 0;
  e.bound_cidrs = params.bound_cidrs;
  e.auth_method_type = params.auth_method_type;
  bool root = e.is_root();
  int64_t ttl = params.period > 0 ? params.period : params.ttl;
  if (ttl == 0 && !root) ttl = default_ttl_;
  if (ttl > max_ttl_ && max_ttl_ > 0 && params.period == 0) ttl = max_ttl_;
  if (params.explicit_max_ttl > 0 && (ttl == 0 || ttl > params.explicit_max_ttl)) {
    ttl = params.explicit_max_ttl;
  }
  e.creation_ttl = ttl;
  e.expire_time = ttl > 0 ? now + ttl : 0;
  e.renewable = params.renewable && ttl > 0;

  std::string token;
  if (e.type == "batch") {
    if (root) return invalid_argument("batch tokens cannot be root tokens");
    e.accessor.clear();
    e.renewable = false;
    e.orphan = true;
    e.hash = "batch";  // the real hash depends on the token text; lookup recomputes it
    SecretString json(boost::json::serialize(e.to_json()));
    Bytes nonce = crypto::random_bytes(crypto::kAeadNonceSize);
    SecretBytes key;
    {
      std::lock_guard lock(mu_);
      key = batch_key_.clone();
    }
    if (key.empty()) return unavailable("token store is not loaded");
    ASSIGN_OR_RETURN(Bytes ct, crypto::aead_seal(crypto::AeadAlg::kAes256Gcm, key.span(), nonce,
                                                 as_bytes(json.str()), as_bytes(kBatchPrefix)));
    nonce.insert(nonce.end(), ct.begin(), ct.end());
    token = std::string(kBatchPrefix) + base64url_encode(nonce);
    e.hash = token_hash(token);
    count_creation(params);
    return std::make_pair(std::move(token), std::move(e));
  }
  if (!params.id.empty()) {
    token = params.id;
  } else {
    token = std::string(kServicePrefix) + random_base62(24);
  }
  e.hash = token_hash(token);
  e.accessor = random_base62(24);
  ASSIGN_OR_RETURN(auto existing, view_.get("id/" + e.hash));
  if (existing) return invalid_argument("cannot create a token with a duplicate ID");
  // The entry, its accessor, its parent link and its lease: one transaction (one fsync).
  const std::string& at = view_.prefix();
  WriteBatch batch;
  batch.put_json(at + "id/" + e.hash, e.to_json());
  batch.put_json(at + "accessor/" + e.accessor, boost::json::object{{"hash", e.hash}});
  if (!e.parent_hash.empty()) batch.put(at + "parent/" + e.parent_hash + "/" + e.hash, {});
  std::function<void()> committed;
  if (expiry_.add && e.expire_time != 0) committed = expiry_.add(e, batch);
  RETURN_IF_ERROR(View(view_.barrier(), "").apply(std::move(batch)));
  if (committed) committed();
  {
    std::lock_guard lock(mu_);
    cache_[e.hash] = e;
  }
  count_creation(params);
  return std::make_pair(std::move(token), std::move(e));
}

Result<std::optional<TokenEntry>> TokenStore::decode_batch(std::string_view token) {
  auto raw = base64url_decode(token.substr(kBatchPrefix.size()));
  if (!raw.ok() || raw->size() < crypto::kAeadNonceSize + crypto::kAeadTagSize) {
    return std::optional<TokenEntry>();
  }
  SecretBytes key;
  {
    std::lock_guard lock(mu_);
    key = batch_key_.clone();
  }
  if (key.empty()) return unavailable("token store is not loaded");
  ByteSpan all(*raw);
  auto plain = crypto::aead_open(crypto::AeadAlg::kAes256Gcm, key.span(),
                                 all.subspan(0, crypto::kAeadNonceSize),
                                 all.subspan(crypto::kAeadNonceSize), as_bytes(kBatchPrefix));
  if (!plain.ok()) return std::optional<TokenEntry>();
  boost::system::error_code ec;
  auto v = boost::json::parse(plain->view(), ec);
  if (ec || !v.is_object()) return std::optional<TokenEntry>();
  auto e = TokenEntry::from_json(v.as_object());
  if (!e.ok()) return std::optional<TokenEntry>();
  e->hash = token_hash(token);
  if (e->expire_time != 0 && e->expire_time <= to_unix_seconds(clock_.now())) {
    return std::optional<TokenEntry>();
  }
  return std::optional<TokenEntry>(std::move(*e));
}

Result<std::optional<TokenEntry>> TokenStore::lookup(std::string_view token) {
  if (token.empty() || token.size() > 8192) return std::optional<TokenEntry>();
  // Batch tokens carry their encrypted entry, so they are long; service tokens are short.
  if (token.substr(0, kBatchPrefix.size()) == kBatchPrefix) return decode_batch(token);
  if (token.size() > 512) return std::optional<TokenEntry>();
  return lookup_hash(token_hash(token));
}

Result<std::optional<TokenEntry>> TokenStore::load_hash(const std::string& hash) {
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(hash);
    if (it != cache_.end()) return std::optional<TokenEntry>(it->second);
  }
  ASSIGN_OR_RETURN(auto v, view_.get_json("id/" + hash));
  if (!v || !v->is_object()) return std::optional<TokenEntry>();
  ASSIGN_OR_RETURN(TokenEntry loaded, TokenEntry::from_json(v->as_object()));
  std::lock_guard lock(mu_);
  cache_[hash] = loaded;
  return std::optional<TokenEntry>(std::move(loaded));
}

Result<std::optional<TokenEntry>> TokenStore::lookup_hash(const std::string& hash) {
  ASSIGN_OR_RETURN(std::optional<TokenEntry> e, load_hash(hash));
  if (!e) return e;
  // Its last use is running: no other request may use it.
  if (e->num_uses == kRevocationPending) return std::optional<TokenEntry>();
  if (e->expire_time != 0 && e->expire_time <= to_unix_seconds(clock_.now())) {
    // Expired: revoke lazily (and its children with it), as Vault's expiration manager would.
    RETURN_IF_ERROR(revoke(*e));
    return std::optional<TokenEntry>();
  }
  return e;
}

Result<std::optional<TokenEntry>> TokenStore::lookup_accessor(std::string_view accessor) {
  if (accessor.empty() || accessor.find('/') != std::string_view::npos) {
    return std::optional<TokenEntry>();
  }
  ASSIGN_OR_RETURN(auto v, view_.get_json("accessor/" + std::string(accessor)));
  if (!v || !v->is_object()) return std::optional<TokenEntry>();
  const auto* h = v->as_object().if_contains("hash");
  if (!h || !h->is_string()) return data_loss("accessor index entry is corrupt");
  return lookup_hash(std::string(h->as_string()));
}

Result<bool> TokenStore::use(TokenEntry& entry) {
  if (entry.num_uses == 0 || entry.type == "batch") return false;
  std::lock_guard update(update_mu_);
  ASSIGN_OR_RETURN(std::optional<TokenEntry> e, load_hash(entry.hash));
  if (!e || e->num_uses <= 0) return permission_denied("permission denied");
  const bool last = e->num_uses == 1;
  e->num_uses = last ? kRevocationPending : e->num_uses - 1;
  RETURN_IF_ERROR(save(*e));
  entry.num_uses = last ? 0 : e->num_uses;
  return last;
}

Result<TokenEntry> TokenStore::renew(const TokenEntry& entry, int64_t increment) {
  if (entry.type == "batch") return invalid_argument("batch tokens cannot be renewed");
  if (!entry.renewable) return invalid_argument("lease is not renewable");
  std::lock_guard update(update_mu_);
  ASSIGN_OR_RETURN(std::optional<TokenEntry> stored, load_hash(entry.hash));
  if (!stored) return invalid_argument("token not found");
  TokenEntry e = std::move(*stored);
  int64_t now = to_unix_seconds(clock_.now());
  int64_t ttl = e.period > 0 ? e.period : (increment > 0 ? increment : e.creation_ttl);
  if (max_ttl_ > 0 && e.period == 0) {
    // The token may not outlive creation + the mount's max TTL.
    int64_t limit = e.creation_time + max_ttl_ - now;
    ttl = std::min(ttl, limit);
  }
  if (e.explicit_max_ttl > 0) ttl = std::min(ttl, e.creation_time + e.explicit_max_ttl - now);
  if (ttl <= 0) return invalid_argument("past the max TTL, cannot renew");
  e.expire_time = now + ttl;
  e.last_renewal_time = now;
  // The lease moves first: a lease later than its token is harmless (the token has expired by
  // then), one earlier would revoke a renewed token.
  if (expiry_.track) RETURN_IF_ERROR(expiry_.track(e));
  RETURN_IF_ERROR(save(e));
  return e;
}

Status TokenStore::revoke_tree(const std::string& hash, int depth) {
  if (depth > kMaxTreeDepth) return internal_error("token tree is too deep");
  ASSIGN_OR_RETURN(auto children, view_.list("parent/" + hash + "/"));
  for (const auto& child : children) {
    RETURN_IF_ERROR(revoke_tree(child, depth + 1));
    RETURN_IF_ERROR(view_.del("parent/" + hash + "/" + child));
  }
  if (revoke_hook_) RETURN_IF_ERROR(revoke_hook_(hash));
  ASSIGN_OR_RETURN(auto v, view_.get_json("id/" + hash));
  std::optional<TokenEntry> entry;
  if (v && v->is_object()) {
    if (auto e = TokenEntry::from_json(v->as_object()); e.ok()) {
      entry = std::move(*e);
      entry->hash = hash;
    }
  }
  // The entry, its accessor and its parent link go in one transaction; then its own lease (a
  // crash in between leaves a lease whose token is gone, which ends as a no-op).
  WriteBatch batch;
  if (entry && !entry->accessor.empty()) batch.del("accessor/" + entry->accessor);
  if (entry && !entry->parent_hash.empty()) batch.del("parent/" + entry->parent_hash + "/" + hash);
  batch.del("id/" + hash);
  RETURN_IF_ERROR(view_.apply(std::move(batch)));
  {
    std::lock_guard lock(mu_);
    cache_.erase(hash);
  }
  if (entry && entry->expire_time != 0 && expiry_.forget) RETURN_IF_ERROR(expiry_.forget(*entry));
  return ok_status();
}

Status TokenStore::revoke(const TokenEntry& entry, bool orphan_children) {
  if (entry.type == "batch") return invalid_argument("batch tokens cannot be revoked");
  if (!orphan_children) return revoke_tree(entry.hash, 0);
  // Orphan the children: they lose their parent link but stay valid.
  ASSIGN_OR_RETURN(auto children, view_.list("parent/" + entry.hash + "/"));
  for (const auto& child : children) {
    {
      std::lock_guard update(update_mu_);
      ASSIGN_OR_RETURN(auto c, load_hash(child));
      if (c) {
        c->parent_hash.clear();
        c->orphan = true;
        RETURN_IF_ERROR(save(*c));
      }
    }
    RETURN_IF_ERROR(view_.del("parent/" + entry.hash + "/" + child));
  }
  return revoke_tree(entry.hash, 0);
}

Result<std::vector<std::string>> TokenStore::list_accessors() { return view_.list("accessor/"); }

Result<bool> TokenStore::stored(const std::string& hash) {
  ASSIGN_OR_RETURN(auto v, view_.get("id/" + hash));
  return v.has_value();
}

Result<size_t> TokenStore::revoke_created_under(const std::string& path_prefix) {
  if (path_prefix.empty()) return invalid_argument("an empty prefix would revoke every token");
  size_t revoked = 0;
  ASSIGN_OR_RETURN(auto ids, view_.list("id/"));
  for (const auto& hash : ids) {
    ASSIGN_OR_RETURN(auto v, view_.get_json("id/" + hash));
    if (!v || !v->is_object()) continue;  // revoked meanwhile (a parent's tree)
    ASSIGN_OR_RETURN(TokenEntry e, TokenEntry::from_json(v->as_object()));
    if (e.path.compare(0, path_prefix.size(), path_prefix) != 0) continue;
    RETURN_IF_ERROR(revoke_tree(hash, 0));
    ++revoked;
  }
  return revoked;
}

Result<TokenStore::TidyReport> TokenStore::tidy() {
  TidyReport report;
  const int64_t now = to_unix_seconds(clock_.now());
  ASSIGN_OR_RETURN(auto ids, view_.list("id/"));
  for (const auto& hash : ids) {
    ASSIGN_OR_RETURN(auto v, view_.get_json("id/" + hash));
    if (!v || !v->is_object()) continue;  // revoked meanwhile
    ASSIGN_OR_RETURN(TokenEntry e, TokenEntry::from_json(v->as_object()));
    e.hash = hash;
    if (e.expire_time != 0 && e.expire_time <= now) {
      RETURN_IF_ERROR(revoke(e));
      ++report.expired;
    } else if (e.expire_time != 0 && expiry_.track && e.num_uses != kRevocationPending) {
      // A token from before tokens had leases gets its lease now (a no-op when it has one).
      RETURN_IF_ERROR(expiry_.track(e));
    }
  }
  // Parent links left by a revocation that stopped part way (a crash, a failed lease
  // revocation): a child whose parent is gone is revoked, as Vault's tidy does, and links to
  // children that are gone are dropped.
  ASSIGN_OR_RETURN(auto parents, view_.list("parent/"));
  for (std::string parent : parents) {
    if (!parent.empty() && parent.back() == '/') parent.pop_back();
    ASSIGN_OR_RETURN(bool alive, stored(parent));
    ASSIGN_OR_RETURN(auto children, view_.list("parent/" + parent + "/"));
    for (const auto& child : children) {
      ASSIGN_OR_RETURN(bool child_alive, stored(child));
      if (alive && child_alive) continue;
      if (child_alive) {
        RETURN_IF_ERROR(revoke_tree(child, 0));
        ++report.parentless;
      }
      RETURN_IF_ERROR(view_.del("parent/" + parent + "/" + child));
    }
  }
  ASSIGN_OR_RETURN(auto accessors, view_.list("accessor/"));
  for (const auto& accessor : accessors) {
    ASSIGN_OR_RETURN(auto v, view_.get_json("accessor/" + accessor));
    const auto* h = v && v->is_object() ? v->as_object().if_contains("hash") : nullptr;
    if (h != nullptr && h->is_string()) {
      ASSIGN_OR_RETURN(bool alive, stored(std::string(h->as_string())));
      if (alive) continue;
    }
    RETURN_IF_ERROR(view_.del("accessor/" + accessor));
    ++report.accessors;
  }
  return report;
}

}  // namespace custos::core
