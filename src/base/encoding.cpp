#include "base/encoding.h"

#include <array>
#include <charconv>

namespace custos {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string b64_encode(ByteSpan b, const char* alphabet, bool pad) {
  const size_t full = b.size() / 3;
  const size_t rest = b.size() - full * 3;
  std::string out(full * 4 + (rest == 0 ? 0 : (pad ? 4 : rest + 1)), '=');
  char* o = out.data();
  const uint8_t* in = b.data();
  for (size_t i = 0; i < full; ++i, in += 3, o += 4) {
    const uint32_t v = (uint32_t{in[0]} << 16) | (uint32_t{in[1]} << 8) | in[2];
    o[0] = alphabet[(v >> 18) & 63];
    o[1] = alphabet[(v >> 12) & 63];
    o[2] = alphabet[(v >> 6) & 63];
    o[3] = alphabet[v & 63];
  }
  if (rest > 0) {
    uint32_t v = uint32_t{in[0]} << 16;
    if (rest == 2) v |= uint32_t{in[1]} << 8;
    o[0] = alphabet[(v >> 18) & 63];
    o[1] = alphabet[(v >> 12) & 63];
    if (rest == 2) o[2] = alphabet[(v >> 6) & 63];
  }
  return out;
}

// Decoding tables, built at compile time: the sextet of each character, or 0xff.
constexpr std::array<uint8_t, 256> b64_table(const char* alphabet) {
  std::array<uint8_t, 256> t{};
  for (auto& v : t) v = 0xff;
  for (uint8_t i = 0; i < 64; ++i) t[static_cast<uint8_t>(alphabet[i])] = i;
  return t;
}
constexpr std::array<uint8_t, 256> kB64Table = b64_table(kB64);
constexpr std::array<uint8_t, 256> kB64UrlTable = b64_table(kB64Url);

Result<Bytes> b64_decode(std::string_view s, const std::array<uint8_t, 256>& table) {
  while (!s.empty() && s.back() == '=') s.remove_suffix(1);
  if (s.size() % 4 == 1) return invalid_argument("invalid base64 length");
  const size_t full = s.size() / 4;
  const size_t rest = s.size() - full * 4;  // 0, 2 or 3 characters: 0, 1 or 2 bytes
  Bytes out(full * 3 + (rest == 0 ? 0 : rest - 1));
  const auto* in = reinterpret_cast<const uint8_t*>(s.data());
  uint8_t* o = out.data();
  for (size_t i = 0; i < full; ++i, in += 4, o += 3) {
    const uint8_t a = table[in[0]], b = table[in[1]], c = table[in[2]], d = table[in[3]];
    if ((a | b | c | d) & 0x80) return invalid_argument("invalid base64 character");
    const uint32_t v = (uint32_t{a} << 18) | (uint32_t{b} << 12) | (uint32_t{c} << 6) | d;
    o[0] = static_cast<uint8_t>(v >> 16);
    o[1] = static_cast<uint8_t>(v >> 8);
    o[2] = static_cast<uint8_t>(v);
  }
  if (rest > 0) {
    const uint8_t a = table[in[0]], b = table[in[1]], c = rest == 3 ? table[in[2]] : 0;
    if ((a | b | c) & 0x80) return invalid_argument("invalid base64 character");
    const uint32_t v = (uint32_t{a} << 18) | (uint32_t{b} << 12) | (uint32_t{c} << 6);
    o[0] = static_cast<uint8_t>(v >> 16);
    if (rest == 3) o[1] = static_cast<uint8_t>(v >> 8);
    // Leftover bits must be zero: a canonical encoding has no stray data.
    const uint32_t stray = rest == 3 ? (v & 0xff) : (v & 0xffff);
    if (stray != 0) return invalid_argument("invalid base64 trailing bits");
  }
  return out;
}

}  // namespace

std::string hex_encode(ByteSpan b) {
  std::string out;
  out.resize(b.size() * 2);
  for (size_t i = 0; i < b.size(); ++i) {
    out[2 * i] = kHex[b[i] >> 4];
    out[2 * i + 1] = kHex[b[i] & 15];
  }
  return out;
}

Result<Bytes> hex_decode(std::string_view s) {
  if (s.size() % 2 != 0) return invalid_argument("hex string has odd length");
  Bytes out(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = hex_value(s[2 * i]);
    int lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return invalid_argument("invalid hex character");
    out[i] = static_cast<uint8_t>((hi << 4) | lo);
  }
  return out;
}

std::string base64_encode(ByteSpan b) { return b64_encode(b, kB64, true); }
Result<Bytes> base64_decode(std::string_view s) { return b64_decode(s, kB64Table); }
std::string base64url_encode(ByteSpan b) { return b64_encode(b, kB64Url, false); }
Result<Bytes> base64url_decode(std::string_view s) { return b64_decode(s, kB64UrlTable); }

std::string strip_whitespace(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') out += c;
  }
  return out;
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;  // overlong
      if (c == 0xed) hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;  // overlong
      if (c == 0xf4) hi = 0x8f;  // past U+10FFFF
    } else {
      return false;  // a continuation byte first, an overlong lead (c0, c1) or f5..ff
    }
    if (s.size() - i < len) return false;
    auto second = static_cast<unsigned char>(s[i + 1]);
    if (second < lo || second > hi) return false;
    for (size_t k = 2; k < len; ++k) {
      auto b = static_cast<unsigned char>(s[i + k]);
      if (b < 0x80 || b > 0xbf) return false;
    }
    i += len;
  }
  return true;
}

std::optional<uint64_t> parse_uint64(std::string_view s) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace custos
