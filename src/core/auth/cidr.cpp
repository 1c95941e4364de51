#include "core/auth/cidr.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <string>

#include "core/engine.h"

namespace custos::core {
namespace {

void mask_to(IpAddr& ip, int bits) {
  for (size_t i = 0; i < ip.bytes.size(); ++i) {
    int keep = std::clamp(bits - static_cast<int>(i) * 8, 0, 8);
    auto m = static_cast<uint8_t>(keep == 0 ? 0 : (0xff << (8 - keep)) & 0xff);
    ip.bytes[i] = static_cast<uint8_t>(ip.bytes[i] & m);
  }
}

}  // namespace

std::optional<IpAddr> parse_ip(std::string_view s) {
  if (s.empty() || s.size() > 64) return std::nullopt;
  std::string text(s);
  IpAddr ip;
  if (inet_pton(AF_INET, text.c_str(), ip.bytes.data()) == 1) {
    ip.v4 = true;
    return ip;
  }
  if (inet_pton(AF_INET6, text.c_str(), ip.bytes.data()) != 1) return std::nullopt;
  // IPv4-mapped (::ffff:a.b.c.d): a dual-stack listener reports IPv4 clients this way, and an
  // IPv4 block must still match them.
  static constexpr std::array<uint8_t, 12> kMapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(kMapped.begin(), kMapped.end(), ip.bytes.begin())) {
    std::array<uint8_t, 16> v4{};
    std::copy_n(ip.bytes.begin() + 12, 4, v4.begin());
    ip.bytes = v4;
    ip.v4 = true;
  }
  return ip;
}

// "10.0.0.0/8", "2001:db8::/32", or a bare address (a single host).
std::optional<Cidr> parse_cidr(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  size_t slash = s.find('/');
  auto ip = parse_ip(s.substr(0, slash));
  if (!ip) return std::nullopt;
  int max = ip->v4 ? 32 : 128;
  int bits = max;
  if (slash != std::string_view::npos) {
    std::string_view b = s.substr(slash + 1);
    auto [end, ec] = std::from_chars(b.data(), b.data() + b.size(), bits);
    if (b.empty() || b.size() > 3 || ec != std::errc() || end != b.data() + b.size() || bits < 0 ||
        bits > max) {
      return std::nullopt;
    }
  }
  Cidr c{*ip, bits};
  mask_to(c.net, bits);
  return c;
}

bool cidr_contains(const Cidr& c, const IpAddr& ip) {
  if (c.net.v4 != ip.v4) return false;
  IpAddr masked = ip;
  mask_to(masked, c.bits);
  return masked.bytes == c.net.bytes;
}

// Whether block `inner` lies inside block `outer`.
bool cidr_within(const Cidr& inner, const Cidr& outer) {
  return inner.net.v4 == outer.net.v4 && inner.bits >= outer.bits &&
         cidr_contains(outer, inner.net);
}

// req.remote_addr is "ip:port" or "[v6]:port".
std::optional<IpAddr> remote_ip(std::string_view addr) {
  if (!addr.empty() && addr.front() == '[') {
    size_t close = addr.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    return parse_ip(addr.substr(1, close - 1));
  }
  size_t colon = addr.rfind(':');
  if (colon != std::string_view::npos && addr.find(':') == colon) addr = addr.substr(0, colon);
  return parse_ip(addr);
}

// An empty list allows every source; otherwise the source must fall inside one block. A source
// that cannot be parsed is refused (fail closed).
bool source_allowed(const std::vector<std::string>& cidrs, std::string_view remote_addr) {
  if (cidrs.empty()) return true;
  auto ip = remote_ip(remote_addr);
  if (!ip) return false;
  return std::any_of(cidrs.begin(), cidrs.end(), [&](const std::string& s) {
    auto c = parse_cidr(s);
    return c && cidr_contains(*c, *ip);
  });
}

Result<std::vector<std::string>> cidr_list_field(const boost::json::object& d,
                                                 std::string_view key) {
  ASSIGN_OR_RETURN(auto list, field_string_list(d, key));
  for (auto& s : list) {
    if (!parse_cidr(s)) {
      return invalid_argument("field \"" + std::string(key) + "\" holds an invalid CIDR block");
    }
    while (!s.empty() && s.front() == ' ') s.erase(0, 1);
    while (!s.empty() && s.back() == ' ') s.pop_back();
  }
  return list;
}

}  // namespace custos::core
