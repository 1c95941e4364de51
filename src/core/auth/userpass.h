// The userpass auth method: people log in with a username and password (Vault's
// auth/userpass API). What is implemented and what is left out: docs/auth.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "base/bytes.h"
#include "core/engine.h"

namespace custos::core {

// PBKDF2-HMAC-SHA256 iterations for new password hashes (OWASP's 2023 floor is 600k for
// SHA-256; 100k keeps a login near 0.1 s on one core, see docs/auth.md). Each stored hash
// records its own count, so raising this later does not invalidate existing users.
inline constexpr uint32_t kUserpassPbkdf2Iterations = 100'000;

// Builds a userpass method storing users below ctx.storage ("user/<lowercase name>").
Result<std::unique_ptr<Engine>> make_userpass_auth(EngineContext ctx, const MountEntry& entry);

// The same with another iteration count for new hashes: tests only, to keep them fast.
Result<std::unique_ptr<Engine>> make_userpass_auth_with_iterations(EngineContext ctx,
                                                                   const MountEntry& entry,
                                                                   uint32_t iterations);

// RFC 8018 PBKDF2 with HMAC-SHA256 (exposed for its test vectors). `length` is 1..32 * 255;
// `iterations` at least 1.
SecretBytes pbkdf2_hmac_sha256(std::string_view password, ByteSpan salt, uint32_t iterations,
                               size_t length);

}  // namespace custos::core
