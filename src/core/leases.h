// The lease manager: every dynamic secret (Response::secret) gets a lease "<mount><path>/<id>"
// stored through the barrier; leases renew (capped by max TTL), expire on time (also across
// restarts: expired while down -> revoked after unseal), and are revoked one by one, by prefix,
// or with the token that obtained them. Revocation calls the engine (Engine::revoke_secret),
// with retries and backoff when the backend is unreachable; a lease is never dropped silently.
// Serves sys/leases/*, sys/renew, sys/revoke. docs/leases.md has the storage layout.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/clock.h"
#include "core/engine.h"
#include "core/request.h"
#include "core/view.h"

namespace custos::core {

struct LeaseEntry {
  std::string lease_id;     // "database/creds/readonly/<id>"
  std::string mount_path;   // "database/"
  std::string token_hash;   // the token that obtained it (revoked with it)
  boost::json::object internal;
  int64_t issue_time = 0;   // unix seconds
  int64_t expire_time = 0;
  int64_t max_expire_time = 0;  // issue + max TTL
  int64_t last_renewal_time = 0;
  bool renewable = true;
  // A token's own lease (track_token): it ends token_hash, the token it belongs to; revoking
  // that token deletes it (forget_token_lease) without calling the engine.
  bool token_lease = false;
};

// How failed revocations are retried: exponential backoff from `initial_backoff`, capped at
// `max_backoff`; after `max_attempts` failures the lease is marked irrevocable (shown by lookup)
// and still retried every `max_backoff`, so a lease is never dropped silently.
struct LeaseRetryPolicy {
  std::chrono::milliseconds initial_backoff{5000};
  std::chrono::milliseconds max_backoff{15 * 60 * 1000};
  int64_t max_attempts = 6;
};

class LeaseManager {
 public:
  // Finds the engine mounted at a path ("database/"), or null if unmounted.
  using EngineLookup = std::function<std::shared_ptr<Engine>(const std::string& mount_path)>;

  LeaseManager(View view, const Clock& clock, EngineLookup lookup);
  ~LeaseManager();
  LeaseManager(const LeaseManager&) = delete;
  LeaseManager& operator=(const LeaseManager&) = delete;

  // After unseal: starts the expiry scheduler (loading leases without blocking unseal).
  Status start();
  // Before seal: stops the scheduler; leases stay in storage.
  void stop();

  // Registers the secret returned for `req` (whose mount_point/path/token are set); returns the
  // lease with its ID. `default_ttl`/`max_ttl` are the mount's.
  Result<LeaseEntry> register_secret(const Request& req, const Secret& secret, int64_t default_ttl,
                                     int64_t max_ttl);

  // Registers a token's own lease, or moves it to `expire_time` (token renewal): when it is due,
  // the engine mounted at `mount_path` (Engine::revoke_secret with {"token_hash": ...}) revokes
  // the token, its children and their leases, as Vault's expiration manager does. Revoking the
  // token by any other way deletes this lease with the token's other leases. Not renewable
  // through sys/leases (tokens renew through auth/token/renew*).
  Status track_token(const std::string& lease_id, const std::string& mount_path,
                     const std::string& token_hash, int64_t expire_time);
  // Deletes a token's own lease once the token is revoked (no engine call: nothing is left
  // to end). A token's own lease is not indexed with the leases obtained with the token.
  Status forget_token_lease(const std::string& lease_id);
  // The same for a token being created: the lease's writes go into `batch` (keys from the
  // barrier's root) to commit with the token's own; run the returned function once they are.
  std::function<void()> add_token_lease(const std::string& lease_id, const std::string& mount_path,
                                        const std::string& token_hash, int64_t expire_time,
                                        WriteBatch& batch);

  // sys/leases/lookup|renew|revoke|revoke-prefix/|revoke-force/|tidy|count, sys/renew, sys/revoke.
  // `rest` is the path after "sys/". `handled` is false for paths that are not lease paths.
  Result<Response> handle_sys(Request& req, const std::string& rest, bool& handled);

  // Revokes every lease obtained with this token (token revocation calls it).
  Status revoke_token_leases(const std::string& token_hash);
  // Revokes every lease of a mount (unmount calls it).
  Status revoke_prefix(const std::string& prefix, bool force);

  // Added with the lease manager (docs/leases.md).
  // Before start(): how failed revocations are retried.
  void set_retry_policy(const LeaseRetryPolicy& policy);
  // Whether the background load of the time index finished within `timeout`.
  bool wait_loaded(std::chrono::milliseconds timeout);
  // One scheduler pass on the caller's thread (tests with a FakeClock): revokes up to one batch
  // of due leases; returns how many were due. Loads the index first when start() was not called.
  size_t process_due();
  Result<std::optional<LeaseEntry>> lookup(const std::string& lease_id);
  // Renews at the source (Engine::renew_secret), then extends the lease; capped by max TTL.
  Result<Response> renew(const std::string& lease_id, int64_t increment);
  // sync: revoke now (errors returned, the lease retried later); else mark due and return.
  Status revoke(const std::string& lease_id, bool sync);
  // Removes index entries of missing leases and re-indexes leases missing from the time index.
  Status tidy();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::core
