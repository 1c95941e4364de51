// The database secrets engine (PostgreSQL).
#pragma once

#include <memory>

#include "core/engine.h"

namespace custos::core {

Result<std::unique_ptr<Engine>> make_database_engine(EngineContext ctx, const MountEntry& entry);

}  // namespace custos::core
