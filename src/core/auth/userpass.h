// The userpass auth method.
#pragma once

#include <memory>

#include "core/engine.h"

namespace custos::core {

Result<std::unique_ptr<Engine>> make_userpass_auth(EngineContext ctx, const MountEntry& entry);

}  // namespace custos::core
