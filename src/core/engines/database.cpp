// The database secrets engine for PostgreSQL (Vault's postgresql-database-plugin, built in).
// API and stored format: docs/engines/database.md.
//
// Storage (the mount's View):
//   config/<name>        {plugin_name, connection_url, username, password, allowed_roles, ...}
//   role/<name>          {db_name, creation_statements, revocation_statements, renew_statements,
//                         rollback_statements, default_ttl, max_ttl}
//   static-role/<name>   {db_name, username, rotation_period, rotation_statements, password,
//                         last_vault_rotation}
//
// SQL safety: values reach SQL only through PQescapeIdentifier/PQescapeLiteral (templating) or
// as $n parameters; role and config names are restricted to [A-Za-z0-9_.-].
//
// Concurrency: one Pool per config (idle connections reused, a mutex around the idle list);
// pools_mu_ guards the name -> pool map; static rotation is serialized by static_mu_ and runs
// on request threads (rotate-role, reads that find a rotation overdue) and on one background
// thread with bounded waits, stopped by shutdown().
#include "core/engines/database.h"

#include <libpq-fe.h>

#include <algorithm>
#include <boost/json.hpp>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/log.h"
#include "core/tokens.h"
#include "crypto/random.h"

namespace custos::core {
namespace database_internal {
namespace {

constexpr std::string_view kAlnum =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

// Uniform random characters from `alphabet` (rejection sampling over random bytes).
std::string random_chars(std::string_view alphabet, size_t n) {
  std::string out;
  out.reserve(n);
  const size_t limit = 256 - (256 % alphabet.size());
  while (out.size() < n) {
    Bytes b = crypto::random_bytes(n * 2);
    for (uint8_t x : b) {
      if (x < limit && out.size() < n) out += alphabet[x % alphabet.size()];
    }
  }
  return out;
}

std::string sanitize(std::string_view s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    out += ok ? c : '_';
  }
  return out;
}

}  // namespace

std::string make_username(std::string_view display_name, std::string_view role, int64_t unix_time) {
  std::string u = "v-" + sanitize(display_name, 8) + "-" + sanitize(role, 8) + "-" +
                  random_chars(kAlnum, 20) + "-" + std::to_string(unix_time);
  if (u.size() > 63) u.resize(63);
  return u;
}

std::string make_password() {
  while (true) {
    std::string p = random_chars(kAlnum.substr(0, 52), 1) + random_chars(kAlnum, 23);
    bool upper = false, lower = false, digit = false;
    for (char c : p) {
      upper |= c >= 'A' && c <= 'Z';
      lower |= c >= 'a' && c <= 'z';
      digit |= c >= '0' && c <= '9';
    }
    if (upper && lower && digit) return p;
  }
}

Result<std::string> render_statement(std::string_view stmt, const TemplateValues& values,
                                     Escaper escape, void* escape_ctx) {
  std::string out;
  size_t i = 0;
  while (i < stmt.size()) {
    size_t open = stmt.find("{{", i);
    if (open == std::string_view::npos) {
      out.append(stmt.substr(i));
      break;
    }
    size_t close = stmt.find("}}", open + 2);
    if (close == std::string_view::npos) return invalid_argument("unterminated {{ in a statement");
    std::string key(stmt.substr(open + 2, close - open - 2));
    key.erase(0, key.find_first_not_of(' '));
    if (auto e = key.find_last_not_of(' '); e != std::string::npos) key.erase(e + 1);
    const std::string* value = nullptr;
    bool identifier = false;
    if (key == "name" || key == "username") {
      value = &values.name;
      identifier = true;
    } else if (key == "password") {
      value = &values.password;
    } else if (key == "expiration") {
      value = &values.expiration;
    } else {
      return invalid_argument("unknown template field {{" + key + "}} in a statement");
    }
    // A quote right around the placeholder belongs to the template: the escaper adds its own.
    size_t before = open;
    size_t after = close + 2;
    if (open > i) {
      char q = stmt[open - 1];
      if ((q == '"' || q == '\'') && after < stmt.size() && stmt[after] == q) {
        before = open - 1;
        after += 1;
        // '{{name}}' is a literal holding the name; "{{password}}" would be an identifier.
        identifier = q == '"';
      }
    }
    out.append(stmt.substr(i, before - i));
    std::string escaped = escape(escape_ctx, *value, identifier);
    if (escaped.empty()) return internal_error("escaping a templated value failed");
    out += escaped;
    i = after;
  }
  return out;
}

}  // namespace database_internal

namespace {

namespace json = boost::json;
using database_internal::TemplateValues;

constexpr std::string_view kComponent = "database";
constexpr std::string_view kPlugin = "postgresql-database-plugin";
constexpr size_t kMaxIdle = 4;
constexpr int64_t kMinRotationPeriod = 5;
constexpr const char* kConnectTimeout = "5";

struct PgConnFree {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PgResultFree {
  void operator()(PGresult* r) const { PQclear(r); }
};
struct PqFree {
  void operator()(char* p) const { PQfreemem(p); }
};
using ConnPtr = std::unique_ptr<PGconn, PgConnFree>;
using ResultPtr = std::unique_ptr<PGresult, PgResultFree>;

void quiet_notices(void*, const char*) {}

std::string pq_error(PGconn* c) {
  std::string m = c != nullptr ? PQerrorMessage(c) : "out of memory";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

std::string escape_with(void* ctx, std::string_view value, bool identifier) {
  auto* conn = static_cast<PGconn*>(ctx);
  std::unique_ptr<char, PqFree> p(identifier ? PQescapeIdentifier(conn, value.data(), value.size())
                                             : PQescapeLiteral(conn, value.data(), value.size()));
  return p ? std::string(p.get()) : std::string();
}

Status exec(PGconn* c, const std::string& sql) {
  ResultPtr r(PQexec(c, sql.c_str()));
  ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
    return ok_status();
  }
  return failed_precondition(pq_error(c));
}

Result<ResultPtr> query(PGconn* c, const char* sql, const std::vector<std::string>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p.c_str());
  ResultPtr r(PQexecParams(c, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                           nullptr, 0));
  if (!r || (PQresultStatus(r.get()) != PGRES_TUPLES_OK &&
             PQresultStatus(r.get()) != PGRES_COMMAND_OK)) {
    return failed_precondition(pq_error(c));
  }
  return r;
}

// Percent-encodes a value for a postgres:// URI.
std::string uri_escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// Quotes a value for a key=value conninfo string.
std::string conninfo_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

bool is_uri(std::string_view url) {
  return url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0;
}

// Vault hides a password written into a connection URL: "user:*****@host".
std::string redact_url(const std::string& url) {
  if (!is_uri(url)) return url;
  size_t scheme = url.find("://") + 3;
  size_t at = url.find('@', scheme);
  if (at == std::string::npos) return url;
  size_t colon = url.find(':', scheme);
  if (colon == std::string::npos || colon > at) return url;
  std::string pw = url.substr(colon + 1, at - colon - 1);
  if (pw == "{{password}}") return url;
  return url.substr(0, colon + 1) + "*****" + url.substr(at);
}

std::string format_expiration(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S+0000", &tm);
  return buf;
}

bool valid_name(std::string_view n) {
  if (n.empty() || n.size() > 128) return false;
  for (char c : n) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return n != "." && n != "..";
}

json::array to_array(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

std::vector<std::string> from_array(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  if (const auto* v = o.if_contains(key); v != nullptr && v->is_array()) {
    for (const auto& e : v->as_array()) {
      if (e.is_string()) out.emplace_back(e.as_string());
    }
  }
  return out;
}

std::string str_of(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

int64_t int_of(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_int64() ? v->as_int64() : 0;
}

// Statements: a JSON array of strings (each may hold several ';'-separated statements, sent as
// one simple query) or one string. Unlike a generic string list, a string is never split on
// commas: SQL has commas.
Result<std::vector<std::string>> statements(const json::object& data, std::string_view key) {
  std::vector<std::string> out;
  const auto* v = data.if_contains(key);
  if (v == nullptr || v->is_null()) return out;
  if (v->is_string()) {
    if (!v->as_string().empty()) out.emplace_back(v->as_string());
    return out;
  }
  if (v->is_array()) {
    for (const auto& e : v->as_array()) {
      if (!e.is_string()) return invalid_argument(std::string(key) + " must be a list of strings");
      if (!e.as_string().empty()) out.emplace_back(e.as_string());
    }
    return out;
  }
  return invalid_argument(std::string(key) + " must be a list of strings");
}

struct DbConfig {
  std::string name;
  std::string connection_url;
  std::string username;
  std::string password;
  std::vector<std::string> allowed_roles;
  std::vector<std::string> root_rotation_statements;
  bool verify_connection = true;
  int64_t max_open_connections = 4;

  json::object to_json() const {
    return {{"plugin_name", kPlugin},
            {"connection_url", connection_url},
            {"username", username},
            {"password", password},
            {"allowed_roles", to_array(allowed_roles)},
            {"root_rotation_statements", to_array(root_rotation_statements)},
            {"verify_connection", verify_connection},
            {"max_open_connections", max_open_connections}};
  }
  static DbConfig from_json(const std::string& name, const json::object& o) {
    DbConfig c;
    c.name = name;
    c.connection_url = str_of(o, "connection_url");
    c.username = str_of(o, "username");
    c.password = str_of(o, "password");
    c.allowed_roles = from_array(o, "allowed_roles");
    c.root_rotation_statements = from_array(o, "root_rotation_statements");
    if (const auto* v = o.if_contains("verify_connection"); v != nullptr && v->is_bool()) {
      c.verify_connection = v->as_bool();
    }
    c.max_open_connections = std::max<int64_t>(1, int_of(o, "max_open_connections"));
    return c;
  }
  bool allows(const std::string& role) const {
    for (const auto& a : allowed_roles) {
      if (a == "*" || a == role) return true;
      if (!a.empty() && a.back() == '*' && role.rfind(a.substr(0, a.size() - 1), 0) == 0) return true;
    }
    return false;
  }
  // The libpq connection string with the credentials templated in.
  SecretString conninfo() const {
    std::string url = connection_url;
    bool uri = is_uri(url);
    auto replace_all = [&](std::string_view from, const std::string& to) {
      for (size_t p = url.find(from); p != std::string::npos; p = url.find(from, p + to.size())) {
        url.replace(p, from.size(), to);
      }
    };
    replace_all("{{username}}", uri ? uri_escape(username) : conninfo_quote(username));
    replace_all("{{password}}", uri ? uri_escape(password) : conninfo_quote(password));
    SecretString s(std::move(url));
    return s;
  }
};

// A connection pool for one config: idle connections are reused; a broken one is dropped.
class Pool {
 public:
  explicit Pool(SecretString conninfo, size_t max_idle)
      : conninfo_(std::move(conninfo)), max_idle_(max_idle) {}

  Result<ConnPtr> acquire() {
    {
      std::lock_guard lock(mu_);
      while (!idle_.empty()) {
        ConnPtr c = std::move(idle_.back());
        idle_.pop_back();
        if (PQstatus(c.get()) == CONNECTION_OK) return c;
      }
    }
    return connect();
  }

  Result<ConnPtr> connect() const {
    const char* keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
    const char* vals[] = {conninfo_.str().c_str(), kConnectTimeout, "custos", nullptr};
    ConnPtr c(PQconnectdbParams(keys, vals, /*expand_dbname=*/1));
    if (!c || PQstatus(c.get()) != CONNECTION_OK) {
      return unavailable("connecting to the database: " + pq_error(c.get()));
    }
    PQsetNoticeProcessor(c.get(), quiet_notices, nullptr);
    return c;
  }

  void release(ConnPtr c) {
    if (!c || PQstatus(c.get()) != CONNECTION_OK) return;
    if (PQtransactionStatus(c.get()) != PQTRANS_IDLE) return;  // never reuse a half transaction
    std::lock_guard lock(mu_);
    if (idle_.size() < max_idle_) idle_.push_back(std::move(c));
  }

 private:
  SecretString conninfo_;
  size_t max_idle_;
  std::mutex mu_;
  std::vector<ConnPtr> idle_;
};

struct Role {
  std::string db_name;
  std::vector<std::string> creation;
  std::vector<std::string> revocation;
  std::vector<std::string> renew;
  std::vector<std::string> rollback;
  int64_t default_ttl = 0;
  int64_t max_ttl = 0;

  json::object to_json() const {
    return {{"db_name", db_name},
            {"creation_statements", to_array(creation)},
            {"revocation_statements", to_array(revocation)},
            {"renew_statements", to_array(renew)},
            {"rollback_statements", to_array(rollback)},
            {"default_ttl", default_ttl},
            {"max_ttl", max_ttl}};
  }
  static Role from_json(const json::object& o) {
    Role r;
    r.db_name = str_of(o, "db_name");
    r.creation = from_array(o, "creation_statements");
    r.revocation = from_array(o, "revocation_statements");
    r.renew = from_array(o, "renew_statements");
    r.rollback = from_array(o, "rollback_statements");
    r.default_ttl = int_of(o, "default_ttl");
    r.max_ttl = int_of(o, "max_ttl");
    return r;
  }
};

struct StaticRole {
  std::string db_name;
  std::string username;
  int64_t rotation_period = 0;
  std::vector<std::string> rotation;
  std::string password;
  int64_t last_rotation = 0;

  json::object to_json() const {
    return {{"db_name", db_name},
            {"username", username},
            {"rotation_period", rotation_period},
            {"rotation_statements", to_array(rotation)},
            {"password", password},
            {"last_vault_rotation", last_rotation}};
  }
  static StaticRole from_json(const json::object& o) {
    StaticRole r;
    r.db_name = str_of(o, "db_name");
    r.username = str_of(o, "username");
    r.rotation_period = int_of(o, "rotation_period");
    r.rotation = from_array(o, "rotation_statements");
    r.password = str_of(o, "password");
    r.last_rotation = int_of(o, "last_vault_rotation");
    return r;
  }
};

class DatabaseEngine final : public Engine {
 public:
  explicit DatabaseEngine(EngineContext ctx)
      : view_(ctx.storage), clock_(ctx.clock), default_ttl_(ctx.default_lease_ttl),
        max_ttl_(ctx.max_lease_ttl) {
    rotator_ = std::thread([this] { rotation_loop(); });
  }
  ~DatabaseEngine() override { shutdown(); }

  Result<Response> handle(Request& req) override;
  Result<bool> exists(const Request& req) override;
  Status revoke_secret(const boost::json::object& internal) override;
  Status renew_secret(const boost::json::object& internal, SysTime new_expiry) override;
  void shutdown() override {
    {
      std::lock_guard lock(stop_mu_);
      stopping_ = true;
    }
    stop_cv_.notify_all();
    if (rotator_.joinable() && rotator_.get_id() != std::this_thread::get_id()) rotator_.join();
  }

 private:
  // Configs and pools
  Result<std::optional<DbConfig>> get_config(const std::string& name);
  Result<std::shared_ptr<Pool>> pool_for(const DbConfig& cfg);
  void drop_pool(const std::string& name) {
    std::unique_lock lock(pools_mu_);
    pools_.erase(name);
  }
  // Runs `fn` on a pooled connection; retries once on a fresh connection if the pooled one
  // turned out to be broken (server restart).
  template <typename F>
  Status with_conn(const std::string& db_name, F&& fn);

  Status run_in_tx(PGconn* c, const std::vector<std::string>& stmts, const TemplateValues& v);
  Status default_revoke(PGconn* c, const std::string& username);
  Status terminate_sessions(PGconn* c, const std::string& username);

  Result<Response> config_path(Request& req, const std::string& name);
  Result<Response> role_path(Request& req, const std::string& name);
  Result<Response> creds(Request& req, const std::string& name);
  Result<Response> rotate_root(const std::string& name);
  Result<Response> static_role_path(Request& req, const std::string& name);
  Result<Response> static_creds(const std::string& name);
  Status rotate_static(const std::string& name, bool only_if_due);
  Result<Response> list(const std::string& prefix);

  void rotation_loop();

  View view_;
  const Clock& clock_;
  int64_t default_ttl_;
  int64_t max_ttl_;

  std::shared_mutex pools_mu_;
  std::map<std::string, std::shared_ptr<Pool>> pools_;
  std::mutex config_mu_;  // serializes config writes and root rotation
  std::mutex static_mu_;  // serializes static role writes and rotations

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread rotator_;
};

Result<std::optional<DbConfig>> DatabaseEngine::get_config(const std::string& name) {
  ASSIGN_OR_RETURN(auto v, view_.get_json("config/" + name));
  if (!v || !v->is_object()) return std::optional<DbConfig>();
  return std::optional<DbConfig>(DbConfig::from_json(name, v->as_object()));
}

Result<std::shared_ptr<Pool>> DatabaseEngine::pool_for(const DbConfig& cfg) {
  {
    std::shared_lock lock(pools_mu_);
    auto it = pools_.find(cfg.name);
    if (it != pools_.end()) return it->second;
  }
  std::unique_lock lock(pools_mu_);
  auto& p = pools_[cfg.name];
  if (!p) {
    p = std::make_shared<Pool>(cfg.conninfo(), std::min<size_t>(
                                                   kMaxIdle, static_cast<size_t>(cfg.max_open_connections)));
  }
  return p;
}

template <typename F>
Status DatabaseEngine::with_conn(const std::string& db_name, F&& fn) {
  ASSIGN_OR_RETURN(auto cfg, get_config(db_name));
  if (!cfg) return invalid_argument("database configuration \"" + db_name + "\" not found");
  ASSIGN_OR_RETURN(auto pool, pool_for(*cfg));
  for (int attempt = 0; attempt < 2; ++attempt) {
    ASSIGN_OR_RETURN(ConnPtr c, attempt == 0 ? pool->acquire() : pool->connect());
    Status st = fn(c.get());
    bool broken = PQstatus(c.get()) != CONNECTION_OK;
    if (!broken) {
      if (PQtransactionStatus(c.get()) != PQTRANS_IDLE) (void)exec(c.get(), "ROLLBACK");
      pool->release(std::move(c));
    }
    if (st.ok() || !broken) return st;
    LOG_WARN(kComponent, "connection to \"" << db_name << "\" broke, retrying on a new one");
  }
  return unavailable("the connection to \"" + db_name + "\" keeps failing");
}

Status DatabaseEngine::run_in_tx(PGconn* c, const std::vector<std::string>& stmts,
                                 const TemplateValues& v) {
  RETURN_IF_ERROR(exec(c, "BEGIN"));
  for (const auto& s : stmts) {
    auto sql = database_internal::render_statement(s, v, escape_with, c);
    Status st = sql.ok() ? exec(c, *sql) : sql.status();
    if (!st.ok()) {
      (void)exec(c, "ROLLBACK");
      return st;
    }
  }
  Status st = exec(c, "COMMIT");
  if (!st.ok()) (void)exec(c, "ROLLBACK");
  return st;
}

Status DatabaseEngine::terminate_sessions(PGconn* c, const std::string& username) {
  // Without this, DROP ROLE fails while the role is connected, and its sessions outlive it.
  auto r = query(c,
                 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE usename = $1 AND pid <> pg_backend_pid()",
                 {username});
  return r.ok() ? ok_status() : r.status();
}

Status DatabaseEngine::default_revoke(PGconn* c, const std::string& username) {
  ASSIGN_OR_RETURN(ResultPtr exists, query(c, "SELECT 1 FROM pg_roles WHERE rolname = $1", {username}));
  if (PQntuples(exists.get()) == 0) return ok_status();  // already gone: revocation is idempotent
  std::string ident = escape_with(c, username, true);
  if (ident.empty()) return internal_error("escaping a role name failed");
  RETURN_IF_ERROR(exec(c, "ALTER ROLE " + ident + " NOLOGIN"));
  RETURN_IF_ERROR(terminate_sessions(c, username));
  ASSIGN_OR_RETURN(ResultPtr schemas,
                   query(c,
                         "SELECT DISTINCT table_schema FROM information_schema.role_table_grants "
                         "WHERE grantee = $1 UNION SELECT 'public'",
                         {username}));
  std::vector<std::string> stmts;
  for (int i = 0; i < PQntuples(schemas.get()); ++i) {
    std::string schema = escape_with(c, PQgetvalue(schemas.get(), i, 0), true);
    if (schema.empty()) return internal_error("escaping a schema name failed");
    stmts.push_back("REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA " + schema + " FROM " + ident);
    stmts.push_back("REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA " + schema + " FROM " + ident);
    stmts.push_back("REVOKE USAGE ON SCHEMA " + schema + " FROM " + ident);
  }
  RETURN_IF_ERROR(exec(c, "BEGIN"));
  for (const auto& s : stmts) {
    Status st = exec(c, s);
    if (!st.ok()) {
      (void)exec(c, "ROLLBACK");
      return st;
    }
  }
  // Objects the role owns would block DROP ROLE; hand them over where permitted.
  (void)exec(c, "SAVEPOINT custos_owned");
  if (!exec(c, "REASSIGN OWNED BY " + ident + " TO CURRENT_USER; DROP OWNED BY " + ident).ok()) {
    (void)exec(c, "ROLLBACK TO SAVEPOINT custos_owned");
  }
  Status st = exec(c, "DROP ROLE IF EXISTS " + ident);
  if (!st.ok()) {
    (void)exec(c, "ROLLBACK");
    return st;
  }
  return exec(c, "COMMIT");
}

Status DatabaseEngine::revoke_secret(const boost::json::object& internal) {
  std::string db = str_of(internal, "db_name");
  std::string username = str_of(internal, "username");
  if (db.empty() || username.empty()) return data_loss("lease data has no db_name/username");
  std::vector<std::string> stmts = from_array(internal, "revocation_statements");
  return with_conn(db, [&](PGconn* c) -> Status {
    if (stmts.empty()) return default_revoke(c, username);
    RETURN_IF_ERROR(terminate_sessions(c, username));
    TemplateValues v{username, "", ""};
    return run_in_tx(c, stmts, v);
  });
}

Status DatabaseEngine::renew_secret(const boost::json::object& internal, SysTime new_expiry) {
  std::string db = str_of(internal, "db_name");
  std::string username = str_of(internal, "username");
  if (db.empty() || username.empty()) return data_loss("lease data has no db_name/username");
  std::vector<std::string> stmts = from_array(internal, "renew_statements");
  if (stmts.empty()) stmts.push_back("ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}';");
  TemplateValues v{username, "", format_expiration(to_unix_seconds(new_expiry))};
  return with_conn(db, [&](PGconn* c) { return run_in_tx(c, stmts, v); });
}

Result<bool> DatabaseEngine::exists(const Request& req) {
  const std::string& p = req.rel_path;
  auto probe = [&](const std::string& prefix, const std::string& key) -> Result<bool> {
    if (!valid_name(key)) return false;
    ASSIGN_OR_RETURN(auto v, view_.get(prefix + key));
    return v.has_value();
  };
  if (p.rfind("config/", 0) == 0) return probe("config/", p.substr(7));
  if (p.rfind("roles/", 0) == 0) return probe("role/", p.substr(6));
  if (p.rfind("static-roles/", 0) == 0) return probe("static-role/", p.substr(13));
  return true;
}

Result<Response> DatabaseEngine::list(const std::string& prefix) {
  ASSIGN_OR_RETURN(auto keys, view_.list(prefix));
  if (keys.empty()) return not_found("");
  return Response::with_data({{"keys", to_array(keys)}});
}

Result<Response> DatabaseEngine::handle(Request& req) {
  const std::string& p = req.rel_path;
  auto after = [&](std::string_view prefix) -> std::optional<std::string> {
    if (p.rfind(prefix, 0) == 0) return p.substr(prefix.size());
    return std::nullopt;
  };
  auto named = [&](const std::string& name) -> Status {
    if (!valid_name(name)) {
      return invalid_argument("invalid name: use letters, digits, '_', '-' and '.'");
    }
    return ok_status();
  };
  if (req.op == Operation::kList) {
    if (p == "config" || p == "config/") return list("config/");
    if (p == "roles" || p == "roles/") return list("role/");
    if (p == "static-roles" || p == "static-roles/") return list("static-role/");
    return unimplemented("unsupported operation");
  }
  if (auto n = after("config/")) {
    RETURN_IF_ERROR(named(*n));
    return config_path(req, *n);
  }
  if (auto n = after("roles/")) {
    RETURN_IF_ERROR(named(*n));
    return role_path(req, *n);
  }
  if (auto n = after("creds/")) {
    RETURN_IF_ERROR(named(*n));
    if (req.op != Operation::kRead) return unimplemented("unsupported operation");
    return creds(req, *n);
  }
  if (auto n = after("rotate-root/")) {
    RETURN_IF_ERROR(named(*n));
    if (req.op != Operation::kUpdate && req.op != Operation::kCreate) {
      return unimplemented("unsupported operation");
    }
    return rotate_root(*n);
  }
  if (auto n = after("reset/")) {
    RETURN_IF_ERROR(named(*n));
    drop_pool(*n);
    return Response::empty();
  }
  if (auto n = after("static-roles/")) {
    RETURN_IF_ERROR(named(*n));
    return static_role_path(req, *n);
  }
  if (auto n = after("static-creds/")) {
    RETURN_IF_ERROR(named(*n));
    if (req.op != Operation::kRead) return unimplemented("unsupported operation");
    return static_creds(*n);
  }
  if (auto n = after("rotate-role/")) {
    RETURN_IF_ERROR(named(*n));
    if (req.op != Operation::kUpdate && req.op != Operation::kCreate) {
      return unimplemented("unsupported operation");
    }
    RETURN_IF_ERROR(rotate_static(*n, /*only_if_due=*/false));
    return Response::empty();
  }
  return not_found("unsupported path: " + p);
}

Result<Response> DatabaseEngine::config_path(Request& req, const std::string& name) {
  if (req.op == Operation::kRead) {
    ASSIGN_OR_RETURN(auto cfg, get_config(name));
    if (!cfg) return not_found("");
    json::object details{{"connection_url", redact_url(cfg->connection_url)},
                         {"username", cfg->username},
                         {"max_open_connections", cfg->max_open_connections},
                         {"password_authentication", "password"}};
    return Response::with_data({{"plugin_name", kPlugin},
                                {"plugin_version", ""},
                                {"connection_details", std::move(details)},
                                {"allowed_roles", to_array(cfg->allowed_roles)},
                                {"root_credentials_rotate_statements",
                                 to_array(cfg->root_rotation_statements)},
                                {"password_policy", ""},
                                {"verify_connection", cfg->verify_connection}});
  }
  if (req.op == Operation::kDelete) {
    std::lock_guard lock(config_mu_);
    RETURN_IF_ERROR(view_.del("config/" + name));
    drop_pool(name);
    return Response::empty();
  }
  std::lock_guard lock(config_mu_);
  ASSIGN_OR_RETURN(auto existing, get_config(name));
  DbConfig cfg = existing ? *existing : DbConfig{};
  cfg.name = name;
  ASSIGN_OR_RETURN(std::string plugin, field_string(req.data, "plugin_name", existing ? kPlugin : ""));
  if (plugin.empty()) return invalid_argument("empty plugin name");
  if (plugin != kPlugin) {
    return invalid_argument("unsupported plugin \"" + plugin + "\": only " + std::string(kPlugin) +
                            " is built in");
  }
  const json::object& d = req.data;
  if (d.contains("connection_url")) {
    ASSIGN_OR_RETURN(cfg.connection_url, field_string(d, "connection_url"));
  }
  if (cfg.connection_url.empty()) return invalid_argument("connection_url cannot be empty");
  if (d.contains("username")) {
    ASSIGN_OR_RETURN(cfg.username, field_string(d, "username"));
  }
  if (d.contains("password")) {
    ASSIGN_OR_RETURN(cfg.password, field_string(d, "password"));
  }
  if (d.contains("allowed_roles")) {
    ASSIGN_OR_RETURN(cfg.allowed_roles, field_string_list(d, "allowed_roles"));
  }
  if (d.contains("root_rotation_statements")) {
    ASSIGN_OR_RETURN(cfg.root_rotation_statements, statements(d, "root_rotation_statements"));
  }
  ASSIGN_OR_RETURN(cfg.verify_connection, field_bool(d, "verify_connection", true));
  ASSIGN_OR_RETURN(cfg.max_open_connections,
                   field_int(d, "max_open_connections", cfg.max_open_connections));
  if (cfg.max_open_connections < 1) cfg.max_open_connections = 4;
  if (cfg.verify_connection) {
    Pool probe(cfg.conninfo(), 0);
    auto c = probe.connect();
    if (!c.ok()) return invalid_argument("error creating database object: " + c.status().message());
    Status st = exec(c->get(), "SELECT 1");
    if (!st.ok()) return invalid_argument("error verifying connection: " + st.message());
  }
  RETURN_IF_ERROR(view_.put_json("config/" + name, cfg.to_json()));
  drop_pool(name);
  Response r;
  if (is_uri(cfg.connection_url) && redact_url(cfg.connection_url) != cfg.connection_url) {
    r.warnings.push_back("Password found in connection_url, use a templated url to enable root "
                         "rotation and prevent read access to password information.");
  }
  return r;
}

Result<Response> DatabaseEngine::rotate_root(const std::string& name) {
  std::lock_guard lock(config_mu_);
  ASSIGN_OR_RETURN(auto cfg, get_config(name));
  if (!cfg) return invalid_argument("database configuration \"" + name + "\" not found");
  if (cfg->username.empty() || cfg->password.empty()) {
    return invalid_argument("unable to rotate root credentials: no username or password in the config");
  }
  std::string fresh = database_internal::make_password();
  std::vector<std::string> stmts = cfg->root_rotation_statements;
  if (stmts.empty()) stmts.push_back("ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}';");
  TemplateValues v{cfg->username, fresh, ""};
  RETURN_IF_ERROR(with_conn(name, [&](PGconn* c) { return run_in_tx(c, stmts, v); }));
  std::string old = cfg->password;
  cfg->password = fresh;
  Status st = view_.put_json("config/" + name, cfg->to_json());
  drop_pool(name);
  if (!st.ok()) {
    // Put the old password back (logging in with the new one) so the stored config still works.
    DbConfig with_new = *cfg;
    TemplateValues back{cfg->username, old, ""};
    auto c = Pool(with_new.conninfo(), 0).connect();
    if (c.ok()) (void)run_in_tx(c->get(), stmts, back);
    return st.with_context("storing the rotated root credential");
  }
  return Response::empty();
}

Result<Response> DatabaseEngine::role_path(Request& req, const std::string& name) {
  std::string key = "role/" + name;
  if (req.op == Operation::kRead) {
    ASSIGN_OR_RETURN(auto v, view_.get_json(key));
    if (!v || !v->is_object()) return not_found("");
    Role r = Role::from_json(v->as_object());
    json::object d = r.to_json();
    d["credential_type"] = "password";
    return Response::with_data(std::move(d));
  }
  if (req.op == Operation::kDelete) {
    RETURN_IF_ERROR(view_.del(key));
    return Response::empty();
  }
  ASSIGN_OR_RETURN(auto existing, view_.get_json(key));
  Role r = existing && existing->is_object() ? Role::from_json(existing->as_object()) : Role{};
  const json::object& d = req.data;
  if (d.contains("db_name")) {
    ASSIGN_OR_RETURN(r.db_name, field_string(d, "db_name"));
  }
  if (r.db_name.empty()) return invalid_argument("empty database name attribute");
  if (d.contains("creation_statements")) {
    ASSIGN_OR_RETURN(r.creation, statements(d, "creation_statements"));
  }
  if (r.creation.empty()) return invalid_argument("creation_statements are required");
  if (d.contains("revocation_statements")) {
    ASSIGN_OR_RETURN(r.revocation, statements(d, "revocation_statements"));
  }
  if (d.contains("renew_statements")) {
    ASSIGN_OR_RETURN(r.renew, statements(d, "renew_statements"));
  }
  if (d.contains("rollback_statements")) {
    ASSIGN_OR_RETURN(r.rollback, statements(d, "rollback_statements"));
  }
  ASSIGN_OR_RETURN(r.default_ttl, field_duration(d, "default_ttl", r.default_ttl));
  ASSIGN_OR_RETURN(r.max_ttl, field_duration(d, "max_ttl", r.max_ttl));
  if (r.max_ttl > 0 && r.default_ttl > r.max_ttl) {
    return invalid_argument("ttl cannot be greater than max_ttl");
  }
  // Reject templates that cannot render before anything reaches a database.
  for (const auto* list : {&r.creation, &r.revocation, &r.renew, &r.rollback}) {
    for (const auto& s : *list) {
      auto ok = database_internal::render_statement(
          s, TemplateValues{"n", "p", "e"},
          [](void*, std::string_view v, bool) { return std::string(v) + "."; }, nullptr);
      if (!ok.ok()) return ok.status();
    }
  }
  RETURN_IF_ERROR(view_.put_json(key, r.to_json()));
  return Response::empty();
}

Result<Response> DatabaseEngine::creds(Request& req, const std::string& name) {
  ASSIGN_OR_RETURN(auto v, view_.get_json("role/" + name));
  if (!v || !v->is_object()) return invalid_argument("unknown role: " + name);
  Role role = Role::from_json(v->as_object());
  ASSIGN_OR_RETURN(auto cfg, get_config(role.db_name));
  if (!cfg) return invalid_argument("database configuration \"" + role.db_name + "\" not found");
  if (!cfg->allows(name)) return invalid_argument("\"" + name + "\" is not an allowed role");

  int64_t max = max_ttl_;
  if (role.max_ttl > 0 && (max <= 0 || role.max_ttl < max)) max = role.max_ttl;
  int64_t ttl = role.default_ttl > 0 ? role.default_ttl : default_ttl_;
  if (max > 0 && ttl > max) ttl = max;
  int64_t now = to_unix_seconds(clock_.now());

  std::string display = req.token != nullptr ? req.token->display_name : "token";
  std::string username = database_internal::make_username(display, name, now);
  std::string password = database_internal::make_password();
  TemplateValues tv{username, password, format_expiration(now + ttl)};
  Status st = with_conn(role.db_name, [&](PGconn* c) -> Status {
    Status created = run_in_tx(c, role.creation, tv);
    if (!created.ok() && !role.rollback.empty()) (void)run_in_tx(c, role.rollback, tv);
    return created;
  });
  if (!st.ok()) {
    // The message is libpq's or the server's: it names statements, never the password.
    return Status(st.code() == Code::kUnavailable ? Code::kUnavailable : Code::kInvalidArgument,
                  "creating the database user: " + st.message());
  }
  Response resp = Response::with_data({{"username", username}, {"password", password}});
  Secret s;
  s.internal = {{"db_name", role.db_name},
                {"role", name},
                {"username", username},
                {"revocation_statements", to_array(role.revocation)},
                {"renew_statements", to_array(role.renew)}};
  s.ttl = ttl;
  s.max_ttl = max;
  s.renewable = true;
  resp.secret = std::move(s);
  return resp;
}

Result<Response> DatabaseEngine::static_role_path(Request& req, const std::string& name) {
  std::string key = "static-role/" + name;
  if (req.op == Operation::kRead) {
    ASSIGN_OR_RETURN(auto v, view_.get_json(key));
    if (!v || !v->is_object()) return not_found("");
    StaticRole r = StaticRole::from_json(v->as_object());
    return Response::with_data({{"db_name", r.db_name},
                                {"username", r.username},
                                {"rotation_period", r.rotation_period},
                                {"rotation_statements", to_array(r.rotation)},
                                {"last_vault_rotation", format_rfc3339(from_unix_seconds(r.last_rotation))},
                                {"credential_type", "password"}});
  }
  bool is_new = false;
  {
    std::lock_guard lock(static_mu_);
    if (req.op == Operation::kDelete) {
      RETURN_IF_ERROR(view_.del(key));
      return Response::empty();
    }
    ASSIGN_OR_RETURN(auto existing, view_.get_json(key));
    is_new = !existing || !existing->is_object();
    StaticRole r = is_new ? StaticRole{} : StaticRole::from_json(existing->as_object());
    const json::object& d = req.data;
    ASSIGN_OR_RETURN(std::string username, field_string(d, "username", r.username));
    if (username.empty()) {
      return invalid_argument("username is a required field to create a static account");
    }
    if (!is_new && username != r.username) {
      return invalid_argument("cannot update static account username");
    }
    r.username = username;
    ASSIGN_OR_RETURN(r.db_name, field_string(d, "db_name", r.db_name));
    if (r.db_name.empty()) return invalid_argument("empty database name attribute");
    ASSIGN_OR_RETURN(r.rotation_period, field_duration(d, "rotation_period", r.rotation_period));
    if (r.rotation_period < kMinRotationPeriod) {
      return invalid_argument("rotation_period must be " + std::to_string(kMinRotationPeriod) +
                              " seconds or more");
    }
    if (d.contains("rotation_statements")) {
      ASSIGN_OR_RETURN(r.rotation, statements(d, "rotation_statements"));
    }
    ASSIGN_OR_RETURN(auto cfg, get_config(r.db_name));
    if (!cfg) return invalid_argument("database configuration \"" + r.db_name + "\" not found");
    if (!cfg->allows(name)) return invalid_argument("\"" + name + "\" is not an allowed role");
    RETURN_IF_ERROR(view_.put_json(key, r.to_json()));
  }
  if (is_new) {
    // Vault rotates a new static account right away: the password it hands out is its own.
    Status st = rotate_static(name, /*only_if_due=*/false);
    if (!st.ok()) {
      (void)view_.del(key);
      return st.with_context("rotating the new static account");
    }
  }
  return Response::empty();
}

Status DatabaseEngine::rotate_static(const std::string& name, bool only_if_due) {
  std::lock_guard lock(static_mu_);
  ASSIGN_OR_RETURN(auto v, view_.get_json("static-role/" + name));
  if (!v || !v->is_object()) return invalid_argument("unknown static role: " + name);
  StaticRole r = StaticRole::from_json(v->as_object());
  int64_t now = to_unix_seconds(clock_.now());
  if (only_if_due && r.last_rotation > 0 && now < r.last_rotation + r.rotation_period) {
    return ok_status();
  }
  std::string fresh = database_internal::make_password();
  std::vector<std::string> stmts = r.rotation;
  if (stmts.empty()) stmts.push_back("ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}';");
  TemplateValues tv{r.username, fresh, ""};
  RETURN_IF_ERROR(with_conn(r.db_name, [&](PGconn* c) { return run_in_tx(c, stmts, tv); }));
  r.password = fresh;
  r.last_rotation = now;
  Status st = view_.put_json("static-role/" + name, r.to_json());
  if (!st.ok()) {
    LOG_ERROR(kComponent, "static role " << name << " rotated but not stored: " << st.message());
  }
  return st;
}

Result<Response> DatabaseEngine::static_creds(const std::string& name) {
  RETURN_IF_ERROR(rotate_static(name, /*only_if_due=*/true));
  ASSIGN_OR_RETURN(auto v, view_.get_json("static-role/" + name));
  if (!v || !v->is_object()) return invalid_argument("unknown static role: " + name);
  StaticRole r = StaticRole::from_json(v->as_object());
  int64_t now = to_unix_seconds(clock_.now());
  return Response::with_data(
      {{"username", r.username},
       {"password", r.password},
       {"last_vault_rotation", format_rfc3339(from_unix_seconds(r.last_rotation))},
       {"rotation_period", r.rotation_period},
       {"ttl", std::max<int64_t>(0, r.last_rotation + r.rotation_period - now)}});
}

void DatabaseEngine::rotation_loop() {
  std::map<std::string, std::pair<int64_t, int64_t>> retry;  // name -> (not before, failures)
  std::unique_lock lock(stop_mu_);
  while (!stopping_) {
    stop_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    auto names = view_.list("static-role/");
    int64_t now = to_unix_seconds(clock_.now());
    if (names.ok()) {
      for (const auto& n : *names) {
        {
          std::lock_guard l(stop_mu_);
          if (stopping_) break;
        }
        auto it = retry.find(n);
        if (it != retry.end() && now < it->second.first) continue;
        Status st = rotate_static(n, /*only_if_due=*/true);
        if (st.ok()) {
          retry.erase(n);
          continue;
        }
        int64_t failures = it != retry.end() ? it->second.second + 1 : 1;
        int64_t delay = std::min<int64_t>(int64_t{1} << std::min<int64_t>(failures, 9), 300);
        retry[n] = {now + delay, failures};
        LOG_WARN(kComponent, "rotating static role " << n << " failed (attempt " << failures
                                                     << ", next in " << delay << "s): "
                                                     << st.message());
      }
    }
    lock.lock();
  }
}

}  // namespace

Result<std::unique_ptr<Engine>> make_database_engine(EngineContext ctx, const MountEntry& entry) {
  (void)entry;
  try {
    return std::unique_ptr<Engine>(std::make_unique<DatabaseEngine>(ctx));
  } catch (const std::system_error& e) {
    return internal_error(std::string("starting the database engine: ") + e.what());
  }
}

}  // namespace custos::core
