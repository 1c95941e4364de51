#include "core/envelope.h"

#include "core/engine.h"

namespace custos::core {
bool has_envelope(const Response& r) {
  return r.data || r.auth || !r.lease_id.empty() || !r.warnings.empty() || r.wrap_info;
}

boost::json::object auth_json(const Auth& a) {
  boost::json::object o;
  o["client_token"] = a.client_token;
  o["accessor"] = a.accessor;
  o["policies"] = to_string_array(a.policies);
  o["token_policies"] = to_string_array(a.token_policies);
  if (a.metadata.empty()) {
    o["metadata"] = nullptr;
  } else {
    o["metadata"] = a.metadata;
  }
  o["lease_duration"] = a.lease_duration;
  o["renewable"] = a.renewable;
  o["entity_id"] = a.entity_id;
  o["token_type"] = a.token_type;
  o["orphan"] = a.orphan;
  o["mfa_requirement"] = nullptr;
  o["num_uses"] = a.num_uses;
  return o;
}

boost::json::object wrap_info_json(const WrapInfo& w) {
  boost::json::object o;
  o["token"] = w.token;
  o["accessor"] = w.accessor;
  o["ttl"] = w.ttl;
  o["creation_time"] = w.creation_time;
  o["creation_path"] = w.creation_path;
  if (!w.wrapped_accessor.empty()) o["wrapped_accessor"] = w.wrapped_accessor;
  return o;
}

boost::json::object render_envelope(const Request& req, Response& r) {
  boost::json::object env;
  env["request_id"] = req.request_id;
  env["lease_id"] = r.lease_id;
  env["renewable"] = r.renewable;
  env["lease_duration"] = r.lease_duration;
  if (r.data) {
    env["data"] = std::move(*r.data);
  } else {
    env["data"] = nullptr;
  }
  if (r.wrap_info) {
    env["wrap_info"] = wrap_info_json(*r.wrap_info);
  } else {
    env["wrap_info"] = nullptr;
  }
  if (r.warnings.empty()) {
    env["warnings"] = nullptr;
  } else {
    env["warnings"] = to_string_array(r.warnings);
  }
  if (r.auth) {
    env["auth"] = auth_json(*r.auth);
  } else {
    env["auth"] = nullptr;
  }
  env["mount_type"] = req.mount_type;
  return env;
}

}  // namespace custos::core
