// The PKI secrets engine: Vault's certificate authority API with one issuer per mount (root or
// intermediate CA generation, roles, issue/sign, revocation with a CRL, tidy, URL config). The API
// surface, the storage layout and what is left out are in docs/engines/pki.md.
#pragma once

#include <memory>

#include "core/engine.h"

namespace custos::core {

// Builds a PKI engine storing below ctx.storage ("ca/bundle", "certs/<serial>", "roles/<name>",
// ...). Thread-safe: requests may run concurrently; changes to the CA, revocations and tidy are
// serialized. The parsed CA key is cached in memory and dropped when the barrier is found sealed
// or the engine is shut down.
Result<std::unique_ptr<Engine>> make_pki_engine(EngineContext ctx, const MountEntry& entry);

}  // namespace custos::core
