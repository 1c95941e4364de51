// The PKCS#11 module's configuration file (docs/pkcs11.md): which broker to attest to, with what
// evidence, and which keys to release into the token.
//
//   kbs_addr = "https://kbs.example:8200"
//   ca_file  = "/etc/custos/ca.pem"          # optional; tls_skip_verify = true for tests only
//   tee      = "sim"                         # sim, sgx, tdx, snp, tpm
//   sim_dir  = "/var/lib/custos/sim"         # sim only
//   pin      = "1234"                        # optional: C_Login must present it
//   token_label = "custos"
//   key "web" { id = "8c1f..." }             # one block per key; the label names the object
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/producer.h"
#include "base/bytes.h"
#include "base/status.h"

namespace custos::pkcs11 {

inline constexpr size_t kMaxKeys = 64;

struct KeySpec {
  std::string label;  // CKA_LABEL of the objects (the block's label)
  std::string id;     // the broker's key id (/kbs/v1/keys/<id>/transfer); also CKA_ID
};

struct ModuleConfig {
  std::string kbs_addr;
  std::string ca_file;
  bool tls_skip_verify = false;
  agent::ProducerConfig producer;  // producer.program is left empty: the module measures its host
  std::string token_label = "custos";
  SecretString pin;  // empty: no login required
  std::vector<KeySpec> keys;
};

// Parses the HCL text. Unknown keys and blocks are errors naming their line.
Result<ModuleConfig> parse_module_config(std::string_view text);

}  // namespace custos::pkcs11
