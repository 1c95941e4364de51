// Vault's transit engine. API and stored format: docs/engines/transit.md.
//
// Concurrency: parsed keys live in an immutable KeyPolicy snapshot, shared by pointer. Readers
// (encrypt, decrypt, sign, ...) take the cache's shared lock only to copy the pointer, then work
// without a lock. Writers (create, rotate, config, trim, delete) serialize on write_mu_, build a
// new snapshot from a copy of the current one (key versions are shared, not copied), persist it,
// and swap it into the cache. A snapshot that was handed out stays valid until its last user is
// done, so a concurrent rotate or delete never pulls key material from under an encrypt.
#include "core/engines/transit.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/encoding.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/pkey.h"
#include "crypto/random.h"

namespace custos::core {
namespace {

namespace json = boost::json;

constexpr std::string_view kPolicyPrefix = "policy/";
constexpr int64_t kStoredFormat = 1;
constexpr size_t kMaxNameLength = 256;
constexpr int64_t kDefaultRandomBytes = 32;
constexpr int64_t kMaxRandomBytes = int64_t{128} * 1024;
constexpr int64_t kDefaultHmacKeySize = 32;
constexpr int64_t kMinHmacKeySize = 32;
constexpr int64_t kMaxHmacKeySize = 512;
constexpr size_t kVersionHmacKeySize = 32;
constexpr int64_t kMinAutoRotatePeriod = 3600;

// ---------------------------------------------------------------------------------------------
// Key types

enum class KeyKind {
  kAes128Gcm,
  kAes256Gcm,
  kChaCha20Poly1305,
  kEcdsaP256,
  kEcdsaP384,
  kEcdsaP521,
  kEd25519,
  kRsa2048,
  kRsa3072,
  kRsa4096,
  kHmac,
};

struct KindName {
  KeyKind kind;
  std::string_view name;
};
constexpr KindName kKindNames[] = {
    {KeyKind::kAes128Gcm, "aes128-gcm96"},
    {KeyKind::kAes256Gcm, "aes256-gcm96"},
    {KeyKind::kChaCha20Poly1305, "chacha20-poly1305"},
    {KeyKind::kEcdsaP256, "ecdsa-p256"},
    {KeyKind::kEcdsaP384, "ecdsa-p384"},
    {KeyKind::kEcdsaP521, "ecdsa-p521"},
    {KeyKind::kEd25519, "ed25519"},
    {KeyKind::kRsa2048, "rsa-2048"},
    {KeyKind::kRsa3072, "rsa-3072"},
    {KeyKind::kRsa4096, "rsa-4096"},
    {KeyKind::kHmac, "hmac"},
};

std::string_view kind_name(KeyKind k) {
  for (const auto& e : kKindNames) {
    if (e.kind == k) return e.name;
  }
  return "unknown";
}

std::optional<KeyKind> parse_kind(std::string_view s) {
  for (const auto& e : kKindNames) {
    if (e.name == s) return e.kind;
  }
  return std::nullopt;
}

bool is_aead(KeyKind k) {
  return k == KeyKind::kAes128Gcm || k == KeyKind::kAes256Gcm || k == KeyKind::kChaCha20Poly1305;
}
bool is_ecdsa(KeyKind k) {
  return k == KeyKind::kEcdsaP256 || k == KeyKind::kEcdsaP384 || k == KeyKind::kEcdsaP521;
}
bool is_rsa(KeyKind k) {
  return k == KeyKind::kRsa2048 || k == KeyKind::kRsa3072 || k == KeyKind::kRsa4096;
}
bool is_asymmetric(KeyKind k) {
  return is_ecdsa(k) || is_rsa(k) || k == KeyKind::kEd25519;
}
bool supports_encryption(KeyKind k) {
  return is_aead(k) || is_rsa(k);
}
bool supports_signing(KeyKind k) {
  return is_asymmetric(k);
}

crypto::AeadAlg aead_alg(KeyKind k) {
  switch (k) {
    case KeyKind::kAes128Gcm:
      return crypto::AeadAlg::kAes128Gcm;
    case KeyKind::kChaCha20Poly1305:
      return crypto::AeadAlg::kChaCha20Poly1305;
    default:
      return crypto::AeadAlg::kAes256Gcm;
  }
}

crypto::KeyType pkey_type(KeyKind k) {
  switch (k) {
    case KeyKind::kEcdsaP256:
      return crypto::KeyType::kEcP256;
    case KeyKind::kEcdsaP384:
      return crypto::KeyType::kEcP384;
    case KeyKind::kEcdsaP521:
      return crypto::KeyType::kEcP521;
    case KeyKind::kEd25519:
      return crypto::KeyType::kEd25519;
    default:
      return crypto::KeyType::kRsa;
  }
}

int rsa_bits(KeyKind k) {
  switch (k) {
    case KeyKind::kRsa3072:
      return 3072;
    case KeyKind::kRsa4096:
      return 4096;
    default:
      return 2048;
  }
}

// The "name" Vault shows for each version of an asymmetric key.
std::string_view public_name(KeyKind k) {
  switch (k) {
    case KeyKind::kEcdsaP256:
      return "P-256";
    case KeyKind::kEcdsaP384:
      return "P-384";
    case KeyKind::kEcdsaP521:
      return "P-521";
    case KeyKind::kEd25519:
      return "ed25519";
    default:
      return kind_name(k);
  }
}

// Fixed DER prefixes of Ed25519 keys (RFC 8410): Vault shows and exports raw key bytes, OpenSSL
// hands out SubjectPublicKeyInfo and PKCS#8.
constexpr uint8_t kEd25519SpkiPrefix[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                          0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
constexpr uint8_t kEd25519Pkcs8Prefix[] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                           0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
constexpr size_t kEd25519KeySize = 32;

Result<Bytes> ed25519_raw_public(const crypto::PublicKey& pub) {
  Bytes der = pub.to_der();
  if (der.size() != sizeof(kEd25519SpkiPrefix) + kEd25519KeySize ||
      !std::equal(std::begin(kEd25519SpkiPrefix), std::end(kEd25519SpkiPrefix), der.begin())) {
    return internal_error("unexpected Ed25519 public key encoding");
  }
  return Bytes(der.end() - static_cast<std::ptrdiff_t>(kEd25519KeySize), der.end());
}

// Go's ed25519.PrivateKey layout, which Vault exports: seed || public key.
Result<SecretBytes> ed25519_go_private(const crypto::PrivateKey& key) {
  SecretBytes der = key.to_der();
  if (der.size() != sizeof(kEd25519Pkcs8Prefix) + kEd25519KeySize ||
      !std::equal(std::begin(kEd25519Pkcs8Prefix), std::end(kEd25519Pkcs8Prefix), der.data())) {
    return internal_error("unexpected Ed25519 private key encoding");
  }
  ASSIGN_OR_RETURN(Bytes pub, ed25519_raw_public(key.public_key()));
  SecretBytes out(2 * kEd25519KeySize);
  std::copy_n(der.data() + sizeof(kEd25519Pkcs8Prefix), kEd25519KeySize, out.data());
  std::copy_n(pub.data(), kEd25519KeySize, out.data() + kEd25519KeySize);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Key material

struct KeyVersion {
  int64_t creation_time = 0;  // unix seconds
  SecretBytes key;            // AEAD key, or the key itself of an hmac-type key
  SecretBytes hmac_key;       // every other type: this version's key for the hmac endpoint
  std::optional<crypto::PrivateKey> private_key;
  std::optional<crypto::PublicKey> public_key;
};

// One named key (Vault calls it a policy). Immutable once published to the cache.
struct KeyPolicy {
  std::string name;
  KeyKind kind = KeyKind::kAes256Gcm;
  int64_t latest_version = 0;
  int64_t min_decryption_version = 1;
  int64_t min_encryption_version = 0;
  int64_t min_available_version = 0;
  bool deletion_allowed = false;
  bool exportable = false;
  bool allow_plaintext_backup = false;
  int64_t auto_rotate_period = 0;  // seconds, 0: off
  std::map<int64_t, std::shared_ptr<const KeyVersion>> versions;

  const KeyVersion* version(int64_t v) const {
    auto it = versions.find(v);
    return it == versions.end() ? nullptr : it->second.get();
  }
  const SecretBytes& mac_key(const KeyVersion& kv) const {
    return kind == KeyKind::kHmac ? kv.key : kv.hmac_key;
  }
};

using PolicyPtr = std::shared_ptr<const KeyPolicy>;

Result<std::shared_ptr<const KeyVersion>> generate_version(KeyKind kind, int64_t hmac_key_size,
                                                           int64_t now) {
  auto kv = std::make_shared<KeyVersion>();
  kv->creation_time = now;
  if (kind == KeyKind::kHmac) {
    kv->key = crypto::random_secret(static_cast<size_t>(hmac_key_size));
  } else {
    kv->hmac_key = crypto::random_secret(kVersionHmacKeySize);
  }
  if (is_aead(kind)) {
    kv->key = crypto::random_secret(crypto::aead_key_size(aead_alg(kind)));
  } else if (is_asymmetric(kind)) {
    ASSIGN_OR_RETURN(auto priv, crypto::PrivateKey::generate(pkey_type(kind), rsa_bits(kind)));
    kv->public_key = priv.public_key();
    kv->private_key = std::move(priv);
  }
  return std::shared_ptr<const KeyVersion>(std::move(kv));
}

// ---------------------------------------------------------------------------------------------
// Stored form (docs/engines/transit.md#storage)

void wipe_json(json::value& v) {
  if (v.is_string()) {
    auto& s = v.as_string();
    if (!s.empty()) secure_wipe(s.data(), s.size());
  } else if (v.is_object()) {
    for (auto& e : v.as_object()) wipe_json(e.value());
  } else if (v.is_array()) {
    for (auto& e : v.as_array()) wipe_json(e);
  }
}

json::string secret_base64(ByteSpan b) {
  std::string text = base64_encode(b);
  json::string out(text);
  secure_wipe(text.data(), text.size());
  return out;
}

json::value policy_to_json(const KeyPolicy& p) {
  json::object o;
  o["format"] = kStoredFormat;
  o["name"] = p.name;
  o["type"] = kind_name(p.kind);
  o["latest_version"] = p.latest_version;
  o["min_decryption_version"] = p.min_decryption_version;
  o["min_encryption_version"] = p.min_encryption_version;
  o["min_available_version"] = p.min_available_version;
  o["deletion_allowed"] = p.deletion_allowed;
  o["exportable"] = p.exportable;
  o["allow_plaintext_backup"] = p.allow_plaintext_backup;
  o["auto_rotate_period"] = p.auto_rotate_period;
  json::object versions;
  for (const auto& [v, kv] : p.versions) {
    json::object e;
    e["creation_time"] = kv->creation_time;
    if (!kv->key.empty()) e["key"] = secret_base64(kv->key.span());
    if (!kv->hmac_key.empty()) e["hmac_key"] = secret_base64(kv->hmac_key.span());
    if (kv->private_key) {
      SecretBytes der = kv->private_key->to_der();
      e["private_key"] = secret_base64(der.span());
    }
    versions[std::to_string(v)] = std::move(e);
  }
  o["versions"] = std::move(versions);
  return o;
}

bool get_int(const json::object& o, std::string_view key, int64_t& out) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return false;
  if (v->is_int64()) {
    out = v->as_int64();
    return true;
  }
  if (v->is_uint64() && v->as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    out = static_cast<int64_t>(v->as_uint64());
    return true;
  }
  return false;
}

bool get_bool(const json::object& o, std::string_view key, bool& out) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_bool()) return false;
  out = v->as_bool();
  return true;
}

Result<SecretBytes> get_secret(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return data_loss("missing key material");
  ASSIGN_OR_RETURN(Bytes raw, base64_decode(std::string_view(v->as_string())));
  return SecretBytes(std::move(raw));
}

Result<std::shared_ptr<KeyPolicy>> policy_from_json(const json::value& root) {
  Status bad = data_loss("stored transit key is malformed");
  if (!root.is_object()) return bad;
  const auto& o = root.as_object();
  auto p = std::make_shared<KeyPolicy>();
  int64_t format = 0;
  if (!get_int(o, "format", format) || format != kStoredFormat) return bad;
  const auto* name = o.if_contains("name");
  const auto* type = o.if_contains("type");
  if (name == nullptr || !name->is_string() || type == nullptr || !type->is_string()) return bad;
  p->name = std::string(name->as_string());
  auto kind = parse_kind(std::string_view(type->as_string()));
  if (!kind) return bad;
  p->kind = *kind;
  if (!get_int(o, "latest_version", p->latest_version) ||
      !get_int(o, "min_decryption_version", p->min_decryption_version) ||
      !get_int(o, "min_encryption_version", p->min_encryption_version) ||
      !get_int(o, "min_available_version", p->min_available_version) ||
      !get_bool(o, "deletion_allowed", p->deletion_allowed) ||
      !get_bool(o, "exportable", p->exportable) ||
      !get_bool(o, "allow_plaintext_backup", p->allow_plaintext_backup) ||
      !get_int(o, "auto_rotate_period", p->auto_rotate_period)) {
    return bad;
  }
  const auto* versions = o.if_contains("versions");
  if (versions == nullptr || !versions->is_object()) return bad;
  for (const auto& e : versions->as_object()) {
    int64_t v = 0;
    std::string_view vs = e.key();
    auto [ptr, ec] = std::from_chars(vs.data(), vs.data() + vs.size(), v);
    if (ec != std::errc() || ptr != vs.data() + vs.size() || v <= 0 || !e.value().is_object()) {
      return bad;
    }
    const auto& eo = e.value().as_object();
    auto kv = std::make_shared<KeyVersion>();
    if (!get_int(eo, "creation_time", kv->creation_time)) return bad;
    if (p->kind == KeyKind::kHmac || is_aead(p->kind)) {
      ASSIGN_OR_RETURN(kv->key, get_secret(eo, "key"));
    }
    if (p->kind != KeyKind::kHmac) {
      ASSIGN_OR_RETURN(kv->hmac_key, get_secret(eo, "hmac_key"));
    }
    if (is_aead(p->kind) && kv->key.size() != crypto::aead_key_size(aead_alg(p->kind))) return bad;
    if (is_asymmetric(p->kind)) {
      ASSIGN_OR_RETURN(SecretBytes der, get_secret(eo, "private_key"));
      auto priv = crypto::PrivateKey::from_der(der.span());
      if (!priv.ok()) return bad;
      kv->public_key = priv->public_key();
      kv->private_key = std::move(*priv);
    }
    p->versions.emplace(v, std::move(kv));
  }
  if (p->latest_version <= 0 || p->version(p->latest_version) == nullptr) return bad;
  return p;
}

// ---------------------------------------------------------------------------------------------
// Request fields

// A present, non-null field as a string (numbers and booleans are converted like Vault does).
Result<std::optional<std::string>> opt_string(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return std::optional<std::string>();
  ASSIGN_OR_RETURN(std::string s, field_string(o, key));
  return std::optional<std::string>(std::move(s));
}

Result<SecretBytes> decode_base64_field(std::string_view text, std::string_view what) {
  auto raw = base64_decode(text);
  if (!raw.ok()) return invalid_argument("failed to base64-decode " + std::string(what));
  return SecretBytes(std::move(*raw));
}

// An optional base64 field; empty when absent.
Result<SecretBytes> optional_base64(const json::object& o, std::string_view key) {
  ASSIGN_OR_RETURN(auto text, opt_string(o, key));
  if (!text || text->empty()) return SecretBytes();
  return decode_base64_field(*text, key);
}

// batch_input as a list of objects, or nullopt when the request is not a batch.
Result<std::optional<std::vector<const json::object*>>> batch_items(const json::object& data) {
  using Items = std::vector<const json::object*>;
  const auto* v = data.if_contains("batch_input");
  if (v == nullptr || v->is_null()) return std::optional<Items>();
  if (!v->is_array()) return invalid_argument("batch_input must be an array of objects");
  Items items;
  items.reserve(v->as_array().size());
  for (const auto& e : v->as_array()) {
    if (!e.is_object()) return invalid_argument("batch_input must be an array of objects");
    items.push_back(&e.as_object());
  }
  if (items.empty()) return invalid_argument("missing batch input to process");
  return std::optional<Items>(std::move(items));
}

bool is_user_error(Code c) {
  return c == Code::kInvalidArgument || c == Code::kNotFound || c == Code::kFailedPrecondition ||
         c == Code::kAlreadyExists;
}

using ItemFn = std::function<Result<json::object>(const json::object& item)>;

// Vault's batch semantics: every item gets a result or an "error"; the request fails (400) only
// when every item failed, 500 when any failed internally, and a partial failure answers 200
// unless the caller asked for another code with partial_failure_response_code.
Result<Response> run_batch(const json::object& data, const std::vector<const json::object*>& items,
                           const ItemFn& fn) {
  ASSIGN_OR_RETURN(int64_t partial_code, field_int(data, "partial_failure_response_code", 0));
  json::array results;
  results.reserve(items.size());
  bool any_ok = false;
  bool any_user_error = false;
  bool any_internal = false;
  for (const json::object* item : items) {
    auto r = fn(*item);
    json::object out;
    if (r.ok()) {
      out = std::move(*r);
      any_ok = true;
    } else {
      out["error"] = r.status().message();
      if (is_user_error(r.status().code())) {
        any_user_error = true;
      } else {
        any_internal = true;
      }
    }
    if (const auto* ref = item->if_contains("reference"); ref != nullptr && ref->is_string()) {
      out["reference"] = ref->as_string();
    }
    results.push_back(std::move(out));
  }
  json::object body;
  body["batch_results"] = std::move(results);
  Response resp = Response::with_data(std::move(body));
  if (any_internal) {
    resp.status = 500;
  } else if (any_user_error && !any_ok) {
    resp.status = 400;
  } else if (any_user_error && partial_code != 0) {
    if (partial_code < 200 || partial_code > 599) {
      return invalid_argument("partial_failure_response_code must be an HTTP status code");
    }
    resp.status = static_cast<int>(partial_code);
  }
  return resp;
}

// A single request or a batch, answered by the same per-item function.
Result<Response> single_or_batch(const json::object& data, const ItemFn& fn) {
  ASSIGN_OR_RETURN(auto items, batch_items(data));
  if (items) return run_batch(data, *items, fn);
  ASSIGN_OR_RETURN(json::object out, fn(data));
  return Response::with_data(std::move(out));
}

bool valid_key_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  if (!word(s.front()) || !word(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return word(c) || c == '-' || c == '.'; });
}

// A whole string as a decimal integer (no trailing text).
bool parse_decimal(std::string_view s, int64_t& out) {
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, out);
  return !s.empty() && ec == std::errc() && ptr == end;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Splits "keys/foo/config" into segments; a trailing slash adds nothing.
std::vector<std::string> split_path(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  std::vector<std::string> out;
  if (path.empty()) return out;
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    out.emplace_back(path.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

Result<crypto::HashAlg> parse_hash(std::string_view s, bool allow_sha1) {
  if (s == "sha2-256") return crypto::HashAlg::kSha256;
  if (s == "sha2-384") return crypto::HashAlg::kSha384;
  if (s == "sha2-512") return crypto::HashAlg::kSha512;
  if (allow_sha1 && s == "sha1") return crypto::HashAlg::kSha1;
  return invalid_argument("unsupported hash algorithm (supported: sha2-256, sha2-384, sha2-512" +
                          std::string(allow_sha1 ? ", sha1)" : ")"));
}

// The hash algorithm from the URL segment if given, else from the named body fields.
Result<crypto::HashAlg> hash_from(const std::vector<std::string>& segs, size_t index,
                                  const json::object& data, bool allow_sha1) {
  if (segs.size() > index) return parse_hash(segs[index], allow_sha1);
  for (std::string_view field : {"hash_algorithm", "algorithm"}) {
    ASSIGN_OR_RETURN(auto v, opt_string(data, field));
    if (v && !v->empty()) return parse_hash(*v, allow_sha1);
  }
  return crypto::HashAlg::kSha256;
}

// "vault:v<N>:<body>" as produced by encrypt, hmac and sign.
struct Versioned {
  int64_t version = 0;
  std::string_view body;
};

Result<Versioned> parse_versioned(std::string_view s, std::string_view what) {
  constexpr std::string_view kPrefix = "vault:";
  std::string bad = "invalid " + std::string(what) + ": ";
  if (!s.starts_with(kPrefix)) return invalid_argument(bad + "no prefix");
  s.remove_prefix(kPrefix.size());
  size_t colon = s.find(':');
  if (colon == std::string_view::npos) return invalid_argument(bad + "wrong number of fields");
  std::string_view v = s.substr(0, colon);
  Versioned out;
  out.body = s.substr(colon + 1);
  if (v.size() < 2 || v.front() != 'v' || !all_digits(v.substr(1))) {
    return invalid_argument(bad + "version number could not be decoded");
  }
  if (!parse_decimal(v.substr(1), out.version) || out.version <= 0) {
    return invalid_argument(bad + "version number could not be decoded");
  }
  return out;
}

std::string versioned(int64_t version, std::string_view body) {
  std::string out = "vault:v" + std::to_string(version) + ":";
  out += body;
  return out;
}

// The version a decrypt / verify may use (Vault's checks and messages).
Result<const KeyVersion*> version_for_decrypt(const KeyPolicy& p, int64_t v,
                                              std::string_view what) {
  if (v > p.latest_version) {
    return invalid_argument("invalid " + std::string(what) + ": version is too new");
  }
  const KeyVersion* kv = p.version(v);
  if (v < p.min_decryption_version || v < p.min_available_version || kv == nullptr) {
    return invalid_argument("ciphertext or signature version is disallowed by policy (too old)");
  }
  return kv;
}

// The version an encrypt / sign / hmac uses: `requested`, or the latest when 0.
Result<int64_t> version_for_encrypt(const KeyPolicy& p, int64_t requested) {
  if (requested < 0) return invalid_argument("key_version must not be negative");
  int64_t v = requested == 0 ? p.latest_version : requested;
  if (v > p.latest_version) {
    return invalid_argument(
        "requested version for encryption is higher than the latest key version");
  }
  if (v < p.min_encryption_version) {
    return invalid_argument(
        "requested version for encryption is less than the minimum encryption key version");
  }
  if (p.version(v) == nullptr || v < p.min_available_version) {
    return invalid_argument("requested key version has been trimmed");
  }
  return v;
}

// Item fields fall back to the request's top level (a batch may set key_version once).
Result<int64_t> item_key_version(const json::object& item, const json::object& data) {
  ASSIGN_OR_RETURN(int64_t top, field_int(data, "key_version", 0));
  return field_int(item, "key_version", top);
}

std::string public_key_text(KeyKind kind, const crypto::PublicKey& pub) {
  if (kind == KeyKind::kEd25519) {
    auto raw = ed25519_raw_public(pub);
    return raw.ok() ? base64_encode(*raw) : std::string();
  }
  return pub.to_pem();
}

json::object key_info(const KeyPolicy& p) {
  json::object o;
  o["name"] = p.name;
  o["type"] = kind_name(p.kind);
  json::object keys;
  for (const auto& [v, kv] : p.versions) {
    // Like Vault, versions below min_decryption_version are archived and not listed.
    if (v < p.min_decryption_version) continue;
    if (is_asymmetric(p.kind) && kv->public_key) {
      json::object k;
      k["creation_time"] = format_rfc3339(from_unix_seconds(kv->creation_time));
      k["name"] = public_name(p.kind);
      k["public_key"] = public_key_text(p.kind, *kv->public_key);
      keys[std::to_string(v)] = std::move(k);
    } else {
      keys[std::to_string(v)] = kv->creation_time;
    }
  }
  o["keys"] = std::move(keys);
  o["latest_version"] = p.latest_version;
  o["min_available_version"] = p.min_available_version;
  o["min_decryption_version"] = p.min_decryption_version;
  o["min_encryption_version"] = p.min_encryption_version;
  o["deletion_allowed"] = p.deletion_allowed;
  o["derived"] = false;
  o["exportable"] = p.exportable;
  o["allow_plaintext_backup"] = p.allow_plaintext_backup;
  o["auto_rotate_period"] = p.auto_rotate_period;
  o["imported_key"] = false;
  o["supports_encryption"] = supports_encryption(p.kind);
  o["supports_decryption"] = supports_encryption(p.kind);
  // Derivation is not implemented here (docs/engines/transit.md), so no key offers it.
  o["supports_derivation"] = false;
  o["supports_signing"] = supports_signing(p.kind);
  if (p.kind == KeyKind::kHmac) {
    if (const KeyVersion* kv = p.version(p.latest_version)) {
      o["key_size"] = static_cast<int64_t>(kv->key.size());
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Cryptographic operations on one snapshot

Result<std::string> encrypt_with(const KeyPolicy& p, int64_t version, ByteSpan plaintext,
                                 ByteSpan aad) {
  if (!supports_encryption(p.kind)) {
    return invalid_argument("key type " + std::string(kind_name(p.kind)) +
                            " does not support encryption");
  }
  const KeyVersion* kv = p.version(version);
  if (kv == nullptr) return internal_error("key version vanished");
  if (is_rsa(p.kind)) {
    if (!aad.empty()) return invalid_argument("associated_data is not supported for RSA keys");
    ASSIGN_OR_RETURN(Bytes ct,
                     kv->public_key->rsa_oaep_encrypt(plaintext, crypto::HashAlg::kSha256));
    return versioned(version, base64_encode(ct));
  }
  Bytes blob = crypto::random_bytes(crypto::kAeadNonceSize);
  ASSIGN_OR_RETURN(Bytes ct,
                   crypto::aead_seal(aead_alg(p.kind), kv->key.span(), blob, plaintext, aad));
  blob.insert(blob.end(), ct.begin(), ct.end());
  return versioned(version, base64_encode(blob));
}

Result<SecretBytes> decrypt_with(const KeyPolicy& p, std::string_view ciphertext, ByteSpan aad) {
  if (!supports_encryption(p.kind)) {
    return invalid_argument("key type " + std::string(kind_name(p.kind)) +
                            " does not support decryption");
  }
  ASSIGN_OR_RETURN(Versioned parsed, parse_versioned(ciphertext, "ciphertext"));
  ASSIGN_OR_RETURN(const KeyVersion* kv, version_for_decrypt(p, parsed.version, "ciphertext"));
  auto raw = base64_decode(parsed.body);
  if (!raw.ok()) return invalid_argument("invalid ciphertext: could not decode base64");
  if (is_rsa(p.kind)) {
    if (!aad.empty()) return invalid_argument("associated_data is not supported for RSA keys");
    auto pt = kv->private_key->rsa_oaep_decrypt(*raw, crypto::HashAlg::kSha256);
    if (!pt.ok()) return invalid_argument("invalid ciphertext: decryption failed");
    return std::move(*pt);
  }
  if (raw->size() < crypto::kAeadNonceSize + crypto::kAeadTagSize) {
    return invalid_argument("invalid ciphertext: too short");
  }
  ByteSpan all(*raw);
  auto pt = crypto::aead_open(aead_alg(p.kind), kv->key.span(), all.first(crypto::kAeadNonceSize),
                              all.subspan(crypto::kAeadNonceSize), aad);
  if (!pt.ok()) {
    if (pt.status().code() == Code::kDataLoss) {
      return invalid_argument("invalid ciphertext: message authentication failed");
    }
    return pt.status();
  }
  return std::move(*pt);
}

struct SignParams {
  crypto::HashAlg hash = crypto::HashAlg::kSha256;
  bool prehashed = false;
  crypto::SignOptions::RsaPadding rsa_padding = crypto::SignOptions::RsaPadding::kPss;
  bool jws = false;

  crypto::SignOptions options() const {
    crypto::SignOptions o;
    o.hash = hash;
    o.rsa_padding = rsa_padding;
    o.ec_format = jws ? crypto::SignOptions::EcFormat::kRaw : crypto::SignOptions::EcFormat::kDer;
    return o;
  }
};

Result<SignParams> sign_params(const KeyPolicy& p, const std::vector<std::string>& segs,
                               const json::object& data) {
  SignParams sp;
  ASSIGN_OR_RETURN(sp.hash, hash_from(segs, 2, data, /*allow_sha1=*/true));
  ASSIGN_OR_RETURN(sp.prehashed, field_bool(data, "prehashed", false));
  ASSIGN_OR_RETURN(std::string alg, field_string(data, "signature_algorithm", "pss"));
  if (alg == "pss" || alg.empty()) {
    sp.rsa_padding = crypto::SignOptions::RsaPadding::kPss;
  } else if (alg == "pkcs1v15") {
    sp.rsa_padding = crypto::SignOptions::RsaPadding::kPkcs1;
  } else {
    return invalid_argument("unsupported signature_algorithm (supported: pss, pkcs1v15)");
  }
  ASSIGN_OR_RETURN(std::string marshal, field_string(data, "marshaling_algorithm", "asn1"));
  if (marshal == "jws") {
    if (!is_ecdsa(p.kind)) {
      return invalid_argument("marshaling_algorithm jws is only supported for ECDSA keys");
    }
    sp.jws = true;
  } else if (marshal != "asn1" && !marshal.empty()) {
    return invalid_argument("unsupported marshaling_algorithm (supported: asn1, jws)");
  }
  if (sp.prehashed && p.kind == KeyKind::kEd25519) {
    return invalid_argument("prehashed input is not supported for ed25519 keys");
  }
  return sp;
}

Status check_prehashed(const SignParams& sp, ByteSpan input) {
  if (sp.prehashed && input.size() != crypto::hash_size(sp.hash)) {
    return invalid_argument("prehashed input does not have the length of the hash algorithm");
  }
  return ok_status();
}

Result<std::string> sign_with(const KeyPolicy& p, int64_t version, ByteSpan input,
                              const SignParams& sp) {
  const KeyVersion* kv = p.version(version);
  if (kv == nullptr || !kv->private_key) return internal_error("key version vanished");
  RETURN_IF_ERROR(check_prehashed(sp, input));
  crypto::SignOptions opts = sp.options();
  Result<Bytes> sig =
      sp.prehashed ? kv->private_key->sign_digest(input, opts) : kv->private_key->sign(input, opts);
  if (!sig.ok()) return sig.status();
  return versioned(version, sp.jws ? base64url_encode(*sig) : base64_encode(*sig));
}

Result<bool> verify_with(const KeyPolicy& p, std::string_view signature, ByteSpan input,
                         const SignParams& sp) {
  ASSIGN_OR_RETURN(Versioned parsed, parse_versioned(signature, "signature"));
  ASSIGN_OR_RETURN(const KeyVersion* kv, version_for_decrypt(p, parsed.version, "signature"));
  auto raw = sp.jws ? base64url_decode(parsed.body) : base64_decode(parsed.body);
  if (!raw.ok()) return invalid_argument("invalid signature: could not decode base64");
  RETURN_IF_ERROR(check_prehashed(sp, input));
  crypto::SignOptions opts = sp.options();
  Status st = sp.prehashed ? kv->public_key->verify_digest(input, *raw, opts)
                           : kv->public_key->verify(input, *raw, opts);
  return st.ok();
}

std::string hmac_with(const KeyPolicy& p, int64_t version, crypto::HashAlg alg, ByteSpan input) {
  const KeyVersion* kv = p.version(version);
  Bytes mac = crypto::hmac(alg, p.mac_key(*kv).span(), input);
  return versioned(version, base64_encode(mac));
}

Result<bool> verify_hmac_with(const KeyPolicy& p, std::string_view hmac, crypto::HashAlg alg,
                              ByteSpan input) {
  ASSIGN_OR_RETURN(Versioned parsed, parse_versioned(hmac, "hmac"));
  ASSIGN_OR_RETURN(const KeyVersion* kv, version_for_decrypt(p, parsed.version, "hmac"));
  auto given = base64_decode(parsed.body);
  if (!given.ok()) return invalid_argument("invalid hmac: could not decode base64");
  Bytes mac = crypto::hmac(alg, p.mac_key(*kv).span(), input);
  return constant_time_equal(mac, *given);
}

Result<SecretBytes> required_base64(const json::object& item, std::string_view key,
                                    std::string_view missing) {
  ASSIGN_OR_RETURN(auto text, opt_string(item, key));
  if (!text) return invalid_argument(std::string(missing));
  return decode_base64_field(*text, key);
}

Result<std::string> required_string(const json::object& item, std::string_view key,
                                    std::string_view missing) {
  ASSIGN_OR_RETURN(auto text, opt_string(item, key));
  if (!text || text->empty()) return invalid_argument(std::string(missing));
  return std::move(*text);
}

// ---------------------------------------------------------------------------------------------
// The engine

class TransitEngine final : public Engine {
 public:
  explicit TransitEngine(EngineContext ctx) : storage_(ctx.storage), clock_(ctx.clock) {}

  Result<Response> handle(Request& req) override;
  Result<bool> exists(const Request& req) override;
  void shutdown() override { drop_cache(); }

 private:
  struct CreateParams {
    KeyKind kind = KeyKind::kAes256Gcm;
    bool exportable = false;
    bool allow_plaintext_backup = false;
    int64_t auto_rotate_period = 0;
    int64_t hmac_key_size = kDefaultHmacKeySize;
  };

  int64_t now() const { return to_unix_seconds(clock_.now()); }
  static std::string storage_key(std::string_view name) {
    return std::string(kPolicyPrefix) + std::string(name);
  }

  void drop_cache() {
    std::unique_lock lock(cache_mu_);
    cache_.clear();
  }

  PolicyPtr cached(const std::string& name) const {
    std::shared_lock lock(cache_mu_);
    auto it = cache_.find(name);
    return it == cache_.end() ? nullptr : it->second;
  }

  // With write_mu_ held: the cached snapshot, else the stored key (cached on the way).
  Result<PolicyPtr> load_locked(const std::string& name) {
    if (PolicyPtr p = cached(name)) return p;
    ASSIGN_OR_RETURN(auto raw, storage_.get(storage_key(name)));
    if (!raw) return PolicyPtr();
    boost::system::error_code ec;
    json::value doc = json::parse(raw->view(), ec);
    if (ec) return data_loss("stored transit key is not valid JSON");
    auto parsed = policy_from_json(doc);
    wipe_json(doc);
    if (!parsed.ok()) return parsed.status();
    PolicyPtr p = std::move(*parsed);
    std::unique_lock lock(cache_mu_);
    cache_[name] = p;
    return p;
  }

  // With write_mu_ held: persists `p` and makes it the cached snapshot.
  Status publish_locked(std::shared_ptr<KeyPolicy> p) {
    json::value doc = policy_to_json(*p);
    Status st = storage_.put_json(storage_key(p->name), doc);
    wipe_json(doc);
    RETURN_IF_ERROR(st);
    std::string name = p->name;
    std::unique_lock lock(cache_mu_);
    cache_[name] = std::move(p);
    return ok_status();
  }

  // The named key (nullptr when it does not exist), without side effects.
  Result<PolicyPtr> peek_policy(const std::string& name) {
    if (PolicyPtr p = cached(name)) return p;
    std::lock_guard w(write_mu_);
    return load_locked(name);
  }

  // The named key (nullptr when it does not exist), rotated first if its period elapsed.
  // Auto-rotation is lazy: it happens on the first use after the period (docs/engines/transit.md).
  Result<PolicyPtr> get_policy(const std::string& name) {
    ASSIGN_OR_RETURN(PolicyPtr p, peek_policy(name));
    if (p && rotation_due(*p)) return rotate(name, /*only_if_due=*/true);
    return p;
  }

  bool rotation_due(const KeyPolicy& p) const {
    if (p.auto_rotate_period <= 0) return false;
    const KeyVersion* latest = p.version(p.latest_version);
    return latest != nullptr && now() - latest->creation_time >= p.auto_rotate_period;
  }

  // Applies `fn` to a copy of the named key and publishes it; nullptr when the key is missing.
  Result<PolicyPtr> update_key(const std::string& name,
                               const std::function<Status(KeyPolicy&)>& fn) {
    std::lock_guard w(write_mu_);
    ASSIGN_OR_RETURN(PolicyPtr cur, load_locked(name));
    if (!cur) return PolicyPtr();
    auto next = std::make_shared<KeyPolicy>(*cur);
    RETURN_IF_ERROR(fn(*next));
    RETURN_IF_ERROR(publish_locked(next));
    return PolicyPtr(std::move(next));
  }

  // Creates the key unless it exists; `created` tells which happened.
  Result<PolicyPtr> create_key(const std::string& name, const CreateParams& cp, bool& created) {
    created = false;
    ASSIGN_OR_RETURN(PolicyPtr existing, get_policy(name));
    if (existing) return existing;
    // Key generation (RSA-4096 takes a while) runs outside the write lock.
    ASSIGN_OR_RETURN(auto first, generate_version(cp.kind, cp.hmac_key_size, now()));
    std::lock_guard w(write_mu_);
    ASSIGN_OR_RETURN(existing, load_locked(name));
    if (existing) return existing;  // a concurrent request created it first
    auto p = std::make_shared<KeyPolicy>();
    p->name = name;
    p->kind = cp.kind;
    p->latest_version = 1;
    p->exportable = cp.exportable;
    p->allow_plaintext_backup = cp.allow_plaintext_backup;
    p->auto_rotate_period = cp.auto_rotate_period;
    p->versions.emplace(1, std::move(first));
    RETURN_IF_ERROR(publish_locked(p));
    created = true;
    return PolicyPtr(std::move(p));
  }

  Result<PolicyPtr> rotate(const std::string& name, bool only_if_due) {
    ASSIGN_OR_RETURN(PolicyPtr cur, peek_policy(name));
    if (!cur) return PolicyPtr();
    int64_t hmac_size = kDefaultHmacKeySize;
    if (const KeyVersion* kv = cur->version(cur->latest_version);
        kv && cur->kind == KeyKind::kHmac) {
      hmac_size = static_cast<int64_t>(kv->key.size());
    }
    ASSIGN_OR_RETURN(auto fresh, generate_version(cur->kind, hmac_size, now()));
    KeyKind kind = cur->kind;
    auto add_version = [&](KeyPolicy& p) -> Status {
      if (p.kind != kind) return failed_precondition("key changed during rotation");
      // Another request may have rotated it meanwhile.
      if (only_if_due && !rotation_due(p)) return ok_status();
      p.latest_version += 1;
      p.versions.emplace(p.latest_version, std::move(fresh));
      return ok_status();
    };
    return update_key(name, add_version);
  }

  // Handlers.
  Result<Response> list_keys();
  Result<Response> write_key(const std::string& name, const json::object& data);
  Result<Response> read_key(const std::string& name);
  Result<Response> delete_key(const std::string& name);
  Result<Response> configure_key(const std::string& name, const json::object& data);
  Result<Response> rotate_key(const std::string& name);
  Result<Response> trim_key(const std::string& name, const json::object& data);
  Result<Response> encrypt(const std::string& name, const json::object& data);
  Result<Response> decrypt(const std::string& name, const json::object& data);
  Result<Response> rewrap(const std::string& name, const json::object& data);
  Result<Response> datakey(const std::string& kind, const std::string& name,
                           const json::object& data);
  Result<Response> random(const std::vector<std::string>& segs, const json::object& data);
  Result<Response> hash(const std::vector<std::string>& segs, const json::object& data);
  Result<Response> hmac(const std::vector<std::string>& segs, const json::object& data);
  Result<Response> sign(const std::vector<std::string>& segs, const json::object& data);
  Result<Response> verify(const std::vector<std::string>& segs, const json::object& data);
  Result<Response> export_key(const std::vector<std::string>& segs);

  Result<PolicyPtr> existing_key(const std::string& name, std::string_view missing) {
    if (!valid_key_name(name)) return invalid_argument("invalid key name");
    ASSIGN_OR_RETURN(PolicyPtr p, get_policy(name));
    if (!p) return invalid_argument(std::string(missing));
    return p;
  }

  View storage_;
  const Clock& clock_;
  std::mutex write_mu_;  // serializes key creation, updates, deletes and cache fills
  mutable std::shared_mutex cache_mu_;
  std::unordered_map<std::string, PolicyPtr> cache_;
};

Result<bool> TransitEngine::exists(const Request& req) {
  // Only encrypt has Vault's existence check: encrypting under a missing key creates it, which
  // needs the "create" capability. Every other write is an update. This runs before the ACL
  // check, so it must not change anything (no auto-rotation).
  if (storage_.barrier().sealed()) return unavailable("Vault is sealed");
  auto segs = split_path(req.rel_path);
  if (segs.size() == 2 && segs[0] == "encrypt" && valid_key_name(segs[1])) {
    ASSIGN_OR_RETURN(PolicyPtr p, peek_policy(segs[1]));
    return p != nullptr;
  }
  return true;
}

Result<Response> TransitEngine::handle(Request& req) {
  if (storage_.barrier().sealed()) {
    // Sealing must take key material out of memory too, not only off the storage path.
    drop_cache();
    return unavailable("Vault is sealed");
  }
  auto segs = split_path(req.rel_path);
  const auto& data = req.data;
  bool write = req.op == Operation::kCreate || req.op == Operation::kUpdate;
  bool read = req.op == Operation::kRead;
  auto unsupported_op = [] { return unimplemented("unsupported operation"); };
  if (segs.empty()) return not_found("unsupported path");
  const std::string& head = segs[0];
  size_t n = segs.size();

  if (head == "keys") {
    if (n == 1) {
      if (req.op == Operation::kList) return list_keys();
      return unsupported_op();
    }
    const std::string& name = segs[1];
    if (!valid_key_name(name)) return invalid_argument("invalid key name");
    if (n == 2) {
      if (write) return write_key(name, data);
      if (read) return read_key(name);
      if (req.op == Operation::kDelete) return delete_key(name);
      return unsupported_op();
    }
    if (n == 3 && (segs[2] == "config" || segs[2] == "rotate" || segs[2] == "trim")) {
      if (!write) return unsupported_op();
      if (segs[2] == "config") return configure_key(name, data);
      if (segs[2] == "rotate") return rotate_key(name);
      return trim_key(name, data);
    }
    return not_found("unsupported path");
  }
  if ((head == "encrypt" || head == "decrypt" || head == "rewrap") && n == 2) {
    if (!write) return unsupported_op();
    if (!valid_key_name(segs[1])) return invalid_argument("invalid key name");
    if (head == "encrypt") return encrypt(segs[1], data);
    if (head == "decrypt") return decrypt(segs[1], data);
    return rewrap(segs[1], data);
  }
  if (head == "datakey" && n == 3) {
    if (!write) return unsupported_op();
    return datakey(segs[1], segs[2], data);
  }
  if (head == "random" && n <= 3) {
    if (!write) return unsupported_op();
    return random(segs, data);
  }
  if (head == "hash" && n <= 2) {
    if (!write) return unsupported_op();
    return hash(segs, data);
  }
  if ((head == "hmac" || head == "sign" || head == "verify") && (n == 2 || n == 3)) {
    if (!write) return unsupported_op();
    if (head == "hmac") return hmac(segs, data);
    if (head == "sign") return sign(segs, data);
    return verify(segs, data);
  }
  if (head == "export" && (n == 3 || n == 4)) {
    if (!read) return unsupported_op();
    return export_key(segs);
  }
  return not_found("unsupported path");
}

Result<Response> TransitEngine::list_keys() {
  ASSIGN_OR_RETURN(auto names, storage_.list(kPolicyPrefix));
  json::array keys;
  for (const auto& k : names) {
    if (!k.empty() && k.back() != '/') keys.emplace_back(k);
  }
  json::object body;
  body["keys"] = std::move(keys);
  return Response::with_data(std::move(body));
}

Result<Response> TransitEngine::write_key(const std::string& name, const json::object& data) {
  CreateParams cp;
  ASSIGN_OR_RETURN(std::string type, field_string(data, "type", "aes256-gcm96"));
  if (type.empty()) type = "aes256-gcm96";
  auto kind = parse_kind(type);
  if (!kind) return invalid_argument("unknown key type");
  cp.kind = *kind;
  ASSIGN_OR_RETURN(bool derived, field_bool(data, "derived", false));
  ASSIGN_OR_RETURN(bool convergent, field_bool(data, "convergent_encryption", false));
  if (derived || convergent) {
    return invalid_argument("key derivation and convergent encryption are not supported");
  }
  ASSIGN_OR_RETURN(cp.exportable, field_bool(data, "exportable", false));
  ASSIGN_OR_RETURN(cp.allow_plaintext_backup, field_bool(data, "allow_plaintext_backup", false));
  ASSIGN_OR_RETURN(cp.auto_rotate_period, field_duration(data, "auto_rotate_period", 0));
  if (cp.auto_rotate_period != 0 && cp.auto_rotate_period < kMinAutoRotatePeriod) {
    return invalid_argument("auto rotate period must be 0 to disable or at least an hour");
  }
  ASSIGN_OR_RETURN(int64_t key_size, field_int(data, "key_size", 0));
  if (key_size != 0) {
    if (cp.kind != KeyKind::kHmac) return invalid_argument("key_size is only valid for hmac keys");
    if (key_size < kMinHmacKeySize || key_size > kMaxHmacKeySize) {
      return invalid_argument("key_size must be between 32 and 512 bytes");
    }
    cp.hmac_key_size = key_size;
  }
  bool created = false;
  ASSIGN_OR_RETURN(PolicyPtr p, create_key(name, cp, created));
  Response resp = Response::with_data(key_info(*p));
  if (!created) resp.warnings.push_back("key " + name + " already existed");
  return resp;
}

Result<Response> TransitEngine::read_key(const std::string& name) {
  ASSIGN_OR_RETURN(PolicyPtr p, get_policy(name));
  if (!p) return not_found("key " + name + " not found");
  return Response::with_data(key_info(*p));
}

Result<Response> TransitEngine::delete_key(const std::string& name) {
  std::lock_guard w(write_mu_);
  ASSIGN_OR_RETURN(PolicyPtr p, load_locked(name));
  std::string prefix = "error deleting policy " + name + ": ";
  if (!p) return invalid_argument(prefix + "could not delete key; not found");
  if (!p->deletion_allowed) {
    return invalid_argument(prefix + "deletion is not allowed for this key");
  }
  RETURN_IF_ERROR(storage_.del(storage_key(name)));
  std::unique_lock lock(cache_mu_);
  cache_.erase(name);
  return Response::empty();
}

Result<Response> TransitEngine::configure_key(const std::string& name, const json::object& data) {
  // Only fields present in the request change (Vault's GetOk semantics).
  std::optional<int64_t> min_dec;
  std::optional<int64_t> min_enc;
  std::optional<bool> deletion;
  std::optional<bool> exportable;
  std::optional<bool> plaintext_backup;
  std::optional<int64_t> period;
  auto present = [&](std::string_view k) {
    const auto* v = data.if_contains(k);
    return v != nullptr && !v->is_null();
  };
  if (present("min_decryption_version")) {
    ASSIGN_OR_RETURN(min_dec, field_int(data, "min_decryption_version", 0));
  }
  if (present("min_encryption_version")) {
    ASSIGN_OR_RETURN(min_enc, field_int(data, "min_encryption_version", 0));
  }
  if (present("deletion_allowed")) {
    ASSIGN_OR_RETURN(deletion, field_bool(data, "deletion_allowed", false));
  }
  if (present("exportable")) {
    ASSIGN_OR_RETURN(exportable, field_bool(data, "exportable", false));
  }
  if (present("allow_plaintext_backup")) {
    ASSIGN_OR_RETURN(plaintext_backup, field_bool(data, "allow_plaintext_backup", false));
  }
  if (present("auto_rotate_period")) {
    ASSIGN_OR_RETURN(period, field_duration(data, "auto_rotate_period", 0));
    if (*period != 0 && *period < kMinAutoRotatePeriod) {
      return invalid_argument("auto rotate period must be 0 to disable or at least an hour");
    }
  }
  auto apply = [&](KeyPolicy& k) -> Status {
    if (min_dec && *min_dec > 0 && *min_dec != k.min_decryption_version) {
      if (*min_dec > k.latest_version) {
        return invalid_argument("cannot set min decryption version of " + std::to_string(*min_dec) +
                                ", latest key version is " + std::to_string(k.latest_version));
      }
      if (*min_dec < k.min_available_version) {
        return invalid_argument(
            "cannot set min decryption version below the min available version");
      }
      k.min_decryption_version = *min_dec;
    } else if (min_dec && *min_dec < 0) {
      return invalid_argument("min decryption version cannot be negative");
    }
    if (min_enc) {
      if (*min_enc < 0) {
        return invalid_argument("min encryption version cannot be negative");
      }
      if (*min_enc > k.latest_version) {
        return invalid_argument("cannot set min encryption version of " + std::to_string(*min_enc) +
                                ", latest key version is " + std::to_string(k.latest_version));
      }
      k.min_encryption_version = *min_enc;
    }
    if (k.min_encryption_version > 0 && k.min_encryption_version < k.min_decryption_version) {
      return invalid_argument(
          "min encryption version should not be less than min decryption version");
    }
    if (deletion) k.deletion_allowed = *deletion;
    if (exportable) {
      if (k.exportable && !*exportable) {
        return invalid_argument("exportable key setting cannot be disabled");
      }
      k.exportable = *exportable;
    }
    if (plaintext_backup) {
      if (k.allow_plaintext_backup && !*plaintext_backup) {
        return invalid_argument("allow_plaintext_backup cannot be disabled once enabled");
      }
      k.allow_plaintext_backup = *plaintext_backup;
    }
    if (period) k.auto_rotate_period = *period;
    return ok_status();
  };
  ASSIGN_OR_RETURN(PolicyPtr p, update_key(name, apply));
  if (!p) return not_found("no existing key named " + name + " could be found");
  return Response::with_data(key_info(*p));
}

Result<Response> TransitEngine::rotate_key(const std::string& name) {
  ASSIGN_OR_RETURN(PolicyPtr p, rotate(name, /*only_if_due=*/false));
  if (!p) return invalid_argument("key not found");
  return Response::with_data(key_info(*p));
}

Result<Response> TransitEngine::trim_key(const std::string& name, const json::object& data) {
  const auto* raw = data.if_contains("min_available_version");
  if (raw == nullptr || raw->is_null()) return invalid_argument("missing min_available_version");
  ASSIGN_OR_RETURN(int64_t min_avail, field_int(data, "min_available_version", 0));
  auto apply = [&](KeyPolicy& k) -> Status {
    if (min_avail < 0) {
      return invalid_argument("minimum available version cannot be negative");
    }
    if (min_avail < k.min_available_version) {
      return invalid_argument("minimum available version cannot be decremented");
    }
    if (k.min_encryption_version == 0) {
      return invalid_argument(
          "minimum available version cannot be set when minimum encryption "
          "version is not set");
    }
    if (min_avail > k.min_encryption_version) {
      return invalid_argument(
          "minimum available version cannot be greater than minimum encryption "
          "version");
    }
    if (min_avail > k.min_decryption_version) {
      return invalid_argument(
          "minimum available version cannot be greater than minimum decryption "
          "version");
    }
    k.min_available_version = min_avail;
    std::erase_if(k.versions, [&](const auto& e) { return e.first < min_avail; });
    return ok_status();
  };
  ASSIGN_OR_RETURN(PolicyPtr p, update_key(name, apply));
  if (!p) return invalid_argument("invalid key name");
  return Response::with_data(key_info(*p));
}

Result<Response> TransitEngine::encrypt(const std::string& name, const json::object& data) {
  ASSIGN_OR_RETURN(auto items, batch_items(data));
  ASSIGN_OR_RETURN(PolicyPtr p, get_policy(name));
  if (!p) {
    // Vault's upsert: the first encrypt creates the key (the caller needed "create", see exists).
    const json::object& first = items ? *items->front() : data;
    ASSIGN_OR_RETURN(auto context, opt_string(first, "context"));
    if (context && !context->empty()) {
      return invalid_argument("key derivation is not supported; cannot create a derived key");
    }
    CreateParams cp;
    ASSIGN_OR_RETURN(std::string type, field_string(data, "type", "aes256-gcm96"));
    auto kind = parse_kind(type.empty() ? "aes256-gcm96" : type);
    if (!kind) return invalid_argument("unknown key type");
    if (!supports_encryption(*kind)) {
      return invalid_argument("key type " + type + " does not support encryption");
    }
    cp.kind = *kind;
    bool created = false;
    ASSIGN_OR_RETURN(p, create_key(name, cp, created));
  }
  const KeyPolicy& key = *p;
  return single_or_batch(data, [&](const json::object& item) -> Result<json::object> {
    ASSIGN_OR_RETURN(SecretBytes plaintext,
                     required_base64(item, "plaintext", "missing plaintext to encrypt"));
    ASSIGN_OR_RETURN(auto nonce, opt_string(item, "nonce"));
    if (nonce && !nonce->empty()) {
      return invalid_argument("provided nonce not allowed for this key");
    }
    ASSIGN_OR_RETURN(SecretBytes aad, optional_base64(item, "associated_data"));
    ASSIGN_OR_RETURN(int64_t requested, item_key_version(item, data));
    ASSIGN_OR_RETURN(int64_t version, version_for_encrypt(key, requested));
    ASSIGN_OR_RETURN(std::string ct, encrypt_with(key, version, plaintext.span(), aad.span()));
    json::object out;
    out["ciphertext"] = std::move(ct);
    out["key_version"] = version;
    return out;
  });
}

Result<Response> TransitEngine::decrypt(const std::string& name, const json::object& data) {
  ASSIGN_OR_RETURN(PolicyPtr p, existing_key(name, "encryption key not found"));
  const KeyPolicy& key = *p;
  return single_or_batch(data, [&](const json::object& item) -> Result<json::object> {
    ASSIGN_OR_RETURN(std::string ct,
                     required_string(item, "ciphertext", "missing ciphertext to decrypt"));
    ASSIGN_OR_RETURN(SecretBytes aad, optional_base64(item, "associated_data"));
    ASSIGN_OR_RETURN(SecretBytes pt, decrypt_with(key, ct, aad.span()));
    json::object out;
    out["plaintext"] = secret_base64(pt.span());
    return out;
  });
}

Result<Response> TransitEngine::rewrap(const std::string& name, const json::object& data) {
  ASSIGN_OR_RETURN(PolicyPtr p, existing_key(name, "encryption key not found"));
  const KeyPolicy& key = *p;
  return single_or_batch(data, [&](const json::object& item) -> Result<json::object> {
    ASSIGN_OR_RETURN(std::string ct,
                     required_string(item, "ciphertext", "missing ciphertext to rewrap"));
    ASSIGN_OR_RETURN(SecretBytes aad, optional_base64(item, "associated_data"));
    ASSIGN_OR_RETURN(SecretBytes pt, decrypt_with(key, ct, aad.span()));
    ASSIGN_OR_RETURN(int64_t requested, item_key_version(item, data));
    ASSIGN_OR_RETURN(int64_t version, version_for_encrypt(key, requested));
    ASSIGN_OR_RETURN(std::string fresh, encrypt_with(key, version, pt.span(), aad.span()));
    json::object out;
    out["ciphertext"] = std::move(fresh);
    out["key_version"] = version;
    return out;
  });
}

Result<Response> TransitEngine::datakey(const std::string& kind, const std::string& name,
                                        const json::object& data) {
  if (kind != "plaintext" && kind != "wrapped") {
    return invalid_argument("invalid data key type; must be \"plaintext\" or \"wrapped\"");
  }
  ASSIGN_OR_RETURN(PolicyPtr p, existing_key(name, "encryption key not found"));
  ASSIGN_OR_RETURN(int64_t bits, field_int(data, "bits", 256));
  if (bits != 128 && bits != 256 && bits != 512) {
    return invalid_argument("invalid bits value; must be 128, 256, or 512");
  }
  ASSIGN_OR_RETURN(auto nonce, opt_string(data, "nonce"));
  if (nonce && !nonce->empty()) return invalid_argument("provided nonce not allowed for this key");
  ASSIGN_OR_RETURN(SecretBytes aad, optional_base64(data, "associated_data"));
  ASSIGN_OR_RETURN(int64_t requested, field_int(data, "key_version", 0));
  ASSIGN_OR_RETURN(int64_t version, version_for_encrypt(*p, requested));
  SecretBytes fresh = crypto::random_secret(static_cast<size_t>(bits / 8));
  ASSIGN_OR_RETURN(std::string ct, encrypt_with(*p, version, fresh.span(), aad.span()));
  json::object out;
  out["ciphertext"] = std::move(ct);
  out["key_version"] = version;
  if (kind == "plaintext") out["plaintext"] = secret_base64(fresh.span());
  return Response::with_data(std::move(out));
}

Result<Response> TransitEngine::random(const std::vector<std::string>& segs,
                                       const json::object& data) {
  // random, random/:bytes, random/:source, random/:source/:bytes
  std::string source = "platform";
  std::optional<std::string> url_bytes;
  if (segs.size() == 2) {
    if (all_digits(segs[1])) {
      url_bytes = segs[1];
    } else {
      source = segs[1];
    }
  } else if (segs.size() == 3) {
    source = segs[1];
    url_bytes = segs[2];
  }
  if (source != "platform" && source != "seal" && source != "all") {
    return invalid_argument("unsupported entropy source; must be platform, seal or all");
  }
  int64_t bytes = kDefaultRandomBytes;
  if (url_bytes) {
    if (!parse_decimal(*url_bytes, bytes)) {
      return invalid_argument("error parsing bytes from the URL");
    }
  } else {
    ASSIGN_OR_RETURN(bytes, field_int(data, "bytes", kDefaultRandomBytes));
  }
  if (bytes < 1) return invalid_argument("bytes must be greater than 0");
  if (bytes > kMaxRandomBytes) {
    return invalid_argument("bytes cannot be greater than " + std::to_string(kMaxRandomBytes));
  }
  ASSIGN_OR_RETURN(std::string format, field_string(data, "format", "base64"));
  if (format != "base64" && format != "hex") {
    return invalid_argument("unsupported encoding format; must be \"hex\" or \"base64\"");
  }
  Bytes out = crypto::random_bytes(static_cast<size_t>(bytes));
  json::object body;
  body["random_bytes"] = format == "hex" ? hex_encode(out) : base64_encode(out);
  return Response::with_data(std::move(body));
}

Result<Response> TransitEngine::hash(const std::vector<std::string>& segs,
                                     const json::object& data) {
  ASSIGN_OR_RETURN(crypto::HashAlg alg, hash_from(segs, 1, data, /*allow_sha1=*/false));
  ASSIGN_OR_RETURN(SecretBytes input, required_base64(data, "input", "missing input to hash"));
  ASSIGN_OR_RETURN(std::string format, field_string(data, "format", "hex"));
  if (format != "base64" && format != "hex") {
    return invalid_argument("unsupported encoding format; must be \"hex\" or \"base64\"");
  }
  Bytes sum = crypto::digest(alg, input.span());
  json::object body;
  body["sum"] = format == "hex" ? hex_encode(sum) : base64_encode(sum);
  return Response::with_data(std::move(body));
}

Result<Response> TransitEngine::hmac(const std::vector<std::string>& segs,
                                     const json::object& data) {
  ASSIGN_OR_RETURN(PolicyPtr p, existing_key(segs[1], "encryption key not found"));
  ASSIGN_OR_RETURN(crypto::HashAlg alg, hash_from(segs, 2, data, /*allow_sha1=*/false));
  const KeyPolicy& key = *p;
  return single_or_batch(data, [&](const json::object& item) -> Result<json::object> {
    ASSIGN_OR_RETURN(SecretBytes input, required_base64(item, "input", "missing input for HMAC"));
    ASSIGN_OR_RETURN(int64_t requested, item_key_version(item, data));
    ASSIGN_OR_RETURN(int64_t version, version_for_encrypt(key, requested));
    json::object out;
    out["hmac"] = hmac_with(key, version, alg, input.span());
    out["key_version"] = version;
    return out;
  });
}

Result<Response> TransitEngine::sign(const std::vector<std::string>& segs,
                                     const json::object& data) {
  ASSIGN_OR_RETURN(PolicyPtr p, existing_key(segs[1], "signing key not found"));
  const KeyPolicy& key = *p;
  if (!supports_signing(key.kind)) {
    return invalid_argument("key type " + std::string(kind_name(key.kind)) +
                            " does not support signing");
  }
  ASSIGN_OR_RETURN(SignParams sp, sign_params(key, segs, data));
  return single_or_batch(data, [&](const json::object& item) -> Result<json::object> {
    ASSIGN_OR_RETURN(SecretBytes input, required_base64(item, "input", "missing input to sign"));
    ASSIGN_OR_RETURN(int64_t requested, item_key_version(item, data));
    ASSIGN_OR_RETURN(int64_t version, version_for_encrypt(key, requested));
    ASSIGN_OR_RETURN(std::string sig, sign_with(key, version, input.span(), sp));
    json::object out;
    out["signature"] = std::move(sig);
    out["key_version"] = version;
    return out;
  });
}

Result<Response> TransitEngine::verify(const std::vector<std::string>& segs,
                                       const json::object& data) {
  ASSIGN_OR_RETURN(PolicyPtr p, existing_key(segs[1], "encryption key not found"));
  const KeyPolicy& key = *p;
  ASSIGN_OR_RETURN(crypto::HashAlg alg, hash_from(segs, 2, data, /*allow_sha1=*/true));
  std::optional<SignParams> sp;
  if (supports_signing(key.kind)) {
    ASSIGN_OR_RETURN(sp, sign_params(key, segs, data));
  }
  return single_or_batch(data, [&](const json::object& item) -> Result<json::object> {
    ASSIGN_OR_RETURN(SecretBytes input, required_base64(item, "input", "missing input to verify"));
    ASSIGN_OR_RETURN(auto signature, opt_string(item, "signature"));
    ASSIGN_OR_RETURN(auto mac, opt_string(item, "hmac"));
    bool has_sig = signature && !signature->empty();
    bool has_mac = mac && !mac->empty();
    if (has_sig && has_mac) return invalid_argument("provide one of signature or hmac, not both");
    if (!has_sig && !has_mac) return invalid_argument("missing signature or hmac to verify");
    bool valid = false;
    if (has_mac) {
      if (alg == crypto::HashAlg::kSha1) return invalid_argument("sha1 is not supported for HMAC");
      ASSIGN_OR_RETURN(valid, verify_hmac_with(key, *mac, alg, input.span()));
    } else {
      if (!sp) {
        return invalid_argument("key type " + std::string(kind_name(key.kind)) +
                                " does not support verification");
      }
      ASSIGN_OR_RETURN(valid, verify_with(key, *signature, input.span(), *sp));
    }
    json::object out;
    out["valid"] = valid;
    return out;
  });
}

Result<Response> TransitEngine::export_key(const std::vector<std::string>& segs) {
  const std::string& type = segs[1];
  const std::string& name = segs[2];
  if (type != "encryption-key" && type != "signing-key" && type != "hmac-key" &&
      type != "public-key") {
    return invalid_argument("invalid export type");
  }
  if (!valid_key_name(name)) return invalid_argument("invalid key name");
  ASSIGN_OR_RETURN(PolicyPtr p, get_policy(name));
  if (!p) return not_found("key " + name + " not found");
  const KeyPolicy& key = *p;
  if (type != "public-key" && !key.exportable) return invalid_argument("key is not exportable");
  if (type == "encryption-key" && !supports_encryption(key.kind)) {
    return invalid_argument("encryption key not supported for this key type");
  }
  if ((type == "signing-key" || type == "public-key") && !supports_signing(key.kind)) {
    return invalid_argument("signing key not supported for this key type");
  }

  auto render = [&](const KeyVersion& kv) -> Result<json::string> {
    if (type == "hmac-key") return secret_base64(key.mac_key(kv).span());
    if (type == "public-key") return json::string(public_key_text(key.kind, *kv.public_key));
    if (is_aead(key.kind)) return secret_base64(kv.key.span());
    if (key.kind == KeyKind::kEd25519) {
      ASSIGN_OR_RETURN(SecretBytes raw, ed25519_go_private(*kv.private_key));
      return secret_base64(raw.span());
    }
    SecretString pem = kv.private_key->to_pem();
    return json::string(pem.str());
  };

  json::object keys;
  if (segs.size() == 4) {
    int64_t v = 0;
    if (segs[3] == "latest") {
      v = key.latest_version;
    } else {
      if (!parse_decimal(segs[3], v) || v <= 0) {
        return invalid_argument("could not parse version");
      }
    }
    if (v < key.min_decryption_version) {
      return invalid_argument("version for export is below minimum decryption version");
    }
    const KeyVersion* kv = key.version(v);
    if (kv == nullptr) return invalid_argument("version does not exist or cannot be found");
    ASSIGN_OR_RETURN(json::string text, render(*kv));
    keys[std::to_string(v)] = std::move(text);
  } else {
    for (const auto& [v, kv] : key.versions) {
      if (v < key.min_decryption_version) continue;
      ASSIGN_OR_RETURN(json::string text, render(*kv));
      keys[std::to_string(v)] = std::move(text);
    }
  }
  json::object body;
  body["name"] = key.name;
  body["type"] = kind_name(key.kind);
  body["keys"] = std::move(keys);
  return Response::with_data(std::move(body));
}

}  // namespace

Result<std::unique_ptr<Engine>> make_transit_engine(EngineContext ctx, const MountEntry& entry) {
  (void)entry;  // transit has no mount options
  return std::unique_ptr<Engine>(std::make_unique<TransitEngine>(std::move(ctx)));
}

}  // namespace custos::core
