#include "core/engine.h"

#include <boost/json.hpp>

#include "base/clock.h"

namespace custos::core {

boost::json::object MountEntry::to_json() const {
  boost::json::object o;
  o["type"] = type;
  o["description"] = description;
  o["accessor"] = accessor;
  o["uuid"] = uuid;
  boost::json::object cfg = config;
  if (!cfg.contains("default_lease_ttl")) cfg["default_lease_ttl"] = 0;
  if (!cfg.contains("max_lease_ttl")) cfg["max_lease_ttl"] = 0;
  if (!cfg.contains("force_no_cache")) cfg["force_no_cache"] = false;
  o["config"] = std::move(cfg);
  if (options.empty()) {
    o["options"] = nullptr;
  } else {
    o["options"] = options;
  }
  o["local"] = local;
  o["seal_wrap"] = seal_wrap;
  o["external_entropy_access"] = external_entropy_access;
  o["plugin_version"] = plugin_version;
  o["running_plugin_version"] = running_plugin_version;
  o["running_sha256"] = "";
  return o;
}

Result<MountEntry> MountEntry::from_json(const boost::json::object& o) {
  MountEntry m;
  auto str = [&](const char* k) -> std::string {
    const auto* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  m.path = str("path");
  m.type = str("type");
  m.description = str("description");
  m.accessor = str("accessor");
  m.uuid = str("uuid");
  if (const auto* c = o.if_contains("config"); c && c->is_object()) m.config = c->as_object();
  if (const auto* c = o.if_contains("options"); c && c->is_object()) m.options = c->as_object();
  if (const auto* c = o.if_contains("local"); c && c->is_bool()) m.local = c->as_bool();
  if (const auto* c = o.if_contains("seal_wrap"); c && c->is_bool()) m.seal_wrap = c->as_bool();
  if (m.path.empty() || m.type.empty() || m.uuid.empty()) {
    return data_loss("mount table entry is incomplete");
  }
  return m;
}

Result<std::string> field_string(const boost::json::object& data, std::string_view key,
                                 std::string_view fallback) {
  const auto* v = data.if_contains(key);
  if (!v || v->is_null()) return std::string(fallback);
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_int64()) return std::to_string(v->as_int64());
  if (v->is_uint64()) return std::to_string(v->as_uint64());
  if (v->is_bool()) return std::string(v->as_bool() ? "true" : "false");
  return invalid_argument("field \"" + std::string(key) + "\" must be a string");
}

Result<int64_t> field_int(const boost::json::object& data, std::string_view key, int64_t fallback) {
  const auto* v = data.if_contains(key);
  if (!v || v->is_null()) return fallback;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v->as_uint64());
  }
  if (v->is_double()) {
    double d = v->as_double();
    if (d >= -9e15 && d <= 9e15 && static_cast<double>(static_cast<int64_t>(d)) == d) {
      return static_cast<int64_t>(d);
    }
  }
  if (v->is_string()) {
    const auto& s = v->as_string();
    if (s.empty()) return fallback;
    int64_t out = 0;
    bool neg = false;
    size_t i = 0;
    if (s[0] == '-') {
      neg = true;
      i = 1;
    }
    if (i == s.size()) return invalid_argument("field \"" + std::string(key) + "\" must be an integer");
    for (; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9' || out > INT64_MAX / 10 - 10) {
        return invalid_argument("field \"" + std::string(key) + "\" must be an integer");
      }
      out = out * 10 + (s[i] - '0');
    }
    return neg ? -out : out;
  }
  return invalid_argument("field \"" + std::string(key) + "\" must be an integer");
}

Result<bool> field_bool(const boost::json::object& data, std::string_view key, bool fallback) {
  const auto* v = data.if_contains(key);
  if (!v || v->is_null()) return fallback;
  if (v->is_bool()) return v->as_bool();
  if (v->is_string()) {
    const auto& s = v->as_string();
    if (s == "true" || s == "1" || s == "t" || s == "TRUE" || s == "True") return true;
    if (s == "false" || s == "0" || s == "f" || s == "FALSE" || s == "False" || s.empty()) return false;
  }
  if (v->is_int64()) return v->as_int64() != 0;
  return invalid_argument("field \"" + std::string(key) + "\" must be a boolean");
}

Result<int64_t> field_duration(const boost::json::object& data, std::string_view key,
                               int64_t fallback) {
  const auto* v = data.if_contains(key);
  if (!v || v->is_null()) return fallback;
  if (v->is_string()) {
    if (v->as_string().empty()) return fallback;
    auto d = parse_duration(std::string_view(v->as_string()));
    if (!d.ok()) {
      return invalid_argument("field \"" + std::string(key) + "\": " + d.status().message());
    }
    return d->count();
  }
  auto n = field_int(data, key, fallback);
  if (!n.ok()) return invalid_argument("field \"" + std::string(key) + "\" must be a duration");
  if (*n < 0) return invalid_argument("field \"" + std::string(key) + "\" must not be negative");
  return n;
}

boost::json::array to_string_array(const std::vector<std::string>& v) {
  boost::json::array out;
  out.reserve(v.size());
  for (const auto& x : v) out.emplace_back(x);
  return out;
}

Result<std::vector<std::string>> field_string_list(const boost::json::object& data,
                                                   std::string_view key) {
  std::vector<std::string> out;
  const auto* v = data.if_contains(key);
  if (!v || v->is_null()) return out;
  if (v->is_array()) {
    for (const auto& e : v->as_array()) {
      if (!e.is_string()) {
        return invalid_argument("field \"" + std::string(key) + "\" must be a list of strings");
      }
      out.emplace_back(e.as_string());
    }
    return out;
  }
  if (v->is_string()) {
    std::string_view s = v->as_string();
    while (!s.empty()) {
      size_t comma = s.find(',');
      std::string_view part = s.substr(0, comma);
      while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
      while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
      if (!part.empty()) out.emplace_back(part);
      if (comma == std::string_view::npos) break;
      s.remove_prefix(comma + 1);
    }
    return out;
  }
  return invalid_argument("field \"" + std::string(key) + "\" must be a list of strings");
}

bool glob_match(std::string_view pattern, std::string_view s) {
  size_t p = 0;
  size_t i = 0;
  size_t star = std::string_view::npos;
  size_t mark = 0;
  while (i < s.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pattern.size() && pattern[p] == s[i]) {
      ++p;
      ++i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace custos::core
