#include "core/barrier.h"

#include <boost/json.hpp>

#include "base/encoding.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/random.h"

namespace custos::core {
namespace {

constexpr uint8_t kFormatVersion = 1;
constexpr size_t kHeader = 1 + 4 + crypto::kAeadNonceSize;
constexpr std::string_view kKeyringPath = "core/keyring";

Bytes aad_for(std::string_view path, uint32_t term) {
  Bytes aad(path.begin(), path.end());
  for (int i = 3; i >= 0; --i) aad.push_back(static_cast<uint8_t>(term >> (8 * i)));
  return aad;
}

}  // namespace

Barrier::Barrier(storage::Backend& backend, const Clock& clock)
    : backend_(backend), clock_(clock) {}
Barrier::~Barrier() { seal(); }

Result<bool> Barrier::initialized() {
  ASSIGN_OR_RETURN(auto v, backend_.get(kKeyringPath));
  return v.has_value();
}

Result<Bytes> Barrier::encrypt_with(ByteSpan key, std::string_view path, ByteSpan plaintext) const {
  Bytes nonce = crypto::random_bytes(crypto::kAeadNonceSize);
  ASSIGN_OR_RETURN(Bytes ct, crypto::aead_seal(crypto::AeadAlg::kAes256Gcm, key, nonce, plaintext,
                                               aad_for(path, 0)));
  Bytes out;
  out.reserve(kHeader + ct.size());
  out.push_back(kFormatVersion);
  out.insert(out.end(), 4, 0);
  out.insert(out.end(), nonce.begin(), nonce.end());
  out.insert(out.end(), ct.begin(), ct.end());
  return out;
}

Result<SecretBytes> Barrier::decrypt_with(ByteSpan key, std::string_view path, ByteSpan blob) const {
  if (blob.size() < kHeader + crypto::kAeadTagSize || blob[0] != kFormatVersion) {
    return data_loss("stored value at " + std::string(path) + " is malformed");
  }
  return crypto::aead_open(crypto::AeadAlg::kAes256Gcm, key, blob.subspan(5, crypto::kAeadNonceSize),
                           blob.subspan(kHeader), aad_for(path, 0));
}

Result<SecretBytes> Barrier::initialize() {
  SecretBytes root_key = crypto::random_secret(32);
  RETURN_IF_ERROR(initialize(root_key, {}));
  return root_key;
}

Status Barrier::initialize(const SecretBytes& root_key, std::vector<storage::Op> with) {
  std::unique_lock lock(mu_);
  auto existing = backend_.get(kKeyringPath);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) return already_exists("Vault is already initialized");
  std::map<uint32_t, KeyTerm> terms;
  KeyTerm t;
  t.term = 1;
  t.key = crypto::random_secret(32);
  t.install_time = clock_.now();
  terms.emplace(1, std::move(t));
  ASSIGN_OR_RETURN(Bytes keyring, keyring_blob(root_key, terms, 1));
  with.push_back(
      storage::Op{storage::Op::Kind::kPut, std::string(kKeyringPath), std::move(keyring)});
  // One transaction: the keyring never exists without what opens it.
  RETURN_IF_ERROR(backend_.transaction(with));
  root_key_ = root_key.clone();
  terms_ = std::move(terms);
  active_term_ = 1;
  sealed_ = false;
  return ok_status();
}

Result<Bytes> Barrier::keyring_blob(const SecretBytes& root_key,
                                    const std::map<uint32_t, KeyTerm>& terms,
                                    uint32_t active) const {
  boost::json::array arr;
  for (const auto& [n, t] : terms) {
    boost::json::object o;
    o["term"] = n;
    o["key"] = base64_encode(t.key.span());
    o["install_time"] = to_unix_seconds(t.install_time);
    arr.push_back(std::move(o));
  }
  boost::json::object doc;
  doc["active_term"] = active;
  doc["terms"] = std::move(arr);
  SecretString text(boost::json::serialize(doc));
  return encrypt_with(root_key.span(), kKeyringPath, as_bytes(text.str()));
}

Status Barrier::persist_keyring() {
  ASSIGN_OR_RETURN(Bytes blob, keyring_blob(root_key_, terms_, active_term_));
  return backend_.put(kKeyringPath, blob);
}

Status Barrier::unseal(const SecretBytes& root_key) {
  std::unique_lock lock(mu_);
  return load_keyring_locked(root_key);
}

Status Barrier::reload() {
  std::unique_lock lock(mu_);
  if (sealed_) return unavailable("Vault is sealed");
  SecretBytes root_key = root_key_.clone();
  return load_keyring_locked(root_key);
}

Status Barrier::load_keyring_locked(const SecretBytes& root_key) {
  ASSIGN_OR_RETURN(auto blob, backend_.get(kKeyringPath));
  if (!blob) return failed_precondition("Vault is not initialized");
  auto plain = decrypt_with(root_key.span(), kKeyringPath, *blob);
  if (!plain.ok()) return data_loss("root key does not open the keyring");
  boost::system::error_code ec;
  auto doc = boost::json::parse(plain->view(), ec);
  if (ec || !doc.is_object()) return data_loss("keyring is corrupt");
  std::map<uint32_t, KeyTerm> terms;
  const auto* arr = doc.as_object().if_contains("terms");
  const auto* active = doc.as_object().if_contains("active_term");
  if (!arr || !arr->is_array() || !active || !active->is_int64()) return data_loss("keyring is corrupt");
  for (const auto& v : arr->as_array()) {
    const auto* o_ptr = v.if_object();
    const auto* kv = o_ptr ? o_ptr->if_contains("key") : nullptr;
    const auto* tv = o_ptr ? o_ptr->if_contains("term") : nullptr;
    const auto* iv = o_ptr ? o_ptr->if_contains("install_time") : nullptr;
    if (!kv || !kv->is_string() || !tv || !tv->is_int64() || !iv || !iv->is_int64()) {
      return data_loss("keyring is corrupt");
    }
    const auto& o = *o_ptr;
    auto key = base64_decode(o.at("key").as_string());
    if (!key.ok() || key->size() != 32) return data_loss("keyring key is corrupt");
    KeyTerm t;
    t.term = static_cast<uint32_t>(o.at("term").as_int64());
    t.key = SecretBytes(std::move(*key));
    t.install_time = from_unix_seconds(o.at("install_time").as_int64());
    uint32_t n = t.term;
    terms.emplace(n, std::move(t));
  }
  // The parsed JSON held key text; it is freed with `doc` (Boost.JSON does not wipe). The keys
  // live in mlocked memory (server hygiene) so this copy never reaches swap or a core dump.
  const auto active_term = static_cast<uint32_t>(active->as_int64());
  if (!terms.count(active_term)) return data_loss("keyring has no active term");
  terms_ = std::move(terms);
  active_term_ = active_term;
  root_key_ = root_key.clone();
  sealed_ = false;
  return ok_status();
}

void Barrier::seal() {
  std::unique_lock lock(mu_);
  sealed_ = true;
  terms_.clear();
  root_key_.wipe();
}

bool Barrier::sealed() const {
  std::shared_lock lock(mu_);
  return sealed_;
}

Result<uint32_t> Barrier::rotate() {
  std::unique_lock lock(mu_);
  if (sealed_) return unavailable("Vault is sealed");
  KeyTerm t;
  t.term = active_term_ + 1;
  t.key = crypto::random_secret(32);
  t.install_time = clock_.now();
  uint32_t n = t.term;
  terms_.emplace(n, std::move(t));
  uint32_t previous = active_term_;
  active_term_ = n;
  Status st = persist_keyring();
  if (!st.ok()) {
    terms_.erase(n);
    active_term_ = previous;
    return st;
  }
  encryptions_ = 0;
  return n;
}

Result<Barrier::KeyStatus> Barrier::key_status() const {
  std::shared_lock lock(mu_);
  if (sealed_) return unavailable("Vault is sealed");
  const auto& t = terms_.at(active_term_);
  return KeyStatus{t.term, t.install_time, encryptions_.load()};
}

Result<Bytes> Barrier::seal_value(std::string_view key, ByteSpan plaintext) {
  std::shared_lock lock(mu_);
  if (sealed_) return unavailable("Vault is sealed");
  const KeyTerm& t = terms_.at(active_term_);
  Bytes nonce = crypto::random_bytes(crypto::kAeadNonceSize);
  ASSIGN_OR_RETURN(Bytes ct, crypto::aead_seal(crypto::AeadAlg::kAes256Gcm, t.key.span(), nonce,
                                               plaintext, aad_for(key, t.term)));
  Bytes out;
  out.reserve(kHeader + ct.size());
  out.push_back(kFormatVersion);
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<uint8_t>(t.term >> (8 * i)));
  out.insert(out.end(), nonce.begin(), nonce.end());
  out.insert(out.end(), ct.begin(), ct.end());
  encryptions_.fetch_add(1, std::memory_order_relaxed);
  return out;
}

Result<SecretBytes> Barrier::open_value(std::string_view key, ByteSpan blob) const {
  std::shared_lock lock(mu_);
  if (sealed_) return unavailable("Vault is sealed");
  if (blob.size() < kHeader + crypto::kAeadTagSize || blob[0] != kFormatVersion) {
    return data_loss("stored value is malformed");
  }
  uint32_t term = (uint32_t{blob[1]} << 24) | (uint32_t{blob[2]} << 16) | (uint32_t{blob[3]} << 8) |
                  uint32_t{blob[4]};
  auto it = terms_.find(term);
  if (it == terms_.end()) return data_loss("stored value uses an unknown key term");
  auto plain = crypto::aead_open(crypto::AeadAlg::kAes256Gcm, it->second.key.span(),
                                 blob.subspan(5, crypto::kAeadNonceSize), blob.subspan(kHeader),
                                 aad_for(key, term));
  if (!plain.ok()) return data_loss("stored value failed authentication");
  return plain;
}

Result<std::optional<SecretBytes>> Barrier::get(std::string_view key) {
  if (sealed()) return unavailable("Vault is sealed");
  ASSIGN_OR_RETURN(auto blob, backend_.get(key));
  if (!blob) return std::optional<SecretBytes>();
  ASSIGN_OR_RETURN(SecretBytes plain, open_value(key, *blob));
  return std::optional<SecretBytes>(std::move(plain));
}

Status Barrier::put(std::string_view key, ByteSpan value) {
  ASSIGN_OR_RETURN(Bytes blob, seal_value(key, value));
  return backend_.put(key, blob);
}

Status Barrier::del(std::string_view key) {
  if (sealed()) return unavailable("Vault is sealed");
  return backend_.del(key);
}

Result<std::vector<std::string>> Barrier::list(std::string_view prefix) {
  if (sealed()) return unavailable("Vault is sealed");
  return backend_.list(prefix);
}

Status Barrier::transaction(std::vector<storage::Op> ops) {
  for (size_t i = 0; i < ops.size(); ++i) {
    storage::Op& op = ops[i];
    if (op.kind != storage::Op::Kind::kPut) continue;
    Result<Bytes> blob = seal_value(op.key, op.value);
    secure_wipe(op.value.data(), op.value.size());
    if (!blob.ok()) {
      // Plaintext not yet sealed is wiped on this path too.
      for (size_t j = i + 1; j < ops.size(); ++j) {
        secure_wipe(ops[j].value.data(), ops[j].value.size());
      }
      return blob.status();
    }
    op.value = std::move(blob).value();
  }
  if (sealed()) return unavailable("Vault is sealed");
  return backend_.transaction(ops);
}

Result<SecretBytes> Barrier::derive_key(std::string_view purpose) const {
  std::shared_lock lock(mu_);
  if (sealed_) return unavailable("Vault is sealed");
  return crypto::hkdf_sha256(root_key_.span(), {}, as_bytes(purpose), 32);
}

}  // namespace custos::core
