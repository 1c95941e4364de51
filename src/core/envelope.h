// The JSON body Vault answers an API request with: {"request_id", "lease_id", "renewable",
// "lease_duration", "data", "wrap_info", "warnings", "auth", "mount_type"}. http/ writes it, and
// response wrapping stores it in the wrapping token's cubbyhole (unwrap returns it as is).
#pragma once

#include <boost/json/object.hpp>

#include "core/request.h"

namespace custos::core {

// False when the response has nothing to put in an envelope: it answers 204 No Content.
bool has_envelope(const Response& r);
// Renders the envelope, moving the response's data out of `r`.
boost::json::object render_envelope(const Request& req, Response& r);
boost::json::object auth_json(const Auth& a);
boost::json::object wrap_info_json(const WrapInfo& w);

}  // namespace custos::core
