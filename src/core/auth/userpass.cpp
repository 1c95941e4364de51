// Vault's userpass auth method. API and what is left out: docs/auth.md.
//
// Passwords are stored as PBKDF2-HMAC-SHA256 (RFC 8018) with a random 16-byte salt and
// kUserpassPbkdf2Iterations iterations, written here over crypto::hmac_sha256 so crypto/ keeps
// one primitive per function. PBKDF2 rather than scrypt or Argon2: it needs nothing beyond HMAC,
// is FIPS-approved, and is what Vault-adjacent tooling can verify; its weakness (no memory
// hardness) matters for a stolen hash, and hashes sit behind the barrier, encrypted. Each record
// names its algorithm and iteration count, so the cost can be raised without a migration.
//
// A login for a user that does not exist still runs one full PBKDF2 against a dummy hash and
// fails with the same message as a wrong password, so neither the answer nor its timing tells a
// caller which usernames exist.
#include "core/auth/userpass.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
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

constexpr std::string_view kUserPrefix = "user/";
constexpr std::string_view kHashAlg = "pbkdf2-sha256";
constexpr size_t kSaltSize = 16;
constexpr size_t kHashSize = 32;
constexpr size_t kSha256BlockSize = 64;
constexpr size_t kMaxNameLength = 256;
constexpr size_t kMaxPasswordLength = 4096;
// A stored count above this is corrupt (or hostile): refuse it rather than spin for minutes.
constexpr int64_t kMaxIterations = 100'000'000;
constexpr std::string_view kInvalidLogin = "invalid username or password";

// ---------------------------------------------------------------------------------------------
// Token settings (Vault's tokenutil fields)

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return s;
}

// ---------------------------------------------------------------------------------------------
// Password hashes

struct PasswordHash {
  uint32_t iterations = 0;
  Bytes salt;
  Bytes hash;

  json::object to_json() const {
    return {{"alg", kHashAlg},
            {"iterations", static_cast<int64_t>(iterations)},
            {"salt", base64_encode(salt)},
            {"hash", base64_encode(hash)}};
  }
  static Result<PasswordHash> from_json(const json::value& v) {
    auto corrupt = [] { return data_loss("stored userpass password hash is corrupt"); };
    if (!v.is_object()) return corrupt();
    const auto& o = v.as_object();
    const auto* alg = o.if_contains("alg");
    const auto* it = o.if_contains("iterations");
    const auto* salt = o.if_contains("salt");
    const auto* hash = o.if_contains("hash");
    if (!alg || !alg->is_string() || alg->as_string() != kHashAlg) return corrupt();
    if (!it || !(it->is_int64() || it->is_uint64()) || !salt || !salt->is_string() || !hash ||
        !hash->is_string()) {
      return corrupt();
    }
    int64_t n = -1;
    if (it->is_int64()) {
      n = it->as_int64();
    } else if (it->as_uint64() <= static_cast<uint64_t>(kMaxIterations)) {
      n = static_cast<int64_t>(it->as_uint64());
    }
    if (n < 1 || n > kMaxIterations) return corrupt();
    auto s = base64_decode(salt->as_string());
    auto h = base64_decode(hash->as_string());
    if (!s.ok() || !h.ok() || s->empty() || h->size() != kHashSize) return corrupt();
    PasswordHash p;
    p.iterations = static_cast<uint32_t>(n);
    p.salt = std::move(*s);
    p.hash = std::move(*h);
    return p;
  }
};

PasswordHash hash_password(std::string_view password, uint32_t iterations) {
  PasswordHash p;
  p.iterations = iterations;
  p.salt = crypto::random_bytes(kSaltSize);
  SecretBytes dk = pbkdf2_hmac_sha256(password, p.salt, iterations, kHashSize);
  p.hash.assign(dk.data(), dk.data() + dk.size());
  return p;
}

bool verify_password(std::string_view password, const PasswordHash& p) {
  SecretBytes dk = pbkdf2_hmac_sha256(password, p.salt, p.iterations, kHashSize);
  return constant_time_equal(dk.span(), ByteSpan(p.hash));
}

// ---------------------------------------------------------------------------------------------
// Users

struct User {
  std::string name;
  PasswordHash password;
  TokenFields token;

  json::object to_json() const {
    json::object o;
    o["name"] = name;
    o["password_hash"] = password.to_json();
    token_fields_to_json(token, o);
    return o;
  }
  static Result<User> from_json(const json::value& v) {
    auto corrupt = [] { return data_loss("stored userpass user is corrupt"); };
    if (!v.is_object()) return corrupt();
    const auto& o = v.as_object();
    User u;
    const auto* name = o.if_contains("name");
    const auto* ph = o.if_contains("password_hash");
    if (!name || !name->is_string() || !ph) return corrupt();
    u.name = std::string(name->as_string());
    ASSIGN_OR_RETURN(u.password, PasswordHash::from_json(*ph));
    RETURN_IF_ERROR(token_fields_from_json(o, u.token, "userpass user"));
    return u;
  }
};

bool valid_username(std::string_view n) {
  if (n.empty() || n.size() > kMaxNameLength) return false;
  return std::all_of(n.begin(), n.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '-' || ch == '_' ||
           ch == '.' || ch == '@';
  });
}

Result<SecretString> password_field(const json::object& d) {
  ASSIGN_OR_RETURN(std::string p, field_string(d, "password"));
  SecretString out(std::move(p));
  if (out.empty()) return invalid_argument("missing password");
  if (out.str().size() > kMaxPasswordLength) {
    return invalid_argument("password is longer than 4096 bytes");
  }
  return out;
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

class UserpassAuth final : public Engine {
 public:
  UserpassAuth(EngineContext ctx, uint32_t iterations)
      : storage_(ctx.storage), iterations_(iterations) {
    // The dummy a login for an unknown user is checked against: same cost as a real user's.
    dummy_ = hash_password("custos-userpass-dummy", iterations_);
  }

  Result<Response> handle(Request& req) override;
  Result<bool> exists(const Request& req) override;
  bool unauthenticated(const Request& req) const override {
    return req.rel_path.rfind("login/", 0) == 0;
  }

 private:
  static std::string user_key(const std::string& name) {
    return std::string(kUserPrefix) + lower(name);
  }
  Result<std::optional<User>> load_user(const std::string& name) const {
    ASSIGN_OR_RETURN(auto v, storage_.get_json(user_key(name)));
    if (!v) return std::optional<User>();
    ASSIGN_OR_RETURN(User u, User::from_json(*v));
    return std::optional<User>(std::move(u));
  }

  Result<Response> list_users();
  Result<Response> write_user(const std::string& name, const json::object& d);
  Result<Response> read_user(const std::string& name);
  Result<Response> delete_user(const std::string& name);
  Result<Response> update_password(const std::string& name, const json::object& d);
  Result<Response> update_policies(const std::string& name, const json::object& d);
  Result<Response> login(const std::string& name, const json::object& d,
                         std::string_view remote_addr);

  View storage_;
  uint32_t iterations_;
  PasswordHash dummy_;
  std::mutex mu_;  // serializes writes (read-modify-write of a user record)
};

Result<bool> UserpassAuth::exists(const Request& req) {
  if (storage_.barrier().sealed()) return unavailable("Vault is sealed");
  auto segs = split(req.rel_path);
  if (segs.size() == 2 && segs[0] == "users" && valid_username(segs[1])) {
    ASSIGN_OR_RETURN(auto u, load_user(segs[1]));
    return u.has_value();
  }
  return true;
}

Result<Response> UserpassAuth::handle(Request& req) {
  if (storage_.barrier().sealed()) return unavailable("Vault is sealed");
  auto segs = split(req.rel_path);
  const auto& d = req.data;
  bool write = req.op == Operation::kCreate || req.op == Operation::kUpdate;
  auto unsupported = [] { return unimplemented("unsupported operation"); };
  size_t n = segs.size();
  if (n == 0) return not_found("unsupported path");

  if (segs[0] == "login" && n == 2) {
    if (!write) return unsupported();
    return login(segs[1], d, req.remote_addr);
  }
  if (segs[0] != "users") return not_found("unsupported path");
  if (n == 1) {
    if (req.op != Operation::kList) return unsupported();
    return list_users();
  }
  const std::string& name = segs[1];
  if (!valid_username(name)) {
    return invalid_argument("invalid username: use 1 to 256 letters, digits, '-', '_', '.' or '@'");
  }
  if (n == 2) {
    if (write) return write_user(name, d);
    if (req.op == Operation::kRead) return read_user(name);
    if (req.op == Operation::kDelete) return delete_user(name);
    return unsupported();
  }
  if (n == 3 && (segs[2] == "password" || segs[2] == "policies")) {
    if (!write) return unsupported();
    return segs[2] == "password" ? update_password(name, d) : update_policies(name, d);
  }
  return not_found("unsupported path");
}

Result<Response> UserpassAuth::list_users() {
  ASSIGN_OR_RETURN(auto keys, storage_.list(kUserPrefix));
  json::array out;
  for (const auto& k : keys) {
    if (!k.empty() && k.back() != '/') out.emplace_back(k);
  }
  if (out.empty()) return not_found("no users");
  return Response::with_data({{"keys", std::move(out)}});
}

Result<Response> UserpassAuth::write_user(const std::string& name, const json::object& d) {
  // Hash (slow) before taking the lock.
  std::optional<PasswordHash> fresh;
  if (d.contains("password")) {
    ASSIGN_OR_RETURN(SecretString pw, password_field(d));
    fresh = hash_password(pw.str(), iterations_);
  }
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto existing, load_user(name));
  User u;
  if (existing) {
    u = std::move(*existing);
  } else {
    if (!fresh) return invalid_argument("missing password");
    u.name = lower(name);
  }
  RETURN_IF_ERROR(apply_token_fields(d, u.token, cidr_list_field, "userpass"));
  if (fresh) u.password = std::move(*fresh);
  RETURN_IF_ERROR(storage_.put_json(user_key(name), u.to_json()));
  return Response::empty();
}

Result<Response> UserpassAuth::read_user(const std::string& name) {
  ASSIGN_OR_RETURN(auto u, load_user(name));
  if (!u) return not_found("user \"" + name + "\" does not exist");
  json::object o;
  token_fields_to_json(u->token, o);
  return Response::with_data(std::move(o));
}

Result<Response> UserpassAuth::delete_user(const std::string& name) {
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(storage_.del(user_key(name)));
  return Response::empty();
}

Result<Response> UserpassAuth::update_password(const std::string& name, const json::object& d) {
  ASSIGN_OR_RETURN(SecretString pw, password_field(d));
  PasswordHash fresh = hash_password(pw.str(), iterations_);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto u, load_user(name));
  if (!u) return invalid_argument("username does not exist");
  u->password = std::move(fresh);
  RETURN_IF_ERROR(storage_.put_json(user_key(name), u->to_json()));
  return Response::empty();
}

Result<Response> UserpassAuth::update_policies(const std::string& name, const json::object& d) {
  if (!d.contains("token_policies") && !d.contains("policies")) {
    return invalid_argument("missing token_policies");
  }
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto u, load_user(name));
  if (!u) return invalid_argument("username does not exist");
  // Only the policies change: hand the shared parser just that field.
  json::object only;
  const char* key = d.contains("token_policies") ? "token_policies" : "policies";
  only[key] = d.at(key);
  RETURN_IF_ERROR(apply_token_fields(only, u->token, cidr_list_field, "userpass"));
  RETURN_IF_ERROR(storage_.put_json(user_key(name), u->to_json()));
  return Response::empty();
}

Result<Response> UserpassAuth::login(const std::string& name, const json::object& d,
                                     std::string_view remote_addr) {
  ASSIGN_OR_RETURN(std::string p, field_string(d, "password"));
  SecretString password(std::move(p));
  if (password.empty()) return invalid_argument("missing password");
  if (!valid_username(name) || password.str().size() > kMaxPasswordLength) {
    return invalid_argument(std::string(kInvalidLogin));
  }
  ASSIGN_OR_RETURN(auto u, load_user(name));
  // Unknown users cost the same PBKDF2 as known ones (see the top of the file).
  bool match = verify_password(password.str(), u ? u->password : dummy_);
  if (!u || !match) {
    LOG_INFO("userpass", "login refused: " << (u ? "wrong password" : "unknown user"));
    return invalid_argument(std::string(kInvalidLogin));
  }
  if (!source_allowed(u->token.bound_cidrs, remote_addr)) {
    // Checked after the password, so the answer tells nothing about the user without it.
    LOG_INFO("userpass", "login refused: source address outside the user's token_bound_cidrs");
    return invalid_argument(std::string(kInvalidLogin));
  }
  Auth a = auth_from(u->token);
  a.metadata["username"] = u->name;
  a.display_name = u->name;
  Response resp;
  resp.auth = std::move(a);
  return resp;
}

}  // namespace

SecretBytes pbkdf2_hmac_sha256(std::string_view password, ByteSpan salt, uint32_t iterations,
                               size_t length) {
  constexpr size_t kH = 32;
  if (iterations < 1) iterations = 1;
  // HMAC replaces a key longer than the hash block by its digest on every call (RFC 2104);
  // doing that once here gives identical output without rehashing a long password per round.
  SecretBytes key = password.size() > kSha256BlockSize
                        ? SecretBytes(crypto::sha256(as_bytes(password)))
                        : SecretBytes(as_bytes(password));
  SecretBytes out(length);
  Bytes input(salt.begin(), salt.end());
  input.resize(salt.size() + 4);
  for (uint32_t block = 1; static_cast<size_t>(block - 1) * kH < length; ++block) {
    input[salt.size()] = static_cast<uint8_t>(block >> 24);
    input[salt.size() + 1] = static_cast<uint8_t>(block >> 16);
    input[salt.size() + 2] = static_cast<uint8_t>(block >> 8);
    input[salt.size() + 3] = static_cast<uint8_t>(block);
    SecretBytes u(crypto::hmac_sha256(key.span(), input));
    SecretBytes t = u.clone();
    for (uint32_t i = 1; i < iterations; ++i) {
      u = SecretBytes(crypto::hmac_sha256(key.span(), u.span()));
      for (size_t k = 0; k < kH; ++k) t.data()[k] = static_cast<uint8_t>(t.data()[k] ^ u.data()[k]);
    }
    size_t offset = static_cast<size_t>(block - 1) * kH;
    size_t take = std::min(kH, length - offset);
    std::copy_n(t.data(), take, out.data() + offset);
  }
  return out;
}

Result<std::unique_ptr<Engine>> make_userpass_auth_with_iterations(EngineContext ctx,
                                                                   const MountEntry& entry,
                                                                   uint32_t iterations) {
  (void)entry;
  if (iterations < 1) return invalid_argument("PBKDF2 needs at least one iteration");
  return std::unique_ptr<Engine>(std::make_unique<UserpassAuth>(ctx, iterations));
}

Result<std::unique_ptr<Engine>> make_userpass_auth(EngineContext ctx, const MountEntry& entry) {
  return make_userpass_auth_with_iterations(std::move(ctx), entry, kUserpassPbkdf2Iterations);
}

}  // namespace custos::core
