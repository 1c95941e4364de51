// Placeholder until the database secrets engine (PostgreSQL) lands (docs/status.md).
#include "core/engines/database.h"

namespace custos::core {

Result<std::unique_ptr<Engine>> make_database_engine(EngineContext, const MountEntry&) {
  return unimplemented("the database secrets engine (PostgreSQL) is not available in this build yet");
}

}  // namespace custos::core
