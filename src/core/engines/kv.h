// The kv secrets engine, versions 1 and 2 (chosen by the mount's options.version), with Vault's
// full v2 surface: data/ (versions, check-and-set, merge-patch), metadata/, delete/, undelete/,
// destroy/, config, subkeys/. docs/engines/kv.md describes the storage layout.
#pragma once

#include <memory>

#include "core/engine.h"

namespace custos::core {

Result<std::unique_ptr<Engine>> make_kv_engine(EngineContext ctx, const MountEntry& entry);

// KV version 1 on `view` (a kv v1 mount's, or one token's cubbyhole): read, write (create and
// update replace the whole secret), delete and list of req.rel_path.
Result<Response> kv_v1_handle(const View& view, Request& req);
Result<bool> kv_v1_exists(const View& view, const Request& req);

}  // namespace custos::core
