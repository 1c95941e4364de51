// Token roles (Vault's auth/token/roles/:role_name): named settings a token is created against
// with auth/token/create/:role_name. A role can let a token create tokens with policies it
// does not hold itself (allowed_policies), forbid some (disallowed_policies), and fix the new
// token's orphan status, renewability, type, period, use count and lifetime cap. docs/auth.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "base/status.h"

namespace custos::core {

struct TokenRole {
  std::string name;
  std::vector<std::string> allowed_policies;
  std::vector<std::string> disallowed_policies;
  std::vector<std::string> allowed_policies_glob;
  std::vector<std::string> disallowed_policies_glob;
  std::vector<std::string> allowed_entity_aliases;  // kept and returned; identity is not yet
  bool orphan = false;
  bool renewable = true;
  std::string path_suffix;
  int64_t explicit_max_ttl = 0;  // token_explicit_max_ttl (legacy explicit_max_ttl)
  int64_t period = 0;            // token_period (legacy period)
  int64_t num_uses = 0;          // token_num_uses
  bool no_default_policy = false;  // token_no_default_policy
  std::string type = "default-service";  // service, batch, default-service, default-batch
  std::vector<std::string> bound_cidrs;  // token_bound_cidrs (legacy bound_cidrs)

  // Applies the fields present in a write to auth/token/roles/:name (absent fields keep their
  // value, so a write can update one setting).
  Status apply(const boost::json::object& data);
  // What a read returns (Vault's field names, legacy aliases included).
  boost::json::object to_response() const;
  // Storage form, and back; `from_json` reports a corrupt record.
  boost::json::object to_json() const;
  static Result<TokenRole> from_json(std::string_view name, const boost::json::object& o);

  // Whether `policy` is allowed / disallowed by name or glob ('*' matches any run of characters).
  bool allows_policy(std::string_view policy) const;
  bool disallows_policy(std::string_view policy) const;
  // The token type to create given the request's "type" ("" when not given), or the refusal.
  Result<std::string> token_type(std::string_view requested) const;
};

// Role names: 1..128 characters of letters, digits and "-_.", as a path segment.
Status validate_token_role_name(std::string_view name);

}  // namespace custos::core
