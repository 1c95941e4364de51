// IP addresses and CIDR blocks for address-bound credentials: AppRole's secret_id_bound_cidrs
// and cidr_list, and token_bound_cidrs on roles, users and the tokens they mint.
#pragma once

#include <array>
#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace custos::core {

struct IpAddr {
  std::array<uint8_t, 16> bytes{};
  bool v4 = false;
};

struct Cidr {
  IpAddr net;
  int bits = 0;
};

// IPv4 or IPv6; an IPv4-mapped IPv6 address is taken as the IPv4 address it maps.
std::optional<IpAddr> parse_ip(std::string_view s);
// "10.0.0.0/8", "2001:db8::/32", or a bare address (a single host).
std::optional<Cidr> parse_cidr(std::string_view s);
bool cidr_contains(const Cidr& c, const IpAddr& ip);
// Whether block `inner` lies inside block `outer`.
bool cidr_within(const Cidr& inner, const Cidr& outer);
// The IP of a Request::remote_addr ("ip:port" or "[v6]:port").
std::optional<IpAddr> remote_ip(std::string_view addr);
// An empty list allows every source; otherwise the source must fall inside one block. A source
// that cannot be parsed is refused (fail closed).
bool source_allowed(const std::vector<std::string>& cidrs, std::string_view remote_addr);
// A CIDR list field (JSON array or comma-separated string), validated and trimmed.
Result<std::vector<std::string>> cidr_list_field(const boost::json::object& d,
                                                 std::string_view key);

}  // namespace custos::core
