// Pieces of the HTTP transport that need no Beast (kept apart so they compile fast).
#include <cstdio>
#include <string>
#include <string_view>

#include "net/http.h"
#include "net/internal.h"

namespace custos::net {

bool iequals_ascii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view HttpRequest::header(std::string_view name) const {
  for (const Header& h : headers) {
    if (iequals_ascii(h.name, name)) return h.value;
  }
  return {};
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

std::string error_body(std::string_view message) {
  std::string body = "{\"errors\":[";
  append_json_string(body, message);
  body += "]}\n";
  return body;
}

HttpResponse error_response(int status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.headers.push_back({"Content-Type", "application/json"});
  r.body = error_body(message);
  return r;
}

int http_status_for_parse_error(const Status& status) {
  if (status.code() == Code::kResourceExhausted) {
    return status.message() == kHeadersTooLarge ? 431 : 413;
  }
  return 400;
}

}  // namespace custos::net
