#include "policy/policy.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace custos::policy {
namespace {

using Names = std::vector<std::string>;

Policy must_parse(std::string_view name, std::string_view text) {
  auto r = parse_policy(name, text);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? std::move(r).value() : Policy{};
}

Acl acl_of(std::initializer_list<std::string_view> texts) {
  Acl acl;
  int i = 0;
  for (std::string_view t : texts) acl.add(must_parse("p" + std::to_string(i++), t));
  return acl;
}

void expect_error(std::string_view text, std::string_view fragment) {
  auto r = parse_policy("p", text);
  ASSERT_FALSE(r.ok()) << "parsed: " << text;
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
}

TEST(Capabilities, NamesAndParsing) {
  for (std::string_view n : {"create", "read", "update", "patch", "delete", "list", "sudo", "deny"}) {
    auto c = parse_capability(n);
    ASSERT_TRUE(c.has_value()) << n;
    EXPECT_EQ(capability_name(*c), n);
  }
  EXPECT_FALSE(parse_capability("raed").has_value());
  EXPECT_FALSE(parse_capability("READ").has_value());
  EXPECT_EQ(Capabilities().names(), Names{"deny"});
  EXPECT_EQ(Capabilities::all().names(),
            (Names{"create", "read", "update", "patch", "delete", "list", "sudo"}));
  EXPECT_EQ(operation_name(Operation::kPatch), "patch");
}

TEST(Parse, HclRules) {
  Policy p = must_parse(" Dev-Team ", R"(# comment
path "secret/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}

path "/secret/super-secret" {
  capabilities = ["deny", "read"]
}

path "secret/restricted" {
  capabilities = ["create"]
  allowed_parameters = {
    "foo" = []
    "bar" = ["zip", "zap"]
  }
  denied_parameters = { "baz" = [] }
  required_parameters = ["bar"]
  min_wrapping_ttl = "1s"
  max_wrapping_ttl = 90
  comment = "documented"
}
)");
  EXPECT_EQ(p.name, "dev-team");
  ASSERT_EQ(p.rules.size(), 3u);
  EXPECT_EQ(p.rules[0].pattern, "secret/*");
  EXPECT_EQ(p.rules[0].line, 2);
  EXPECT_EQ(p.rules[0].capabilities.names(),
            (Names{"create", "read", "update", "patch", "delete", "list"}));
  EXPECT_EQ(p.rules[1].pattern, "secret/super-secret");  // leading '/' dropped, as Vault does
  EXPECT_TRUE(p.rules[1].capabilities.denied());
  EXPECT_EQ(p.rules[1].capabilities.names(), Names{"deny"});
  const PathRule& r = p.rules[2];
  EXPECT_EQ(r.allowed_parameters.at("bar"), (Names{"zip", "zap"}));
  EXPECT_TRUE(r.allowed_parameters.at("foo").empty());
  EXPECT_TRUE(r.denied_parameters.at("baz").empty());
  EXPECT_EQ(r.required_parameters, Names{"bar"});
  EXPECT_EQ(r.min_wrapping_ttl, Seconds(1));
  EXPECT_EQ(r.max_wrapping_ttl, Seconds(90));
  EXPECT_NE(p.raw.find("documented"), std::string::npos);
}

TEST(Parse, JsonForm) {
  Policy p = must_parse("j", R"(  {
    "path": {
      "secret/*": {"capabilities": ["read", "list"]},
      "secret/private": {"capabilities": ["deny"]},
      "auth/token/create": {"policy": "sudo"}
    }
  })");
  ASSERT_EQ(p.rules.size(), 3u);
  EXPECT_EQ(p.rules[0].capabilities.names(), (Names{"read", "list"}));
  EXPECT_TRUE(p.rules[1].capabilities.denied());
  EXPECT_TRUE(p.rules[2].capabilities.has(Capability::kSudo));
  EXPECT_EQ(p.rules[0].line, 0);

  Acl acl;
  acl.add(p);
  EXPECT_TRUE(acl.allowed("secret/app", Operation::kRead));
  EXPECT_FALSE(acl.allowed("secret/private", Operation::kRead));

  // The HCL-to-JSON array style also appears in the wild.
  Policy arr = must_parse("a", R"({"path": [{"kv/*": {"capabilities": ["read"]}}]})");
  ASSERT_EQ(arr.rules.size(), 1u);
  EXPECT_EQ(arr.rules[0].pattern, "kv/*");
}

TEST(Parse, JsonRejects) {
  expect_error(R"({"path": {"secret/*": {"capabilities": ["raed"]}}})", "unknown capability \"raed\"");
  expect_error(R"({"path": {"secret/*": {"capabilities": ["read"]})", "invalid JSON policy");
  expect_error(R"({"paths": {}})", "unknown key \"paths\"");
  expect_error(R"({"path": "secret/*"})", "\"path\" must map");
  expect_error(R"({"path": {"secret/*": {"capabilities": "read"}}})", "capabilities must be a list");
  expect_error("[1]", "");  // not HCL (and not an object)
}

TEST(Parse, LegacyPolicyShorthand) {
  Policy p = must_parse("legacy", R"(
path "a" { policy = "deny" }
path "b" { policy = "read" }
path "c" { policy = "write" }
path "d" { policy = "sudo" }
path "e" {
  policy = "read"
  capabilities = ["update"]
}
)");
  EXPECT_EQ(p.rules[0].capabilities.names(), Names{"deny"});
  EXPECT_EQ(p.rules[1].capabilities.names(), (Names{"read", "list"}));
  EXPECT_EQ(p.rules[2].capabilities.names(), (Names{"create", "read", "update", "delete", "list"}));
  EXPECT_EQ(p.rules[3].capabilities.names(),
            (Names{"create", "read", "update", "delete", "list", "sudo"}));
  EXPECT_EQ(p.rules[4].capabilities.names(), (Names{"read", "update", "list"}));
  expect_error("path \"a\" {\n  policy = \"admin\"\n}\n", "line 2: path \"a\": unknown policy \"admin\"");
}

TEST(Parse, RejectsWithLineNumbers) {
  expect_error("path \"secret/*\" {\n  capabilities = [\"read\", \"raed\"]\n}\n",
               "line 2: path \"secret/*\": unknown capability \"raed\"");
  expect_error("path \"secret/*\" {\n  capabilities = [\"read\"\n}\n", "line 3: expected ',' or ']'");
  expect_error("path \"secret/*\" {\n  capabilities = [\n    \"read\",\n    \"lsit\",\n  ]\n}\n",
               "line 4: path \"secret/*\": unknown capability \"lsit\"");
  expect_error("path \"a\" {\n}\npath \"b\" \n  capabilities = []\n}\n", "line 4: expected '=' or '{'");
  expect_error("\n\npath \"a\" {\n  capabilites = [\"read\"]\n}\n",
               "line 4: path \"a\": unknown key \"capabilites\"");
  expect_error("pth \"a\" {}\n", "line 1: unknown block \"pth\"");
  expect_error("path {}\n", "exactly one label");
  expect_error("path \"a\" \"b\" {}\n", "exactly one label");
  expect_error("path \"a\" {\n  inner {}\n}\n", "line 2: path \"a\": unexpected block \"inner\"");
  expect_error("foo = 1\n", "line 1: unknown key \"foo\"");
  expect_error("path \"secret/*/x\" {}\n", "'*' is allowed only as the last character");
  expect_error("path \"a\" { capabilities = [1] }\n", "capabilities must be strings");
  expect_error("path \"a\" { mfa_methods = [\"x\"] }\n", "\"mfa_methods\" is not supported");
  expect_error("path \"a\" {\n min_wrapping_ttl = \"1h\"\n max_wrapping_ttl = \"1m\"\n}\n",
               "min_wrapping_ttl is greater than max_wrapping_ttl");
  expect_error("path \"a\" { min_wrapping_ttl = \"soon\" }\n", "min_wrapping_ttl");
  expect_error("path \"a\" { allowed_parameters = { \"*\" = [\"x\"] } }\n",
               "the only value allowed for \"*\" is []");
  expect_error("path \"a\" { allowed_parameters = [\"x\"] }\n", "must be an object");
}

TEST(Parse, NameRules) {
  EXPECT_FALSE(parse_policy("root", "").ok());
  EXPECT_FALSE(parse_policy(" ROOT ", "").ok());
  EXPECT_FALSE(parse_policy("  ", "").ok());
  Policy empty = must_parse("empty", "");
  EXPECT_TRUE(empty.rules.empty());
  EXPECT_EQ(normalize_policy_name("  MyPolicy\n"), "mypolicy");
  // A name inside the document is tolerated; the caller's name wins.
  EXPECT_EQ(must_parse("outer", "name = \"inner\"\n").name, "outer");
}

TEST(Acl, DenyByDefault) {
  Acl none;
  EXPECT_FALSE(none.allowed("secret/foo", Operation::kRead));
  EXPECT_TRUE(none.capabilities("secret/foo").empty());
  EXPECT_EQ(none.capability_names("secret/foo"), Names{"deny"});
  EXPECT_EQ(none.find_rule("secret/foo"), nullptr);

  Acl acl = acl_of({R"(path "secret/foo" { capabilities = ["read"] })"});
  EXPECT_TRUE(acl.allowed("secret/foo", Operation::kRead));
  EXPECT_FALSE(acl.allowed("secret/foo", Operation::kUpdate));
  EXPECT_FALSE(acl.allowed("secret/food", Operation::kRead));
  EXPECT_FALSE(acl.allowed("secret/foo/bar", Operation::kRead));
  EXPECT_FALSE(acl.allowed("secret", Operation::kRead));
}

TEST(Acl, GlobIsPrefixMatch) {
  Acl acl = acl_of({R"(
path "secret/bar/*" { capabilities = ["read"] }
path "secret/zip-*" { capabilities = ["read"] }
)"});
  EXPECT_TRUE(acl.allowed("secret/bar/zip", Operation::kRead));
  EXPECT_TRUE(acl.allowed("secret/bar/zip/zap", Operation::kRead));
  EXPECT_TRUE(acl.allowed("secret/bar/", Operation::kRead));
  EXPECT_FALSE(acl.allowed("secret/bars/zip", Operation::kRead));
  EXPECT_FALSE(acl.allowed("secret/bar", Operation::kRead));
  EXPECT_TRUE(acl.allowed("secret/zip-zap", Operation::kRead));
  EXPECT_TRUE(acl.allowed("secret/zip-zap/zong", Operation::kRead));
  EXPECT_FALSE(acl.allowed("secret/zip/zap", Operation::kRead));
}

TEST(Acl, PlusMatchesExactlyOneSegment) {
  Acl acl = acl_of({R"(
path "secret/+/teamb" { capabilities = ["read"] }
path "secret/+/+/teamc" { capabilities = ["read"] }
path "kv/+" { capabilities = ["list"] }
path "app/+/config/*" { capabilities = ["update"] }
)"});
  EXPECT_TRUE(acl.allowed("secret/foo/teamb", Operation::kRead));
  EXPECT_FALSE(acl.allowed("secret/teamb", Operation::kRead));
  EXPECT_FALSE(acl.allowed("secret/foo/bar/teamb", Operation::kRead));
  EXPECT_FALSE(acl.allowed("secret/foo/teamb/x", Operation::kRead));
  EXPECT_TRUE(acl.allowed("secret/foo/bar/teamc", Operation::kRead));
  EXPECT_FALSE(acl.allowed("secret/foo/teamc", Operation::kRead));
  EXPECT_TRUE(acl.allowed("kv/a", Operation::kList));
  EXPECT_FALSE(acl.allowed("kv/a/b", Operation::kList));
  EXPECT_FALSE(acl.allowed("kv", Operation::kList));
  EXPECT_TRUE(acl.allowed("app/x/config/db", Operation::kUpdate));
  EXPECT_TRUE(acl.allowed("app/x/config/db/deep", Operation::kUpdate));
  EXPECT_FALSE(acl.allowed("app/x/y/config/db", Operation::kUpdate));
  EXPECT_FALSE(acl.allowed("app/x/config", Operation::kUpdate));
}

TEST(Acl, MostSpecificRuleWins) {
  Acl acl = acl_of({R"(
path "secret/*" { capabilities = ["read"] }
path "secret/foo/*" { capabilities = ["update"] }
path "secret/foo/bar" { capabilities = ["delete"] }
)"});
  EXPECT_EQ(acl.capability_names("secret/x"), Names{"read"});
  // The longer glob wins; its capabilities replace (do not add to) the shorter one's.
  EXPECT_EQ(acl.capability_names("secret/foo/x"), Names{"update"});
  EXPECT_FALSE(acl.allowed("secret/foo/x", Operation::kRead));
  // An exact match wins over every glob.
  EXPECT_EQ(acl.capability_names("secret/foo/bar"), Names{"delete"});
  EXPECT_FALSE(acl.allowed("secret/foo/bar", Operation::kUpdate));
  EXPECT_EQ(acl.find_rule("secret/foo/bar")->pattern, "secret/foo/bar");
}

// Each case is one of the documented priority rules, with both orders checked.
TEST(Acl, PriorityRulesAsDocumented) {
  struct Case {
    const char* low;
    const char* high;
    const char* path;
  };
  const Case cases[] = {
      // 1. the first wildcard occurring earlier is lower priority
      {"secret/+/foo", "secret/bar/+", "secret/bar/foo"},
      {"secret/*", "secret/a+/*", "secret/a+/x"},  // a+ is not a wildcard segment
      {"+/b/c", "a/+/c", "a/b/c"},
      // 2. ending in * is lower priority
      {"secret/+/foo*", "secret/+/foo", "secret/x/foo"},
      {"secret/foo*", "secret/foo", "secret/foo"},
      // 3. more + segments is lower priority (the documented example)
      {"secret/+/+/foo/*", "secret/*", "secret/a/b/foo/c"},
      {"a/+/+/*", "a/+/c/*", "a/b/c/d"},
      // 4. shorter is lower priority
      {"secret/+/ab*", "secret/+/abc*", "secret/x/abcd"},
      {"secret/*", "secret/foo/*", "secret/foo/x"},
      // 5. lexicographically smaller is lower priority
      {"a/+/x*", "a/+/y*", "a/b/y"},  // only y* matches; sanity
      {"a/+/b", "a/+/c", "a/x/c"},
  };
  for (const Case& c : cases) {
    std::string text = std::string("path \"") + c.low + "\" { capabilities = [\"read\"] }\n" +
                       "path \"" + c.high + "\" { capabilities = [\"update\"] }\n";
    Acl acl = acl_of({text});
    const PathRule* r = acl.find_rule(c.path);
    ASSERT_NE(r, nullptr) << c.path;
    EXPECT_EQ(r->pattern, c.high) << c.low << " vs " << c.high << " on " << c.path;
    // Order of appearance must not matter.
    std::string reversed = std::string("path \"") + c.high + "\" { capabilities = [\"update\"] }\n" +
                           "path \"" + c.low + "\" { capabilities = [\"read\"] }\n";
    Acl acl2 = acl_of({reversed});
    EXPECT_EQ(acl2.find_rule(c.path)->pattern, c.high);
  }
}

TEST(Acl, LexicalTieBreak) {
  // Same first wildcard, both globs, no +, same length: the lexically larger wins. Both must match
  // one path, which needs + segments at the same place.
  Acl acl = acl_of({R"(
path "a/+/bc*" { capabilities = ["read"] }
path "a/+/b*" { capabilities = ["update"] }
)"});
  EXPECT_EQ(acl.find_rule("a/x/bcd")->pattern, "a/+/bc*");  // longer wins (rule 4)
  Acl tie = acl_of({R"(
path "x/+/a" { capabilities = ["read"] }
path "+/y/a" { capabilities = ["update"] }
)"});
  EXPECT_EQ(tie.find_rule("x/y/a")->pattern, "x/+/a");  // rule 1
}

TEST(Acl, DenyOverridesOnTheWinningRule) {
  Acl acl = acl_of({
      R"(path "secret/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] })",
      R"(path "secret/super-secret" { capabilities = ["deny"] })",
  });
  EXPECT_TRUE(acl.allowed("secret/other", Operation::kRead));
  EXPECT_FALSE(acl.allowed("secret/super-secret", Operation::kRead));
  EXPECT_FALSE(acl.allowed("secret/super-secret", Operation::kRead, /*needs_sudo=*/true));
  EXPECT_EQ(acl.capability_names("secret/super-secret"), Names{"deny"});

  // Same pattern in two policies: deny in either wins over the other's grants.
  Acl merged = acl_of({
      R"(path "kv/x" { capabilities = ["read", "sudo"] })",
      R"(path "kv/x" { capabilities = ["deny"] })",
  });
  EXPECT_FALSE(merged.allowed("kv/x", Operation::kRead));
  EXPECT_TRUE(merged.capabilities("kv/x").denied());

  // A deny on a less specific rule does not apply where a more specific rule wins.
  Acl narrow = acl_of({
      R"(path "kv/*" { capabilities = ["deny"] })",
      R"(path "kv/open" { capabilities = ["read"] })",
  });
  EXPECT_TRUE(narrow.allowed("kv/open", Operation::kRead));
  EXPECT_FALSE(narrow.allowed("kv/closed", Operation::kRead));
}

TEST(Acl, SamePatternCapabilitiesAreUnioned) {
  Acl acl = acl_of({
      R"(path "kv/app" { capabilities = ["read"] })",
      R"(path "kv/app" { capabilities = ["update"]
  allowed_parameters = { "a" = ["1"] }
  min_wrapping_ttl = "10s" })",
      R"(path "kv/app" { capabilities = ["list"]
  allowed_parameters = { "a" = ["2"], "b" = [] }
  min_wrapping_ttl = "5s" })",
      R"(path "kv/*" { capabilities = ["delete"] })",
  });
  EXPECT_EQ(acl.capability_names("kv/app"), (Names{"read", "update", "list"}));
  const PathRule* r = acl.find_rule("kv/app");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->allowed_parameters.at("a"), (Names{"1", "2"}));
  EXPECT_TRUE(r->allowed_parameters.at("b").empty());
  EXPECT_EQ(r->min_wrapping_ttl, Seconds(5));
  EXPECT_FALSE(acl.allowed("kv/app", Operation::kDelete));  // kv/* loses to the exact rule
}

// Vault's min_wrapping_ttl / max_wrapping_ttl: part of the decision, as in Vault's ACL.
TEST(Acl, WrappingTtlsBoundTheRequestsWrapTtl) {
  Acl acl = acl_of({
      R"(path "kv/min" { capabilities = ["read"]
  min_wrapping_ttl = "30s" })",
      R"(path "kv/max" { capabilities = ["read"]
  max_wrapping_ttl = "1m" })",
      R"(path "kv/plain" { capabilities = ["read"] })",
  });
  const boost::json::object none;
  auto allowed = [&](std::string_view path, int64_t ttl) {
    return acl.allowed(path, Operation::kRead, false, &none, Seconds(ttl));
  };
  EXPECT_FALSE(allowed("kv/min", 0)) << "a minimum makes wrapping mandatory";
  EXPECT_FALSE(allowed("kv/min", 29));
  EXPECT_TRUE(allowed("kv/min", 30));
  EXPECT_TRUE(allowed("kv/min", 3600));
  EXPECT_FALSE(allowed("kv/max", 0)) << "so does a maximum (Vault)";
  EXPECT_TRUE(allowed("kv/max", 60));
  EXPECT_FALSE(allowed("kv/max", 61));
  EXPECT_TRUE(allowed("kv/plain", 0));
  EXPECT_TRUE(allowed("kv/plain", 600));
  EXPECT_TRUE(Acl::root().allowed("kv/min", Operation::kRead, false, &none, Seconds(0)));

  // Merging keeps the lowest of each; a min left above the max refuses every TTL.
  Acl merged = acl_of({
      R"(path "kv/app" { capabilities = ["read"]
  min_wrapping_ttl = "1m" })",
      R"(path "kv/app" { capabilities = ["read"]
  max_wrapping_ttl = "30s" })",
  });
  for (int64_t ttl : {0, 20, 30, 45, 60, 90}) {
    EXPECT_FALSE(merged.allowed("kv/app", Operation::kRead, false, &none, Seconds(ttl))) << ttl;
  }
}

// Vault's parameter constraints (docs/concepts/policies, "Parameter constraints").
class ParameterConstraints : public ::testing::Test {
 protected:
  // Whether a create at "kv/app" with this JSON body passes the policy written for that path.
  bool allows(const std::string& settings, const std::string& body,
              Operation op = Operation::kCreate) {
    Acl acl = acl_of(
        {R"(path "kv/app" { capabilities = ["create", "read", "update", "patch", "delete", "list"]
)" + settings +
         "\n}"});
    boost::json::object params = boost::json::parse(body).as_object();
    return acl.allowed("kv/app", op, false, &params);
  }
};

TEST_F(ParameterConstraints, RequiredParametersMustBePresent) {
  const std::string req = R"(required_parameters = ["bar", "baz"])";
  EXPECT_TRUE(allows(req, R"({"bar": 1, "BAZ": 2, "other": 3})"));  // names: any case
  EXPECT_FALSE(allows(req, R"({"bar": 1})"));
  EXPECT_FALSE(allows(req, R"({})"));
  EXPECT_FALSE(allows(req, R"({})", Operation::kRead)) << "Vault checks reads too";
  EXPECT_TRUE(allows(req, R"({})", Operation::kDelete)) << "but not deletes";
  EXPECT_TRUE(allows(req, R"({})", Operation::kList));
}

TEST_F(ParameterConstraints, AllowedParametersNameAndValues) {
  const std::string any_bar = R"(allowed_parameters = { "bar" = [] })";
  EXPECT_TRUE(allows(any_bar, R"({"bar": "anything"})"));
  EXPECT_TRUE(allows(any_bar, R"({"Bar": {"nested": true}})"));
  EXPECT_FALSE(allows(any_bar, R"({"bar": "x", "other": "y"})")) << "only named parameters";
  EXPECT_TRUE(allows(any_bar, R"({})")) << "a request without parameters passes";

  const std::string zip_zap = R"(allowed_parameters = { "bar" = ["zip", "zap"] })";
  EXPECT_TRUE(allows(zip_zap, R"({"bar": "zap"})"));
  EXPECT_FALSE(allows(zip_zap, R"({"bar": "zoo"})"));
  EXPECT_TRUE(allows(zip_zap, R"({"bar": ["zip", "zap"]})")) << "every element listed";
  EXPECT_FALSE(allows(zip_zap, R"({"bar": ["zip", "zoo"]})"));
  EXPECT_FALSE(allows(zip_zap, R"({"bar": "zip,zoo"})")) << "commas split a string";
  EXPECT_TRUE(allows(zip_zap, R"({"bar": "zip, zap"})"));

  const std::string star = R"(allowed_parameters = { "bar" = ["zip"], "*" = [] })";
  EXPECT_TRUE(allows(star, R"({"bar": "zip", "other": "anything"})"));
  EXPECT_FALSE(allows(star, R"({"bar": "zap", "other": "anything"})")) << "bar stays restricted";

  const std::string numbers = R"(allowed_parameters = { "ttl" = ["60", "true"] })";
  EXPECT_TRUE(allows(numbers, R"({"ttl": 60})"));
  EXPECT_TRUE(allows(numbers, R"({"ttl": true})"));
  EXPECT_FALSE(allows(numbers, R"({"ttl": 61})"));
}

TEST_F(ParameterConstraints, ValueGlobsAreAPrefixOrSuffix) {
  const std::string prefix = R"(allowed_parameters = { "bar" = ["baz/*"] })";
  EXPECT_TRUE(allows(prefix, R"({"bar": "baz/quux"})"));
  EXPECT_FALSE(allows(prefix, R"({"bar": "qux/baz/"})"));
  // Vault's documented surprise: the glob would let "baz/quux,wibble" through, and an endpoint
  // that splits on commas would then get "wibble". Every piece must match here.
  EXPECT_FALSE(allows(prefix, R"({"bar": "baz/quux,wibble"})"));
  EXPECT_TRUE(allows(prefix, R"({"bar": "baz/a,baz/b"})"));
  EXPECT_TRUE(allows(R"(allowed_parameters = { "bar" = ["*-prod"] })", R"({"bar": "db-prod"})"));
  EXPECT_TRUE(allows(R"(allowed_parameters = { "bar" = ["*mid*"] })", R"({"bar": "a-mid-b"})"));
  EXPECT_FALSE(allows(R"(allowed_parameters = { "bar" = ["*mid*"] })", R"({"bar": "a-b"})"));
  // A value listed exactly is allowed whole, commas and all.
  EXPECT_TRUE(allows(R"(allowed_parameters = { "bar" = ["a,b"] })", R"({"bar": "a,b"})"));
}

TEST_F(ParameterConstraints, DeniedParametersWinOverAllowed) {
  const std::string any_bar = R"(denied_parameters = { "bar" = [] })";
  EXPECT_FALSE(allows(any_bar, R"({"bar": "x"})"));
  EXPECT_FALSE(allows(any_bar, R"({"BAR": "x"})"));
  EXPECT_TRUE(allows(any_bar, R"({"other": "x"})")) << "other parameters stay allowed";

  const std::string zip = R"(denied_parameters = { "bar" = ["zip", "adm*"] })";
  EXPECT_FALSE(allows(zip, R"({"bar": "zip"})"));
  EXPECT_FALSE(allows(zip, R"({"bar": "admin"})"));
  EXPECT_FALSE(allows(zip, R"({"bar": ["ok", "zip"]})")) << "one denied element refuses";
  EXPECT_FALSE(allows(zip, R"({"bar": "ok,admin"})")) << "so does one denied comma piece";
  EXPECT_TRUE(allows(zip, R"({"bar": "ok"})"));

  EXPECT_FALSE(allows(R"(denied_parameters = { "*" = [] })", R"({"any": 1})"));
  EXPECT_TRUE(allows(R"(denied_parameters = { "*" = [] })", R"({})"));

  const std::string both = R"(allowed_parameters = { "bar" = [] }
  denied_parameters = { "bar" = ["zip"] })";
  EXPECT_TRUE(allows(both, R"({"bar": "zap"})"));
  EXPECT_FALSE(allows(both, R"({"bar": "zip"})"));
}

TEST_F(ParameterConstraints, MergedAcrossPoliciesAndRootPasses) {
  Acl acl = acl_of({R"(path "kv/app" { capabilities = ["create"]
  allowed_parameters = { "bar" = ["zip"] } })",
                    R"(path "kv/app" { capabilities = ["update"]
  allowed_parameters = { "bar" = ["zap"] } })"});
  boost::json::object zap{{"bar", "zap"}}, zoo{{"bar", "zoo"}};
  EXPECT_TRUE(acl.allowed("kv/app", Operation::kCreate, false, &zap));
  EXPECT_FALSE(acl.allowed("kv/app", Operation::kCreate, false, &zoo));
  // A caller that cannot show the parameters is refused where a constraint exists.
  EXPECT_FALSE(acl.allowed("kv/app", Operation::kCreate, false, nullptr));
  Acl plain = acl_of({R"(path "kv/app" { capabilities = ["create"] })"});
  EXPECT_TRUE(plain.allowed("kv/app", Operation::kCreate, false, nullptr));
  EXPECT_TRUE(Acl::root().allowed("kv/app", Operation::kCreate, false, &zoo));
}

TEST(Acl, SudoRequirement) {
  Acl acl = acl_of({R"(
path "sys/audit/*" { capabilities = ["create", "update", "sudo"] }
path "sys/mounts/*" { capabilities = ["create", "update"] }
)"});
  EXPECT_TRUE(acl.allowed("sys/audit/file", Operation::kUpdate, true));
  EXPECT_FALSE(acl.allowed("sys/mounts/kv", Operation::kUpdate, true));
  EXPECT_TRUE(acl.allowed("sys/mounts/kv", Operation::kUpdate, false));
  // sudo alone does not grant the operation.
  Acl only_sudo = acl_of({R"(path "sys/raw/*" { capabilities = ["sudo"] })"});
  EXPECT_FALSE(only_sudo.allowed("sys/raw/x", Operation::kRead, true));
}

TEST(Acl, ListMatchesWithOrWithoutTrailingSlash) {
  Acl acl = acl_of({R"(
path "secret/metadata" { capabilities = ["list"] }
path "+/sys/policies/acl" { capabilities = ["list"] }
)"});
  EXPECT_TRUE(acl.allowed("secret/metadata/", Operation::kList));
  EXPECT_TRUE(acl.allowed("secret/metadata", Operation::kList));
  EXPECT_TRUE(acl.allowed("ns/sys/policies/acl/", Operation::kList));
  // Only LIST gets that leniency.
  Acl read = acl_of({R"(path "secret/metadata" { capabilities = ["read"] })"});
  EXPECT_FALSE(read.allowed("secret/metadata/", Operation::kRead));
}

TEST(Acl, RootIsAFlag) {
  Acl root = Acl::root();
  EXPECT_TRUE(root.is_root());
  EXPECT_TRUE(root.allowed("anything/at/all", Operation::kDelete, true));
  EXPECT_EQ(root.capability_names("x"), Names{"root"});
  EXPECT_EQ(root.find_rule("x"), nullptr);
  Acl via_add;
  via_add.add(Policy{"root", "", {}});
  EXPECT_TRUE(via_add.is_root());
}

TEST(DefaultPolicy, ParsesAndGrantsWhatVaultGrants) {
  const Policy& d = default_policy();
  EXPECT_EQ(d.name, "default");
  EXPECT_GE(d.rules.size(), 15u);
  Acl acl;
  acl.add(d);
  EXPECT_TRUE(acl.allowed("auth/token/lookup-self", Operation::kRead));
  EXPECT_TRUE(acl.allowed("auth/token/renew-self", Operation::kUpdate));
  EXPECT_TRUE(acl.allowed("auth/token/revoke-self", Operation::kUpdate));
  EXPECT_TRUE(acl.allowed("sys/capabilities-self", Operation::kUpdate));
  EXPECT_TRUE(acl.allowed("sys/internal/ui/resultant-acl", Operation::kRead));
  EXPECT_TRUE(acl.allowed("sys/leases/renew", Operation::kUpdate));
  EXPECT_TRUE(acl.allowed("sys/wrapping/unwrap", Operation::kUpdate));
  EXPECT_TRUE(acl.allowed("cubbyhole/my/secret", Operation::kCreate));
  EXPECT_TRUE(acl.allowed("cubbyhole/", Operation::kList));
  EXPECT_TRUE(acl.allowed("identity/oidc/provider/p1/authorize", Operation::kRead));
  // Reject twins: nothing beyond that.
  EXPECT_FALSE(acl.allowed("auth/token/lookup-self", Operation::kDelete));
  EXPECT_FALSE(acl.allowed("auth/token/create", Operation::kUpdate));
  EXPECT_FALSE(acl.allowed("secret/data/x", Operation::kRead));
  EXPECT_FALSE(acl.allowed("sys/policies/acl/default", Operation::kUpdate));
  EXPECT_FALSE(acl.allowed("cubbyhole/x", Operation::kRead, /*needs_sudo=*/true));
  // Templated identity paths are skipped rather than matched literally.
  EXPECT_FALSE(acl.allowed("identity/entity/id/{{identity.entity.id}}", Operation::kRead));
}

TEST(Acl, PoliciesFromSpan) {
  std::vector<Policy> ps = {must_parse("a", R"(path "a" { capabilities = ["read"] })"),
                            must_parse("b", R"(path "b" { capabilities = ["read"] })")};
  Acl acl(ps);
  EXPECT_TRUE(acl.allowed("a", Operation::kRead));
  EXPECT_TRUE(acl.allowed("b", Operation::kRead));
  EXPECT_FALSE(acl.allowed("c", Operation::kRead));
}

TEST(Parse, SeedCorpusValidFilesParse) {
  const std::filesystem::path dir = std::filesystem::path(CUSTOS_SOURCE_DIR) / "fuzz/corpus/policy";
  int good = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bool bad = e.path().filename().string().starts_with("bad_");
    auto p = parse_policy(e.path().stem().string(), text);
    EXPECT_EQ(p.ok(), !bad) << e.path() << ": " << p.status().to_string();
    if (!bad) ++good;
  }
  EXPECT_GE(good, 5);
}

}  // namespace
}  // namespace custos::policy

namespace custos::policy {
namespace {

// Vault's "has mount access" (sys/internal/ui/mounts): some rule grants something at or below
// the mount, or a glob covers it; deny rules and rules elsewhere do not count.
TEST(AclAccessUnder, RulesAtOrBelowAMountAndGlobsAboveIt) {
  auto p = parse_policy("p", R"(
path "secret/data/app/*" { capabilities = ["read"] }
path "kv1/+/team" { capabilities = ["list"] }
path "sys/*" { capabilities = ["read"] }
path "denied/*" { capabilities = ["deny"] }
path "exact" { capabilities = ["read"] }
)");
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  Acl acl(std::span<const Policy>(&*p, 1));
  EXPECT_TRUE(acl.has_access_under("secret/"));
  EXPECT_TRUE(acl.has_access_under("kv1/"));           // "+" matches a segment below
  EXPECT_TRUE(acl.has_access_under("sys/internal/"));  // the glob covers it
  EXPECT_FALSE(acl.has_access_under("transit/"));
  EXPECT_FALSE(acl.has_access_under("denied/"));  // deny grants nothing
  EXPECT_FALSE(acl.has_access_under("exact/"));   // "exact" is not below "exact/"
  EXPECT_FALSE(acl.has_access_under("secret2/"));
  EXPECT_TRUE(Acl::root().has_access_under("anything/"));
  // A broad glob grants every mount but one that a more specific rule denies.
  auto broad = parse_policy("b", R"(
path "*" { capabilities = ["read"] }
path "transit/*" { capabilities = ["deny"] }
)");
  ASSERT_TRUE(broad.ok());
  Acl b(std::span<const Policy>(&*broad, 1));
  EXPECT_TRUE(b.has_access_under("secret/"));
  EXPECT_FALSE(b.has_access_under("transit/"));
  // "+" followed by the glob covers every mount below its level.
  auto plus = parse_policy("q", R"(path "kv/+*" { capabilities = ["read"] })");
  ASSERT_TRUE(plus.ok());
  Acl q(std::span<const Policy>(&*plus, 1));
  EXPECT_TRUE(q.has_access_under("kv/team/"));
  EXPECT_FALSE(Acl().has_access_under("secret/"));
}

}  // namespace
}  // namespace custos::policy
