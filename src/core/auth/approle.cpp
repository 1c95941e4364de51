// Placeholder until the AppRole auth method lands (docs/status.md).
#include "core/auth/approle.h"

namespace custos::core {

Result<std::unique_ptr<Engine>> make_approle_auth(EngineContext, const MountEntry&) {
  return unimplemented("the AppRole auth method is not available in this build yet");
}

}  // namespace custos::core
