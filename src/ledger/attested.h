// Attested ledger entries (docs/ledger.md): what the workload's TEE-bound key signs, shared by
// the ledger engine (core/engines/ledger.cpp), which checks it, and the agent, which signs.
#pragma once

#include <string>
#include <string_view>

#include "base/bytes.h"

namespace custos::ledger {

// The statement type of an attested entry, also the domain separator of its signature.
inline constexpr std::string_view kAttestedEntryType = "custos.ledger.attested-entry.v1";

// "custos.ledger.attested-entry.v1\n<log_id>\n<evidence_sha256>\n<content_type>\n<hex SHA-256
// of the data>\n": the log, the login's evidence (the token's evidence_sha256), the content type
// and the data, so a signature cannot be replayed into another log, under another login that
// bound the same public key, or with another type.
std::string attested_entry_message(std::string_view log_id, std::string_view evidence_sha256,
                                   std::string_view content_type, ByteSpan data);

}  // namespace custos::ledger
