// Fuzzes server configuration parsing and validation, and the migration file's parser (the same
// storage stanzas under other names).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = custos::config::parse_server_config(text);
  if (config.ok()) {
    // Accepted configurations must satisfy the documented invariants.
    if (config->listeners.empty() || config->default_lease_ttl > config->max_lease_ttl) {
      __builtin_trap();
    }
  }
  auto migration = custos::config::parse_migration_config(text);
  if (migration.ok()) {
    // Both sides are real stores.
    if (migration->source.type == custos::config::StorageType::kInmem ||
        migration->destination.type == custos::config::StorageType::kInmem) {
      __builtin_trap();
    }
  }
  return 0;
}
