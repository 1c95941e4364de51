// The ledger secrets engine (docs/ledger.md): an append-only, tamper-evident log of entries (RFC
// 6962 Merkle tree) with signed tree heads, inclusion proofs and consistency proofs, so a client
// can check that what it was shown is in the log and that the log only ever grew.
#pragma once

#include <memory>

#include "core/engine.h"

namespace custos::core {

Result<std::unique_ptr<Engine>> make_ledger_engine(EngineContext ctx, const MountEntry& entry);

// The bytes a signed tree head's signature covers (ECDSA P-256 with SHA-256, DER):
// "custos.ledger.sth.v1\n<log_id>\n<tree_size>\n<root_hash hex>\n<timestamp unix seconds>\n".
std::string sth_message(const std::string& log_id, uint64_t tree_size, const std::string& root_hex,
                        int64_t timestamp);

}  // namespace custos::core
