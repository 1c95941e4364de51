// Helpers shared by the server, the client and the fuzz entry point; not part of the API.
#pragma once

#include <string>
#include <string_view>

namespace custos::net {

inline constexpr std::string_view kHeadersTooLarge = "request headers too large";
inline constexpr std::string_view kBodyTooLarge = "request body too large";
inline constexpr std::string_view kMalformedRequest = "malformed request";

bool iequals_ascii(std::string_view a, std::string_view b);
void append_json_string(std::string& out, std::string_view s);
// {"errors":["<message>"]} with a trailing newline, as Vault writes it.
std::string error_body(std::string_view message);

}  // namespace custos::net
