// The transit secrets engine: Vault's "encryption as a service" (named keys, encrypt/decrypt,
// rewrap, data keys, HMAC, sign/verify, hashing, random bytes, export). The API surface and what
// is left out are in docs/engines/transit.md, which also documents the stored key format.
#pragma once

#include <memory>

#include "core/engine.h"

namespace custos::core {

// Builds a transit engine storing its keys below ctx.storage ("policy/<name>"). Thread-safe:
// requests may run concurrently; parsed keys are cached in memory and dropped when the barrier
// is found sealed or the engine is shut down.
Result<std::unique_ptr<Engine>> make_transit_engine(EngineContext ctx, const MountEntry& entry);

}  // namespace custos::core
