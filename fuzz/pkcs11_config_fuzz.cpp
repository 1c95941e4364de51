// Fuzzes the PKCS#11 module's configuration parser (src/pkcs11/config.h).
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "pkcs11/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = custos::pkcs11::parse_module_config(text);
  if (config.ok()) {
    // Accepted configurations satisfy what the module relies on.
    if (config->kbs_addr.empty() || config->keys.empty() ||
        config->keys.size() > custos::pkcs11::kMaxKeys || config->token_label.empty() ||
        config->token_label.size() > 32) {
      __builtin_trap();
    }
    std::set<std::string> labels;
    for (const auto& k : config->keys) {
      if (k.id.empty() || k.label.empty() || !labels.insert(k.label).second) __builtin_trap();
    }
  }
  return 0;
}
