// Text encodings of binary data. Decoders reject anything malformed rather than guessing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/status.h"

namespace custos {

std::string hex_encode(ByteSpan b);  // lowercase
Result<Bytes> hex_decode(std::string_view s);  // accepts upper and lower case, even length

std::string base64_encode(ByteSpan b);  // standard alphabet, padded
Result<Bytes> base64_decode(std::string_view s);  // standard alphabet; padding optional
std::string base64url_encode(ByteSpan b);  // URL alphabet, unpadded (JWS/JWK)
Result<Bytes> base64url_decode(std::string_view s);  // URL alphabet; padding optional

// Removes ASCII whitespace (for hex/base64 files with line breaks).
std::string strip_whitespace(std::string_view s);
// Whether s is well-formed UTF-8 (RFC 3629): no overlong forms, surrogates or code points past
// U+10FFFF. JSON text must be UTF-8, so bytes that are not never reach a JSON answer.
bool valid_utf8(std::string_view s);

// An unsigned number written in decimal or, with a 0x/0X prefix, in hex ("4231", "0x1087");
// nullopt for anything else, including an empty string and overflow.
std::optional<uint64_t> parse_uint64(std::string_view s);

}  // namespace custos
