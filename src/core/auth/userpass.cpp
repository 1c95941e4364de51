// Placeholder until the userpass auth method lands (docs/status.md).
#include "core/auth/userpass.h"

namespace custos::core {

Result<std::unique_ptr<Engine>> make_userpass_auth(EngineContext, const MountEntry&) {
  return unimplemented("the userpass auth method is not available in this build yet");
}

}  // namespace custos::core
