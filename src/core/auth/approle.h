// The AppRole auth method: machines log in with a role ID and a secret ID (Vault's
// auth/approle API). What is implemented and what is left out: docs/auth.md.
#pragma once

#include <memory>

#include "core/engine.h"

namespace custos::core {

// Builds an AppRole method storing below ctx.storage:
//   hmac_key                        the mount's random HMAC key (barrier-encrypted)
//   role/<lowercase name>           the role (JSON), including its role ID
//   role_id/<hmac(role_id)>         index role ID -> role name
//   secret_id/<role uuid>/<hmac(secret_id)>   one secret ID's entry (never the secret itself)
//   accessor/<role uuid>/<hmac(accessor)>     index accessor -> hmac(secret_id)
// Thread-safe: writes and secret-ID consumption serialize on one mutex.
Result<std::unique_ptr<Engine>> make_approle_auth(EngineContext ctx, const MountEntry& entry);

}  // namespace custos::core
