#include "core/auth/token_role.h"

#include <algorithm>
#include <cctype>

#include "core/auth/cidr.h"
#include "core/auth/token_fields.h"
#include "core/engine.h"

namespace custos::core {
namespace {

Result<std::vector<std::string>> string_list(const boost::json::object& o, std::string_view key,
                                             std::string_view what) {
  const auto* v = o.if_contains(key);
  std::vector<std::string> out;
  if (v == nullptr) return out;
  if (!v->is_array()) return data_loss(std::string(what) + ": " + std::string(key) + " is not a list");
  for (const auto& e : v->as_array()) {
    if (!e.is_string()) return data_loss(std::string(what) + ": " + std::string(key) + " holds a non-string");
    out.emplace_back(e.as_string());
  }
  return out;
}

}  // namespace

Status validate_token_role_name(std::string_view name) {
  if (name.empty() || name.size() > 128) {
    return invalid_argument("role name must be 1 to 128 characters");
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return invalid_argument("role name may hold only letters, digits, '-', '_' and '.'");
    }
  }
  return ok_status();
}

Status TokenRole::apply(const boost::json::object& d) {
  auto list = [&](std::string_view key, std::vector<std::string>& into, bool policies) -> Status {
    if (!d.contains(key)) return ok_status();
    ASSIGN_OR_RETURN(std::vector<std::string> v, field_string_list(d, key));
    into = policies ? sanitize_policies(std::move(v)) : std::move(v);
    return ok_status();
  };
  RETURN_IF_ERROR(list("allowed_policies", allowed_policies, true));
  RETURN_IF_ERROR(list("disallowed_policies", disallowed_policies, true));
  RETURN_IF_ERROR(list("allowed_policies_glob", allowed_policies_glob, true));
  RETURN_IF_ERROR(list("disallowed_policies_glob", disallowed_policies_glob, true));
  RETURN_IF_ERROR(list("allowed_entity_aliases", allowed_entity_aliases, false));
  ASSIGN_OR_RETURN(orphan, field_bool(d, "orphan", orphan));
  ASSIGN_OR_RETURN(renewable, field_bool(d, "renewable", renewable));
  ASSIGN_OR_RETURN(path_suffix, field_string(d, "path_suffix", path_suffix));
  if (path_suffix.find("..") != std::string::npos) {
    return invalid_argument("path_suffix may not contain '..'");
  }
  // The token_ names win over their legacy aliases when both are given.
  for (std::string_view key : {"explicit_max_ttl", "token_explicit_max_ttl"}) {
    ASSIGN_OR_RETURN(explicit_max_ttl, field_duration(d, key, explicit_max_ttl));
  }
  for (std::string_view key : {"period", "token_period"}) {
    ASSIGN_OR_RETURN(period, field_duration(d, key, period));
  }
  ASSIGN_OR_RETURN(num_uses, field_int(d, "token_num_uses", num_uses));
  if (num_uses < 0) return invalid_argument("token_num_uses cannot be negative");
  ASSIGN_OR_RETURN(no_default_policy,
                   field_bool(d, "token_no_default_policy", no_default_policy));
  ASSIGN_OR_RETURN(type, field_string(d, "token_type", type));
  if (type == "default") type = "default-service";
  if (type != "service" && type != "batch" && type != "default-service" &&
      type != "default-batch") {
    return invalid_argument("invalid token_type \"" + type +
                            "\" (expected service, batch, default-service or default-batch)");
  }
  if (type == "batch" && (period > 0 || renewable)) {
    // Vault's rule: batch tokens are never renewable and have no period.
    if (period > 0) return invalid_argument("batch tokens cannot have a period");
    if (d.contains("renewable") && renewable) {
      return invalid_argument("batch tokens cannot be renewable");
    }
    renewable = false;
  }
  for (std::string_view key : {"bound_cidrs", "token_bound_cidrs"}) {
    if (d.contains(key)) {
      ASSIGN_OR_RETURN(bound_cidrs, cidr_list_field(d, key));
    }
  }
  return ok_status();
}

boost::json::object TokenRole::to_response() const {
  boost::json::object o;
  o["name"] = name;
  o["allowed_policies"] = to_string_array(allowed_policies);
  o["disallowed_policies"] = to_string_array(disallowed_policies);
  o["allowed_policies_glob"] = to_string_array(allowed_policies_glob);
  o["disallowed_policies_glob"] = to_string_array(disallowed_policies_glob);
  o["allowed_entity_aliases"] = to_string_array(allowed_entity_aliases);
  o["orphan"] = orphan;
  o["renewable"] = renewable;
  o["path_suffix"] = path_suffix;
  o["explicit_max_ttl"] = explicit_max_ttl;
  o["token_explicit_max_ttl"] = explicit_max_ttl;
  o["period"] = period;
  o["token_period"] = period;
  o["token_num_uses"] = num_uses;
  o["token_no_default_policy"] = no_default_policy;
  o["token_type"] = type;
  o["token_bound_cidrs"] = to_string_array(bound_cidrs);
  o["bound_cidrs"] = to_string_array(bound_cidrs);
  return o;
}

boost::json::object TokenRole::to_json() const {
  boost::json::object o = to_response();
  o.erase("token_explicit_max_ttl");
  o.erase("token_period");
  o.erase("bound_cidrs");
  return o;
}

Result<TokenRole> TokenRole::from_json(std::string_view name, const boost::json::object& o) {
  const std::string what = "token role " + std::string(name);
  TokenRole r;
  r.name = std::string(name);
  ASSIGN_OR_RETURN(r.allowed_policies, string_list(o, "allowed_policies", what));
  ASSIGN_OR_RETURN(r.disallowed_policies, string_list(o, "disallowed_policies", what));
  ASSIGN_OR_RETURN(r.allowed_policies_glob, string_list(o, "allowed_policies_glob", what));
  ASSIGN_OR_RETURN(r.disallowed_policies_glob, string_list(o, "disallowed_policies_glob", what));
  ASSIGN_OR_RETURN(r.allowed_entity_aliases, string_list(o, "allowed_entity_aliases", what));
  ASSIGN_OR_RETURN(r.bound_cidrs, string_list(o, "token_bound_cidrs", what));
  auto fail = [&](const Status&) { return data_loss(what + " is corrupt"); };
  auto b = [&](std::string_view k, bool dflt) { return field_bool(o, k, dflt); };
  auto i = [&](std::string_view k) { return field_int(o, k, 0); };
  auto s = [&](std::string_view k, std::string_view dflt) { return field_string(o, k, dflt); };
  Result<bool> orphan = b("orphan", false), renewable = b("renewable", true),
               no_default = b("token_no_default_policy", false);
  Result<int64_t> emt = i("explicit_max_ttl"), period = i("period"), uses = i("token_num_uses");
  Result<std::string> suffix = s("path_suffix", ""), type = s("token_type", "default-service");
  for (const Status& st : {orphan.status(), renewable.status(), no_default.status(), emt.status(),
                           period.status(), uses.status(), suffix.status(), type.status()}) {
    if (!st.ok()) return fail(st);
  }
  r.orphan = *orphan;
  r.renewable = *renewable;
  r.no_default_policy = *no_default;
  r.explicit_max_ttl = *emt;
  r.period = *period;
  r.num_uses = *uses;
  r.path_suffix = *suffix;
  r.type = *type;
  return r;
}

bool TokenRole::allows_policy(std::string_view policy) const {
  if (std::find(allowed_policies.begin(), allowed_policies.end(), policy) != allowed_policies.end()) {
    return true;
  }
  return std::any_of(allowed_policies_glob.begin(), allowed_policies_glob.end(),
                     [&](const std::string& g) { return glob_match(g, policy); });
}

bool TokenRole::disallows_policy(std::string_view policy) const {
  if (std::find(disallowed_policies.begin(), disallowed_policies.end(), policy) !=
      disallowed_policies.end()) {
    return true;
  }
  return std::any_of(disallowed_policies_glob.begin(), disallowed_policies_glob.end(),
                     [&](const std::string& g) { return glob_match(g, policy); });
}

Result<std::string> TokenRole::token_type(std::string_view requested) const {
  if (requested == "default") requested = "";
  if (type == "service" || type == "batch") {
    if (!requested.empty() && requested != type) {
      return invalid_argument("role \"" + name + "\" creates " + type + " tokens only; \"" +
                              std::string(requested) + "\" was requested");
    }
    return type;
  }
  if (!requested.empty()) return std::string(requested);
  return type == "default-batch" ? std::string("batch") : std::string("service");
}

}  // namespace custos::core
