// The PKI secrets engine: Vault's certificate authority API with one issuer per mount (root or
// intermediate CA generation, roles, issue/sign, revocation with a CRL, tidy, URL config). The API
// surface, the storage layout and what is left out are in docs/engines/pki.md.
#pragma once

#include <memory>
#include <string_view>

#include "core/engine.h"

namespace custos::core {

// The extension of an attested certificate (sign-attested/:role): a UTF8String holding the
// attestation claims as JSON. An OID under 2.25 (ITU-T X.667: a UUID as an OID), so it needs no
// registration: UUID 6f1c1d2e-9b3a-4c57-8e21-5a4d7c9b0e13.
inline constexpr std::string_view kAttestationClaimsOid =
    "2.25.147690283726579273355330394328353410579";

// Builds a PKI engine storing below ctx.storage ("ca/bundle", "certs/<serial>", "roles/<name>",
// ...). Thread-safe: requests may run concurrently; changes to the CA, revocations and tidy are
// serialized. The parsed CA key is cached in memory and dropped when the barrier is found sealed
// or the engine is shut down.
Result<std::unique_ptr<Engine>> make_pki_engine(EngineContext ctx, const MountEntry& entry);

}  // namespace custos::core
