// Vault's AppRole auth method. API and what is left out: docs/auth.md.
//
// Secret IDs are bearer credentials, so they are never stored: each is keyed and found by
// HMAC-SHA256(mount key, secret ID), where the mount key is 32 random bytes created with the
// mount and kept behind the barrier. A storage dump (even decrypted) therefore holds nothing a
// client could log in with, and a storage lookup by MAC does not compare secrets byte by byte.
// The MAC found is still compared again in constant time against the one recomputed, so a
// backend that answered a near-miss key could not be used as an oracle.
//
// Secret IDs live below a per-role random directory (the role's "uuid"), not below the role's
// name: a role deleted and created again with the same name never inherits the old role's
// secret IDs, even if deleting them was interrupted.
//
// Consuming a use of a secret ID (and every other write) happens under mu_, so two concurrent
// logins with a single-use secret ID cannot both succeed.
#include "core/auth/approle.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/encoding.h"
#include "base/log.h"
#include "core/auth/cidr.h"
#include "core/auth/token_fields.h"
#include "crypto/hash.h"
#include "crypto/random.h"

namespace custos::core {
namespace {

namespace json = boost::json;

constexpr std::string_view kHmacKeyPath = "hmac_key";
constexpr std::string_view kRolePrefix = "role/";
constexpr std::string_view kRoleIdPrefix = "role_id/";
constexpr std::string_view kSecretIdPrefix = "secret_id/";
constexpr std::string_view kAccessorPrefix = "accessor/";
constexpr size_t kHmacKeySize = 32;
constexpr size_t kMaxNameLength = 4096;
constexpr size_t kMaxSecretLength = 4096;
// One message for every way a login can fail, so a caller cannot tell a wrong role ID from a
// wrong, expired, used-up or address-bound secret ID. The reason goes to the server log.
constexpr std::string_view kInvalidLogin = "invalid role or secret ID";
constexpr std::string_view kNeverExpires = "0001-01-01T00:00:00Z";

Status read_duration(const json::object& d, const char* key, int64_t& out) {
  if (!d.contains(key)) return ok_status();
  ASSIGN_OR_RETURN(out, field_duration(d, key, out));
  return ok_status();
}

Status read_count(const json::object& d, const char* key, int64_t& out) {
  if (!d.contains(key)) return ok_status();
  ASSIGN_OR_RETURN(out, field_int(d, key, out));
  if (out < 0) return invalid_argument("field \"" + std::string(key) + "\" must not be negative");
  return ok_status();
}

Result<std::vector<std::string>> stored_strings(const json::object& o, std::string_view key) {
  auto r = field_string_list(o, key);
  if (!r.ok()) return data_loss("stored approle record is corrupt");
  return r;
}

// ---------------------------------------------------------------------------------------------
// Records

struct Role {
  std::string name;
  std::string uuid;  // the directory of its secret IDs
  std::string role_id;
  bool bind_secret_id = true;
  std::vector<std::string> secret_id_bound_cidrs;
  int64_t secret_id_num_uses = 0;
  int64_t secret_id_ttl = 0;
  TokenFields token;

  json::object to_json() const {
    json::object o;
    o["name"] = name;
    o["uuid"] = uuid;
    o["role_id"] = role_id;
    o["bind_secret_id"] = bind_secret_id;
    o["secret_id_bound_cidrs"] = to_string_array(secret_id_bound_cidrs);
    o["secret_id_num_uses"] = secret_id_num_uses;
    o["secret_id_ttl"] = secret_id_ttl;
    token_fields_to_json(token, o);
    return o;
  }

  static Result<Role> from_json(const json::value& v) {
    if (!v.is_object()) return data_loss("stored approle role is corrupt");
    const auto& o = v.as_object();
    Role r;
    const auto* name = o.if_contains("name");
    const auto* uuid = o.if_contains("uuid");
    const auto* id = o.if_contains("role_id");
    if (!name || !name->is_string() || !uuid || !uuid->is_string() || !id || !id->is_string()) {
      return data_loss("stored approle role is corrupt");
    }
    r.name = std::string(name->as_string());
    r.uuid = std::string(uuid->as_string());
    r.role_id = std::string(id->as_string());
    const auto* bind = o.if_contains("bind_secret_id");
    r.bind_secret_id = !bind || !bind->is_bool() || bind->as_bool();
    ASSIGN_OR_RETURN(r.secret_id_bound_cidrs, stored_strings(o, "secret_id_bound_cidrs"));
    if (const auto* n = o.if_contains("secret_id_num_uses"); n && n->is_int64()) {
      r.secret_id_num_uses = n->as_int64();
    }
    if (const auto* n = o.if_contains("secret_id_ttl"); n && n->is_int64()) {
      r.secret_id_ttl = n->as_int64();
    }
    RETURN_IF_ERROR(token_fields_from_json(o, r.token, "approle"));
    return r;
  }
};

struct SecretIdEntry {
  std::string secret_hmac;  // hex HMAC of the secret ID: the entry's own key
  std::string accessor;
  int64_t num_uses = 0;  // uses left; 0: unlimited
  int64_t ttl = 0;
  int64_t creation_time = 0;
  int64_t expiration_time = 0;  // 0: never
  int64_t last_updated_time = 0;
  json::object metadata;
  std::vector<std::string> cidr_list;
  std::vector<std::string> token_bound_cidrs;

  bool expired(int64_t now) const { return expiration_time > 0 && now >= expiration_time; }

  json::object to_json() const {
    return {{"secret_id_hmac", secret_hmac},
            {"secret_id_accessor", accessor},
            {"secret_id_num_uses", num_uses},
            {"secret_id_ttl", ttl},
            {"creation_time", creation_time},
            {"expiration_time", expiration_time},
            {"last_updated_time", last_updated_time},
            {"metadata", metadata},
            {"cidr_list", to_string_array(cidr_list)},
            {"token_bound_cidrs", to_string_array(token_bound_cidrs)}};
  }

  static Result<SecretIdEntry> from_json(const json::value& v) {
    if (!v.is_object()) return data_loss("stored secret ID entry is corrupt");
    const auto& o = v.as_object();
    SecretIdEntry e;
    auto str = [&](const char* k) -> std::optional<std::string> {
      const auto* x = o.if_contains(k);
      if (!x || !x->is_string()) return std::nullopt;
      return std::string(x->as_string());
    };
    auto num = [&](const char* k) -> int64_t {
      const auto* x = o.if_contains(k);
      return x && x->is_int64() ? x->as_int64() : 0;
    };
    auto mac = str("secret_id_hmac");
    auto acc = str("secret_id_accessor");
    if (!mac || !acc) return data_loss("stored secret ID entry is corrupt");
    e.secret_hmac = std::move(*mac);
    e.accessor = std::move(*acc);
    e.num_uses = num("secret_id_num_uses");
    e.ttl = num("secret_id_ttl");
    e.creation_time = num("creation_time");
    e.expiration_time = num("expiration_time");
    e.last_updated_time = num("last_updated_time");
    if (const auto* m = o.if_contains("metadata"); m && m->is_object()) e.metadata = m->as_object();
    ASSIGN_OR_RETURN(e.cidr_list, stored_strings(o, "cidr_list"));
    ASSIGN_OR_RETURN(e.token_bound_cidrs, stored_strings(o, "token_bound_cidrs"));
    return e;
  }

  json::object describe() const {
    return {{"secret_id_accessor", accessor},
            {"secret_id_num_uses", num_uses},
            {"secret_id_ttl", ttl},
            {"creation_time", format_rfc3339_nanos(from_unix_seconds(creation_time))},
            {"expiration_time", expiration_time > 0
                                    ? format_rfc3339_nanos(from_unix_seconds(expiration_time))
                                    : std::string(kNeverExpires)},
            {"last_updated_time", format_rfc3339_nanos(from_unix_seconds(last_updated_time))},
            {"metadata", metadata},
            {"cidr_list", to_string_array(cidr_list)},
            {"token_bound_cidrs", to_string_array(token_bound_cidrs)}};
  }
};

bool valid_role_name(std::string_view n) {
  if (n.empty() || n.size() > kMaxNameLength) return false;
  return std::all_of(n.begin(), n.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '-' || ch == '_' ||
           ch == '.' || ch == ' ' || ch == '@';
  });
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return s;
}

// Secret ID metadata: a JSON object of strings, or (Vault's CLI form) a string holding one.
Result<json::object> metadata_field(const json::object& d) {
  const auto* v = d.if_contains("metadata");
  if (!v || v->is_null()) return json::object();
  json::value parsed;
  if (v->is_string()) {
    if (v->as_string().empty()) return json::object();
    boost::system::error_code ec;
    parsed = json::parse(v->as_string(), ec);
    if (ec) return invalid_argument("field \"metadata\" must be a JSON object of strings");
    v = &parsed;
  }
  if (!v->is_object())
    return invalid_argument("field \"metadata\" must be a JSON object of strings");
  for (const auto& [k, x] : v->as_object()) {
    if (!x.is_string())
      return invalid_argument("field \"metadata\" must be a JSON object of strings");
  }
  return v->as_object();
}

// ---------------------------------------------------------------------------------------------
// The method

class AppRoleAuth final : public Engine {
 public:
  explicit AppRoleAuth(EngineContext ctx) : storage_(ctx.storage), clock_(ctx.clock) {}

  Result<Response> handle(Request& req) override;
  Result<bool> exists(const Request& req) override;
  bool unauthenticated(const Request& req) const override { return req.rel_path == "login"; }
  void shutdown() override {
    std::lock_guard lock(mu_);
    key_.wipe();
  }

 private:
  int64_t now() const { return to_unix_seconds(clock_.now()); }

  // The mount's HMAC key, created on first use. With mu_ held.
  Result<const SecretBytes*> key_locked() {
    if (!key_.empty()) return &key_;
    ASSIGN_OR_RETURN(auto stored, storage_.get(kHmacKeyPath));
    if (stored) {
      if (stored->size() != kHmacKeySize) return data_loss("approle HMAC key is corrupt");
      key_ = std::move(*stored);
      return &key_;
    }
    SecretBytes fresh = crypto::random_secret(kHmacKeySize);
    RETURN_IF_ERROR(storage_.put(kHmacKeyPath, fresh.span()));
    key_ = std::move(fresh);
    return &key_;
  }
  Result<std::string> mac_locked(std::string_view domain, std::string_view value) {
    ASSIGN_OR_RETURN(const SecretBytes* key, key_locked());
    // A domain label keeps role IDs, secret IDs and accessors in separate MAC spaces.
    std::string msg(domain);
    msg.push_back('\0');
    msg.append(value);
    Bytes mac = crypto::hmac_sha256(key->span(), as_bytes(msg));
    secure_wipe(msg.data(), msg.size());
    return hex_encode(mac);
  }

  static std::string role_key(const std::string& name) {
    return std::string(kRolePrefix) + lower(name);
  }
  static std::string secret_dir(const Role& r) {
    return std::string(kSecretIdPrefix) + r.uuid + "/";
  }
  static std::string accessor_dir(const Role& r) {
    return std::string(kAccessorPrefix) + r.uuid + "/";
  }

  Result<std::optional<Role>> load_role(const std::string& name) {
    ASSIGN_OR_RETURN(auto v, storage_.get_json(role_key(name)));
    if (!v) return std::optional<Role>();
    ASSIGN_OR_RETURN(Role r, Role::from_json(*v));
    return std::optional<Role>(std::move(r));
  }
  Result<Role> existing_role(const std::string& name) {
    ASSIGN_OR_RETURN(auto r, load_role(name));
    if (!r) return invalid_argument("role \"" + name + "\" does not exist");
    return std::move(*r);
  }
  Result<std::optional<SecretIdEntry>> load_entry(const Role& r, const std::string& mac) {
    ASSIGN_OR_RETURN(auto v, storage_.get_json(secret_dir(r) + mac));
    if (!v) return std::optional<SecretIdEntry>();
    ASSIGN_OR_RETURN(SecretIdEntry e, SecretIdEntry::from_json(*v));
    return std::optional<SecretIdEntry>(std::move(e));
  }
  Status delete_entry_locked(const Role& r, const SecretIdEntry& e) {
    ASSIGN_OR_RETURN(std::string acc_mac, mac_locked("accessor", e.accessor));
    RETURN_IF_ERROR(storage_.del(accessor_dir(r) + acc_mac));
    return storage_.del(secret_dir(r) + e.secret_hmac);
  }

  // Handlers.
  Result<Response> list_roles();
  Result<Response> write_role(const std::string& name, const json::object& d,
                              bool must_exist = false);
  Result<Response> read_role(const std::string& name);
  Result<Response> delete_role(const std::string& name);
  Result<Response> read_role_id(const std::string& name);
  Result<Response> write_role_id(const std::string& name, const json::object& d);
  Result<Response> create_secret_id(const std::string& name, const json::object& d, bool custom);
  Result<Response> list_secret_ids(const std::string& name);
  Result<Response> lookup_secret_id(const std::string& name, const json::object& d);
  Result<Response> destroy_secret_id(const std::string& name, const json::object& d);
  Result<Response> lookup_accessor(const std::string& name, const json::object& d);
  Result<Response> destroy_accessor(const std::string& name, const json::object& d);
  Result<Response> login(const Request& req);
  Result<Response> tidy();

  // The entry a secret ID names (nullopt when unknown), with mu_ held.
  Result<std::optional<SecretIdEntry>> find_secret_locked(const Role& r, std::string_view secret);
  // The entry an accessor names, with mu_ held; an error when unknown.
  Result<SecretIdEntry> find_accessor_locked(const Role& r, const json::object& d);

  View storage_;
  const Clock& clock_;
  std::mutex mu_;  // serializes every write, and guards key_
  SecretBytes key_;
};

Result<bool> AppRoleAuth::exists(const Request& req) {
  if (storage_.barrier().sealed()) return unavailable("Vault is sealed");
  std::string_view p = req.rel_path;
  if (p.rfind(kRolePrefix, 0) == 0) {
    std::string name(p.substr(kRolePrefix.size()));
    if (valid_role_name(name)) {
      ASSIGN_OR_RETURN(auto r, load_role(name));
      return r.has_value();
    }
  }
  return true;
}

std::vector<std::string> split(std::string_view p) {
  std::vector<std::string> out;
  while (!p.empty()) {
    size_t slash = p.find('/');
    out.emplace_back(p.substr(0, slash));
    if (slash == std::string_view::npos) break;
    p.remove_prefix(slash + 1);
  }
  return out;
}

Result<Response> AppRoleAuth::handle(Request& req) {
  if (storage_.barrier().sealed()) {
    shutdown();
    return unavailable("Vault is sealed");
  }
  auto segs = split(req.rel_path);
  const auto& d = req.data;
  bool write = req.op == Operation::kCreate || req.op == Operation::kUpdate;
  bool read = req.op == Operation::kRead;
  bool list = req.op == Operation::kList;
  bool del = req.op == Operation::kDelete;
  auto unsupported = [] { return unimplemented("unsupported operation"); };
  size_t n = segs.size();
  if (n == 0) return not_found("unsupported path");

  if (segs[0] == "login" && n == 1) {
    if (!write) return unsupported();
    return login(req);
  }
  if (segs[0] == "tidy" && n == 2 && segs[1] == "secret-id") {
    if (!write) return unsupported();
    return tidy();
  }
  if (segs[0] != "role") return not_found("unsupported path");
  if (n == 1 || (n == 2 && segs[1].empty())) {
    if (!list) return unsupported();
    return list_roles();
  }
  const std::string& name = segs[1];
  if (!valid_role_name(name)) {
    return invalid_argument(
        "invalid role name: use 1 to 4096 letters, digits, spaces, '-', '_', '.' or '@'");
  }
  if (n == 2) {
    if (write) return write_role(name, d);
    if (read) return read_role(name);
    if (del) return delete_role(name);
    return unsupported();
  }
  const std::string& sub = segs[2];
  if (n == 3 && sub == "role-id") {
    if (read) return read_role_id(name);
    if (write) return write_role_id(name, d);
    return unsupported();
  }
  if (n == 3 && sub == "secret-id") {
    if (write) return create_secret_id(name, d, false);
    if (list) return list_secret_ids(name);
    return unsupported();
  }
  if (n == 4 && sub == "secret-id" && segs[3].empty()) {
    if (list) return list_secret_ids(name);
    return unsupported();
  }
  if (n == 3 && sub == "custom-secret-id") {
    if (!write) return unsupported();
    return create_secret_id(name, d, true);
  }
  if (n == 4 && sub == "secret-id" && segs[3] == "lookup") {
    if (!write) return unsupported();
    return lookup_secret_id(name, d);
  }
  if (n == 4 && sub == "secret-id" && segs[3] == "destroy") {
    if (!write && !del) return unsupported();
    return destroy_secret_id(name, d);
  }
  if (n == 4 && sub == "secret-id-accessor" && segs[3] == "lookup") {
    if (!write) return unsupported();
    return lookup_accessor(name, d);
  }
  if (n == 4 && sub == "secret-id-accessor" && segs[3] == "destroy") {
    if (!write && !del) return unsupported();
    return destroy_accessor(name, d);
  }
  return not_found("unsupported path");
}

// --- roles ----------------------------------------------------------------------------------

Result<Response> AppRoleAuth::list_roles() {
  ASSIGN_OR_RETURN(auto keys, storage_.list(kRolePrefix));
  json::array out;
  for (const auto& k : keys) {
    if (!k.empty() && k.back() != '/') out.emplace_back(k);
  }
  if (out.empty()) return not_found("no roles");
  return Response::with_data({{"keys", std::move(out)}});
}

Result<Response> AppRoleAuth::write_role(const std::string& name, const json::object& d,
                                         bool must_exist) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto existing, load_role(name));
  bool creating = !existing;
  if (creating && must_exist) return invalid_argument("role \"" + name + "\" does not exist");
  Role r;
  if (existing) {
    r = std::move(*existing);
  } else {
    r.name = name;
    r.uuid = crypto::random_uuid();
  }
  ASSIGN_OR_RETURN(r.bind_secret_id, field_bool(d, "bind_secret_id", r.bind_secret_id));
  if (d.contains("secret_id_bound_cidrs")) {
    ASSIGN_OR_RETURN(r.secret_id_bound_cidrs, cidr_list_field(d, "secret_id_bound_cidrs"));
  } else if (d.contains("bound_cidr_list")) {  // the pre-1.0 name
    ASSIGN_OR_RETURN(r.secret_id_bound_cidrs, cidr_list_field(d, "bound_cidr_list"));
  }
  RETURN_IF_ERROR(read_count(d, "secret_id_num_uses", r.secret_id_num_uses));
  RETURN_IF_ERROR(read_duration(d, "secret_id_ttl", r.secret_id_ttl));
  RETURN_IF_ERROR(apply_token_fields(d, r.token, cidr_list_field, "approle"));
  if (!r.bind_secret_id && r.secret_id_bound_cidrs.empty() && r.token.bound_cidrs.empty()) {
    // Without a secret ID the role ID alone would be a password anyone who reads it could use.
    return invalid_argument(
        "at least one constraint should be enabled on the role: bind_secret_id, "
        "secret_id_bound_cidrs or token_bound_cidrs");
  }

  std::string old_role_id = r.role_id;
  if (d.contains("role_id")) {
    ASSIGN_OR_RETURN(r.role_id, field_string(d, "role_id"));
    if (r.role_id.empty()) return invalid_argument("field \"role_id\" must not be empty");
  } else if (creating) {
    r.role_id = crypto::random_uuid();
  }
  if (r.role_id.size() > kMaxSecretLength) return invalid_argument("field \"role_id\" is too long");
  ASSIGN_OR_RETURN(std::string new_index, mac_locked("role_id", r.role_id));
  if (r.role_id != old_role_id) {
    ASSIGN_OR_RETURN(auto taken, storage_.get_json(std::string(kRoleIdPrefix) + new_index));
    if (taken) return invalid_argument("role_id is already in use by another role");
  }
  RETURN_IF_ERROR(storage_.put_json(role_key(name), r.to_json()));
  RETURN_IF_ERROR(storage_.put_json(std::string(kRoleIdPrefix) + new_index,
                                    json::object{{"name", lower(name)}}));
  if (!old_role_id.empty() && old_role_id != r.role_id) {
    ASSIGN_OR_RETURN(std::string old_index, mac_locked("role_id", old_role_id));
    RETURN_IF_ERROR(storage_.del(std::string(kRoleIdPrefix) + old_index));
  }
  return Response::empty();
}

Result<Response> AppRoleAuth::read_role(const std::string& name) {
  ASSIGN_OR_RETURN(auto r, load_role(name));
  if (!r) return not_found("role \"" + name + "\" does not exist");
  json::object o;
  o["bind_secret_id"] = r->bind_secret_id;
  o["secret_id_bound_cidrs"] = to_string_array(r->secret_id_bound_cidrs);
  o["secret_id_num_uses"] = r->secret_id_num_uses;
  o["secret_id_ttl"] = r->secret_id_ttl;
  o["local_secret_ids"] = false;
  token_fields_to_json(r->token, o);
  return Response::with_data(std::move(o));
}

Result<Response> AppRoleAuth::delete_role(const std::string& name) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto r, load_role(name));
  if (!r) return Response::empty();
  // The role record goes first: once it is gone no login can reach the secret IDs, so a crash
  // part-way leaves only unreachable entries (tidy/secret-id removes them).
  RETURN_IF_ERROR(storage_.del(role_key(name)));
  ASSIGN_OR_RETURN(std::string index, mac_locked("role_id", r->role_id));
  RETURN_IF_ERROR(storage_.del(std::string(kRoleIdPrefix) + index));
  RETURN_IF_ERROR(storage_.delete_tree(secret_dir(*r)));
  RETURN_IF_ERROR(storage_.delete_tree(accessor_dir(*r)));
  return Response::empty();
}

Result<Response> AppRoleAuth::read_role_id(const std::string& name) {
  ASSIGN_OR_RETURN(auto r, load_role(name));
  if (!r) return not_found("role \"" + name + "\" does not exist");
  return Response::with_data({{"role_id", r->role_id}});
}

Result<Response> AppRoleAuth::write_role_id(const std::string& name, const json::object& d) {
  ASSIGN_OR_RETURN(std::string id, field_string(d, "role_id"));
  if (id.empty()) return invalid_argument("missing role_id");
  return write_role(name, json::object{{"role_id", id}}, /*must_exist=*/true);
}

// --- secret IDs -----------------------------------------------------------------------------

Result<std::optional<SecretIdEntry>> AppRoleAuth::find_secret_locked(const Role& r,
                                                                     std::string_view secret) {
  ASSIGN_OR_RETURN(std::string mac, mac_locked("secret_id", secret));
  ASSIGN_OR_RETURN(auto e, load_entry(r, mac));
  if (!e || !constant_time_equal(std::string_view(e->secret_hmac), std::string_view(mac))) {
    return std::optional<SecretIdEntry>();
  }
  return e;
}

Result<Response> AppRoleAuth::create_secret_id(const std::string& name, const json::object& d,
                                               bool custom) {
  ASSIGN_OR_RETURN(json::object metadata, metadata_field(d));
  ASSIGN_OR_RETURN(auto cidrs, cidr_list_field(d, "cidr_list"));
  ASSIGN_OR_RETURN(auto token_cidrs, cidr_list_field(d, "token_bound_cidrs"));
  int64_t num_uses = 0;
  int64_t ttl = 0;
  RETURN_IF_ERROR(read_count(d, "num_uses", num_uses));
  RETURN_IF_ERROR(read_duration(d, "ttl", ttl));
  SecretString secret;
  if (custom) {
    ASSIGN_OR_RETURN(std::string s, field_string(d, "secret_id"));
    secret = SecretString(std::move(s));
    if (secret.empty()) return invalid_argument("missing secret_id");
    if (secret.str().size() > kMaxSecretLength) return invalid_argument("secret_id is too long");
  } else {
    secret = SecretString(crypto::random_uuid());
  }

  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Role r, existing_role(name));
  if (!r.bind_secret_id) {
    return invalid_argument("bind_secret_id is not set on the role: it takes no secret IDs");
  }
  // A secret ID may narrow the role's limits, never widen them.
  for (const auto& c : cidrs) {
    if (r.secret_id_bound_cidrs.empty()) break;
    auto inner = parse_cidr(c);
    bool inside = std::any_of(r.secret_id_bound_cidrs.begin(), r.secret_id_bound_cidrs.end(),
                              [&](const std::string& o) {
                                auto outer = parse_cidr(o);
                                return inner && outer && cidr_within(*inner, *outer);
                              });
    if (!inside) {
      return invalid_argument("cidr_list must lie within the role's secret_id_bound_cidrs");
    }
  }
  if (r.secret_id_num_uses > 0) {
    if (num_uses > r.secret_id_num_uses) {
      return invalid_argument("num_uses cannot be higher than the role's secret_id_num_uses");
    }
    if (num_uses == 0) num_uses = r.secret_id_num_uses;
  }
  if (r.secret_id_ttl > 0) {
    if (ttl > r.secret_id_ttl) {
      return invalid_argument("ttl cannot be longer than the role's secret_id_ttl");
    }
    if (ttl == 0) ttl = r.secret_id_ttl;
  }

  ASSIGN_OR_RETURN(auto clash, find_secret_locked(r, secret.str()));
  if (clash) return invalid_argument("secret_id is already registered on the role");

  SecretIdEntry e;
  ASSIGN_OR_RETURN(e.secret_hmac, mac_locked("secret_id", secret.str()));
  e.accessor = crypto::random_uuid();
  e.num_uses = num_uses;
  e.ttl = ttl;
  e.creation_time = now();
  e.last_updated_time = e.creation_time;
  e.expiration_time = ttl > 0 ? e.creation_time + ttl : 0;
  e.metadata = std::move(metadata);
  e.cidr_list = std::move(cidrs);
  e.token_bound_cidrs = std::move(token_cidrs);
  ASSIGN_OR_RETURN(std::string acc_mac, mac_locked("accessor", e.accessor));
  // The accessor index first: an entry without one could not be listed-and-destroyed.
  RETURN_IF_ERROR(storage_.put_json(accessor_dir(r) + acc_mac,
                                    json::object{{"secret_id_hmac", e.secret_hmac}}));
  RETURN_IF_ERROR(storage_.put_json(secret_dir(r) + e.secret_hmac, e.to_json()));
  return Response::with_data({{"secret_id", secret.str()},
                              {"secret_id_accessor", e.accessor},
                              {"secret_id_ttl", e.ttl},
                              {"secret_id_num_uses", e.num_uses}});
}

Result<Response> AppRoleAuth::list_secret_ids(const std::string& name) {
  ASSIGN_OR_RETURN(auto r, load_role(name));
  if (!r) return invalid_argument("role \"" + name + "\" does not exist");
  ASSIGN_OR_RETURN(auto keys, storage_.list(secret_dir(*r)));
  json::array out;
  for (const auto& k : keys) {
    if (k.empty() || k.back() == '/') continue;
    ASSIGN_OR_RETURN(auto e, load_entry(*r, k));
    if (e) out.emplace_back(e->accessor);
  }
  if (out.empty()) return not_found("no secret IDs");
  return Response::with_data({{"keys", std::move(out)}});
}

Result<Response> AppRoleAuth::lookup_secret_id(const std::string& name, const json::object& d) {
  ASSIGN_OR_RETURN(std::string s, field_string(d, "secret_id"));
  SecretString secret(std::move(s));
  if (secret.empty()) return invalid_argument("missing secret_id");
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Role r, existing_role(name));
  ASSIGN_OR_RETURN(auto e, find_secret_locked(r, secret.str()));
  // Vault answers an unknown secret ID with no data (204).
  if (!e || e->expired(now())) return Response::empty();
  return Response::with_data(e->describe());
}

Result<Response> AppRoleAuth::destroy_secret_id(const std::string& name, const json::object& d) {
  ASSIGN_OR_RETURN(std::string s, field_string(d, "secret_id"));
  SecretString secret(std::move(s));
  if (secret.empty()) return invalid_argument("missing secret_id");
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Role r, existing_role(name));
  ASSIGN_OR_RETURN(auto e, find_secret_locked(r, secret.str()));
  if (e) RETURN_IF_ERROR(delete_entry_locked(r, *e));
  return Response::empty();
}

Result<SecretIdEntry> AppRoleAuth::find_accessor_locked(const Role& r, const json::object& d) {
  ASSIGN_OR_RETURN(std::string accessor, field_string(d, "secret_id_accessor"));
  if (accessor.empty()) return invalid_argument("missing secret_id_accessor");
  ASSIGN_OR_RETURN(std::string acc_mac, mac_locked("accessor", accessor));
  ASSIGN_OR_RETURN(auto idx, storage_.get_json(accessor_dir(r) + acc_mac));
  const json::value* mac =
      idx && idx->is_object() ? idx->as_object().if_contains("secret_id_hmac") : nullptr;
  std::optional<SecretIdEntry> e;
  if (mac && mac->is_string()) {
    ASSIGN_OR_RETURN(e, load_entry(r, std::string(mac->as_string())));
  }
  if (!e || e->accessor != accessor) {
    return invalid_argument("failed to find accessor entry for secret_id_accessor");
  }
  return std::move(*e);
}

Result<Response> AppRoleAuth::lookup_accessor(const std::string& name, const json::object& d) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Role r, existing_role(name));
  ASSIGN_OR_RETURN(SecretIdEntry e, find_accessor_locked(r, d));
  return Response::with_data(e.describe());
}

Result<Response> AppRoleAuth::destroy_accessor(const std::string& name, const json::object& d) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Role r, existing_role(name));
  ASSIGN_OR_RETURN(SecretIdEntry e, find_accessor_locked(r, d));
  RETURN_IF_ERROR(delete_entry_locked(r, e));
  return Response::empty();
}

// --- login ----------------------------------------------------------------------------------

Result<Response> AppRoleAuth::login(const Request& req) {
  ASSIGN_OR_RETURN(std::string role_id, field_string(req.data, "role_id"));
  ASSIGN_OR_RETURN(std::string s, field_string(req.data, "secret_id"));
  SecretString secret(std::move(s));
  if (role_id.empty()) return invalid_argument("missing role_id");
  if (role_id.size() > kMaxSecretLength || secret.str().size() > kMaxSecretLength) {
    return invalid_argument(std::string(kInvalidLogin));
  }
  auto refuse = [](std::string_view why) -> Status {
    LOG_INFO("approle", "login refused: " << why);
    return invalid_argument(std::string(kInvalidLogin));
  };

  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(std::string index, mac_locked("role_id", role_id));
  ASSIGN_OR_RETURN(auto idx, storage_.get_json(std::string(kRoleIdPrefix) + index));
  const json::value* name =
      idx && idx->is_object() ? idx->as_object().if_contains("name") : nullptr;
  if (!name || !name->is_string()) return refuse("unknown role ID");
  ASSIGN_OR_RETURN(auto role, load_role(std::string(name->as_string())));
  if (!role || !constant_time_equal(std::string_view(role->role_id), std::string_view(role_id))) {
    return refuse("unknown role ID");
  }
  const Role& r = *role;
  if (!source_allowed(r.secret_id_bound_cidrs, req.remote_addr)) {
    return refuse("source address outside the role's secret_id_bound_cidrs");
  }
  if (!source_allowed(r.token.bound_cidrs, req.remote_addr)) {
    return refuse("source address outside the role's token_bound_cidrs");
  }

  json::object metadata;
  // The minted token is bound to the secret ID's token_bound_cidrs when it has them (a subset
  // of the role's), else to the role's.
  std::vector<std::string> token_cidrs = r.token.bound_cidrs;
  if (r.bind_secret_id) {
    if (secret.empty()) return invalid_argument("missing secret_id");
    ASSIGN_OR_RETURN(auto entry, find_secret_locked(r, secret.str()));
    if (!entry) return refuse("unknown secret ID");
    SecretIdEntry& e = *entry;
    int64_t t = now();
    if (e.expired(t)) {
      Status st = delete_entry_locked(r, e);
      if (!st.ok()) LOG_WARN("approle", "could not remove an expired secret ID: " << st.message());
      return refuse("expired secret ID");
    }
    if (!source_allowed(e.cidr_list, req.remote_addr)) {
      return refuse("source address outside the secret ID's cidr_list");
    }
    if (!source_allowed(e.token_bound_cidrs, req.remote_addr)) {
      return refuse("source address outside the secret ID's token_bound_cidrs");
    }
    // Every check passed: spend a use. The last use deletes the entry.
    if (e.num_uses == 1) {
      RETURN_IF_ERROR(delete_entry_locked(r, e));
    } else if (e.num_uses > 1) {
      e.num_uses -= 1;
      e.last_updated_time = t;
      RETURN_IF_ERROR(storage_.put_json(secret_dir(r) + e.secret_hmac, e.to_json()));
    }
    metadata = e.metadata;
    if (!e.token_bound_cidrs.empty()) token_cidrs = e.token_bound_cidrs;
  }

  Auth a = auth_from(r.token);
  a.bound_cidrs = std::move(token_cidrs);
  metadata["role_name"] = r.name;
  a.metadata = std::move(metadata);
  Response resp;
  resp.auth = std::move(a);
  return resp;
}

Result<Response> AppRoleAuth::tidy() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto role_names, storage_.list(kRolePrefix));
  std::set<std::string> live;  // role uuids
  std::vector<Role> roles;
  for (const auto& k : role_names) {
    if (k.empty() || k.back() == '/') continue;
    ASSIGN_OR_RETURN(auto r, load_role(k));
    if (r) {
      live.insert(r->uuid);
      roles.push_back(std::move(*r));
    }
  }
  int64_t removed = 0;
  // Directories of roles that no longer exist (a delete interrupted part-way).
  for (std::string_view prefix : {kSecretIdPrefix, kAccessorPrefix}) {
    ASSIGN_OR_RETURN(auto dirs, storage_.list(prefix));
    for (const auto& dir : dirs) {
      if (dir.empty()) continue;
      std::string uuid = dir.back() == '/' ? dir.substr(0, dir.size() - 1) : dir;
      if (live.contains(uuid)) continue;
      RETURN_IF_ERROR(storage_.delete_tree(std::string(prefix) + dir));
      if (dir.back() != '/') RETURN_IF_ERROR(storage_.del(std::string(prefix) + dir));
    }
  }
  int64_t t = now();
  for (const auto& r : roles) {
    ASSIGN_OR_RETURN(auto keys, storage_.list(secret_dir(r)));
    for (const auto& k : keys) {
      if (k.empty() || k.back() == '/') continue;
      ASSIGN_OR_RETURN(auto e, load_entry(r, k));
      if (e && e->expired(t)) {
        RETURN_IF_ERROR(delete_entry_locked(r, *e));
        ++removed;
      }
    }
    // Accessor index entries whose secret ID is gone.
    ASSIGN_OR_RETURN(auto accs, storage_.list(accessor_dir(r)));
    for (const auto& k : accs) {
      if (k.empty() || k.back() == '/') continue;
      ASSIGN_OR_RETURN(auto idx, storage_.get_json(accessor_dir(r) + k));
      const json::value* mac =
          idx && idx->is_object() ? idx->as_object().if_contains("secret_id_hmac") : nullptr;
      bool dangling = mac == nullptr || !mac->is_string();
      if (!dangling) {
        ASSIGN_OR_RETURN(auto entry, storage_.get(secret_dir(r) + std::string(mac->as_string())));
        dangling = !entry.has_value();
      }
      if (dangling) RETURN_IF_ERROR(storage_.del(accessor_dir(r) + k));
    }
  }
  // Vault tidies in the background and answers 202; this runs to completion first.
  Response resp;
  resp.status = 202;
  resp.warnings.emplace_back("Tidy operation completed: removed " + std::to_string(removed) +
                             " expired secret IDs.");
  return resp;
}

}  // namespace

Result<std::unique_ptr<Engine>> make_approle_auth(EngineContext ctx, const MountEntry& entry) {
  (void)entry;
  return std::unique_ptr<Engine>(std::make_unique<AppRoleAuth>(ctx));
}

}  // namespace custos::core
