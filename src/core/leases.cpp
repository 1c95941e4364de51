// Placeholder until the lease manager lands (docs/status.md): no engine issues leases yet, so
// every lease ID is unknown and answers follow Vault for that case.
#include "core/leases.h"

namespace custos::core {

struct LeaseManager::Impl {};

LeaseManager::LeaseManager(View, const Clock&, EngineLookup) : impl_(std::make_unique<Impl>()) {}
LeaseManager::~LeaseManager() = default;
Status LeaseManager::start() { return ok_status(); }
void LeaseManager::stop() {}

Result<LeaseEntry> LeaseManager::register_secret(const Request&, const Secret&, int64_t, int64_t) {
  return unimplemented("leased secrets are not supported yet");
}

Result<Response> LeaseManager::handle_sys(Request& req, const std::string& rest, bool& handled) {
  auto starts = [&](std::string_view p) { return rest.compare(0, p.size(), p) == 0; };
  handled = true;
  if (rest == "leases/renew" || rest == "renew" || starts("leases/renew/") || starts("renew/") ||
      rest == "leases/lookup") {
    ASSIGN_OR_RETURN(std::string lease, field_string(req.data, "lease_id"));
    if (lease.empty() && rest.find("renew/") != std::string::npos) {
      lease = rest.substr(rest.find("renew/") + 6);
    }
    if (lease.empty()) return invalid_argument("lease_id is required");
    return invalid_argument(rest == "leases/lookup" ? "invalid lease" : "lease not found");
  }
  if (rest == "leases/revoke" || rest == "revoke" || starts("leases/revoke/") || starts("revoke/")) {
    return Response::empty();  // revoking an unknown lease is not an error in Vault
  }
  handled = false;
  return Response::empty();
}

Status LeaseManager::revoke_token_leases(const std::string&) { return ok_status(); }
Status LeaseManager::revoke_prefix(const std::string&, bool) { return ok_status(); }

}  // namespace custos::core
