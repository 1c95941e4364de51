// The "attest" Vault auth method: login with TEE evidence instead of a password
// (docs/formats/kbs.md §6). Roles bind an appraisal policy to Vault policies and a token TTL;
// core mints the token from the Response::auth this method returns.
//
//   auth/<mount>/nonce        POST, no token: a single-use nonce bound to this mount
//   auth/<mount>/login        POST, no token: {role, tee, evidence, nonce, public_key?, ...}
//   auth/<mount>/role/<name>  read/write/delete (token + ACL); LIST auth/<mount>/role
//
// Storage (the mount's own View): role/<name> -> {token_policies, token_ttl, token_max_ttl,
// policy}.
#pragma once

#include "core/engine.h"

namespace custos::kbs {

class Broker;

// The factory for Core::register_auth("attest", ...). `broker` must outlive the core's mounts.
core::EngineFactory attest_auth_factory(Broker& broker);

}  // namespace custos::kbs
