// Vault ACL policies: parsing (HCL or JSON) and evaluation.
//
// A Policy is the parsed form of one named policy document. An Acl combines the policies attached
// to a token and answers "what may this token do at this path". Matching follows Vault's documented
// rules (docs/concepts/policies, "Priority matching"); see src/policy/README.md for the details and
// for what is not supported (templated paths, Sentinel, control groups, MFA).
#pragma once

#include <boost/json/fwd.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace custos::policy {

enum class Capability : uint32_t {
  kCreate = 1u << 0,
  kRead = 1u << 1,
  kUpdate = 1u << 2,
  kPatch = 1u << 3,
  kDelete = 1u << 4,
  kList = 1u << 5,
  kSudo = 1u << 6,
  kDeny = 1u << 7,
};

// "create", "read", ... as Vault spells them.
std::string_view capability_name(Capability c);
std::optional<Capability> parse_capability(std::string_view name);

// A set of capabilities. A set containing kDeny grants nothing, whatever else it holds.
class Capabilities {
 public:
  constexpr Capabilities() = default;
  constexpr explicit Capabilities(uint32_t bits) : bits_(bits) {}

  // Every capability except deny (what root effectively holds).
  static constexpr Capabilities all() { return Capabilities((1u << 7) - 1); }

  bool has(Capability c) const { return (bits_ & static_cast<uint32_t>(c)) != 0; }
  void add(Capability c) { bits_ |= static_cast<uint32_t>(c); }
  bool empty() const { return bits_ == 0; }
  bool denied() const { return has(Capability::kDeny); }
  // True when c is held and not overridden by deny.
  bool grants(Capability c) const { return !denied() && has(c); }
  uint32_t bits() const { return bits_; }

  // Vault's order: create, read, update, patch, delete, list, sudo. A denied or empty set is
  // ["deny"], which is what Vault's sys/capabilities endpoints report.
  std::vector<std::string> names() const;

  friend Capabilities operator|(Capabilities a, Capabilities b) {
    return Capabilities(a.bits_ | b.bits_);
  }
  friend bool operator==(Capabilities a, Capabilities b) = default;

 private:
  uint32_t bits_ = 0;
};

// The operation a request performs; each needs the capability of the same name.
enum class Operation { kCreate, kRead, kUpdate, kPatch, kDelete, kList };
std::string_view operation_name(Operation op);
Capability required_capability(Operation op);

// One `path "pattern" { ... }` stanza.
struct PathRule {
  // As written, without a leading "/": "secret/foo", "secret/*", "secret/+/teamb".
  std::string pattern;
  Capabilities capabilities;
  // Parameter constraints (Vault's allowed_parameters / denied_parameters / required_parameters),
  // enforced by Acl::allowed() when it is given the request's parameters.
  std::map<std::string, std::vector<std::string>> allowed_parameters;
  std::map<std::string, std::vector<std::string>> denied_parameters;
  std::vector<std::string> required_parameters;
  std::optional<Seconds> min_wrapping_ttl;
  std::optional<Seconds> max_wrapping_ttl;
  int line = 0;  // where the stanza starts in HCL; 0 for JSON
};

struct Policy {
  std::string name;             // normalized: trimmed, lower case
  std::string raw;              // the text as submitted (Vault returns it from sys/policy)
  std::vector<PathRule> rules;  // in document order
};

inline constexpr std::string_view kRootPolicyName = "root";
inline constexpr std::string_view kDefaultPolicyName = "default";
// Held by response-wrapping tokens (Vault's name): unwrap, and read their own cubbyhole/response.
inline constexpr std::string_view kResponseWrappingPolicyName = "response-wrapping";

// Parses a policy document: HCL, or JSON when the first non-blank character is '{'.
// Errors are InvalidArgument; HCL errors name the line ("line 3: unknown capability \"raed\"").
// The name "root" is rejected (root is built in and cannot be written), as is an empty name.
Result<Policy> parse_policy(std::string_view name, std::string_view text);

// Vault's policy names are case-insensitive and trimmed: " Dev " -> "dev".
std::string normalize_policy_name(std::string_view name);

// The text of the built-in `default` policy, as Vault ships it (token self-management, cubbyhole,
// response wrapping, lease renewal/lookup, tools). Writable by operators, like Vault's.
std::string_view default_policy_text();
// default_policy_text() parsed; it is known to parse.
const Policy& default_policy();
// The built-in `response-wrapping` policy: update on sys/wrapping/unwrap and read on
// cubbyhole/response. Not writable, and only wrapping tokens may hold it.
std::string_view response_wrapping_policy_text();
const Policy& response_wrapping_policy();

// Vault's min_wrapping_ttl / max_wrapping_ttl, as part of the ACL decision (Vault's
// AllowOperation): a rule with either refuses a request that is not response-wrapped
// (wrap_ttl 0), one wrapped for longer than the max, and one wrapped for less than the min.
bool wrapping_allowed(const PathRule& rule, Seconds wrap_ttl);

// Vault's parameter constraints (docs/concepts/policies, "Parameter constraints"), checked for
// create, update, patch and read as Vault does; delete and list pass. In order:
// required_parameters must all be present; a request without parameters then passes;
// denied_parameters refuses a named parameter whose value is listed (an empty list: any value;
// "*": any parameter); allowed_parameters, when set, refuses a parameter not named (unless "*"
// is) or whose value is not listed (an empty list: any value). Parameter names match
// case-insensitively. A listed string ending or starting with '*' is a prefix or suffix glob.
// A list value is checked element by element: one denied element refuses, and every element
// must be allowed. A string with commas (which many Vault endpoints split into a list) is
// also checked piece by piece, so a glob cannot allow "ok-value,anything-else"; a string that
// equals a listed value exactly is allowed whole. Numbers and booleans match their JSON text.
bool parameters_allowed(const PathRule& rule, Operation op, const boost::json::object& params);

// The effective permissions of a set of policies.
class Acl {
 public:
  Acl() = default;  // no policies: denies everything
  explicit Acl(std::span<const Policy> policies);

  // The root policy: every capability on every path. Root is a flag, not a rule set.
  static Acl root();

  // Adds one more policy's rules. A policy named "root" makes the Acl root.
  void add(const Policy& policy);

  bool is_root() const { return root_; }

  // The capabilities of the highest-priority rule matching path (unioned over every policy that
  // has that exact pattern). Empty when nothing matches; {deny} when the rule denies.
  // Root holds Capabilities::all().
  Capabilities capabilities(std::string_view path) const;

  // Vault's names for capabilities(path): ["root"] for root, ["deny"] when nothing is granted.
  std::vector<std::string> capability_names(std::string_view path) const;

  // Whether op is allowed at path; with needs_sudo (root-protected paths) sudo is required too.
  // Deny on the winning rule refuses everything; no matching rule refuses (deny by default).
  // For kList, a path ending in "/" also matches rules written without the trailing slash.
  // Capabilities only: a request also needs the overload below.
  bool allowed(std::string_view path, Operation op, bool needs_sudo = false) const;
  // The decision for a request: allowed() above, then the winning rule's wrapping TTLs
  // (wrapping_allowed(); `wrap_ttl` is the TTL the request asks its response to be wrapped
  // for, 0 when not wrapped) and parameter constraints (parameters_allowed()) against the
  // request's parameters: its JSON body, with the query parameters for a read. `params` null
  // means the caller cannot show them; a rule with any parameter constraint then refuses.
  bool allowed(std::string_view path, Operation op, bool needs_sudo,
               const boost::json::object* params, Seconds wrap_ttl = Seconds(0)) const;

  // Whether any rule grants something (not deny) on some path at or below `prefix` ("secret/"):
  // Vault's "has mount access", which filters sys/internal/ui/mounts. Root: true.
  bool has_access_under(std::string_view prefix) const;

  // The merged rule that decides path (parameters, wrapping TTLs), or nullptr when none matches
  // or the Acl is root. Valid until the next add().
  const PathRule* find_rule(std::string_view path) const;

 private:
  const PathRule* best_match(std::string_view path, bool list_op) const;

  bool root_ = false;
  // Merged rules keyed by pattern as written; templated patterns are skipped when added.
  std::map<std::string, PathRule, std::less<>> rules_;
};

}  // namespace custos::policy
