// Fuzzes server configuration parsing and validation.
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
  return 0;
}
