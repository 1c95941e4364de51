#include "hcl/hcl.h"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <limits>
#include <utility>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>

namespace custos::hcl {

Value Value::null(int line) {
  Value v;
  v.line_ = line;
  return v;
}
Value Value::boolean(bool b, int line) {
  Value v;
  v.kind_ = Kind::kBool;
  v.b_ = b;
  v.line_ = line;
  return v;
}
Value Value::integer(int64_t i, int line) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  v.line_ = line;
  return v;
}
Value Value::number(double d, int line) {
  Value v;
  v.kind_ = Kind::kDouble;
  v.d_ = d;
  v.line_ = line;
  return v;
}
Value Value::string(std::string s, int line) {
  Value v;
  v.kind_ = Kind::kString;
  v.s_ = std::move(s);
  v.line_ = line;
  return v;
}
Value Value::list(std::vector<Value> items, int line) {
  Value v;
  v.kind_ = Kind::kList;
  v.list_ = std::move(items);
  v.line_ = line;
  return v;
}
Value Value::object(std::vector<Member> members, int line) {
  Value v;
  v.kind_ = Kind::kObject;
  v.object_ = std::move(members);
  v.line_ = line;
  return v;
}

const Value* Value::find(std::string_view key) const {
  for (const Member& m : object_) {
    if (m.key == key) return &m.value;
  }
  return nullptr;
}

std::string_view kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::kNull:
      return "null";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
    case Value::Kind::kDouble:
      return "number";
    case Value::Kind::kString:
      return "string";
    case Value::Kind::kList:
      return "list";
    case Value::Kind::kObject:
      return "object";
  }
  return "unknown";
}

const Attribute* Body::find_attribute(std::string_view name) const {
  for (const Attribute& a : attributes) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

namespace {

bool is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_ident_char(char c) { return is_ident_start(c) || (c >= '0' && c <= '9') || c == '-'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Names from the input appear in messages only when they are short identifiers; anything else is
// described, not quoted (untrusted input stays out of errors and logs).
std::string describe_char(char c) {
  if (c >= 0x21 && c <= 0x7e) return std::string("'") + c + "'";
  if (c == ' ') return "' '";
  return "a control or non-ASCII byte";
}

class Parser {
 public:
  explicit Parser(std::string_view in) : in_(in) {}

  Result<Body> parse_document() {
    Body body;
    RETURN_IF_ERROR(parse_body(body, /*top=*/true, /*open_line=*/0));
    return body;
  }

 private:
  bool eof() const { return pos_ >= in_.size(); }
  char peek(size_t ahead = 0) const {
    return pos_ + ahead < in_.size() ? in_[pos_ + ahead] : '\0';
  }
  void advance() {
    if (eof()) return;
    if (in_[pos_] == '\n') ++line_;
    ++pos_;
  }

  Status error(std::string_view what) const { return error_at(line_, what); }
  static Status error_at(int line, std::string_view what) {
    return invalid_argument("line " + std::to_string(line) + ": " + std::string(what));
  }

  // Skips blanks and comments. With stop_at_newline, stops in front of the first newline that is
  // not inside a /* */ comment.
  Status skip_space(bool stop_at_newline) {
    while (!eof()) {
      char c = peek();
      if (c == ' ' || c == '\t' || c == '\r') {
        advance();
      } else if (c == '\n') {
        if (stop_at_newline) return ok_status();
        advance();
      } else if (c == '#' || (c == '/' && peek(1) == '/')) {
        while (!eof() && peek() != '\n') advance();
      } else if (c == '/' && peek(1) == '*') {
        int start = line_;
        advance();
        advance();
        while (!eof() && !(peek() == '*' && peek(1) == '/')) advance();
        if (eof()) return error_at(start, "unterminated /* comment");
        advance();
        advance();
      } else {
        return ok_status();
      }
    }
    return ok_status();
  }

  Status enter(int& depth) {
    if (++depth > kMaxDepth) {
      return error("nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    return ok_status();
  }

  std::string identifier() {
    size_t start = pos_;
    while (!eof() && is_ident_char(peek())) advance();
    return std::string(in_.substr(start, pos_ - start));
  }

  static std::string quote_name(std::string_view name) {
    if (name.size() > 64) return "\"" + std::string(name.substr(0, 64)) + "...\"";
    return "\"" + std::string(name) + "\"";
  }

  Status parse_body(Body& body, bool top, int open_line) {
    while (true) {
      RETURN_IF_ERROR(skip_space(false));
      if (eof()) {
        if (top) return ok_status();
        return error("block opened on line " + std::to_string(open_line) + " is not closed");
      }
      char c = peek();
      if (c == '}') {
        if (top) return error("unexpected '}'");
        advance();
        return ok_status();
      }
      int item_line = line_;
      std::string name;
      bool quoted = false;
      if (c == '"') {
        ASSIGN_OR_RETURN(name, quoted_string());
        quoted = true;
      } else if (is_ident_start(c)) {
        name = identifier();
      } else {
        return error("expected an attribute or block, found " + describe_char(c));
      }
      RETURN_IF_ERROR(skip_space(false));
      if (peek() == '=') {
        advance();
        RETURN_IF_ERROR(skip_space(false));
        Value v;
        ASSIGN_OR_RETURN(v, parse_value());
        body.attributes.push_back(Attribute{std::move(name), std::move(v), item_line});
        // An attribute ends at the end of its line (or at the closing brace of a one-line block).
        RETURN_IF_ERROR(skip_space(true));
        if (!eof() && peek() != '\n' && peek() != '}') {
          return error("expected a newline after the attribute " + quote_name(body.attributes.back().name) +
                       ", found " + describe_char(peek()));
        }
        continue;
      }
      if (quoted) {
        return error("expected '=' after the key " + quote_name(name));
      }
      Block block;
      block.type = std::move(name);
      block.line = item_line;
      while (true) {
        RETURN_IF_ERROR(skip_space(false));
        if (peek() == '"') {
          std::string label;
          ASSIGN_OR_RETURN(label, quoted_string());
          block.labels.push_back(std::move(label));
        } else if (is_ident_start(peek())) {
          block.labels.push_back(identifier());
        } else {
          break;
        }
      }
      if (peek() != '{') {
        if (eof()) return error("unexpected end of input after " + quote_name(block.type));
        return error("expected '=' or '{' after " + quote_name(block.type) + ", found " +
                     describe_char(peek()));
      }
      advance();
      RETURN_IF_ERROR(enter(depth_));
      RETURN_IF_ERROR(parse_body(block.body, false, item_line));
      --depth_;
      body.blocks.push_back(std::move(block));
    }
  }

  Result<Value> parse_value() {
    if (eof()) return error("expected a value, found the end of input");
    int line = line_;
    char c = peek();
    if (c == '"') {
      std::string s;
      ASSIGN_OR_RETURN(s, quoted_string());
      return Value::string(std::move(s), line);
    }
    if (c == '<' && peek(1) == '<') return heredoc();
    if (c == '[') return list();
    if (c == '{') return object();
    if (c == '-' || is_digit(c)) return number();
    if (is_ident_start(c)) {
      std::string word = identifier();
      if (word == "true") return Value::boolean(true, line);
      if (word == "false") return Value::boolean(false, line);
      if (word == "null") return Value::null(line);
      return error("unexpected word " + quote_name(word) +
                   " (strings must be quoted; expressions are not supported)");
    }
    return error("expected a value, found " + describe_char(c));
  }

  Result<Value> list() {
    int line = line_;
    advance();  // [
    RETURN_IF_ERROR(enter(depth_));
    std::vector<Value> items;
    while (true) {
      RETURN_IF_ERROR(skip_space(false));
      if (eof()) return error_at(line, "list is not closed");
      if (peek() == ']') {
        advance();
        break;
      }
      Value v;
      ASSIGN_OR_RETURN(v, parse_value());
      items.push_back(std::move(v));
      RETURN_IF_ERROR(skip_space(false));
      if (peek() == ',') {
        advance();
      } else if (peek() != ']') {
        if (eof()) return error_at(line, "list is not closed");
        return error("expected ',' or ']' in list, found " + describe_char(peek()));
      }
    }
    --depth_;
    return Value::list(std::move(items), line);
  }

  Result<Value> object() {
    int line = line_;
    advance();  // {
    RETURN_IF_ERROR(enter(depth_));
    std::vector<Member> members;
    while (true) {
      RETURN_IF_ERROR(skip_space(false));
      if (eof()) return error_at(line, "object is not closed");
      char c = peek();
      if (c == '}') {
        advance();
        break;
      }
      std::string key;
      if (c == '"') {
        ASSIGN_OR_RETURN(key, quoted_string());
      } else if (is_ident_start(c)) {
        key = identifier();
      } else {
        return error("expected an object key, found " + describe_char(c));
      }
      RETURN_IF_ERROR(skip_space(false));
      if (peek() != '=' && peek() != ':') {
        return error("expected '=' or ':' after the key " + quote_name(key));
      }
      advance();
      RETURN_IF_ERROR(skip_space(false));
      Value v;
      ASSIGN_OR_RETURN(v, parse_value());
      members.push_back(Member{std::move(key), std::move(v)});
      RETURN_IF_ERROR(skip_space(false));
      if (peek() == ',') advance();
    }
    --depth_;
    return Value::object(std::move(members), line);
  }

  Result<Value> number() {
    int line = line_;
    size_t start = pos_;
    bool is_float = false;
    if (peek() == '-') advance();
    if (!is_digit(peek())) return error("expected digits after '-'");
    while (is_digit(peek())) advance();
    if (peek() == '.') {
      is_float = true;
      advance();
      if (!is_digit(peek())) return error("expected digits after '.' in a number");
      while (is_digit(peek())) advance();
    }
    if (peek() == 'e' || peek() == 'E') {
      is_float = true;
      advance();
      if (peek() == '+' || peek() == '-') advance();
      if (!is_digit(peek())) return error("expected digits in a number's exponent");
      while (is_digit(peek())) advance();
    }
    if (is_ident_char(peek()) || peek() == '.') {
      return error("malformed number (durations and sizes with units must be quoted)");
    }
    std::string_view text = in_.substr(start, pos_ - start);
    const char* first = text.data();
    const char* last = text.data() + text.size();
    if (!is_float) {
      int64_t i = 0;
      auto [p, ec] = std::from_chars(first, last, i);
      if (ec != std::errc() || p != last) return error_at(line, "integer out of range");
      return Value::integer(i, line);
    }
    double d = 0;
    auto [p, ec] = std::from_chars(first, last, d);
    if (ec != std::errc() || p != last || !std::isfinite(d)) {
      return error_at(line, "number out of range");
    }
    return Value::number(d, line);
  }

  Result<uint32_t> hex_escape(int digits) {
    uint32_t cp = 0;
    for (int i = 0; i < digits; ++i) {
      int h = hex_digit(peek());
      if (h < 0) return error("malformed \\u escape");
      cp = (cp << 4) | static_cast<uint32_t>(h);
      advance();
    }
    return cp;
  }

  Result<std::string> quoted_string() {
    int line = line_;
    advance();  // "
    std::string out;
    while (true) {
      if (eof() || peek() == '\n') return error_at(line, "string is not terminated");
      char c = peek();
      if (c == '"') {
        advance();
        return out;
      }
      if (c == '\\') {
        advance();
        char e = peek();
        advance();
        switch (e) {
          case '"':
            out.push_back('"');
            break;
          case '\\':
            out.push_back('\\');
            break;
          case '/':
            out.push_back('/');
            break;
          case 'n':
            out.push_back('\n');
            break;
          case 't':
            out.push_back('\t');
            break;
          case 'r':
            out.push_back('\r');
            break;
          case 'b':
            out.push_back('\b');
            break;
          case 'f':
            out.push_back('\f');
            break;
          case 'u': {
            uint32_t cp = 0;
            ASSIGN_OR_RETURN(cp, hex_escape(4));
            if (cp >= 0xDC00 && cp <= 0xDFFF) return error("unpaired surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (peek() != '\\' || peek(1) != 'u') {
                return error("unpaired surrogate in \\u escape");
              }
              advance();
              advance();
              uint32_t low = 0;
              ASSIGN_OR_RETURN(low, hex_escape(4));
              if (low < 0xDC00 || low > 0xDFFF) return error("unpaired surrogate in \\u escape");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            append_utf8(out, cp);
            break;
          }
          case 'U': {
            uint32_t cp = 0;
            ASSIGN_OR_RETURN(cp, hex_escape(8));
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
              return error("\\U escape is not a Unicode scalar value");
            }
            append_utf8(out, cp);
            break;
          }
          default:
            if (e == '\0' && eof()) return error_at(line, "string is not terminated");
            return error("unknown escape sequence \\" + describe_char(e));
        }
        continue;
      }
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
        return error("control character in string");
      }
      out.push_back(c);
      advance();
    }
  }

  Result<Value> heredoc() {
    int line = line_;
    advance();
    advance();  // <<
    bool indented = false;
    if (peek() == '-') {
      indented = true;
      advance();
    }
    if (!is_ident_start(peek())) return error("expected a heredoc marker after '<<'");
    std::string marker = identifier();
    while (peek() == ' ' || peek() == '\t' || peek() == '\r') advance();
    if (peek() != '\n') return error("expected a newline after the heredoc marker");
    advance();

    std::vector<std::string_view> lines;
    bool closed = false;
    while (!eof()) {
      size_t start = pos_;
      while (!eof() && peek() != '\n') advance();
      std::string_view text = in_.substr(start, pos_ - start);
      bool had_newline = !eof();
      advance();  // the newline, if any
      std::string_view trimmed = text;
      while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\t')) {
        trimmed.remove_prefix(1);
      }
      while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t' ||
                                  trimmed.back() == '\r')) {
        trimmed.remove_suffix(1);
      }
      if (trimmed == marker) {
        closed = true;
        // Leave the cursor in front of the newline that ends the marker line, so the attribute
        // ends there as any other does.
        if (had_newline) {
          --pos_;
          --line_;
        }
        break;
      }
      lines.push_back(text);
    }
    if (!closed) {
      return error_at(line, "heredoc " + quote_name(marker) + " is not terminated");
    }

    size_t strip = 0;
    if (indented) {
      strip = std::numeric_limits<size_t>::max();
      for (std::string_view l : lines) {
        size_t n = 0;
        while (n < l.size() && (l[n] == ' ' || l[n] == '\t')) ++n;
        if (n == l.size() || (n + 1 == l.size() && l[n] == '\r')) continue;  // blank line
        strip = std::min(strip, n);
      }
      if (strip == std::numeric_limits<size_t>::max()) strip = 0;
    }
    std::string out;
    for (std::string_view l : lines) {
      out.append(l.substr(std::min(strip, l.size())));
      out.push_back('\n');
    }
    return Value::string(std::move(out), line);
  }

  std::string_view in_;
  size_t pos_ = 0;
  int line_ = 1;
  int depth_ = 0;
};

// Collects repeated keys before rendering, so that a key seen twice becomes an array.
struct JsonNode {
  // Parallel vectors: a vector of pairs would need JsonNode complete inside its own definition.
  std::vector<std::string> keys;
  std::vector<JsonNode> children;
  std::vector<boost::json::value> leaves;

  JsonNode& child(const std::string& key) {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return children[i];
    }
    keys.push_back(key);
    children.emplace_back();
    return children.back();
  }

  boost::json::value render() const {
    boost::json::object obj;
    for (size_t i = 0; i < keys.size(); ++i) obj[keys[i]] = children[i].render_slot();
    return obj;
  }

  // A slot holds leaf values and/or a nested object.
  boost::json::value render_slot() const {
    std::vector<boost::json::value> all = leaves;
    if (!children.empty()) all.push_back(render());
    if (all.size() == 1) return std::move(all.front());
    boost::json::array arr;
    for (auto& v : all) arr.push_back(std::move(v));
    return arr;
  }
};

void collect(const Body& body, JsonNode& node) {
  for (const Attribute& a : body.attributes) node.child(a.name).leaves.push_back(to_json(a.value));
  for (const Block& b : body.blocks) {
    JsonNode* cur = &node.child(b.type);
    for (const std::string& label : b.labels) cur = &cur->child(label);
    JsonNode one;
    collect(b.body, one);
    cur->leaves.push_back(one.render());
  }
}

}  // namespace

Result<Body> parse(std::string_view text) {
  Parser p(text);
  return p.parse_document();
}

boost::json::value to_json(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kNull:
      return nullptr;
    case Value::Kind::kBool:
      return value.as_bool();
    case Value::Kind::kInt:
      return value.as_int();
    case Value::Kind::kDouble:
      return value.as_double();
    case Value::Kind::kString:
      return boost::json::string(value.as_string());
    case Value::Kind::kList: {
      boost::json::array arr;
      for (const Value& v : value.as_list()) arr.push_back(to_json(v));
      return arr;
    }
    case Value::Kind::kObject: {
      JsonNode node;
      for (const Member& m : value.as_object()) node.child(m.key).leaves.push_back(to_json(m.value));
      return node.render();
    }
  }
  return nullptr;
}

boost::json::value to_json(const Body& body) {
  JsonNode node;
  collect(body, node);
  return node.render();
}

}  // namespace custos::hcl
