#include "core/core.h"

#include <algorithm>
#include <boost/json.hpp>

#include "base/cleanup.h"
#include "base/encoding.h"
#include "base/log.h"
#include "core/auth/approle.h"
#include "core/auth/cidr.h"
#include "core/auth/userpass.h"
#include "core/core_paths.h"
#include "core/engines/cubbyhole.h"
#include "core/engines/database.h"
#include "core/engines/kv.h"
#include "core/engines/ledger.h"
#include "core/engines/pki.h"
#include "core/engines/transit.h"
#include "core/quorum.h"
#include "crypto/random.h"
#include "crypto/shamir.h"
#include "storage/durability.h"

namespace custos::core {
namespace {

// Paths that need `sudo` on top of the operation's capability (Vault's root-protected paths).
bool needs_sudo(const std::string& path) {
  static const char* kExact[] = {"sys/rotate", "sys/seal", "sys/step-down", "auth/token/accessors/",
                                 "auth/token/create-orphan", "auth/token/revoke-orphan",
                                 "sys/audit", "sys/audit/"};
  for (const char* p : kExact) {
    if (path == p) return true;
  }
  static const char* kPrefixes[] = {"sys/audit/", "sys/audit-hash/", "sys/raw/", "sys/config/",
                                    "sys/leases/revoke-force/", "sys/leases/revoke-prefix/",
                                    "sys/revoke-force/", "sys/revoke-prefix/"};
  for (const char* p : kPrefixes) {
    if (path.rfind(p, 0) == 0) return true;
  }
  return false;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Requests this thread is inside (Core::in_flight_): a seal called from a request must not wait
// for that request itself.
thread_local int64_t t_requests_here = 0;

// Takes this thread's requests out of the count while it seals, and puts them back after.
class LeaveGate {
 public:
  explicit LeaveGate(std::atomic<int64_t>& n) : n_(n), mine_(t_requests_here) {
    n_.fetch_sub(mine_);
    t_requests_here = 0;
  }
  ~LeaveGate() {
    n_.fetch_add(mine_);
    t_requests_here = mine_;
  }
  LeaveGate(const LeaveGate&) = delete;
  LeaveGate& operator=(const LeaveGate&) = delete;

 private:
  std::atomic<int64_t>& n_;
  const int64_t mine_;
};

std::string mount_accessor(const std::string& type) {
  std::string hex = hex_encode(crypto::random_bytes(4));
  return type + "_" + hex;
}

}  // namespace

Core::RequestScope::RequestScope(Core& core) : n_(core.in_flight_) {
  n_.fetch_add(1);
  ++t_requests_here;
}

Core::RequestScope::~RequestScope() {
  if (t_requests_here > 0) {
    --t_requests_here;
    n_.fetch_sub(1);
  }
}

Core::Core(storage::Backend& backend, const Clock& clock, CoreConfig config)
    : backend_(backend),
      clock_(clock),
      config_(std::move(config)),
      barrier_(backend, clock),
      audit_(clock),
      token_expiry_(make_token_expiry()),
      ha_(backend.ha_lock()),
      node_id_(crypto::random_uuid()) {
  register_engine("kv", make_kv_engine);
  register_engine("transit", make_transit_engine);
  register_engine("database", make_database_engine);
  register_engine("pki", make_pki_engine);
  register_engine("ledger", make_ledger_engine);
  register_engine(std::string(kCubbyholeType), make_cubbyhole_engine);
  register_auth("approle", make_approle_auth);
  register_auth("userpass", make_userpass_auth);
  unsealed_gauge_ =
      metrics::Registry::global().gauge("vault_core_unsealed", "1 while unsealed, 0 while sealed",
                                        [this] { return barrier_.sealed() ? 0.0 : 1.0; });
  active_gauge_ = metrics::Registry::global().gauge(
      "vault_core_active", "1 while this server is the active one (HA: not a standby)",
      [this] { return serving() ? 1.0 : 0.0; });
  register_process_gauges();
}

Core::~Core() {
  stop_ha();
  {
    std::lock_guard lock(retry_mu_);
    retry_stop_ = true;
  }
  retry_cv_.notify_all();
  if (unseal_retry_.joinable()) unseal_retry_.join();
  pre_seal();
}

void Core::retry_auto_unseal(std::chrono::milliseconds first, std::chrono::milliseconds max) {
  if (!config_.auto_seal || unseal_retry_.joinable()) return;
  const uint64_t seals = seal_requests_.load();
  unseal_retry_ = std::thread([this, first, max, seals] {
    auto delay = first;
    std::unique_lock lock(retry_mu_);
    for (int attempt = 1;; ++attempt) {
      if (retry_cv_.wait_for(lock, delay, [this] { return retry_stop_; })) return;
      lock.unlock();
      if (!barrier_.sealed()) return;  // unsealed another way
      Status st = auto_unseal_since(seals);
      if (seal_requests_.load() != seals) {
        LOG_INFO("core", "sealed on request: auto-unseal retries stop");
        return;
      }
      if (st.ok() && !barrier_.sealed()) {
        LOG_INFO("core", "auto-unseal succeeded on retry " << attempt);
        return;
      }
      delay = std::min(max, delay * 2);
      LOG_WARN("core", "auto-unseal retry " << attempt << " failed, next in " << delay.count()
                                            << " ms: " << st.message());
      lock.lock();
    }
  });
}

void Core::register_engine(const std::string& type, EngineFactory factory) {
  std::unique_lock lock(mounts_mu_);
  factories_[type] = std::move(factory);
}

void Core::register_auth(const std::string& type, EngineFactory factory) {
  std::unique_lock lock(mounts_mu_);
  auth_factories_[type] = std::move(factory);
}

// ---------------------------------------------------------------------------------------------
// Seal lifecycle

namespace {

storage::Op put_op(std::string_view key, Bytes value) {
  return storage::Op{storage::Op::Kind::kPut, std::string(key), std::move(value)};
}

}  // namespace

Result<InitResult> Core::initialize(int shares, int threshold, const std::string& root_token_id) {
  std::lock_guard lock(seal_mu_);
  ASSIGN_OR_RETURN(bool inited, barrier_.initialized());
  if (inited) return invalid_argument("Vault is already initialized");
  if (config_.auto_seal) {
    return invalid_argument(
        "parameters secret_shares,secret_threshold not applicable to seal type " +
        config_.auto_seal->type());
  }
  RETURN_IF_ERROR(ha_lock_for_init());
  // Vault leaves a freshly initialised Shamir-sealed server sealed: an HA server gives the
  // lock back, and competes for it once unsealed.
  Cleanup release([this] {
    if (ha_) ha_->release();
  });
  SecretBytes unseal_key = crypto::random_secret(32);
  ASSIGN_OR_RETURN(std::vector<SecretBytes> out,
                   split_key_shares(unseal_key, shares, threshold, "secret"));
  SecretBytes root_key = crypto::random_secret(32);
  ASSIGN_OR_RETURN(Bytes wrapped,
                   barrier_.encrypt_with(unseal_key.span(), paths::kRootKey, root_key.span()));
  boost::json::object cfg{{"type", "shamir"}, {"secret_shares", shares}, {"secret_threshold", threshold}};
  std::vector<storage::Op> ops;
  ops.push_back(put_op(paths::kRootKey, std::move(wrapped)));
  ops.push_back(put_op(paths::kSealConfig, to_bytes(boost::json::serialize(cfg))));
  RETURN_IF_ERROR(barrier_.initialize(root_key, std::move(ops)));
  ASSIGN_OR_RETURN(std::string root_token, first_unseal(root_token_id));
  InitResult result;
  result.shares = std::move(out);
  result.root_token = std::move(root_token);
  // Vault leaves a freshly initialised Shamir-sealed server sealed.
  pre_seal();
  barrier_.seal();
  LOG_INFO("core", "initialized with " << shares << " shares, threshold " << threshold);
  return result;
}

Result<InitResult> Core::initialize_recovery(int recovery_shares, int recovery_threshold,
                                             const std::string& root_token_id) {
  std::lock_guard lock(seal_mu_);
  ASSIGN_OR_RETURN(bool inited, barrier_.initialized());
  if (inited) return invalid_argument("Vault is already initialized");
  if (!config_.auto_seal) {
    return invalid_argument(
        "parameters recovery_shares,recovery_threshold not applicable to seal type shamir");
  }
  RETURN_IF_ERROR(ha_lock_for_init());
  // On failure an HA server gives the lock back; on success it stays unsealed and active.
  Cleanup release([this] {
    if (ha_) ha_->release();
  });
  AutoSeal& seal = *config_.auto_seal;
  SecretBytes recovery_key = crypto::random_secret(32);
  ASSIGN_OR_RETURN(std::vector<SecretBytes> out,
                   split_key_shares(recovery_key, recovery_shares, recovery_threshold, "recovery"));
  // The HSM encrypts both keys before anything is written: an HSM that fails leaves the store
  // uninitialised, and the keyring is written in one transaction with what opens it.
  ASSIGN_OR_RETURN(Bytes recovery_blob, seal.encrypt(recovery_key.span(), paths::kRecoveryKey));
  SecretBytes root_key = crypto::random_secret(32);
  ASSIGN_OR_RETURN(Bytes root_blob, seal.encrypt(root_key.span(), paths::kRootKey));
  boost::json::object cfg{
      {"type", seal.type()}, {"secret_shares", 1}, {"secret_threshold", 1}, {"stored_shares", 1}};
  boost::json::object rcfg{{"type", "shamir"},
                           {"secret_shares", recovery_shares},
                           {"secret_threshold", recovery_threshold}};
  std::vector<storage::Op> ops;
  ops.push_back(put_op(paths::kRootKey, std::move(root_blob)));
  ops.push_back(put_op(paths::kRecoveryKey, std::move(recovery_blob)));
  ops.push_back(put_op(paths::kRecoveryConfig, to_bytes(boost::json::serialize(rcfg))));
  ops.push_back(put_op(paths::kSealConfig, to_bytes(boost::json::serialize(cfg))));
  RETURN_IF_ERROR(barrier_.initialize(root_key, std::move(ops)));
  ASSIGN_OR_RETURN(std::string root_token, first_unseal(root_token_id));
  if (ha_) {
    // Active through the HA thread, as after any unseal: it finds the lock held.
    pre_seal();
    release.cancel();
    start_ha();
  }
  InitResult result;
  result.recovery_shares = std::move(out);
  result.root_token = std::move(root_token);
  LOG_INFO("core", "initialized with seal " << seal.type() << ", " << recovery_shares
                                            << " recovery shares, threshold " << recovery_threshold
                                            << "; unsealed");
  return result;
}

Result<std::string> Core::first_unseal(const std::string& root_token_id) {
  // The barrier is open but nothing above it is set up yet: on any failure, close it again.
  auto setup = [&]() -> Result<std::string> {
    RETURN_IF_ERROR(barrier_.put(paths::kCluster, as_bytes(crypto::random_uuid())));
    RETURN_IF_ERROR(persist_mounts());
    RETURN_IF_ERROR(persist_auth());
    RETURN_IF_ERROR(post_unseal());
    TokenCreateParams p;
    p.policies = {"root"};
    p.display_name = "root";
    p.id = root_token_id;
    p.path = "auth/token/root";
    p.renewable = false;
    ASSIGN_OR_RETURN(auto root, tokens_->create(p));
    return std::move(root.first);
  };
  auto token = setup();
  if (!token.ok()) {
    pre_seal();
    barrier_.seal();
  }
  return token;
}

Result<boost::json::object> Core::read_config(std::string_view path) {
  ASSIGN_OR_RETURN(auto raw, backend_.get(path));
  if (!raw) return data_loss(std::string(path) + " is missing");
  boost::system::error_code ec;
  auto v = boost::json::parse(as_string_view(*raw), ec);
  if (ec || !v.is_object()) return data_loss(std::string(path) + " is corrupt");
  auto& o = v.as_object();
  for (const char* k : {"secret_shares", "secret_threshold"}) {
    const auto* n = o.if_contains(k);
    if (!n || !n->is_int64()) return data_loss(std::string(path) + " is corrupt");
  }
  const auto* t = o.if_contains("type");
  if (!t || !t->is_string()) return data_loss(std::string(path) + " is corrupt");
  return std::move(o);
}

Result<SealStatus> Core::seal_status() {
  SealStatus s;
  ASSIGN_OR_RETURN(bool inited, barrier_.initialized());
  s.initialized = inited;
  s.sealed = barrier_.sealed();
  if (config_.auto_seal) {
    s.type = config_.auto_seal->type();
    s.recovery_seal = true;
  }
  if (inited) {
    ASSIGN_OR_RETURN(auto cfg,
                     read_config(s.recovery_seal ? paths::kRecoveryConfig : paths::kSealConfig));
    s.shares = static_cast<int>(cfg.at("secret_shares").as_int64());
    s.threshold = static_cast<int>(cfg.at("secret_threshold").as_int64());
  }
  // Not seal_mu_: an unseal holds that across HSM calls, and seal-status answers on I/O threads.
  std::lock_guard lock(progress_mu_);
  s.progress = unseal_quorum_.progress();
  s.nonce = s.progress > 0 ? unseal_quorum_.nonce() : "";
  return s;
}

Status Core::check_seal_type() {
  ASSIGN_OR_RETURN(bool inited, barrier_.initialized());
  if (!inited) return ok_status();
  ASSIGN_OR_RETURN(auto cfg, read_config(paths::kSealConfig));
  std::string stored(cfg.at("type").as_string());
  std::string configured = config_.auto_seal ? config_.auto_seal->type() : "shamir";
  if (stored != configured) {
    return failed_precondition("the storage was initialized with the " + stored +
                               " seal, but this server is configured for the " + configured +
                               " seal; seal migration is not supported");
  }
  return ok_status();
}

Status Core::unseal_with_root_key(const SecretBytes& root_key) {
  RETURN_IF_ERROR(barrier_.unseal(root_key));
  if (ha_) {
    // A standby until it holds the lock; the HA thread then makes it active.
    start_ha();
    LOG_INFO("core", "vault is unsealed; standby until this server holds the HA lock");
    return ok_status();
  }
  Status st = post_unseal();
  if (!st.ok()) {
    pre_seal();
    barrier_.seal();
    return st.with_context("unseal");
  }
  LOG_INFO("core", "vault is unsealed");
  return ok_status();
}

Status Core::auto_unseal() {
  return auto_unseal_since(std::nullopt);
}

Status Core::auto_unseal_since(std::optional<uint64_t> seals) {
  if (!config_.auto_seal) return failed_precondition("auto-unseal needs a seal stanza");
  std::lock_guard lock(seal_mu_);
  // seal() counts itself before taking seal_mu_: a seal requested since `seals` wins.
  if (seals && seal_requests_.load() != *seals) return failed_precondition("sealed on request");
  if (!barrier_.sealed()) return ok_status();
  ASSIGN_OR_RETURN(bool inited, barrier_.initialized());
  if (!inited) return ok_status();
  RETURN_IF_ERROR(check_seal_type());
  ASSIGN_OR_RETURN(auto blob, backend_.get(paths::kRootKey));
  if (!blob) return data_loss("root key is missing from storage");
  auto root_key = config_.auto_seal->decrypt(*blob, paths::kRootKey);
  if (!root_key.ok()) return root_key.status().with_context("auto-unseal");
  return unseal_with_root_key(*root_key);
}

Result<SealStatus> Core::unseal(std::string_view key, bool reset) {
  ASSIGN_OR_RETURN(SealStatus status, seal_status());
  if (!status.initialized) return invalid_argument("Vault is not initialized");
  std::unique_lock lock(seal_mu_);
  // Writers of the progress hold seal_mu_ and progress_mu_; seal_status() reads under the latter.
  auto clear_progress = [this] {
    std::lock_guard p(progress_mu_);
    unseal_quorum_.clear();
  };
  if (reset) {
    clear_progress();
    lock.unlock();
    return seal_status();
  }
  if (!barrier_.sealed()) {
    lock.unlock();
    return seal_status();
  }
  if (key.empty()) return invalid_argument("'key' must be specified in request body as JSON, or 'reset' set to true");
  bool reached = false;
  {
    std::lock_guard p(progress_mu_);
    if (!unseal_quorum_.started()) unseal_quorum_.start(status.threshold);
    // Vault's unseal takes no nonce.
    ASSIGN_OR_RETURN(reached, unseal_quorum_.add(key, "", ShareQuorum::kUnseal));
  }
  if (!reached) {
    lock.unlock();
    return seal_status();
  }
  Result<SecretBytes> combined = [&] {
    std::lock_guard p(progress_mu_);
    return unseal_quorum_.combine();
  }();
  clear_progress();
  if (!combined.ok()) return combined.status();
  SecretBytes root_key;
  if (config_.auto_seal) {
    // Auto seal: the shares are recovery key shares. They authorise the unseal; the HSM decrypts.
    RETURN_IF_ERROR(verify_recovery_key(*combined).with_context("Error unsealing"));
    ASSIGN_OR_RETURN(auto blob, backend_.get(paths::kRootKey));
    if (!blob) return data_loss("root key is missing from storage");
    ASSIGN_OR_RETURN(root_key, config_.auto_seal->decrypt(*blob, paths::kRootKey));
  } else {
    auto opened = open_root_key(*combined);
    if (!opened.ok()) return opened.status().with_context("Error unsealing");
    root_key = std::move(*opened);
  }
  RETURN_IF_ERROR(unseal_with_root_key(root_key));
  lock.unlock();
  return seal_status();
}

Status Core::verify_recovery_key(const SecretBytes& combined) {
  ASSIGN_OR_RETURN(auto recovery_blob, backend_.get(paths::kRecoveryKey));
  if (!recovery_blob) return data_loss("recovery key is missing from storage");
  ASSIGN_OR_RETURN(SecretBytes recovery_key,
                   config_.auto_seal->decrypt(*recovery_blob, paths::kRecoveryKey));
  if (!(recovery_key == combined)) {
    return invalid_argument("the recovery key shares do not match the recovery key");
  }
  return ok_status();
}

Result<SecretBytes> Core::open_root_key(const SecretBytes& unseal_key) {
  ASSIGN_OR_RETURN(auto wrapped, backend_.get(paths::kRootKey));
  if (!wrapped) return data_loss("root key is missing from storage");
  auto opened = barrier_.decrypt_with(unseal_key.span(), paths::kRootKey, *wrapped);
  if (!opened.ok()) return invalid_argument("the unseal key shares do not open the root key");
  return std::move(*opened);
}

Status Core::verify_quorum_key(const SecretBytes& combined) {
  if (config_.auto_seal) return verify_recovery_key(combined);
  return open_root_key(combined).status();
}

Status Core::seal() {
  seal_requests_.fetch_add(1);
  LeaveGate leave(in_flight_);  // sys/seal: the request sealing does not wait for itself
  std::unique_lock lock(seal_mu_, std::defer_lock);
  for (;;) {
    stop_ha();  // an active server steps down and gives the lock up first
    // Requests drain before seal_mu_ is taken: one waiting for it (an unseal) is not counted,
    // but nothing here should hold it longer than needed.
    serving_.store(false);
    drain_requests();
    lock.lock();
    if (!ha_thread_live_.load()) break;
    lock.unlock();  // an unseal started one meanwhile: stop that too
  }
  pre_seal();
  barrier_.seal();
  {
    std::lock_guard p(progress_mu_);
    unseal_quorum_.clear();
  }
  // An attempt authorised by shares given before the seal does not survive it.
  root_generation_.reset();
  rekeys_[0].reset();
  rekeys_[1].reset();
  LOG_INFO("core", "vault is sealed");
  return ok_status();
}

Status Core::post_unseal() {
  tokens_ = std::make_unique<TokenStore>(View(barrier_, "sys/token/"), clock_,
                                         config_.default_lease_ttl, config_.max_lease_ttl);
  RETURN_IF_ERROR(tokens_->load(barrier_));
  ASSIGN_OR_RETURN(auto cluster, barrier_.get(paths::kCluster));
  cluster_id_ = cluster ? std::string(cluster->view()) : "";
  RETURN_IF_ERROR(load_mounts());
  RETURN_IF_ERROR(load_auth());
  RETURN_IF_ERROR(audit_.load(View(barrier_, "core/audit/")));
  leases_ = std::make_unique<LeaseManager>(
      View(barrier_, "sys/expire/"), clock_, [this](const std::string& mount_path) {
        // Auth methods issue tokens, not secrets: every lease under auth/ is a token's own.
        if (mount_path.rfind("auth/", 0) == 0) return token_expiry_;
        std::shared_lock lock(mounts_mu_);
        auto it = mounts_.find(mount_path);
        if (it == mounts_.end()) return std::shared_ptr<Engine>();
        return std::shared_ptr<Engine>(it->second, it->second->engine.get());
      });
  tokens_->set_revoke_hook([this](const std::string& hash) {
    RETURN_IF_ERROR(leases_->revoke_token_leases(hash));
    return destroy_cubbyhole(hash);
  });
  tokens_->set_expiry_hooks(token_expiry_hooks());
  RETURN_IF_ERROR(leases_->start());
  {
    std::lock_guard lock(policy_mu_);
    policy_cache_.clear();
    acl_cache_.clear();
  }
  // Requests may use the token store, mounts and leases from now on (not while the barrier is
  // open but they are still being loaded).
  serving_.store(true, std::memory_order_release);
  return ok_status();
}

void Core::drain_requests() {
  // No time limit: tearing down what a running request uses would be a use after free. Every
  // blocking call a request makes has a timeout of its own (storage, HSM, database).
  auto report = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (in_flight_.load() > t_requests_here) {
    if (std::chrono::steady_clock::now() > report) {
      LOG_WARN("core", "sealing or stepping down waits for " << in_flight_.load() - t_requests_here
                                                             << " request(s) still running");
      report += std::chrono::seconds(10);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void Core::pre_seal() {
  serving_.store(false);
  drain_requests();
  if (leases_) leases_->stop();
  {
    std::unique_lock lock(mounts_mu_);
    for (auto& [path, m] : mounts_) {
      if (m->engine) m->engine->shutdown();
    }
    for (auto& [path, m] : auth_mounts_) {
      if (m->engine) m->engine->shutdown();
    }
    mounts_.clear();
    auth_mounts_.clear();
  }
  audit_.clear();
  if (tokens_) tokens_->clear_cache();
  std::lock_guard lock(policy_mu_);
  policy_cache_.clear();
  acl_cache_.clear();
}

// ---------------------------------------------------------------------------------------------
// Request pipeline

Result<Response> Core::handle(Request& req) {
  if (req.request_id.empty()) req.request_id = crypto::random_uuid();
  bool handled = false;
  auto pre = handle_unauthenticated(req, handled);
  if (handled) return pre;
  // Counted before serving() is read: pre_seal() clears serving_ and then waits for the count.
  RequestScope gate(*this);
  if (!serving()) {
    if (standby()) {
      return unavailable(
          "this server is a standby and cannot serve the request; send it to "
          "the active server (sys/leader)");
    }
    return unavailable("Vault is sealed");
  }

  std::string rel;
  std::shared_ptr<Mounted> mounted;
  bool auth_method = false;
  if (starts_with(req.path, "sys/")) {
    req.mount_point = "sys/";
    req.mount_type = "system";
    req.rel_path = req.path.substr(4);
  } else if (starts_with(req.path, "auth/token/") || req.path == "auth/token") {
    req.mount_point = "auth/token/";
    req.mount_type = "token";
    req.rel_path = starts_with(req.path, "auth/token/") ? req.path.substr(11) : "";
  } else if (starts_with(req.path, "auth/")) {
    ASSIGN_OR_RETURN(mounted, route_auth(req.path.substr(5), rel));
    req.mount_point = "auth/" + mounted->entry.path;
    req.mount_type = mounted->entry.type;
    req.rel_path = rel;
    auth_method = true;
  } else {
    ASSIGN_OR_RETURN(mounted, route(req.path, rel));
    req.mount_point = mounted->entry.path;
    req.mount_type = mounted->entry.type;
    req.rel_path = rel;
  }

  // Auth methods' login paths need no token (and must not be given a chance to use one).
  if (auth_method && mounted->engine->unauthenticated(req)) {
    if (req.http_put_or_post) req.op = Operation::kUpdate;
    RETURN_IF_ERROR(audit_.log_request(req, nullptr));
    Result<Response> resp = complete(req, mounted->engine->handle(req), mounted.get());
    return audit_response(req, nullptr, std::move(resp));
  }

  ASSIGN_OR_RETURN(auto token, tokens_->lookup(req.client_token));
  if (!token) {
    Status refusal =
        permission_denied(req.client_token.empty() ? "permission denied (missing client token)"
                                                   : "permission denied");
    if (req.path == "sys/wrapping/unwrap" && !req.client_token.empty() &&
        !req.data.contains("token")) {
      // Vault checks a wrapping token presented as the client token before the request flow:
      // an unknown or used one gets the answer a wrapping token in the body would.
      refusal = invalid_argument("wrapping token is not valid or does not exist");
    }
    return audit_refusal(req, nullptr, refusal);
  }
  req.token = &*token;
  if (!source_allowed(token->bound_cidrs, req.remote_addr)) {
    // Vault checks the binding before taking a use: a token presented from elsewhere is
    // refused as if it did not exist.
    return audit_refusal(req, &*token, permission_denied("permission denied"));
  }
  // Vault takes a use before the request runs, whatever its outcome (a token limited to N
  // uses cannot probe denied paths for free); the last use revokes the token after it.
  Result<bool> last_use = tokens_->use(*token);
  if (!last_use.ok()) {
    if (last_use.status().code() != Code::kPermissionDenied) return last_use.status();
    return audit_refusal(req, &*token, last_use.status());
  }
  Cleanup revoke_after_last_use([&] {
    if (!*last_use) return;
    Status st = tokens_->revoke(*token);
    if (!st.ok()) LOG_WARN("core", "could not revoke a used-up token: " << st.message());
  });

  if (req.http_put_or_post) {
    bool exists = true;
    if (mounted) {
      ASSIGN_OR_RETURN(exists, mounted->engine->exists(req));
    }
    req.op = exists ? Operation::kUpdate : Operation::kCreate;
  }

  // sys/internal/ui/mounts (Vault): any token may read it; the answer is filtered to the
  // mounts the token can reach (sys_internal_ui_mounts) rather than decided by a rule on it.
  const bool ui_mounts =
      req.op == Operation::kRead &&
      (req.path == "sys/internal/ui/mounts" || starts_with(req.path, "sys/internal/ui/mounts/"));
  bool allowed = ui_mounts;
  if (!ui_mounts) {
    ASSIGN_OR_RETURN(allowed, acl_allows(*token, req.path, req.op, &req.data, req.wrap_ttl));
  }
  if (!allowed) return audit_refusal(req, &*token, permission_denied("permission denied"));

  RETURN_IF_ERROR(audit_.log_request(req, &*token));
  Result<Response> resp =
      complete(req, mounted ? mounted->engine->handle(req) : dispatch(req), mounted.get());
  return audit_response(req, &*token, std::move(resp));
}

Status Core::audit_refusal(const Request& req, const TokenEntry* token, Status refusal) {
  // Refused attempts are what an auditor most needs to see. If no device can record one, the
  // client gets that failure instead: it is refused either way.
  RETURN_IF_ERROR(audit_.log_request(req, token, refusal.message()));
  RETURN_IF_ERROR(audit_.log_response(req, token, refusal));
  return refusal;
}

Result<Response> Core::audit_response(const Request& req, const TokenEntry* token,
                                      Result<Response> resp) {
  if (!resp.ok() || !storage::DeferDurability::active()) {
    RETURN_IF_ERROR(audit_.log_response(req, token, resp));
    return resp;
  }
  // The caller answers once this request's writes are durable; the entry waits with it.
  std::shared_ptr<const AuditBroker::PendingResponse> pending =
      audit_.render_response(req, token, resp);
  if (pending->lines.empty()) return resp;
  resp->after_durable = [this, pending](const Status& outcome) {
    Status audited = audit_.write_response(*pending, outcome);
    return outcome.ok() ? audited : outcome;  // a withheld answer stays an error
  };
  return resp;
}

int64_t Core::mount_ttl(const MountEntry& e, const char* key, int64_t fallback) const {
  const auto* v = e.config.if_contains(key);
  if (v && v->is_int64() && v->as_int64() > 0) return v->as_int64();
  return fallback;
}

Result<Response> Core::complete(Request& req, Result<Response> resp, const Mounted* mounted) {
  if (!resp.ok()) return resp;
  RETURN_IF_ERROR(finish_response(req, *resp, mounted));
  if (req.wrap_ttl > 0) return wrap_response(req, std::move(*resp));
  return resp;
}

Status Core::finish_response(Request& req, Response& resp, const Mounted* mounted) {
  if (resp.secret && mounted) {
    int64_t dflt = mount_ttl(mounted->entry, "default_lease_ttl", config_.default_lease_ttl);
    int64_t max = mount_ttl(mounted->entry, "max_lease_ttl", config_.max_lease_ttl);
    ASSIGN_OR_RETURN(LeaseEntry lease, leases_->register_secret(req, *resp.secret, dflt, max));
    resp.lease_id = lease.lease_id;
    resp.lease_duration = std::max<int64_t>(0, lease.expire_time - to_unix_seconds(clock_.now()));
    resp.renewable = lease.renewable;
    resp.secret.reset();
  }
  if (resp.auth && resp.auth->client_token.empty() && mounted) {
    // A login: mint the token the auth method vouched for.
    const Auth& a = *resp.auth;
    TokenCreateParams p;
    p.policies = a.policies;
    p.meta = a.metadata;
    p.display_name = a.display_name.empty() ? mounted->entry.type : mounted->entry.type + "-" + a.display_name;
    p.ttl = a.lease_duration;
    if (p.ttl == 0) p.ttl = mount_ttl(mounted->entry, "default_lease_ttl", config_.default_lease_ttl);
    int64_t max = mount_ttl(mounted->entry, "max_lease_ttl", config_.max_lease_ttl);
    if (p.ttl > max) p.ttl = max;
    p.explicit_max_ttl = a.explicit_max_ttl;
    p.period = a.period;
    p.num_uses = a.num_uses;
    p.bound_cidrs = a.bound_cidrs;
    p.renewable = a.renewable;
    p.type = a.token_type.empty() ? "service" : a.token_type;
    p.orphan = true;  // login tokens have no parent (Vault)
    p.path = req.mount_point + req.rel_path;
    p.auth_method_type = mounted->entry.type;
    ASSIGN_OR_RETURN(auto created, tokens_->create(p));
    Auth out;
    out.client_token = created.first;
    out.accessor = created.second.accessor;
    out.policies = created.second.policies;
    out.token_policies = created.second.policies;
    out.metadata = created.second.meta;
    out.lease_duration = created.second.creation_ttl;
    out.renewable = created.second.renewable;
    out.token_type = created.second.type;
    out.orphan = true;
    out.num_uses = created.second.num_uses;
    resp.auth = std::move(out);
  }
  return ok_status();
}

Result<Response> Core::dispatch(Request& req) {
  if (starts_with(req.path, "sys/")) return handle_sys(req);
  if (starts_with(req.path, "auth/token/") || req.path == "auth/token") return handle_token(req);
  if (starts_with(req.path, "auth/")) return not_found("no handler for route \"" + req.path + "\"");
  std::string rel;
  ASSIGN_OR_RETURN(auto mounted, route(req.path, rel));
  return mounted->engine->handle(req);
}

// ---------------------------------------------------------------------------------------------
// Mount table

Status Core::persist_mounts() {
  boost::json::array arr;
  {
    std::shared_lock lock(mounts_mu_);
    for (const auto& [path, m] : mounts_) {
      boost::json::object o = m->entry.to_json();
      o["path"] = path;
      arr.push_back(std::move(o));
    }
  }
  boost::json::object doc{{"mounts", std::move(arr)}};
  SecretString text(boost::json::serialize(doc));
  return barrier_.put(paths::kMounts, as_bytes(text.str()));
}

Status Core::load_mounts() {
  ASSIGN_OR_RETURN(auto raw, barrier_.get(paths::kMounts));
  std::map<std::string, std::shared_ptr<Mounted>> loaded;
  if (raw) {
    boost::system::error_code ec;
    auto v = boost::json::parse(raw->view(), ec);
    if (ec || !v.is_object() || !v.as_object().contains("mounts")) return data_loss("mount table is corrupt");
    for (const auto& e : v.as_object().at("mounts").as_array()) {
      if (!e.is_object()) return data_loss("mount table is corrupt");
      ASSIGN_OR_RETURN(MountEntry entry, MountEntry::from_json(e.as_object()));
      ASSIGN_OR_RETURN(auto m, instantiate(entry));
      loaded[entry.path] = std::move(m);
    }
  }
  // The cubbyhole is always mounted (stores created before it existed get it on first unseal).
  bool add_cubbyhole = !loaded.contains(std::string(kCubbyholePath));
  if (add_cubbyhole) {
    MountEntry e;
    e.path = kCubbyholePath;
    e.type = kCubbyholeType;
    e.description = "per-token private secret storage";
    e.uuid = crypto::random_uuid();
    e.accessor = mount_accessor(e.type);
    e.local = true;
    ASSIGN_OR_RETURN(auto m, instantiate(e));
    loaded[e.path] = std::move(m);
  }
  {
    std::unique_lock lock(mounts_mu_);
    mounts_ = std::move(loaded);
  }
  return add_cubbyhole ? persist_mounts() : ok_status();
}

Status Core::destroy_cubbyhole(const std::string& token_hash) {
  ASSIGN_OR_RETURN(View box, cubbyhole(token_hash));
  return box.delete_tree("");
}

Result<std::shared_ptr<Core::Mounted>> Core::instantiate(const MountEntry& entry, bool auth) {
  EngineFactory factory;
  {
    std::shared_lock lock(mounts_mu_);
    const auto& table = auth ? auth_factories_ : factories_;
    auto it = table.find(entry.type);
    if (it == table.end()) {
      std::string names = auth ? "token" : "";
      for (const auto& [n, f] : table) names += (names.empty() ? "" : ", ") + n;
      return invalid_argument("plugin not found in the catalog: " + entry.type +
                              " (available: " + names + ")");
    }
    factory = it->second;
  }
  auto m = std::make_shared<Mounted>();
  m->entry = entry;
  EngineContext ctx{View(barrier_, (auth ? "auth/" : "logical/") + entry.uuid + "/"), clock_,
                    m->entry, mount_ttl(entry, "default_lease_ttl", config_.default_lease_ttl),
                    mount_ttl(entry, "max_lease_ttl", config_.max_lease_ttl)};
  ASSIGN_OR_RETURN(m->engine, factory(ctx, m->entry));
  return m;
}

bool Core::never_blocks(const std::string& path, Operation op) const {
  // Storage behind a network round trip blocks whatever the request.
  if (backend_.calls_block()) return false;
  if (path == "sys/health" || path == "sys/seal-status") return op == Operation::kRead;
  if (path.starts_with("sys/") || path.starts_with("auth/")) return false;
  std::string rel;
  auto m = route(path, rel);
  // KV engines (v1 and v2) only read and write through the barrier; other engines may call out
  // (database, PKI issue on read paths) or spend long on the CPU (key generation), so they stay
  // on the workers.
  return m.ok() && ((*m)->entry.type == "kv" || (*m)->entry.type == kCubbyholeType);
}

Result<std::shared_ptr<Core::Mounted>> Core::route(const std::string& path, std::string& rel) const {
  std::shared_lock lock(mounts_mu_);
  // Longest prefix: walk candidate prefixes from the longest.
  std::string probe = path;
  if (probe.empty() || probe.back() != '/') probe += '/';
  for (size_t pos = probe.size(); pos > 0;) {
    std::string prefix = probe.substr(0, pos);
    auto it = mounts_.find(prefix);
    if (it != mounts_.end()) {
      rel = prefix.size() <= path.size() ? path.substr(prefix.size()) : "";
      return it->second;
    }
    size_t slash = probe.rfind('/', pos >= 2 ? pos - 2 : 0);
    if (slash == std::string::npos || pos < 2) break;
    pos = slash + 1;
  }
  return not_found("no handler for route \"" + path + "\". route entry not found.");
}

Status Core::mount(const std::string& raw_path, const std::string& raw_type,
                   boost::json::object options, const std::string& description) {
  std::string path = raw_path;
  while (!path.empty() && path.front() == '/') path.erase(0, 1);
  if (path.empty()) return invalid_argument("missing mount path");
  if (path.back() != '/') path += '/';
  if (path.find("..") != std::string::npos || path.find("//") != std::string::npos) {
    return invalid_argument("invalid mount path");
  }
  for (const char* reserved : {"sys/", "auth/", "cubbyhole/", "identity/"}) {
    if (starts_with(path, reserved)) return invalid_argument("cannot mount at reserved path " + path);
  }
  std::string type = raw_type;
  if (type == kCubbyholeType) {
    return invalid_argument("the cubbyhole engine is mounted once, at cubbyhole/, by the server");
  }
  if (type == "kv-v2") {
    type = "kv";
    options["version"] = "2";
  } else if (type == "kv-v1") {
    type = "kv";
    options["version"] = "1";
  }
  if (type == "kv") {
    std::string version = "1";
    if (const auto* v = options.if_contains("version")) {
      if (v->is_string()) version = std::string(v->as_string());
      else if (v->is_int64()) version = std::to_string(v->as_int64());
    }
    if (version != "1" && version != "2") return invalid_argument("invalid kv version " + version);
    options["version"] = version;
  }
  {
    std::shared_lock lock(mounts_mu_);
    for (const auto& [p, m] : mounts_) {
      if (starts_with(path, p) || starts_with(p, path)) {
        return invalid_argument("path is already in use at " + p);
      }
    }
  }
  MountEntry e;
  e.path = path;
  e.type = type;
  e.description = description;
  e.uuid = crypto::random_uuid();
  e.accessor = mount_accessor(type);
  e.options = std::move(options);
  ASSIGN_OR_RETURN(auto m, instantiate(e));
  {
    std::unique_lock lock(mounts_mu_);
    for (const auto& [p, x] : mounts_) {
      if (starts_with(path, p) || starts_with(p, path)) {
        return invalid_argument("path is already in use at " + p);
      }
    }
    mounts_[path] = std::move(m);
  }
  Status st = persist_mounts();
  if (!st.ok()) {
    std::unique_lock lock(mounts_mu_);
    mounts_.erase(path);
  }
  return st;
}

Result<std::shared_ptr<Core::Mounted>> Core::route_auth(const std::string& path,
                                                        std::string& rel) const {
  std::shared_lock lock(mounts_mu_);
  for (auto it = auth_mounts_.rbegin(); it != auth_mounts_.rend(); ++it) {
    const std::string& p = it->first;  // "approle/"
    if (path.compare(0, p.size(), p) == 0 || path + "/" == p) {
      rel = path.size() > p.size() ? path.substr(p.size()) : "";
      return it->second;
    }
  }
  return not_found("no handler for route \"auth/" + path + "\". route entry not found.");
}

Status Core::persist_auth() {
  boost::json::array arr;
  {
    std::shared_lock lock(mounts_mu_);
    for (const auto& [path, m] : auth_mounts_) {
      boost::json::object o = m->entry.to_json();
      o["path"] = path;
      arr.push_back(std::move(o));
    }
  }
  SecretString text(boost::json::serialize(boost::json::object{{"mounts", std::move(arr)}}));
  return barrier_.put(paths::kAuth, as_bytes(text.str()));
}

Status Core::load_auth() {
  ASSIGN_OR_RETURN(auto raw, barrier_.get(paths::kAuth));
  std::map<std::string, std::shared_ptr<Mounted>> loaded;
  if (raw) {
    boost::system::error_code ec;
    auto v = boost::json::parse(raw->view(), ec);
    if (ec || !v.is_object() || !v.as_object().contains("mounts")) return data_loss("auth table is corrupt");
    for (const auto& e : v.as_object().at("mounts").as_array()) {
      if (!e.is_object()) return data_loss("auth table is corrupt");
      ASSIGN_OR_RETURN(MountEntry entry, MountEntry::from_json(e.as_object()));
      ASSIGN_OR_RETURN(auto m, instantiate(entry, /*auth=*/true));
      loaded[entry.path] = std::move(m);
    }
  }
  std::unique_lock lock(mounts_mu_);
  auth_mounts_ = std::move(loaded);
  return ok_status();
}

Status Core::enable_auth(const std::string& raw_path, const std::string& type,
                         const std::string& description) {
  std::string path = raw_path;
  while (!path.empty() && path.front() == '/') path.erase(0, 1);
  if (path.empty()) path = type;
  if (path.back() != '/') path += '/';
  if (path == "token/") return invalid_argument("path is already in use at auth/token/");
  if (path.find("..") != std::string::npos || path.find("//") != std::string::npos) {
    return invalid_argument("invalid auth path");
  }
  MountEntry e;
  e.path = path;
  e.type = type;
  e.description = description;
  e.uuid = crypto::random_uuid();
  e.accessor = "auth_" + type + "_" + hex_encode(crypto::random_bytes(4));
  ASSIGN_OR_RETURN(auto m, instantiate(e, /*auth=*/true));
  {
    std::unique_lock lock(mounts_mu_);
    for (const auto& [p, x] : auth_mounts_) {
      if (starts_with(path, p) || starts_with(p, path)) {
        return invalid_argument("path is already in use at auth/" + p);
      }
    }
    auth_mounts_[path] = std::move(m);
  }
  Status st = persist_auth();
  if (!st.ok()) {
    std::unique_lock lock(mounts_mu_);
    auth_mounts_.erase(path);
  }
  return st;
}

// ---------------------------------------------------------------------------------------------
// Policies

Result<std::optional<policy::Policy>> Core::get_policy(const std::string& name) {
  {
    std::lock_guard lock(policy_mu_);
    auto it = policy_cache_.find(name);
    if (it != policy_cache_.end()) return std::optional<policy::Policy>(it->second);
  }
  if (name == policy::kResponseWrappingPolicyName) {
    return std::optional<policy::Policy>(policy::response_wrapping_policy());
  }
  ASSIGN_OR_RETURN(auto raw, barrier_.get("sys/policy/" + name));
  std::optional<policy::Policy> p;
  if (raw) {
    auto parsed = policy::parse_policy(name, raw->view());
    if (!parsed.ok()) return data_loss("stored policy " + name + " does not parse");
    p = std::move(*parsed);
  } else if (name == policy::kDefaultPolicyName) {
    p = policy::default_policy();
  } else {
    return p;
  }
  std::lock_guard lock(policy_mu_);
  policy_cache_[name] = *p;
  return p;
}

Result<bool> Core::acl_allows(const TokenEntry& token, const std::string& path, Operation op,
                              const boost::json::object* params, int64_t wrap_ttl) {
  std::string acl_path = path;
  if (op == Operation::kList && (acl_path.empty() || acl_path.back() != '/')) acl_path += '/';
  ASSIGN_OR_RETURN(auto acl, acl_for(token));
  return acl->allowed(acl_path, op, needs_sudo(acl_path), params, Seconds(wrap_ttl));
}

Result<std::shared_ptr<const policy::Acl>> Core::acl_for(const TokenEntry& token) {
  static const auto kRoot = std::make_shared<const policy::Acl>(policy::Acl::root());
  if (token.is_root()) return kRoot;
  std::string key;
  for (const auto& p : token.policies) key += p + "\n";
  {
    std::lock_guard lock(policy_mu_);
    auto it = acl_cache_.find(key);
    if (it != acl_cache_.end()) return it->second;
  }
  policy::Acl acl;
  for (const auto& name : token.policies) {
    if (name == "root") return kRoot;
    ASSIGN_OR_RETURN(auto p, get_policy(name));
    if (p) acl.add(*p);
  }
  auto shared = std::make_shared<const policy::Acl>(std::move(acl));
  std::lock_guard lock(policy_mu_);
  acl_cache_[key] = shared;
  return shared;
}

}  // namespace custos::core
