// The PKI secrets engine.
#pragma once

#include <memory>

#include "core/engine.h"

namespace custos::core {

Result<std::unique_ptr<Engine>> make_pki_engine(EngineContext ctx, const MountEntry& entry);

}  // namespace custos::core
