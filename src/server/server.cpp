#include "server/server.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "attestation/service/service.h"
#include "attestation/sim/sim.h"
#include "base/encoding.h"
#include "base/log.h"
#include "config/config.h"
#include "core/core.h"
#include "etcd/backend.h"
#include "hsm/pkcs11_seal.h"
#include "http/api.h"
#include "http/attestation_api.h"
#include "http/kbs_api.h"
#include "kbs/broker.h"
#include "net/http.h"
#include "storage/backend.h"
#include "storage/cache.h"

namespace custos::server {
namespace {

// Set when the etcd storage lock is lost (storage::Backend fail-stop): the server exits 1.
std::atomic<bool> g_storage_lock_lost{false};

#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

Result<std::pair<std::string, uint16_t>> split_address(const std::string& addr) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos) return invalid_argument("listener address must be host:port: " + addr);
  std::string host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  for (char c : addr.substr(colon + 1)) {
    if (c < '0' || c > '9') return invalid_argument("invalid port in " + addr);
    port = port * 10 + (c - '0');
    if (port > 65535) return invalid_argument("invalid port in " + addr);
  }
  if (host.empty()) host = "0.0.0.0";
  return std::make_pair(host, static_cast<uint16_t>(port));
}

// seal "pkcs11" -> the HSM seal; every error names the stanza's line.
Result<std::shared_ptr<core::AutoSeal>> open_seal(config::SealConfig& c) {
  std::string where =
      c.line > 0 ? "seal \"pkcs11\" (line " + std::to_string(c.line) + "): " : "seal \"pkcs11\": ";
  auto mech = hsm::parse_mechanism(c.mechanism);
  if (!mech.ok()) return invalid_argument(where + mech.status().message());
  hsm::Pkcs11SealOptions o;
  o.lib = c.lib;
  o.slot = c.slot;
  o.token_label = c.token_label;
  o.pin = std::move(c.pin);
  o.key_label = c.key_label;
  o.mechanism = *mech;
  o.generate_key = c.generate_key;
  o.rsa_oaep_hash = c.rsa_oaep_hash;
  auto seal = hsm::Pkcs11Seal::open(std::move(o));
  if (!seal.ok()) return Status(seal.status().code(), where + seal.status().message());
  LOG_INFO("server", "seal pkcs11: key \"" << c.key_label << "\" in " << c.lib);
  return std::shared_ptr<core::AutoSeal>(std::move(*seal));
}

}  // namespace

Status harden_process(bool lock_memory) {
  // No core dumps: a dump of this process would hold the keyring.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  struct rlimit no_core {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  // Small default thread stacks keep locked memory and idle RSS small.
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) == 0) {
    pthread_attr_setstacksize(&attr, 512 * 1024);
    pthread_setattr_default_np(&attr);
    pthread_attr_destroy(&attr);
  }
  if (lock_memory) {
    // MCL_ONFAULT locks pages as they are touched instead of pre-faulting every mapping, so
    // secrets never reach swap without inflating the resident set.
    if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0) {
      return failed_precondition(std::string("failed to lock memory (mlockall: ") +
                                 std::strerror(errno) +
                                 "); run with CAP_IPC_LOCK, or set disable_mlock = true");
    }
  }
  return ok_status();
}

Result<std::unique_ptr<storage::Backend>> open_storage(const config::StorageConfig& c,
                                                       std::function<void()> on_lock_lost,
                                                       bool ha) {
  switch (c.type) {
    case config::StorageType::kSqlite:
      return storage::open_sqlite(storage::SqliteOptions{c.path});
    case config::StorageType::kEtcd: {
      etcd::EtcdOptions eo;
      eo.endpoints = c.etcd_endpoints;
      eo.prefix = c.path;
      eo.username = c.etcd_username;
      eo.password = c.etcd_password;
      eo.tls.ca_file = c.etcd_tls_ca_file;
      eo.tls.client_cert_file = c.etcd_tls_cert_file;
      eo.tls.client_key_file = c.etcd_tls_key_file;
      eo.request_timeout = std::chrono::seconds(c.etcd_request_timeout);
      eo.lock_ttl = std::chrono::seconds(c.etcd_lock_ttl);
      eo.max_txn_ops = static_cast<size_t>(c.etcd_max_txn_ops);
      eo.on_lock_lost = std::move(on_lock_lost);
      eo.ha_enabled = ha && c.ha_enabled;
      return etcd::open_etcd(eo);
    }
    case config::StorageType::kInmem:
      break;
  }
  return storage::open_inmem();
}

int run_server(const ServerArgs& args) {
  config::ServerConfig cfg;
  if (args.dev) {
    config::ListenerConfig l;
    l.address = args.dev_listen_address;
    l.tls_disable = true;
    cfg.listeners.push_back(l);
    cfg.storage.type = config::StorageType::kInmem;
    cfg.disable_mlock = true;
  } else {
    if (args.config_path.empty()) {
      std::fprintf(stderr, "error: a configuration file is required (-config FILE), or use -dev\n");
      return 2;
    }
    auto loaded = config::load_server_config(args.config_path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "error loading configuration: %s\n", loaded.status().message().c_str());
      return 2;
    }
    cfg = std::move(*loaded);
    auto getenv = [](const char* n) { return std::getenv(n); };
    if (Status st = config::apply_seal_environment(cfg, getenv);
        !st.ok() || !(st = config::apply_storage_environment(cfg, getenv)).ok()) {
      std::fprintf(stderr, "error loading configuration: %s\n", st.message().c_str());
      return 2;
    }
    if (cfg.listeners.empty()) {
      std::fprintf(stderr, "error: the configuration has no listener \"tcp\" stanza\n");
      return 2;
    }
    if (const char* a = std::getenv("VAULT_API_ADDR"); a && *a) cfg.api_addr = a;
    if (cfg.storage.ha_enabled && cfg.api_addr.empty()) {
      std::fprintf(stderr,
                   "error: ha_enabled needs api_addr (or VAULT_API_ADDR): the address other "
                   "servers forward requests to while this one is active\n");
      return 2;
    }
  }
  log::Level level = log::Level::kInfo;
  if (cfg.log_level) level = *cfg.log_level;
  if (!args.log_level.empty() && !log::parse_level(args.log_level, level)) {
    std::fprintf(stderr, "error: unknown log level %s\n", args.log_level.c_str());
    return 2;
  }
  log::set_level(level);

  // Block termination signals in every thread; the main thread waits for them below.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (Status st = harden_process(!cfg.disable_mlock); !st.ok()) {
    std::fprintf(stderr, "error: %s\n", st.message().c_str());
    return 1;
  }

  // Fail-stop on etcd: a server that lost the storage lock may hold cached state another server
  // now changes, so it shuts down (its SIGTERM path) rather than answer from it, and exits 1 so
  // that a supervisor restarting on failure starts one that waits its turn.
  // With HA the lock comes and goes (the core steps down to standby instead).
  auto opened = open_storage(
      cfg.storage,
      [] {
        g_storage_lock_lost.store(true);
        ::kill(::getpid(), SIGTERM);
      },
      /*ha=*/true);
  if (!opened.ok()) {
    std::fprintf(stderr, "error opening storage: %s\n", opened.status().message().c_str());
    return 1;
  }
  std::unique_ptr<storage::Backend> backend = std::move(*opened);
  // Vault's physical cache (cache_size, disable_cache) in front of disk or network storage; it
  // stays valid because this server is the store's only writer (SQLite's file lock, etcd's
  // lease-bound lock). In-memory storage needs none.
  if (cfg.storage.type != config::StorageType::kInmem && !cfg.disable_cache) {
    backend = storage::with_read_cache(std::move(backend), static_cast<size_t>(cfg.cache_size));
  }

  core::CoreConfig core_cfg;
  if (cfg.seal) {
    auto seal = open_seal(*cfg.seal);
    if (!seal.ok()) {
      std::fprintf(stderr, "error opening the seal: %s\n", seal.status().message().c_str());
      return 1;
    }
    core_cfg.auto_seal = std::move(*seal);
  }
  core_cfg.default_lease_ttl = cfg.default_lease_ttl.count();
  core_cfg.max_lease_ttl = cfg.max_lease_ttl.count();
  core_cfg.storage_type = std::string(config::storage_type_name(cfg.storage.type));
  core_cfg.api_addr = cfg.api_addr;
  core::Core core(*backend, SystemClock::instance(), core_cfg);
  if (Status st = core.check_seal_type(); !st.ok()) {
    std::fprintf(stderr, "error: %s\n", st.message().c_str());
    return 1;
  }

  // Attestation service and key broker. Dev mode trusts a simulated TEE platform; a normal
  // server trusts only the pinned hardware roots.
  std::optional<attestation::sim::SimPlatform> sim_platform;
  attestation::ServiceConfig scfg;
  scfg.clock = &SystemClock::instance();
  kbs::BrokerConfig bcfg;
  std::string sim_dir = args.dev_sim_dir;
  if (args.dev) {
    if (sim_dir.empty()) {
      char tmpl[] = "/tmp/custos-dev-sim.XXXXXX";
      if (!mkdtemp(tmpl)) {
        std::fprintf(stderr, "error: cannot create the dev sim directory\n");
        return 1;
      }
      sim_dir = tmpl;
    }
    std::error_code ec;
    bool existing = std::filesystem::exists(std::filesystem::path(sim_dir) / "README.txt", ec);
    auto p = existing ? attestation::sim::SimPlatform::load(sim_dir)
                      : attestation::sim::SimPlatform::create(sim_dir, SystemClock::instance().now());
    if (!p.ok()) {
      std::fprintf(stderr, "error preparing the sim platform in %s: %s\n", sim_dir.c_str(),
                   p.status().message().c_str());
      return 1;
    }
    sim_platform.emplace(std::move(*p));
    scfg.sim_root = sim_platform->root();
    bcfg.default_collateral[attestation::TeeType::kSim] = sim_platform->collateral();
  }
  auto service = attestation::Service::create(std::move(scfg));
  if (!service.ok()) {
    std::fprintf(stderr, "error starting the attestation service: %s\n",
                 service.status().message().c_str());
    return 1;
  }
  kbs::Broker broker(core, **service, bcfg);
  broker.register_auth_method();  // before unseal: the auth table may name "attest"

  bool retry_unseal = false;
  if (core.auto_sealed()) {
    // The HSM opens the root key; a failure leaves the server sealed, serving seal-status with
    // the reason in the log (recovery keys can retry through sys/unseal once the HSM is back).
    if (Status st = core.auto_unseal(); !st.ok()) {
      LOG_ERROR("server",
                "auto-unseal failed; retrying in the background (1 s, doubling to "
                "1 min) while the server serves seal-status: "
                    << st.message());
      retry_unseal = true;
    }
  }

  std::string dev_unseal_key;
  std::string dev_root_token;
  if (args.dev) {
    auto init = core.initialize(1, 1, args.dev_root_token_id);
    if (!init.ok()) {
      std::fprintf(stderr, "error initializing dev server: %s\n", init.status().message().c_str());
      return 1;
    }
    dev_unseal_key = base64_encode(init->shares[0].span());
    dev_root_token = init->root_token;
    auto un = core.unseal(hex_encode(init->shares[0].span()), false);
    if (!un.ok() || un->sealed) {
      std::fprintf(stderr, "error unsealing dev server\n");
      return 1;
    }
    Status st = core.mount("secret/", "kv", boost::json::object{{"version", "2"}},
                           "key/value secret storage");
    if (!st.ok()) {
      std::fprintf(stderr, "error mounting secret/: %s\n", st.message().c_str());
      return 1;
    }
  }

  http::Api api(core);
  if (cfg.ui || args.dev) api.enable_ui();
  if (core.ha_enabled()) {
    net::ClientOptions forward_tls;
    forward_tls.ca_file = cfg.ha_tls_ca_file;
    api.enable_forwarding(std::move(forward_tls));
  }
  http::register_attestation_routes(api, **service);
  http::register_kbs_routes(api, broker);
  std::vector<std::unique_ptr<net::HttpServer>> servers;
  std::string first_addr;
  for (const auto& l : cfg.listeners) {
    auto hp = split_address(l.address);
    if (!hp.ok()) {
      std::fprintf(stderr, "error: %s\n", hp.status().message().c_str());
      return 2;
    }
    net::ServerOptions opts;
    opts.address = hp->first;
    opts.port = hp->second;
    opts.tls = !l.tls_disable;
    opts.tls_config.cert_file = l.tls_cert_file;
    opts.tls_config.key_file = l.tls_key_file;
    opts.tls_config.min_version = l.tls_min_version == config::TlsVersion::kTls13 ? "tls13" : "tls12";
    opts.tls_config.client_ca_file = l.tls_client_ca_file;
    if (l.max_request_size > 0) opts.max_body_bytes = static_cast<size_t>(l.max_request_size);
    opts.request_timeout = std::chrono::seconds(l.max_request_duration.count());
    opts.run_inline = [&api](const net::HttpRequest& r) { return api.can_run_inline(r); };
    auto srv = net::HttpServer::start(opts, [&api](net::HttpRequest& r) { return api.handle(r); });
    if (!srv.ok()) {
      std::fprintf(stderr, "error starting listener %s: %s\n", l.address.c_str(),
                   srv.status().message().c_str());
      return 1;
    }
    std::string scheme = opts.tls ? "https" : "http";
    std::string addr = scheme + "://" + hp->first + ":" + std::to_string((*srv)->port());
    LOG_INFO("server", "listening on " << addr);
    if (first_addr.empty()) first_addr = addr;
    servers.push_back(std::move(*srv));
  }

  if (args.dev) {
    std::printf(
        "==> Custos dev server started. Do not run a dev server in production.\n\n"
        "    Storage is in memory, the server is unsealed, and everything is lost at exit.\n\n"
        "    export VAULT_ADDR='%s'\n"
        "    Unseal Key: %s\n"
        "    Root Token: %s\n"
        "    Sim platform: %s (a SIMULATED TEE, trusted by this dev server only)\n\n",
        first_addr.c_str(), dev_unseal_key.c_str(), dev_root_token.c_str(), sim_dir.c_str());
    std::fflush(stdout);
  } else {
    std::printf("==> Custos server started on %s (storage: %s%s)\n", first_addr.c_str(),
                core_cfg.storage_type.c_str(), core.ha_enabled() ? ", HA" : "");
    std::fflush(stdout);
  }
  SecretString wipe_root(std::move(dev_root_token));
  SecretString wipe_key(std::move(dev_unseal_key));
  if (args.on_ready) args.on_ready(first_addr);

  // Started once everything the core reaches is built (the broker, the listeners): no early return
  // above can then leave a retry running against what it has torn down.
  if (retry_unseal) core.retry_auto_unseal(std::chrono::seconds(1), std::chrono::minutes(1));
  for (;;) {
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0) break;
    if (sig == SIGHUP) {
      LOG_INFO("server", "SIGHUP received; configuration reload is not supported, ignoring");
      continue;
    }
    LOG_INFO("server", "shutting down (signal " << sig << ")");
    break;
  }
  for (auto& s : servers) s->stop();
  (void)core.seal();
  if (g_storage_lock_lost.load()) {
    LOG_ERROR("server", "stopped because the storage lock was lost");
    return 1;
  }
  return 0;
}

}  // namespace custos::server
