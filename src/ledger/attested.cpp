#include "ledger/attested.h"

#include "base/encoding.h"
#include "crypto/hash.h"

namespace custos::ledger {

std::string attested_entry_message(std::string_view log_id, std::string_view evidence_sha256,
                                   std::string_view content_type, ByteSpan data) {
  std::string m(kAttestedEntryType);
  for (std::string_view part : {log_id, evidence_sha256, content_type}) {
    m += '\n';
    m += part;
  }
  m += '\n';
  m += hex_encode(crypto::sha256(data));
  m += '\n';
  return m;
}

}  // namespace custos::ledger
