#include "core/auth/token_fields.h"

#include <algorithm>
#include <cctype>
#include <set>

#include <boost/json.hpp>

#include "core/engine.h"

namespace custos::core {
namespace json = boost::json;
namespace {

Status read_duration(const json::object& d, const char* key, int64_t& out) {
  if (!d.contains(key)) return ok_status();
  ASSIGN_OR_RETURN(out, field_duration(d, key, out));
  return ok_status();
}

bool batch_type(const std::string& type) { return type == "batch" || type == "default-batch"; }

}  // namespace

std::vector<std::string> sanitize_policies(std::vector<std::string> in) {
  std::set<std::string> out;
  for (auto& p : in) {
    std::transform(p.begin(), p.end(), p.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (!p.empty()) out.insert(std::move(p));
  }
  return {out.begin(), out.end()};
}

Status apply_token_fields(const json::object& d, TokenFields& t, const CidrListParser& cidrs,
                          std::string_view method) {
  if (d.contains("token_policies")) {
    ASSIGN_OR_RETURN(auto p, field_string_list(d, "token_policies"));
    t.policies = sanitize_policies(std::move(p));
  } else if (d.contains("policies")) {
    ASSIGN_OR_RETURN(auto p, field_string_list(d, "policies"));
    t.policies = sanitize_policies(std::move(p));
  }
  RETURN_IF_ERROR(read_duration(d, "token_ttl", t.ttl));
  RETURN_IF_ERROR(read_duration(d, "token_max_ttl", t.max_ttl));
  RETURN_IF_ERROR(read_duration(d, "token_explicit_max_ttl", t.explicit_max_ttl));
  RETURN_IF_ERROR(read_duration(d, d.contains("token_period") ? "token_period" : "period", t.period));
  if (d.contains("token_num_uses")) {
    ASSIGN_OR_RETURN(t.num_uses, field_int(d, "token_num_uses", t.num_uses));
    if (t.num_uses < 0) return invalid_argument("field \"token_num_uses\" must not be negative");
  }
  if (d.contains("token_type")) {
    ASSIGN_OR_RETURN(t.type, field_string(d, "token_type", "default"));
    if (t.type.empty()) t.type = "default";
  }
  if (const auto* c = d.if_contains("token_bound_cidrs")) {
    if (cidrs) {
      ASSIGN_OR_RETURN(t.bound_cidrs, cidrs(d, "token_bound_cidrs"));
    } else if (!c->is_null() && !(c->is_string() && c->as_string().empty()) &&
               !(c->is_array() && c->as_array().empty())) {
      // Accepting it without enforcing it would hand out tokens usable from anywhere.
      return invalid_argument("field \"token_bound_cidrs\" is not supported by " +
                              std::string(method) + " yet");
    }
  }
  static const std::set<std::string, std::less<>> kTypes = {"service", "batch", "default",
                                                            "default-service", "default-batch"};
  if (!kTypes.contains(t.type)) {
    return invalid_argument(
        "field \"token_type\" must be one of service, batch, default, default-service, "
        "default-batch");
  }
  if (t.max_ttl > 0 && t.ttl > t.max_ttl) {
    return invalid_argument("\"token_ttl\" must not be greater than \"token_max_ttl\"");
  }
  if (batch_type(t.type) && t.period > 0) {
    return invalid_argument("batch tokens cannot be periodic (\"token_period\")");
  }
  if (batch_type(t.type) && t.num_uses > 0) {
    return invalid_argument("batch tokens cannot have a use limit (\"token_num_uses\")");
  }
  return ok_status();
}

void token_fields_to_json(const TokenFields& t, json::object& o) {
  o["token_policies"] = to_string_array(t.policies);
  o["policies"] = to_string_array(t.policies);
  o["token_ttl"] = t.ttl;
  o["token_max_ttl"] = t.max_ttl;
  o["token_explicit_max_ttl"] = t.explicit_max_ttl;
  o["token_num_uses"] = t.num_uses;
  o["token_period"] = t.period;
  o["period"] = t.period;
  o["token_type"] = t.type;
  o["token_bound_cidrs"] = to_string_array(t.bound_cidrs);
  o["token_no_default_policy"] = false;
}

Status token_fields_from_json(const json::object& o, TokenFields& t, std::string_view what) {
  auto strings = [&](std::string_view key) -> Result<std::vector<std::string>> {
    auto r = field_string_list(o, key);
    if (!r.ok()) return data_loss("stored " + std::string(what) + " record is corrupt");
    return r;
  };
  ASSIGN_OR_RETURN(t.policies, strings("token_policies"));
  ASSIGN_OR_RETURN(t.bound_cidrs, strings("token_bound_cidrs"));
  auto num = [&](const char* k) -> int64_t {
    const auto* v = o.if_contains(k);
    return v && v->is_int64() ? v->as_int64() : 0;
  };
  t.ttl = num("token_ttl");
  t.max_ttl = num("token_max_ttl");
  t.explicit_max_ttl = num("token_explicit_max_ttl");
  t.num_uses = num("token_num_uses");
  t.period = num("token_period");
  const auto* ty = o.if_contains("token_type");
  t.type = ty && ty->is_string() ? std::string(ty->as_string()) : "default";
  return ok_status();
}

Auth auth_from(const TokenFields& t) {
  Auth a;
  a.policies = t.policies;
  a.token_policies = t.policies;
  a.lease_duration = t.ttl;
  a.period = t.period;
  a.num_uses = t.num_uses;
  bool batch = batch_type(t.type);
  a.token_type = batch ? "batch" : "service";
  a.renewable = !batch;
  int64_t cap = t.explicit_max_ttl;
  if (t.period == 0 && t.max_ttl > 0 && (cap == 0 || t.max_ttl < cap)) cap = t.max_ttl;
  a.explicit_max_ttl = cap;
  a.bound_cidrs = t.bound_cidrs;
  return a;
}

}  // namespace custos::core
