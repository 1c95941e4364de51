// The server configuration file: a Vault-style HCL file (docs/configuration.md lists every key).
//
// Unknown stanzas and keys are errors naming the line, so a typo never silently falls back to a
// default. Only the backends and listeners Custos implements are accepted.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"

namespace custos::config {

enum class StorageType { kInmem, kSqlite, kEtcd };
std::string_view storage_type_name(StorageType t);

struct StorageConfig {
  StorageType type = StorageType::kInmem;
  std::string path;  // sqlite: the database file (required); etcd: the key prefix
  int line = 0;
  // etcd (docs/storage-etcd.md): Vault's keys where they apply.
  std::vector<std::string> etcd_endpoints;  // "address", comma-separated client URLs
  std::string etcd_username;
  std::string etcd_password;
  std::string etcd_tls_ca_file;
  std::string etcd_tls_cert_file;
  std::string etcd_tls_key_file;
  int64_t etcd_request_timeout = 10;  // seconds
  int64_t etcd_lock_ttl = 15;         // "lock_timeout": the lock's lease, seconds
  int64_t etcd_max_txn_ops = 128;
  // High availability (docs/ha.md): servers sharing the store, one active, the others standbys.
  bool ha_enabled = false;
};

enum class TlsVersion { kTls12, kTls13 };

struct ListenerConfig {
  std::string type = "tcp";
  std::string address = "127.0.0.1:8200";
  bool tls_disable = false;
  std::string tls_cert_file;       // required unless tls_disable
  std::string tls_key_file;        // required unless tls_disable
  TlsVersion tls_min_version = TlsVersion::kTls12;
  std::string tls_client_ca_file;  // empty: client certificates are not requested
  // Bytes; Vault's default is 32 MiB, and a negative value disables the limit (as in Vault).
  int64_t max_request_size = 32 * 1024 * 1024;
  Seconds max_request_duration = Seconds(90);
  std::string cluster_address;  // accepted for Vault compatibility; Custos has no cluster port
  int line = 0;
};

// seal "pkcs11" { ... } (docs/seal.md): HSM auto-unseal. Without a seal stanza the server uses
// Shamir shares. The VAULT_HSM_* environment variables override the file (apply_seal_environment).
struct SealConfig {
  std::string type = "pkcs11";
  std::string lib;
  std::optional<uint64_t> slot;
  std::string token_label;
  SecretString pin;
  std::string key_label;
  std::string mechanism = "0x1087";  // CKM_AES_GCM; hsm::parse_mechanism reads it
  bool generate_key = false;
  std::string rsa_oaep_hash = "sha256";
  // Accepted so a Vault configuration starts; Custos does not seal-wrap values, so no HMAC key
  // is used (docs/seal.md).
  std::string hmac_key_label;
  std::string hmac_mechanism;
  int line = 0;
};

struct ServerConfig {
  StorageConfig storage;
  std::optional<SealConfig> seal;
  std::vector<ListenerConfig> listeners;
  std::string api_addr;      // HA: where standbys forward requests to while this server is active
  std::string cluster_addr;  // accepted for Vault compatibility; unused (no cluster port)
  // HA: the CA that signed the other servers' listener certificates, for a standby forwarding
  // to the active server's api_addr (empty: the system's roots).
  std::string ha_tls_ca_file;
  bool ui = false;
  bool disable_mlock = false;
  // Vault's physical read cache: entries kept (storage/cache.h); disable_cache turns it off.
  int64_t cache_size = 131072;
  bool disable_cache = false;
  Seconds default_lease_ttl = Seconds(768 * 3600);  // Vault's 32 days
  Seconds max_lease_ttl = Seconds(768 * 3600);
  std::optional<log::Level> log_level;  // unset: the command line / default decides
};

// Parses and validates a configuration document. Errors are InvalidArgument "line N: ...".
Result<ServerConfig> parse_server_config(std::string_view text);

// Applies Vault's seal environment: VAULT_SEAL_TYPE=pkcs11 (or VAULT_HSM_TYPE) enables the seal
// without a stanza, and VAULT_HSM_LIB, _SLOT, _TOKEN_LABEL, _PIN, _KEY_LABEL, _MECHANISM,
// _GENERATE_KEY, _RSA_OAEP_HASH, _HMAC_KEY_LABEL override its keys. Then checks that the keys the
// seal needs are set. `getenv` is injectable for tests.
Status apply_seal_environment(ServerConfig& config,
                              const std::function<const char*(const char*)>& getenv);

// Applies Vault's etcd environment to storage "etcd": ETCD_ADDR, ETCD_USERNAME and ETCD_PASSWORD
// override the file's address, username and password. `getenv` is injectable for tests.
Status apply_storage_environment(ServerConfig& config,
                                 const std::function<const char*(const char*)>& getenv);

// `custos operator migrate`'s file, as Vault's `vault operator migrate` takes it:
//   storage_source "sqlite" { path = "..." }
//   storage_destination "etcd" { address = "..." }
// Each stanza takes what a storage stanza takes; inmem is refused.
struct MigrationConfig {
  StorageConfig source;
  StorageConfig destination;
};
Result<MigrationConfig> parse_migration_config(std::string_view text);
Result<MigrationConfig> load_migration_config(const std::filesystem::path& path);

// Reads and parses a file (at most kMaxConfigFileSize bytes); errors are prefixed by the path.
inline constexpr size_t kMaxConfigFileSize = 1 << 20;
Result<ServerConfig> load_server_config(const std::filesystem::path& path);

}  // namespace custos::config
