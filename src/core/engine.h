// A secrets engine mounted at a path (kv, transit, ...). The router strips the mount point;
// the engine sees req.rel_path and stores through its own View.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <boost/json/object.hpp>

#include "base/clock.h"
#include "core/request.h"
#include "core/view.h"

namespace custos::core {

struct MountEntry {
  std::string path;  // "secret/" (with trailing slash)
  std::string type;  // "kv", "transit", "system", "token", ...
  std::string description;
  std::string accessor;  // "kv_1a2b3c4d"
  std::string uuid;
  boost::json::object config;   // default_lease_ttl, max_lease_ttl, ...
  boost::json::object options;  // e.g. {"version": "2"}
  bool local = false;
  bool seal_wrap = false;
  bool external_entropy_access = false;
  std::string plugin_version;
  std::string running_plugin_version;

  boost::json::object to_json() const;  // as Vault lists it in sys/mounts
  static Result<MountEntry> from_json(const boost::json::object& o);
};

struct EngineContext {
  View storage;  // "logical/<uuid>/" (auth methods: "auth/<uuid>/")
  const Clock& clock;
  const MountEntry& mount;
  int64_t default_lease_ttl = 0;  // the mount's (or the server's) defaults, seconds
  int64_t max_lease_ttl = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual Result<Response> handle(Request& req) = 0;
  // Whether req.rel_path names something that exists: POST/PUT on an existing path needs the
  // "update" capability, on a new one "create" (Vault's existence check). Default: update.
  virtual Result<bool> exists(const Request& req) {
    (void)req;
    return true;
  }
  // Called when the mount is removed: drop background work. Storage is removed by the router.
  virtual void shutdown() {}

  // Auth methods: paths that are served without a client token (e.g. "login").
  virtual bool unauthenticated(const Request& req) const {
    (void)req;
    return false;
  }

  // Leases. The lease manager calls these for secrets this engine returned in Response::secret.
  // revoke_secret must be idempotent (a retry after a crash may repeat it).
  virtual Status revoke_secret(const boost::json::object& internal) {
    (void)internal;
    return ok_status();
  }
  // Extends the secret at the source (e.g. ALTER ROLE ... VALID UNTIL) to `new_expiry`.
  virtual Status renew_secret(const boost::json::object& internal, SysTime new_expiry) {
    (void)internal;
    (void)new_expiry;
    return ok_status();
  }
};

using EngineFactory =
    std::function<Result<std::unique_ptr<Engine>>(EngineContext ctx, const MountEntry& entry)>;

// Helpers engines share for reading request fields with clear type errors.
Result<std::string> field_string(const boost::json::object& data, std::string_view key,
                                 std::string_view fallback = "");
Result<int64_t> field_int(const boost::json::object& data, std::string_view key, int64_t fallback);
Result<bool> field_bool(const boost::json::object& data, std::string_view key, bool fallback);
// Vault durations given as a number of seconds or a string like "1h".
Result<int64_t> field_duration(const boost::json::object& data, std::string_view key,
                               int64_t fallback);
// The JSON array of a list of strings.
boost::json::array to_string_array(const std::vector<std::string>& v);
// A list given as a JSON array of strings or a comma-separated string.
Result<std::vector<std::string>> field_string_list(const boost::json::object& data,
                                                   std::string_view key);

// Vault's go-glob match: '*' matches any run of characters, anywhere in the pattern (PKI's
// allow_glob_domains, token roles' policy globs).
bool glob_match(std::string_view pattern, std::string_view s);

}  // namespace custos::core
