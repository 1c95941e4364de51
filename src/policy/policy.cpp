#include "policy/policy.h"

#include <algorithm>
#include <array>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cctype>
#include <functional>
#include <limits>
#include <utility>

#include "hcl/hcl.h"

namespace custos::policy {

namespace {

struct CapabilityName {
  Capability cap;
  std::string_view name;
};
// Vault's display order.
constexpr std::array<CapabilityName, 8> kCapabilityNames = {{
    {Capability::kCreate, "create"},
    {Capability::kRead, "read"},
    {Capability::kUpdate, "update"},
    {Capability::kPatch, "patch"},
    {Capability::kDelete, "delete"},
    {Capability::kList, "list"},
    {Capability::kSudo, "sudo"},
    {Capability::kDeny, "deny"},
}};

// Input text is untrusted: only short printable names are quoted back in errors.
std::string quote_text(std::string_view s) {
  std::string out = "\"";
  size_t n = 0;
  for (char c : s) {
    if (++n > 64) {
      out += "...";
      break;
    }
    out.push_back(c >= 0x20 && c <= 0x7e ? c : '?');
  }
  out.push_back('"');
  return out;
}

Status rule_error(int line, std::string_view pattern, std::string_view what) {
  std::string msg;
  if (line > 0) msg = "line " + std::to_string(line) + ": ";
  msg += "path " + quote_text(pattern) + ": " + std::string(what);
  return invalid_argument(std::move(msg));
}

// Converts parsed JSON to the HCL value model, so both syntaxes share one validator.
hcl::Value from_json(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      return hcl::Value::null();
    case boost::json::kind::bool_:
      return hcl::Value::boolean(v.get_bool());
    case boost::json::kind::int64:
      return hcl::Value::integer(v.get_int64());
    case boost::json::kind::uint64: {
      uint64_t u = v.get_uint64();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return hcl::Value::integer(static_cast<int64_t>(u));
      }
      return hcl::Value::number(static_cast<double>(u));
    }
    case boost::json::kind::double_:
      return hcl::Value::number(v.get_double());
    case boost::json::kind::string:
      return hcl::Value::string(std::string(v.get_string()));
    case boost::json::kind::array: {
      std::vector<hcl::Value> items;
      for (const auto& e : v.get_array()) items.push_back(from_json(e));
      return hcl::Value::list(std::move(items));
    }
    case boost::json::kind::object: {
      std::vector<hcl::Member> members;
      for (const auto& kv : v.get_object()) {
        members.push_back(hcl::Member{std::string(kv.key()), from_json(kv.value())});
      }
      return hcl::Value::object(std::move(members));
    }
  }
  return hcl::Value::null();
}

// A scalar parameter value as Vault compares it (values are matched as strings).
Result<std::string> scalar_string(const hcl::Value& v) {
  switch (v.kind()) {
    case hcl::Value::Kind::kString:
      return v.as_string();
    case hcl::Value::Kind::kInt:
      return std::to_string(v.as_int());
    case hcl::Value::Kind::kBool:
      return std::string(v.as_bool() ? "true" : "false");
    default:
      return invalid_argument("expected a string, number or bool");
  }
}

Result<std::map<std::string, std::vector<std::string>>> parameter_map(const hcl::Value& v,
                                                                      std::string_view key) {
  if (!v.is_object()) return invalid_argument(std::string(key) + " must be an object");
  std::map<std::string, std::vector<std::string>> out;
  for (const hcl::Member& m : v.as_object()) {
    std::vector<std::string>& values = out[m.key];
    if (m.value.is_list()) {
      for (const hcl::Value& e : m.value.as_list()) {
        auto s = scalar_string(e);
        if (!s.ok()) return invalid_argument(std::string(key) + " " + quote_text(m.key) + ": " + s.status().message());
        values.push_back(std::move(s).value());
      }
    } else if (!m.value.is_null()) {
      return invalid_argument(std::string(key) + " " + quote_text(m.key) + " must be a list");
    }
    if (m.key == "*" && !values.empty()) {
      return invalid_argument(std::string(key) + ": the only value allowed for \"*\" is []");
    }
  }
  return out;
}

Result<Seconds> ttl_value(const hcl::Value& v) {
  if (v.is_int()) {
    if (v.as_int() < 0) return invalid_argument("must not be negative");
    return Seconds(v.as_int());
  }
  if (v.is_string()) return parse_duration(v.as_string());
  return invalid_argument("must be a duration such as \"90s\"");
}

// Vault's legacy `policy = "..."` shorthand.
Result<Capabilities> legacy_policy(std::string_view p) {
  using C = Capability;
  Capabilities c;
  if (p == "deny") {
    c.add(C::kDeny);
  } else if (p == "read") {
    c.add(C::kRead);
    c.add(C::kList);
  } else if (p == "write" || p == "sudo") {
    for (C x : {C::kCreate, C::kRead, C::kUpdate, C::kDelete, C::kList}) c.add(x);
    if (p == "sudo") c.add(C::kSudo);
  } else {
    return invalid_argument("unknown policy " + quote_text(p) +
                            " (expected \"deny\", \"read\", \"write\" or \"sudo\")");
  }
  return c;
}

// Validates one path stanza, given as an object whatever the syntax.
Result<PathRule> make_rule(std::string_view pattern_in, const hcl::Value& body, int line) {
  PathRule rule;
  std::string_view pattern = pattern_in;
  if (!pattern.empty() && pattern.front() == '/') pattern.remove_prefix(1);
  rule.pattern = std::string(pattern);
  rule.line = line;
  // '*' is a glob only as the last character; elsewhere it would silently be a literal, which is
  // never what the author meant.
  size_t star = pattern.find('*');
  if (star != std::string_view::npos && star + 1 != pattern.size()) {
    return rule_error(line, pattern, "'*' is allowed only as the last character");
  }
  if (!body.is_object()) return rule_error(line, pattern, "expected a block of settings");

  Capabilities caps;
  for (const hcl::Member& m : body.as_object()) {
    int at = m.value.line() > 0 ? m.value.line() : line;
    const std::string& key = m.key;
    if (key == "capabilities") {
      if (!m.value.is_list()) return rule_error(at, pattern, "capabilities must be a list");
      for (const hcl::Value& c : m.value.as_list()) {
        // A list written one capability per line reports the offending line itself.
        int cl = c.line() > 0 ? c.line() : at;
        if (!c.is_string()) return rule_error(cl, pattern, "capabilities must be strings");
        auto cap = parse_capability(c.as_string());
        if (!cap) return rule_error(cl, pattern, "unknown capability " + quote_text(c.as_string()));
        caps.add(*cap);
      }
    } else if (key == "policy") {
      if (!m.value.is_string()) return rule_error(at, pattern, "policy must be a string");
      auto legacy = legacy_policy(m.value.as_string());
      if (!legacy.ok()) return rule_error(at, pattern, legacy.status().message());
      caps = caps | *legacy;
    } else if (key == "allowed_parameters" || key == "denied_parameters") {
      auto params = parameter_map(m.value, key);
      if (!params.ok()) return rule_error(at, pattern, params.status().message());
      (key == "allowed_parameters" ? rule.allowed_parameters : rule.denied_parameters) =
          std::move(params).value();
    } else if (key == "required_parameters") {
      if (!m.value.is_list()) return rule_error(at, pattern, "required_parameters must be a list");
      for (const hcl::Value& p : m.value.as_list()) {
        if (!p.is_string()) return rule_error(at, pattern, "required_parameters must be strings");
        rule.required_parameters.push_back(p.as_string());
      }
    } else if (key == "min_wrapping_ttl" || key == "max_wrapping_ttl") {
      auto ttl = ttl_value(m.value);
      if (!ttl.ok()) return rule_error(at, pattern, key + " " + ttl.status().message());
      (key == "min_wrapping_ttl" ? rule.min_wrapping_ttl : rule.max_wrapping_ttl) = *ttl;
    } else if (key == "comment") {
      if (!m.value.is_string()) return rule_error(at, pattern, "comment must be a string");
    } else if (key == "mfa_methods" || key == "control_group" ||
               key == "subscribe_event_types") {
      // Enterprise features: accepting them silently would drop a restriction the author relies on.
      return rule_error(at, pattern, quote_text(key) + " is not supported");
    } else {
      return rule_error(at, pattern, "unknown key " + quote_text(key));
    }
  }
  if (rule.min_wrapping_ttl && rule.max_wrapping_ttl &&
      *rule.min_wrapping_ttl > *rule.max_wrapping_ttl) {
    return rule_error(line, pattern, "min_wrapping_ttl is greater than max_wrapping_ttl");
  }
  // Deny overrides everything else on the stanza, so it is kept alone (as Vault does).
  rule.capabilities = caps.denied() ? Capabilities(static_cast<uint32_t>(Capability::kDeny)) : caps;
  return rule;
}

// `path = { "pattern" = {...} }` (JSON, or HCL written in that style), or a list of such objects.
Status rules_from_path_value(const hcl::Value& v, int line, std::vector<PathRule>& out) {
  if (v.is_list()) {
    for (const hcl::Value& e : v.as_list()) RETURN_IF_ERROR(rules_from_path_value(e, line, out));
    return ok_status();
  }
  if (!v.is_object()) {
    std::string msg = line > 0 ? "line " + std::to_string(line) + ": " : "";
    return invalid_argument(msg + "\"path\" must map path patterns to settings");
  }
  for (const hcl::Member& m : v.as_object()) {
    int at = m.value.line() > 0 ? m.value.line() : line;
    ASSIGN_OR_RETURN(PathRule rule, make_rule(m.key, m.value, at));
    out.push_back(std::move(rule));
  }
  return ok_status();
}

Status top_level_attribute(std::string_view name, const hcl::Value& value, int line,
                           std::vector<PathRule>& out) {
  std::string where = line > 0 ? "line " + std::to_string(line) + ": " : "";
  if (name == "path") return rules_from_path_value(value, line, out);
  if (name == "name") {
    // Vault tolerates a name inside the document; the name given by the caller wins.
    if (!value.is_string()) return invalid_argument(where + "\"name\" must be a string");
    return ok_status();
  }
  return invalid_argument(where + "unknown key " + quote_text(name) + " (expected \"path\")");
}

Result<std::vector<PathRule>> parse_hcl_rules(std::string_view text) {
  ASSIGN_OR_RETURN(hcl::Body body, hcl::parse(text));
  std::vector<PathRule> rules;
  for (const hcl::Attribute& a : body.attributes) {
    RETURN_IF_ERROR(top_level_attribute(a.name, a.value, a.line, rules));
  }
  for (const hcl::Block& b : body.blocks) {
    std::string where = "line " + std::to_string(b.line) + ": ";
    if (b.type != "path") {
      return invalid_argument(where + "unknown block " + quote_text(b.type) + " (expected \"path\")");
    }
    if (b.labels.size() != 1) {
      return invalid_argument(where + "a path block takes exactly one label, the path pattern");
    }
    if (!b.body.blocks.empty()) {
      const hcl::Block& inner = b.body.blocks.front();
      return rule_error(inner.line, b.labels[0], "unexpected block " + quote_text(inner.type));
    }
    std::vector<hcl::Member> members;
    for (const hcl::Attribute& a : b.body.attributes) members.push_back(hcl::Member{a.name, a.value});
    ASSIGN_OR_RETURN(PathRule rule, make_rule(b.labels[0], hcl::Value::object(std::move(members), b.line), b.line));
    rules.push_back(std::move(rule));
  }
  // Blocks and attribute-style rules were collected separately; restore document order.
  std::stable_sort(rules.begin(), rules.end(),
                   [](const PathRule& a, const PathRule& b) { return a.line < b.line; });
  return rules;
}

Result<std::vector<PathRule>> parse_json_rules(std::string_view text) {
  boost::system::error_code ec;
  boost::json::parse_options opts;
  opts.max_depth = hcl::kMaxDepth;
  boost::json::value doc = boost::json::parse(text, ec, {}, opts);
  if (ec) return invalid_argument("invalid JSON policy: " + ec.message());
  if (!doc.is_object()) return invalid_argument("a JSON policy must be an object");
  std::vector<PathRule> rules;
  for (const auto& kv : doc.get_object()) {
    RETURN_IF_ERROR(top_level_attribute(kv.key(), from_json(kv.value()), 0, rules));
  }
  return rules;
}

bool is_templated(std::string_view pattern) {
  return pattern.find("{{") != std::string_view::npos;
}

// A pattern taken apart for matching and for Vault's priority order.
struct Pattern {
  std::string_view stripped;  // without the trailing '*'
  bool is_prefix = false;     // ended in '*'
  bool has_plus = false;      // has a "+" segment
  size_t first_wildcard = std::numeric_limits<size_t>::max();  // none: exact
  size_t plus_segments = 0;

  explicit Pattern(std::string_view p) : stripped(p) {
    if (!stripped.empty() && stripped.back() == '*') {
      is_prefix = true;
      stripped.remove_suffix(1);
      first_wildcard = stripped.size();
    }
    size_t start = 0;
    while (start <= stripped.size()) {
      size_t end = stripped.find('/', start);
      if (end == std::string_view::npos) end = stripped.size();
      if (stripped.substr(start, end - start) == "+") {
        has_plus = true;
        ++plus_segments;
        first_wildcard = std::min(first_wildcard, start);
      }
      start = end + 1;
    }
  }

  bool matches(std::string_view path) const {
    if (!has_plus) return is_prefix ? path.starts_with(stripped) : path == stripped;
    size_t p = 0;  // position in pattern
    size_t q = 0;  // position in path
    while (true) {
      size_t pe = stripped.find('/', p);
      bool last = pe == std::string_view::npos;
      if (last) pe = stripped.size();
      std::string_view pseg = stripped.substr(p, pe - p);
      size_t qe = path.find('/', q);
      if (qe == std::string_view::npos) qe = path.size();
      std::string_view qseg = path.substr(q, qe - q);
      if (last) {
        if (is_prefix) {
          // The last pattern segment is a prefix of the path's segment; anything may follow.
          return pseg == "+" || qseg.starts_with(pseg);
        }
        return (pseg == "+" || pseg == qseg) && qe == path.size();
      }
      if (pseg != "+" && pseg != qseg) return false;
      if (qe == path.size()) return false;  // the pattern has more segments than the path
      p = pe + 1;
      q = qe + 1;
    }
  }

  // Vault's "priority matching" (docs/concepts/policies), for two patterns that both match:
  //   1. the first wildcard (+) or glob (*) occurring earlier means lower priority;
  //   2. ending in * means lower priority than not;
  //   3. more + segments means lower priority;
  //   4. shorter means lower priority;
  //   5. lexicographically smaller means lower priority.
  // An exact pattern has no wildcard, so rule 1 ranks it above every wildcard pattern.
  bool lower_than(const Pattern& o) const {
    if (first_wildcard != o.first_wildcard) return first_wildcard < o.first_wildcard;
    if (is_prefix != o.is_prefix) return is_prefix;
    if (plus_segments != o.plus_segments) return plus_segments > o.plus_segments;
    if (stripped.size() != o.stripped.size()) return stripped.size() < o.stripped.size();
    return stripped < o.stripped;
  }
};

// Vault's value globs: "foo-*" is a prefix, "*-foo" a suffix, "*foo*" a substring; a lone "*"
// (or any one-character value) matches only itself.
bool glob_matches(std::string_view pattern, std::string_view value) {
  if (pattern.size() < 2) return pattern == value;
  const bool prefix = pattern.back() == '*';
  const bool suffix = pattern.front() == '*';
  if (prefix && suffix) {
    return value.find(pattern.substr(1, pattern.size() - 2)) != std::string_view::npos;
  }
  if (prefix) return value.starts_with(pattern.substr(0, pattern.size() - 1));
  if (suffix) return value.ends_with(pattern.substr(1));
  return pattern == value;
}

bool scalar_matches(const boost::json::value& v, const std::vector<std::string>& listed) {
  if (v.is_string()) {
    std::string_view s = v.get_string();
    return std::any_of(listed.begin(), listed.end(),
                       [&](const std::string& l) { return glob_matches(l, s); });
  }
  const std::string text = boost::json::serialize(v);
  return std::find(listed.begin(), listed.end(), text) != listed.end();
}

// The pieces a value is judged by (see parameters_allowed()): a list's elements, a string's
// comma-separated parts.
void for_each_piece(const boost::json::value& v,
                    const std::function<void(const boost::json::value&)>& f) {
  if (v.is_array()) {
    for (const boost::json::value& e : v.get_array()) f(e);
    return;
  }
  if (v.is_string() && v.get_string().find(',') != boost::json::string::npos) {
    std::string_view s = v.get_string();
    size_t start = 0;
    for (;;) {
      size_t comma = s.find(',', start);
      std::string_view part =
          s.substr(start, comma == std::string_view::npos ? s.npos : comma - start);
      while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
      while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
      f(boost::json::value(part));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return;
  }
  f(v);
}

bool value_denied(const boost::json::value& v, const std::vector<std::string>& listed) {
  if (listed.empty()) return true;
  if (scalar_matches(v, listed)) return true;
  bool denied = false;
  for_each_piece(v, [&](const boost::json::value& piece) {
    denied = denied || scalar_matches(piece, listed);
  });
  return denied;
}

bool value_allowed(const boost::json::value& v, const std::vector<std::string>& listed) {
  if (listed.empty()) return true;
  // A string listed exactly is allowed whole, commas and all.
  if (v.is_string() &&
      std::find(listed.begin(), listed.end(), std::string_view(v.get_string())) != listed.end()) {
    return true;
  }
  bool allowed = true;
  for_each_piece(v, [&](const boost::json::value& piece) {
    allowed = allowed && scalar_matches(piece, listed);
  });
  return allowed;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The winning rule's capabilities allow op (and sudo, when the path needs it).
bool grants(const PathRule& rule, Operation op, bool needs_sudo) {
  const Capabilities caps = rule.capabilities;
  if (!caps.grants(required_capability(op))) return false;
  return !needs_sudo || caps.grants(Capability::kSudo);
}

bool has_parameter_constraints(const PathRule& rule) {
  return !rule.allowed_parameters.empty() || !rule.denied_parameters.empty() ||
         !rule.required_parameters.empty();
}

// A constraint map keyed by lower-case parameter names.
const std::vector<std::string>* listed_for(const std::map<std::string, std::vector<std::string>>& m,
                                           std::string_view name) {
  for (const auto& [key, values] : m) {
    if (lower(key) == name) return &values;
  }
  return nullptr;
}

void merge_parameters(std::map<std::string, std::vector<std::string>>& into,
                      const std::map<std::string, std::vector<std::string>>& from) {
  for (const auto& [key, values] : from) {
    auto it = into.find(key);
    if (it == into.end()) {
      into.emplace(key, values);
    } else if (it->second.empty() || values.empty()) {
      it->second.clear();  // an empty list means "any value"; the union of any and some is any
    } else {
      for (const std::string& v : values) {
        if (std::find(it->second.begin(), it->second.end(), v) == it->second.end()) {
          it->second.push_back(v);
        }
      }
    }
  }
}

void merge_ttl(std::optional<Seconds>& into, const std::optional<Seconds>& from) {
  // Vault keeps the lowest of each, to keep wrapping tokens short-lived.
  if (from && (!into || *from < *into)) into = from;
}

}  // namespace

std::string_view capability_name(Capability c) {
  for (const auto& cn : kCapabilityNames) {
    if (cn.cap == c) return cn.name;
  }
  return "unknown";
}

std::optional<Capability> parse_capability(std::string_view name) {
  for (const auto& cn : kCapabilityNames) {
    if (cn.name == name) return cn.cap;
  }
  return std::nullopt;
}

std::vector<std::string> Capabilities::names() const {
  if (denied() || empty()) return {"deny"};
  std::vector<std::string> out;
  for (const auto& cn : kCapabilityNames) {
    if (cn.cap != Capability::kDeny && has(cn.cap)) out.emplace_back(cn.name);
  }
  return out;
}

std::string_view operation_name(Operation op) {
  return capability_name(required_capability(op));
}

Capability required_capability(Operation op) {
  switch (op) {
    case Operation::kCreate:
      return Capability::kCreate;
    case Operation::kRead:
      return Capability::kRead;
    case Operation::kUpdate:
      return Capability::kUpdate;
    case Operation::kPatch:
      return Capability::kPatch;
    case Operation::kDelete:
      return Capability::kDelete;
    case Operation::kList:
      return Capability::kList;
  }
  return Capability::kDeny;
}

std::string normalize_policy_name(std::string_view name) {
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.front()))) {
    name.remove_prefix(1);
  }
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) {
    name.remove_suffix(1);
  }
  std::string out(name);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Result<Policy> parse_policy(std::string_view name, std::string_view text) {
  Policy policy;
  policy.name = normalize_policy_name(name);
  if (policy.name.empty()) return invalid_argument("policy name is empty");
  if (policy.name == kRootPolicyName) {
    return invalid_argument("the root policy is built in and cannot be written");
  }
  policy.raw = std::string(text);
  size_t first = text.find_first_not_of(" \t\r\n");
  bool json = first != std::string_view::npos && text[first] == '{';
  auto rules = json ? parse_json_rules(text) : parse_hcl_rules(text);
  if (!rules.ok()) return rules.status().with_context("policy " + quote_text(policy.name));
  policy.rules = std::move(rules).value();
  return policy;
}

std::string_view default_policy_text() {
  // Vault's `default` policy: what every non-root token may do to itself. Templated identity
  // paths are kept for fidelity with `vault policy read default`; the Acl skips them.
  static constexpr std::string_view kText = R"(# Look up the calling token's own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Renew the calling token
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Revoke the calling token
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Ask which capabilities the calling token has on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Read the calling token's own identity entity
path "identity/entity/id/{{identity.entity.id}}" {
    capabilities = ["read"]
}
path "identity/entity/name/{{identity.entity.name}}" {
    capabilities = ["read"]
}

# The resultant ACL of the calling token, for UIs
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Renew leases by lease_id in the request body (old and new paths)
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Look up a lease whose id is already known
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# The token's private cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Response wrapping: wrap, look up and unwrap
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# General purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}

# Control group requests
path "sys/control-group/request" {
    capabilities = ["update"]
}

# The authorization endpoint of OIDC providers
path "identity/oidc/provider/+/authorize" {
    capabilities = ["read", "update"]
}
)";
  return kText;
}

std::string_view response_wrapping_policy_text() {
  static constexpr std::string_view kText = R"(# Held by response-wrapping tokens only; it cannot be
# written, deleted or given to any other token.
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}
# The deprecated way to read a wrapped response
path "cubbyhole/response" {
    capabilities = ["read"]
}
)";
  return kText;
}

const Policy& response_wrapping_policy() {
  static const Policy kPolicy = [] {
    auto p = parse_policy(kResponseWrappingPolicyName, response_wrapping_policy_text());
    assert(p.ok());
    return p.ok() ? std::move(p).value() : Policy{std::string(kResponseWrappingPolicyName), "", {}};
  }();
  return kPolicy;
}

const Policy& default_policy() {
  static const Policy kPolicy = [] {
    auto p = parse_policy(kDefaultPolicyName, default_policy_text());
    // The text is a constant of this file and covered by tests; failing here is a build defect.
    assert(p.ok());
    return p.ok() ? std::move(p).value() : Policy{std::string(kDefaultPolicyName), "", {}};
  }();
  return kPolicy;
}

bool parameters_allowed(const PathRule& rule, Operation op, const boost::json::object& params) {
  if (op != Operation::kCreate && op != Operation::kUpdate && op != Operation::kPatch &&
      op != Operation::kRead) {
    return true;
  }
  if (!has_parameter_constraints(rule)) return true;  // most rules: nothing to look at
  std::vector<std::string> names;
  names.reserve(params.size());
  for (const auto& kv : params) names.push_back(lower(kv.key()));
  for (const std::string& required : rule.required_parameters) {
    if (std::find(names.begin(), names.end(), lower(required)) == names.end()) return false;
  }
  if (params.empty()) return true;
  if (listed_for(rule.denied_parameters, "*") != nullptr) return false;
  size_t i = 0;
  for (const auto& kv : params) {
    const std::vector<std::string>* denied = listed_for(rule.denied_parameters, names[i++]);
    if (denied != nullptr && value_denied(kv.value(), *denied)) return false;
  }
  if (rule.allowed_parameters.empty()) return true;
  const bool any_name = listed_for(rule.allowed_parameters, "*") != nullptr;
  i = 0;
  for (const auto& kv : params) {
    const std::vector<std::string>* allowed = listed_for(rule.allowed_parameters, names[i++]);
    if (allowed == nullptr) {
      if (!any_name) return false;
    } else if (!value_allowed(kv.value(), *allowed)) {
      return false;
    }
  }
  return true;
}

Acl::Acl(std::span<const Policy> policies) {
  for (const Policy& p : policies) add(p);
}

Acl Acl::root() {
  Acl acl;
  acl.root_ = true;
  return acl;
}

void Acl::add(const Policy& policy) {
  if (policy.name == kRootPolicyName) {
    root_ = true;
    return;
  }
  for (const PathRule& rule : policy.rules) {
    // Templated paths need the token's identity to render; until that exists they match nothing,
    // which errs on the side of denying.
    if (is_templated(rule.pattern)) continue;
    auto it = rules_.find(rule.pattern);
    if (it == rules_.end()) {
      rules_.emplace(rule.pattern, rule);
      continue;
    }
    PathRule& merged = it->second;
    if (merged.capabilities.denied() || rule.capabilities.denied()) {
      merged.capabilities = Capabilities(static_cast<uint32_t>(Capability::kDeny));
      merged.allowed_parameters.clear();
      merged.denied_parameters.clear();
      merged.required_parameters.clear();
      continue;
    }
    merged.capabilities = merged.capabilities | rule.capabilities;
    merge_parameters(merged.allowed_parameters, rule.allowed_parameters);
    merge_parameters(merged.denied_parameters, rule.denied_parameters);
    for (const std::string& r : rule.required_parameters) {
      if (std::find(merged.required_parameters.begin(), merged.required_parameters.end(), r) ==
          merged.required_parameters.end()) {
        merged.required_parameters.push_back(r);
      }
    }
    merge_ttl(merged.min_wrapping_ttl, rule.min_wrapping_ttl);
    merge_ttl(merged.max_wrapping_ttl, rule.max_wrapping_ttl);
  }
}

const PathRule* Acl::best_match(std::string_view path, bool list_op) const {
  // A LIST request path ends in '/', but operators often write the rule without it (Vault accepts
  // both, for exact and for + patterns alike).
  std::string_view trimmed = path;
  bool try_trimmed = list_op && !trimmed.empty() && trimmed.back() == '/';
  if (try_trimmed) trimmed.remove_suffix(1);

  const PathRule* best = nullptr;
  std::optional<Pattern> best_pattern;
  for (const auto& [key, rule] : rules_) {
    Pattern p(key);
    if (!p.matches(path) && !(try_trimmed && p.matches(trimmed))) continue;
    if (!best_pattern || best_pattern->lower_than(p)) {
      best = &rule;
      best_pattern.emplace(p);
    }
  }
  return best;
}

Capabilities Acl::capabilities(std::string_view path) const {
  if (root_) return Capabilities::all();
  const PathRule* rule = best_match(path, false);
  return rule ? rule->capabilities : Capabilities();
}

std::vector<std::string> Acl::capability_names(std::string_view path) const {
  if (root_) return {"root"};
  return capabilities(path).names();
}

namespace {

// Whether `pattern` lies at or below `prefix` ("+" segments matching any segment of it). A
// pattern whose glob covers the prefix from above is not counted here: has_access_under()
// asks capabilities(prefix) for those, so that a more specific deny wins.
bool lies_under(std::string_view pattern, std::string_view prefix) {
  size_t i = 0;
  size_t j = 0;
  while (j < prefix.size()) {
    if (i == pattern.size()) return false;  // an exact pattern that ends above the prefix
    const char c = pattern[i];
    if (c == '*' && i + 1 == pattern.size()) return false;  // a glob above: not "under"
    if (c == '+' && (i == 0 || pattern[i - 1] == '/') &&
        (i + 1 == pattern.size() || pattern[i + 1] == '/')) {
      while (j < prefix.size() && prefix[j] != '/') ++j;  // one whole segment
      ++i;
      continue;
    }
    if (c != prefix[j]) return false;
    ++i;
    ++j;
  }
  return true;  // the prefix is used up: the pattern continues at or below it
}

}  // namespace

bool Acl::has_access_under(std::string_view prefix) const {
  if (root_) return true;
  // Vault's order: the rule that decides the mount path itself (normal priority, so a deny
  // on the mount beats a broad glob above it), then any granting rule inside the mount.
  const Capabilities at = capabilities(prefix);
  if (!at.empty() && !at.denied()) return true;
  for (const auto& [pattern, rule] : rules_) {
    if (rule.capabilities.empty() || rule.capabilities.denied()) continue;
    if (lies_under(pattern, prefix)) return true;
  }
  return false;
}

bool Acl::allowed(std::string_view path, Operation op, bool needs_sudo) const {
  if (root_) return true;
  const PathRule* rule = best_match(path, op == Operation::kList);
  return rule != nullptr && grants(*rule, op, needs_sudo);
}

bool wrapping_allowed(const PathRule& rule, Seconds wrap_ttl) {
  const bool wrapped = wrap_ttl > Seconds(0);
  const bool has_min = rule.min_wrapping_ttl && *rule.min_wrapping_ttl > Seconds(0);
  const bool has_max = rule.max_wrapping_ttl && *rule.max_wrapping_ttl > Seconds(0);
  if (has_max && (!wrapped || wrap_ttl > *rule.max_wrapping_ttl)) return false;
  if (has_min && (!wrapped || wrap_ttl < *rule.min_wrapping_ttl)) return false;
  // Merging keeps the lowest of each, which can leave no TTL that satisfies both.
  return !(has_min && has_max && *rule.max_wrapping_ttl < *rule.min_wrapping_ttl);
}

bool Acl::allowed(std::string_view path, Operation op, bool needs_sudo,
                  const boost::json::object* params, Seconds wrap_ttl) const {
  if (root_) return true;
  const PathRule* rule = best_match(path, op == Operation::kList);
  if (rule == nullptr || !grants(*rule, op, needs_sudo)) return false;
  if (!wrapping_allowed(*rule, wrap_ttl)) return false;
  if (params != nullptr) return parameters_allowed(*rule, op, *params);
  return !has_parameter_constraints(*rule);
}

const PathRule* Acl::find_rule(std::string_view path) const {
  if (root_) return nullptr;
  return best_match(path, false);
}

}  // namespace custos::policy
