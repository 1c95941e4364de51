// The server configuration file: a Vault-style HCL file (docs/configuration.md lists every key).
//
// Unknown stanzas and keys are errors naming the line, so a typo never silently falls back to a
// default. Only the backends and listeners Custos implements are accepted.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"

namespace custos::config {

enum class StorageType { kInmem, kSqlite };
std::string_view storage_type_name(StorageType t);

struct StorageConfig {
  StorageType type = StorageType::kInmem;
  std::string path;  // sqlite: the database file (required)
  int line = 0;
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

struct ServerConfig {
  StorageConfig storage;
  std::vector<ListenerConfig> listeners;
  std::string api_addr;
  std::string cluster_addr;  // accepted for Vault compatibility; unused (no clustering)
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

// Reads and parses a file (at most kMaxConfigFileSize bytes); errors are prefixed by the path.
inline constexpr size_t kMaxConfigFileSize = 1 << 20;
Result<ServerConfig> load_server_config(const std::filesystem::path& path);

}  // namespace custos::config
