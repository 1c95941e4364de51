#include "hcl/hcl.h"

#include <gtest/gtest.h>

#include <string>

#include <boost/json/serialize.hpp>

namespace custos::hcl {
namespace {

Body must_parse(std::string_view text) {
  auto r = parse(text);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? std::move(r).value() : Body{};
}

void expect_error(std::string_view text, std::string_view fragment) {
  auto r = parse(text);
  ASSERT_FALSE(r.ok()) << "parsed: " << text;
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
}

TEST(Hcl, AttributesOfEveryKind) {
  Body b = must_parse(R"(
a = "x"
b = 42
c = -7
d = 1.5
e = 2e3
f = true
g = false
h = null
"quoted key" = "v"
)");
  ASSERT_EQ(b.attributes.size(), 9u);
  EXPECT_EQ(b.attributes[0].name, "a");
  EXPECT_EQ(b.attributes[0].value.as_string(), "x");
  EXPECT_EQ(b.attributes[0].line, 2);
  EXPECT_TRUE(b.attributes[1].value.is_int());
  EXPECT_EQ(b.attributes[1].value.as_int(), 42);
  EXPECT_EQ(b.attributes[2].value.as_int(), -7);
  EXPECT_TRUE(b.attributes[3].value.is_double());
  EXPECT_DOUBLE_EQ(b.attributes[3].value.as_double(), 1.5);
  EXPECT_DOUBLE_EQ(b.attributes[4].value.as_double(), 2000.0);
  EXPECT_TRUE(b.attributes[5].value.as_bool());
  EXPECT_FALSE(b.attributes[6].value.as_bool());
  EXPECT_TRUE(b.attributes[6].value.is_bool());
  EXPECT_TRUE(b.attributes[7].value.is_null());
  EXPECT_EQ(b.attributes[8].name, "quoted key");
  EXPECT_EQ(b.find_attribute("f")->line, 7);
  EXPECT_EQ(b.find_attribute("zz"), nullptr);
}

TEST(Hcl, BlocksLabeledUnlabeledAndNested) {
  Body b = must_parse(R"(storage "sqlite" {
  path = "/var/lib/custos"
}
listener "tcp" "extra" {
  inner {
    deep "x" { k = 1 }
  }
}
telemetry {}
)");
  ASSERT_EQ(b.blocks.size(), 3u);
  EXPECT_EQ(b.blocks[0].type, "storage");
  ASSERT_EQ(b.blocks[0].labels.size(), 1u);
  EXPECT_EQ(b.blocks[0].labels[0], "sqlite");
  EXPECT_EQ(b.blocks[0].body.attributes[0].value.as_string(), "/var/lib/custos");
  EXPECT_EQ(b.blocks[0].body.attributes[0].line, 2);
  EXPECT_EQ(b.blocks[1].labels.size(), 2u);
  EXPECT_EQ(b.blocks[1].line, 4);
  const Block& deep = b.blocks[1].body.blocks[0].body.blocks[0];
  EXPECT_EQ(deep.type, "deep");
  EXPECT_EQ(deep.line, 6);
  EXPECT_EQ(deep.body.attributes[0].value.as_int(), 1);
  EXPECT_TRUE(b.blocks[2].labels.empty());
  EXPECT_TRUE(b.blocks[2].body.attributes.empty());
}

TEST(Hcl, ListsWithTrailingCommasAndNewlines) {
  Body b = must_parse(R"(l = [
  "a",
  "b", # comment
  [1, 2,],
]
e = []
)");
  const auto& l = b.attributes[0].value.as_list();
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l[1].as_string(), "b");
  EXPECT_EQ(l[2].as_list().size(), 2u);
  EXPECT_TRUE(b.attributes[1].value.as_list().empty());
}

TEST(Hcl, ObjectsBothStyles) {
  Body b = must_parse(R"(o = { k = "v", n = 1 }
j = {
  "bar": ["zip", "zap"],
  "*" = []
}
)");
  const Value& o = b.attributes[0].value;
  ASSERT_TRUE(o.is_object());
  EXPECT_EQ(o.find("k")->as_string(), "v");
  EXPECT_EQ(o.find("n")->as_int(), 1);
  const Value& j = b.attributes[1].value;
  EXPECT_EQ(j.find("bar")->as_list().size(), 2u);
  EXPECT_TRUE(j.find("*")->as_list().empty());
  EXPECT_EQ(j.find("nope"), nullptr);
}

TEST(Hcl, StringEscapes) {
  Body b = must_parse(R"(s = "q\" b\\ n\n t\t u\u00e9 p\ud83d\ude00 U\U0001F600 ${keep}")");
  EXPECT_EQ(b.attributes[0].value.as_string(),
            "q\" b\\ n\n t\t u\xC3\xA9 p\xF0\x9F\x98\x80 U\xF0\x9F\x98\x80 ${keep}");
}

TEST(Hcl, Heredocs) {
  Body b = must_parse("a = <<EOF\nline1\n  line2\nEOF\nb = <<-EOT\n    x\n      y\n\n    z\n    EOT\n"
                      "c = 1\n");
  EXPECT_EQ(b.attributes[0].value.as_string(), "line1\n  line2\n");
  EXPECT_EQ(b.attributes[1].value.as_string(), "x\n  y\n\nz\n");
  EXPECT_EQ(b.attributes[2].value.as_int(), 1);
  EXPECT_EQ(b.attributes[2].line, 11);
}

TEST(Hcl, CommentsOfEveryKind) {
  Body b = must_parse(R"(# hash
// slashes
/* block
   comment */ a = 1 /* inline */ # trailing
b /* between */ = 2
)");
  ASSERT_EQ(b.attributes.size(), 2u);
  EXPECT_EQ(b.attributes[0].line, 4);
  EXPECT_EQ(b.attributes[1].value.as_int(), 2);
}

TEST(Hcl, OneLineBlock) {
  Body b = must_parse(R"(path "secret/*" { capabilities = ["read", "list"] })");
  ASSERT_EQ(b.blocks.size(), 1u);
  EXPECT_EQ(b.blocks[0].body.attributes[0].value.as_list().size(), 2u);
}

TEST(Hcl, EmptyInput) {
  Body b = must_parse("");
  EXPECT_TRUE(b.attributes.empty());
  EXPECT_TRUE(b.blocks.empty());
  must_parse("  \n# only a comment\n");
}

// Reject twins: each names the line.
TEST(Hcl, RejectsUnterminatedThings) {
  expect_error("a = \"abc\n", "line 1: string is not terminated");
  expect_error("a = [1, 2\n", "line 1: list is not closed");
  expect_error("a = {k = 1\n", "line 1: object is not closed");
  expect_error("x {\n a = 1\n", "block opened on line 1 is not closed");
  expect_error("a = 1\n/* never ends", "line 2: unterminated /* comment");
  expect_error("a = <<EOF\nfoo\n", "line 1: heredoc \"EOF\" is not terminated");
}

TEST(Hcl, RejectsMalformedSyntax) {
  expect_error("a = 1\nb = \n", "line 3: expected a value");
  expect_error("a = 1 b = 2\n", "line 1: expected a newline after the attribute");
  expect_error("\n\n}\n", "line 3: unexpected '}'");
  expect_error("a = foo\n", "unexpected word \"foo\"");
  expect_error("a = 12abc\n", "malformed number");
  expect_error("a = 10s\n", "malformed number");
  expect_error("a = -\n", "expected digits");
  expect_error("a = [1 2]\n", "expected ',' or ']'");
  expect_error("block \"x\" = 1\n", "expected '=' or '{'");
  expect_error("\"k\" { }\n", "expected '=' after the key");
  expect_error("a = \"\\q\"\n", "unknown escape sequence");
  expect_error("a = \"\\u12\"\n", "malformed \\u escape");
  expect_error("a = \"\\ud800\"\n", "unpaired surrogate");
  expect_error("a = \"\\udc00\"\n", "unpaired surrogate");
  expect_error("a = \"\\U00110000\"\n", "not a Unicode scalar value");
  expect_error("a = \"x\x01y\"\n", "control character");
  expect_error("a = 99999999999999999999\n", "integer out of range");
  expect_error("a = 1e999\n", "number out of range");
  expect_error("a = <<\nx\n", "expected a heredoc marker");
  expect_error("a = <<EOF x\nEOF\n", "expected a newline after the heredoc marker");
  expect_error("@", "expected an attribute or block, found '@'");
  expect_error("o = { 1 = 2 }", "expected an object key");
  expect_error("o = { k 2 }", "expected '=' or ':'");
}

TEST(Hcl, NestingIsLimited) {
  std::string ok = "a = " + std::string(kMaxDepth, '[') + std::string(kMaxDepth, ']');
  must_parse(ok);
  std::string deep = "a = " + std::string(kMaxDepth + 1, '[') + std::string(kMaxDepth + 1, ']');
  expect_error(deep, "nesting deeper than 64");
  std::string blocks;
  for (int i = 0; i <= kMaxDepth; ++i) blocks += "b {\n";
  expect_error(blocks, "nesting deeper than 64");
  // Very deep input must fail cleanly, not exhaust the stack.
  expect_error("a = " + std::string(100000, '['), "nesting deeper");
  std::string objects = "a = ";
  for (int i = 0; i < 100000; ++i) objects += "{k=";
  expect_error(objects, "nesting deeper");
}

TEST(Hcl, ErrorsDoNotEchoLongInput) {
  std::string name(1000, 'k');
  auto r = parse(name + " 5");
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.status().message().size(), 200u);
}

TEST(Hcl, ToJsonVaultStyle) {
  Body b = must_parse(R"(ui = true
listener "tcp" { address = "a" }
listener "tcp" { address = "b" }
storage "sqlite" { path = "/p" }
path "secret/*" { capabilities = ["read"] }
path "sys/*" { capabilities = ["deny"] }
telemetry { x = 1.5 }
)");
  std::string json = boost::json::serialize(to_json(b));
  EXPECT_EQ(json,
            R"({"ui":true,"listener":{"tcp":[{"address":"a"},{"address":"b"}]},)"
            R"("storage":{"sqlite":{"path":"/p"}},)"
            R"("path":{"secret/*":{"capabilities":["read"]},"sys/*":{"capabilities":["deny"]}},)"
            R"("telemetry":{"x":1.5E0}})");
}

}  // namespace
}  // namespace custos::hcl
