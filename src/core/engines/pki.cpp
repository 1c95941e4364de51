// Placeholder until the PKI secrets engine lands (docs/status.md).
#include "core/engines/pki.h"

namespace custos::core {

Result<std::unique_ptr<Engine>> make_pki_engine(EngineContext, const MountEntry&) {
  return unimplemented("the PKI secrets engine is not available in this build yet");
}

}  // namespace custos::core
