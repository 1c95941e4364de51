// Fuzzes policy parsing (HCL and JSON) and evaluation of whatever parses.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using custos::policy::Acl;
  using custos::policy::Operation;
  std::string_view text(reinterpret_cast<const char*>(data), size);
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
    }
  }
  return 0;
}
