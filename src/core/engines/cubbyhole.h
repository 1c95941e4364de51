// The cubbyhole: each service token's private key/value store (kv version 1 semantics), which
// no other token can read, not even root, and which is destroyed when its token is revoked or
// expires. Core mounts it once at cubbyhole/ and it can be neither disabled nor mounted again,
// as in Vault. Response wrapping keeps a wrapped response in its wrapping token's cubbyhole
// (docs/wrapping.md).
//
// Storage below the mount's view: <sha256(token) hex>/<path> -> the JSON object written.
#pragma once

#include <memory>
#include <string_view>

#include "core/engine.h"

namespace custos::core {

inline constexpr std::string_view kCubbyholePath = "cubbyhole/";
inline constexpr std::string_view kCubbyholeType = "cubbyhole";

Result<std::unique_ptr<Engine>> make_cubbyhole_engine(EngineContext ctx, const MountEntry& entry);

// One token's cubbyhole within the cubbyhole mount's view.
View cubbyhole_of(const View& mount_view, std::string_view token_hash);

}  // namespace custos::core
