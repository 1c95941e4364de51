// Token settings shared by every auth method's roles and users (Vault's tokenutil fields:
// token_policies, token_ttl, token_max_ttl, token_explicit_max_ttl, token_num_uses,
// token_period, token_type, token_bound_cidrs), parsed, stored and turned into the Auth a
// login returns.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "core/request.h"

namespace custos::core {

struct TokenFields {
  std::vector<std::string> policies;
  int64_t ttl = 0;
  int64_t max_ttl = 0;
  int64_t explicit_max_ttl = 0;
  int64_t num_uses = 0;
  int64_t period = 0;
  std::string type = "default";
  std::vector<std::string> bound_cidrs;
};

// Validates and normalises a CIDR list field; a method that cannot enforce CIDR binding passes
// none, and then a non-empty token_bound_cidrs is refused rather than silently ignored.
using CidrListParser =
    std::function<Result<std::vector<std::string>>(const boost::json::object&, std::string_view)>;

// Applies the token_* fields present in `d` (and the legacy "policies" and "period").
Status apply_token_fields(const boost::json::object& d, TokenFields& t,
                          const CidrListParser& cidrs, std::string_view method);
void token_fields_to_json(const TokenFields& t, boost::json::object& o);
// Reads what token_fields_to_json stored; `what` names the record in the corruption error.
Status token_fields_from_json(const boost::json::object& o, TokenFields& t, std::string_view what);
// The Auth a login returns; core mints the token from it. core's tokens have no renewal ceiling
// separate from explicit_max_ttl, so token_max_ttl (which in Vault caps renewals of
// non-periodic tokens) is carried as explicit_max_ttl: the same lifetime cap (docs/auth.md).
Auth auth_from(const TokenFields& t);
// Lower-cased, de-duplicated, sorted, empty names dropped.
std::vector<std::string> sanitize_policies(std::vector<std::string> in);

}  // namespace custos::core
