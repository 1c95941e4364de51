// Fuzzes policy parsing (HCL and JSON) and evaluation of whatever parses.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using custos::policy::Acl;
  using custos::policy::Operation;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // Request parameters of every JSON kind, for the parameter constraints of whatever parses.
  static const boost::json::object kParams =
      boost::json::parse(
          R"({"bar": "zip", "Baz": "a,b*", "n": 60, "t": true, "z": null, "l": ["x", 1, ["y"]],)"
          R"( "o": {"k": "v"}, "*": "", "": ","})")
          .as_object();
  static const boost::json::object kNone;
  auto policy = custos::policy::parse_policy("fuzz", text);
  if (!policy.ok()) return 0;
  Acl acl;
  acl.add(*policy);
  acl.add(custos::policy::default_policy());
  // Probe with the policy's own patterns (and neighbours) so matching code sees related paths.
  for (const auto& rule : policy->rules) {
    const std::string& p = rule.pattern;
    for (const std::string& path : {p, p + "/", p + "x/y", p.substr(0, p.size() / 2)}) {
      (void)acl.capabilities(path);
      (void)acl.allowed(path, Operation::kList);
      (void)acl.allowed(path, Operation::kUpdate, true);
      (void)acl.find_rule(path);
      for (Operation op : {Operation::kCreate, Operation::kRead, Operation::kDelete}) {
        (void)acl.allowed(path, op, false, &kParams);
        (void)acl.allowed(path, op, false, &kParams, custos::Seconds(30));
        (void)acl.allowed(path, op, false, &kNone);
        (void)acl.allowed(path, op, false, nullptr);
      }
    }
  }
  return 0;
}
