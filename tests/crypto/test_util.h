// Helpers shared by the crypto tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/encoding.h"

namespace custos::crypto::testing {

// Hex to bytes; a malformed literal is a bug in the test itself.
inline Bytes unhex(std::string_view s) {
  auto r = hex_decode(strip_whitespace(s));
  EXPECT_TRUE(r.ok()) << "bad hex literal in test";
  return r.ok() ? *r : Bytes{};
}
inline std::string hex(ByteSpan b) { return hex_encode(b); }

}  // namespace custos::crypto::testing
