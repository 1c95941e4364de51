// A parser for the subset of HCL that Vault users write in server configs and ACL policies.
//
// Grammar (informal):
//   body      := { attribute | block }
//   attribute := key "=" value                      key: identifier or "quoted"
//   block     := identifier { label } "{" body "}"  label: "quoted" or identifier
//   value     := string | heredoc | number | true | false | null | list | object
//   list      := "[" [ value { "," value } [","] ] "]"          newlines allowed anywhere
//   object    := "{" { key ("=" | ":") value [","] } "}"
// Strings accept \" \\ \/ \n \t \r \b \f \uXXXX (surrogate pairs combined) and \UXXXXXXXX;
// heredocs are <<MARK ... MARK and <<-MARK (common indentation removed). Comments: #, //, /* */.
// Expressions, interpolation (${...} stays literal text) and functions are not supported.
//
// The input is untrusted: every error is an InvalidArgument "line N: <what>", nesting is limited
// to kMaxDepth, and nothing in the input is echoed back except short identifiers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "base/status.h"

namespace custos::hcl {

inline constexpr int kMaxDepth = 64;

struct Member;

class Value {
 public:
  enum class Kind { kNull, kBool, kInt, kDouble, kString, kList, kObject };

  Value() = default;
  static Value null(int line = 0);
  static Value boolean(bool b, int line = 0);
  static Value integer(int64_t i, int line = 0);
  static Value number(double d, int line = 0);
  static Value string(std::string s, int line = 0);
  static Value list(std::vector<Value> items, int line = 0);
  static Value object(std::vector<Member> members, int line = 0);

  Kind kind() const { return kind_; }
  int line() const { return line_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_double() const { return kind_ == Kind::kDouble; }
  bool is_number() const { return is_int() || is_double(); }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_object() const { return kind_ == Kind::kObject; }

  // Accessors; calling one for the wrong kind returns a default (false, 0, empty).
  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_double() const { return kind_ == Kind::kInt ? static_cast<double>(i_) : d_; }
  const std::string& as_string() const { return s_; }
  const std::vector<Value>& as_list() const { return list_; }
  const std::vector<Member>& as_object() const { return object_; }

  // The first member named key of an object, or nullptr.
  const Value* find(std::string_view key) const;

 private:
  Kind kind_ = Kind::kNull;
  int line_ = 0;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::string s_;
  std::vector<Value> list_;
  std::vector<Member> object_;
};

struct Member {
  std::string key;
  Value value;
};

// "null", "bool", "number", "string", "list", "object": for error messages.
std::string_view kind_name(Value::Kind k);

struct Attribute {
  std::string name;
  Value value;
  int line = 0;
};

struct Block;

struct Body {
  std::vector<Attribute> attributes;  // in document order; duplicates are kept
  std::vector<Block> blocks;          // in document order

  // The first attribute named name, or nullptr.
  const Attribute* find_attribute(std::string_view name) const;
};

struct Block {
  std::string type;
  std::vector<std::string> labels;
  Body body;
  int line = 0;
};

// Parses a whole document. Never throws.
Result<Body> parse(std::string_view text);

// A JSON rendering, Vault style: attributes become keys, a block `type "a" "b" { ... }` becomes
// {"type": {"a": {"b": {...}}}}, an unlabeled block {"type": {...}}. A key seen twice at the leaf
// (repeated blocks, repeated attributes) becomes an array of the values in document order.
boost::json::value to_json(const Body& body);
boost::json::value to_json(const Value& value);

}  // namespace custos::hcl
