// Core: the Vault request pipeline. token lookup -> ACL -> router (longest mount prefix) ->
// engine or system handler -> audit. Owns the seal lifecycle (init/unseal/seal), the mount
// table, the policy store and the token store. Thread-safe: requests run concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"
#include "core/audit.h"
#include "core/auth/token_role.h"
#include "core/barrier.h"
#include "core/engine.h"
#include "core/leases.h"
#include "core/quorum.h"
#include "core/request.h"
#include "core/seal.h"
#include "core/tokens.h"
#include "policy/policy.h"
#include "storage/backend.h"

namespace custos::core {

struct CoreConfig {
  int64_t default_lease_ttl = 768 * 3600;  // Vault's default: 32 days
  int64_t max_lease_ttl = 768 * 3600;
  std::string storage_type = "inmem";
  std::string version = "1.15.0+custos.0.1.0";
  std::string cluster_name = "custos-cluster";
  // HSM auto-unseal (core/seal.h); null: Shamir unseal keys.
  std::shared_ptr<AutoSeal> auto_seal;
  // High availability (storage with Backend::ha_lock(), docs/ha.md): the address clients reach
  // this server at (api_addr), which standbys forward requests to while it is active.
  std::string api_addr;
  // After sys/step-down, how long this server waits before competing for the lock again
  // (Vault: 10 s), so that a standby takes over.
  std::chrono::milliseconds step_down_wait{10000};
};

// sys/leader.
struct LeaderStatus {
  bool ha_enabled = false;
  bool is_self = false;
  std::string leader_address;  // empty: no active server known
  SysTime active_time{};       // when this server became active (is_self)
};

struct InitResult {
  std::vector<SecretBytes> shares;           // Shamir seal: the unseal key shares
  std::vector<SecretBytes> recovery_shares;  // auto seal: the recovery key shares
  std::string root_token;
};

struct SealStatus {
  std::string type = "shamir";
  bool recovery_seal = false;  // auto seal: t and n count recovery key shares
  bool initialized = false;
  bool sealed = true;
  int threshold = 0;
  int shares = 0;
  int progress = 0;
  std::string nonce;
};

class Core {
 public:
  Core(storage::Backend& backend, const Clock& clock, CoreConfig config);
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // Handles one request. Never throws; every failure is a Status mapped by http/.
  Result<Response> handle(Request& req);

  // Counts a request for its lifetime, so that pre_seal() (a seal, an HA step-down) waits for
  // it before the token store, mounts and leases it may use are torn down. handle() takes one;
  // callers that use the core outside handle() (the key broker's routes) take their own and
  // then check serving().
  class RequestScope {
   public:
    explicit RequestScope(Core& core);
    ~RequestScope();
    RequestScope(const RequestScope&) = delete;
    RequestScope& operator=(const RequestScope&) = delete;

   private:
    std::atomic<int64_t>& n_;
  };

  // Seal lifecycle (also reachable through sys/init, sys/unseal, sys/seal).
  Result<InitResult> initialize(int shares, int threshold, const std::string& root_token_id = "");
  // Auto seal: the HSM encrypts the root key, the recovery key is split into shares, and the
  // server is left unsealed (as Vault does).
  Result<InitResult> initialize_recovery(int recovery_shares, int recovery_threshold,
                                         const std::string& root_token_id = "");
  // Auto seal: decrypts the root key with the HSM and unseals. A no-op when unsealed or not
  // initialised; an HSM failure leaves the server sealed and says why.
  Status auto_unseal();
  // Auto seal: when auto_unseal() failed (an HSM down or unreachable at start), keeps calling it
  // on a background thread, first after `first` and then doubling up to `max`, until it
  // succeeds, the server is unsealed another way (recovery keys), or an operator seals it
  // (sys/seal), whose intent a later retry must not undo. The thread stops with the Core.
  void retry_auto_unseal(std::chrono::milliseconds first, std::chrono::milliseconds max);
  // Refuses a store initialised with another seal type than the configured one (the server
  // calls it at start: seal migration is not supported).
  Status check_seal_type();
  bool auto_sealed() const { return config_.auto_seal != nullptr; }
  Result<SealStatus> unseal(std::string_view key, bool reset);
  Status seal();
  Result<SealStatus> seal_status();
  bool sealed() const { return barrier_.sealed(); }
  // Unsealed and set up: the barrier open and post-unseal loading (token store, mounts, leases,
  // audit devices) finished. Requests are answered only then; "Vault is sealed" before.
  bool serving() const { return !barrier_.sealed() && serving_.load(std::memory_order_acquire); }

  // High availability (docs/ha.md). With storage that several servers share (an HA lock), an
  // unsealed server is a standby until it holds the lock, then the active server: it loads
  // mounts, tokens and leases and serves, until it loses the lock, steps down or seals.
  bool ha_enabled() const { return ha_ != nullptr; }
  // Unsealed, but not the active server: the API forwards requests to the active one.
  bool standby() const { return ha_ != nullptr && !barrier_.sealed() && !active_.load(); }
  // Who is active (Unavailable when sealed). A standby reads the holder's id from the lock and
  // its address from the advertisement it wrote through the barrier (so only a server that
  // could open the barrier can name itself the leader).
  Result<LeaderStatus> leader();
  // A forward to the address leader() gave failed: read the lock holder again next time.
  void forget_leader();
  // sys/step-down: the active server gives the lock up and waits step_down_wait before
  // competing again. A no-op otherwise.
  void step_down();
  // A key every unsealed server of the cluster derives from the root key: standbys sign the
  // client address they pass on with a forwarded request, and the active server believes it
  // only with a valid signature (http/forward.h).
  Result<SecretBytes> forwarding_key() const {
    return barrier_.derive_key("ha-request-forwarding");
  }

  // Registers an engine type for sys/mounts ("kv" and "transit" are built in).
  void register_engine(const std::string& type, EngineFactory factory);
  // Registers an auth method type for sys/auth ("token" is built in and always mounted).
  void register_auth(const std::string& type, EngineFactory factory);
  // Enables an auth method at auth/<path>.
  Status enable_auth(const std::string& path, const std::string& type,
                     const std::string& description = "");
  // Mounts an engine directly (dev mode's secret/).
  Status mount(const std::string& path, const std::string& type, boost::json::object options,
               const std::string& description = "");

  const CoreConfig& config() const { return config_; }
  const Clock& clock() const { return clock_; }
  Barrier& barrier() { return barrier_; }
  // True when a request with this path (after /v1/) and operation never waits on a disk flush
  // or the network, provided its caller defers durability (storage::DeferDurability, as
  // http::Api does), so the transport may run it on its I/O thread: any operation on a KV mount
  // or the cubbyhole, and reading seal-status/health; nothing when the storage itself blocks
  // (storage::Backend::calls_block, etcd). Its writes (and a use counted on a
  // num_uses token, or a wrapping token minted for it) wait only for the commit, never for the
  // fsync.
  bool never_blocks(const std::string& path, Operation op) const;
  // The ACL decision handle() makes, for routes outside the Vault API (the key broker's admin
  // calls): the token's cached ACL, most specific path wins, deny overrides, deny by default,
  // then the winning rule's parameter constraints against `params` (policy::Acl::allowed();
  // null: the caller cannot show them, and a rule with constraints refuses).
  Result<bool> acl_allows(const TokenEntry& token, const std::string& path, Operation op,
                          const boost::json::object* params, int64_t wrap_ttl = 0);

  TokenStore* tokens() { return tokens_.get(); }
  LeaseManager* leases() { return leases_.get(); }
  AuditBroker& audit() { return audit_; }

 private:
  struct Mounted {
    MountEntry entry;
    std::unique_ptr<Engine> engine;
  };

  Result<Response> dispatch(Request& req);
  Result<Response> handle_sys(Request& req);
  Result<Response> handle_token(Request& req);
  Result<Response> handle_unauthenticated(Request& req, bool& handled);

  // The setup shared by both kinds of init: cluster identity, mount and auth tables, the first
  // unseal and the root token. Returns the root token. seal_mu_ held.
  Result<std::string> first_unseal(const std::string& root_token_id);
  // auto_unseal(), refused once seal() was called after the `seals`-th time (the retries').
  Status auto_unseal_since(std::optional<uint64_t> seals);
  // Opens the barrier with the root key and runs post_unseal; seal_mu_ held.
  Status unseal_with_root_key(const SecretBytes& root_key);
  Result<boost::json::object> read_config(std::string_view path);
  // The checks a quorum of shares passes (seal_mu_ held). Shamir: the combined unseal key must
  // open the root key, which open_root_key() returns. Auto seal: the combined recovery key must
  // equal the one the HSM decrypts (compared in constant time).
  Result<SecretBytes> open_root_key(const SecretBytes& unseal_key);
  Status verify_recovery_key(const SecretBytes& combined);
  Status verify_quorum_key(const SecretBytes& combined);
  // Post-unseal setup: mount table, policies, token store, audit devices.
  Status post_unseal();
  void pre_seal();

  // HA (core/ha.cpp): a thread per unsealed period that waits for the lock, makes this server
  // active, and steps it down when the lock is lost, on sys/step-down, or when it seals.
  void start_ha();  // seal_mu_ held, barrier unsealed
  void stop_ha();   // seal_mu_ not held: joins the thread, which gives the lock up
  void ha_loop();
  Status become_active();  // seal_mu_ held, lock held
  std::function<void()> ha_lost_signal();
  // Initialising writes: an HA server takes the lock first, if it is free.
  Status ha_lock_for_init();

  // Mount table
  Status load_mounts();
  Status persist_mounts();
  Result<std::shared_ptr<Mounted>> route(const std::string& path, std::string& rel) const;
  Result<std::shared_ptr<Mounted>> route_auth(const std::string& path, std::string& rel) const;
  Status persist_auth();
  Status load_auth();
  // Turns an auth method's login answer into a token; registers leases for secrets.
  Status finish_response(Request& req, Response& resp, const Mounted* mounted);
  // A handler's result made final: finish_response(), then response wrapping when asked for.
  Result<Response> complete(Request& req, Result<Response> resp, const Mounted* mounted);
  // Audits the response now, or, when the caller defers durability, hands the entry to
  // Response::after_durable so it is written once the answer may leave.
  Result<Response> audit_response(const Request& req, const TokenEntry* token,
                                  Result<Response> resp);
  // Audits a request refused before it ran (no or bad token, ACL denial), request and response
  // entries both carrying the refusal, and returns the refusal (or the audit failure).
  Status audit_refusal(const Request& req, const TokenEntry* token, Status refusal);
  int64_t mount_ttl(const MountEntry& e, const char* key, int64_t fallback) const;
  Result<std::shared_ptr<Mounted>> instantiate(const MountEntry& entry, bool auth = false);
  Result<Response> sys_mounts(Request& req, const std::string& rest);
  Result<Response> sys_internal_ui_mounts(Request& req, const std::string& rest);
  Result<Response> sys_auth(Request& req, const std::string& rest);
  // Deletes a revoked token's cubbyhole (the token store's revoke hook).
  Status destroy_cubbyhole(const std::string& token_hash);

  // Response wrapping (core/wrapping.cpp, docs/wrapping.md)
  // Replaces a response by a single-use wrapping token that holds it in its cubbyhole, for
  // req.wrap_ttl seconds. Responses without a body are left as they are.
  Result<Response> wrap_response(const Request& req, Response resp);
  // Mints a wrapping token for `ttl` seconds holding `text` (a response's JSON).
  Result<Response> mint_wrapping_token(const std::string& text, int64_t ttl,
                                       const std::string& creation_path,
                                       const std::string& wrapped_accessor);
  // One token's cubbyhole (engines/cubbyhole.h).
  Result<View> cubbyhole(const std::string& token_hash);
  Result<View> cubbyhole_mount();  // the view every token's cubbyhole lies below
  Result<Response> sys_wrapping(Request& req, const std::string& rest);
  // sys/wrapping/lookup needs no token of its own (Vault): it reads the wrapping token's
  // creation facts without using it.
  Result<Response> wrapping_lookup(Request& req);

  // Token expiry (core/token_leases.cpp): each service token with a TTL has a lease of its own
  // under "auth/<method>/", kept at its expiry, that revokes it when due (a wrapping token's
  // takes the response it holds with it). The lease manager finds token_expiry_ for every
  // lease under "auth/".
  std::shared_ptr<Engine> make_token_expiry();
  TokenStore::ExpiryHooks token_expiry_hooks();

  // Policies
  Result<std::optional<policy::Policy>> get_policy(const std::string& name);
  // The token's effective ACL, cached per policy set (invalidated when any policy changes).
  Result<std::shared_ptr<const policy::Acl>> acl_for(const TokenEntry& token);
  Result<Response> sys_policy(Request& req, const std::string& name, bool legacy);
  Result<Response> sys_policy_list(bool legacy);
  Result<Response> sys_capabilities(Request& req, bool self);

  // Tokens
  // `role`: created against a token role (auth/token/create/:role_name).
  Result<Response> token_create(Request& req, bool orphan, const TokenRole* role = nullptr);
  Result<std::optional<TokenRole>> get_token_role(const std::string& name);
  static constexpr const char* kTokenRolePrefix = "sys/token/roles/";
  Result<Response> token_lookup_response(const TokenEntry& e, const std::string& id);
  Auth auth_for(const std::string& token, const TokenEntry& e) const;

  // Seal/status bodies
  boost::json::object seal_status_json(const SealStatus& s) const;
  Result<Response> sys_health(Request& req);
  Result<Response> sys_init(Request& req);
  Result<Response> sys_metrics(Request& req);

  // Operations a quorum of key holders authorises, without a token (core/quorum_ops.cpp,
  // docs/quorum.md): sys/generate-root/{attempt,update}, sys/rekey/{init,update,verify} (the
  // unseal key, Shamir seal) and sys/rekey-recovery-key/... (the recovery key, auto seal).
  struct RootGeneration {
    ShareQuorum quorum;
    SecretString otp;  // XORed with the new token's characters
  };
  struct Rekey {
    bool recovery = false;
    ShareQuorum quorum;  // shares of the current key
    int new_shares = 0;
    int new_threshold = 0;
    bool require_verification = false;
    // Once the quorum is reached with verification required: the new key, the blob to store
    // (the root key encrypted by the new unseal key, or the new recovery key encrypted by the
    // HSM), and the shares of the new key collected toward new_threshold.
    SecretBytes pending_key;
    Bytes pending_blob;
    ShareQuorum verification;
  };
  Result<Response> sys_generate_root(Request& req, std::string_view rest);
  Result<Response> sys_rekey(Request& req, std::string_view rest, bool recovery);
  boost::json::object root_generation_status(int required) const;
  boost::json::object rekey_status(const Rekey* r, int required) const;
  // The current threshold of the shares that authorise these operations.
  Result<int> quorum_threshold(bool recovery);
  // Writes a finished rekey's new key material and share counts in one transaction.
  Status commit_rekey(Rekey& r);
  static void register_process_gauges();
  Result<Response> sys_audit(Request& req, const std::string& rest);

  storage::Backend& backend_;
  const Clock& clock_;
  CoreConfig config_;
  Barrier barrier_;
  std::unique_ptr<TokenStore> tokens_;
  std::unique_ptr<LeaseManager> leases_;
  AuditBroker audit_;
  std::shared_ptr<Engine> token_expiry_;  // revokes tokens whose own lease is due

  std::mutex seal_mu_;      // serializes init/unseal/seal (held across HSM calls)
  std::mutex progress_mu_;  // the unseal progress, for seal_status(); taken inside seal_mu_
  ShareQuorum unseal_quorum_;
  std::atomic<bool> serving_{false};        // see serving()
  // Requests inside handle() past the unauthenticated endpoints: pre_seal() waits for them, so
  // that none of an ending term (HA: the lock lost, a step-down) runs on into the next one with
  // the token store and mounts it started with.
  std::atomic<int64_t> in_flight_{0};
  void drain_requests();
  std::atomic<uint64_t> seal_requests_{0};  // Core::seal() calls, for the auto-unseal retries
  std::thread unseal_retry_;
  std::mutex retry_mu_;
  std::condition_variable retry_cv_;
  bool retry_stop_ = false;  // guarded by retry_mu_
  // One root generation and one rekey per key kind (0: unseal key, 1: recovery key) at a time;
  // guarded by seal_mu_.
  std::unique_ptr<RootGeneration> root_generation_;
  std::unique_ptr<Rekey> rekeys_[2];
  std::string cluster_id_;

  storage::HaLock* ha_ = nullptr;  // null: this server is the store's only user
  const std::string node_id_;      // names this server in the HA lock and its advertisement
  std::mutex ha_thread_mu_;        // starting and joining ha_thread_
  std::thread ha_thread_;
  std::mutex ha_mu_;
  std::condition_variable ha_cv_;
  bool ha_stop_ = false;       // guarded by ha_mu_
  bool ha_lost_ = false;       // guarded by ha_mu_
  bool ha_step_down_ = false;  // guarded by ha_mu_
  std::atomic<bool> ha_stopping_{false};
  std::atomic<bool> ha_thread_live_{false};  // started and not yet joined
  std::atomic<bool> active_{false};
  std::atomic<int64_t> active_since_{0};  // unix nanoseconds
  std::mutex leader_mu_;                  // the last advertisement read: holder id -> address
  std::string leader_id_;
  std::string leader_addr_;
  std::chrono::steady_clock::time_point leader_fresh_until_{};  // leader() reads etcd after it
  metrics::GaugeHandle unsealed_gauge_;  // vault_core_unsealed (sys/metrics)
  metrics::GaugeHandle active_gauge_;    // vault_core_active

  mutable std::shared_mutex mounts_mu_;
  std::map<std::string, std::shared_ptr<Mounted>> mounts_;  // path ("secret/") -> engine
  std::map<std::string, EngineFactory> factories_;
  std::map<std::string, std::shared_ptr<Mounted>> auth_mounts_;  // "approle/" -> method
  std::map<std::string, EngineFactory> auth_factories_;

  std::mutex policy_mu_;
  std::map<std::string, policy::Policy> policy_cache_;
  std::map<std::string, std::shared_ptr<const policy::Acl>> acl_cache_;
};

}  // namespace custos::core
