#include "crypto/random.h"

#include <gtest/gtest.h>

#include <set>

namespace custos::crypto {
namespace {

TEST(Random, SizesAndDistinct) {
  EXPECT_TRUE(random_bytes(0).empty());
  Bytes a = random_bytes(32);
  Bytes b = random_bytes(32);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  SecretBytes s = random_secret(64);
  EXPECT_EQ(s.size(), 64u);
  EXPECT_FALSE(s == random_secret(64));
}

TEST(Random, FillCoversEveryByte) {
  // With 4096 random bytes, every byte position being zero by chance is essentially impossible;
  // this catches a fill that writes only a prefix.
  Bytes buf(4096, 0);
  random_fill(buf);
  size_t zeros_in_tail = 0;
  for (size_t i = 2048; i < buf.size(); ++i) zeros_in_tail += buf[i] == 0;
  EXPECT_LT(zeros_in_tail, 100u);
}

// 8-4-4-4-12 lowercase hex, version nibble 4, variant 10xx. (Checked by hand: GCC 12's
// std::regex trips -Wmaybe-uninitialized under the sanitizer build.)
bool is_uuid_v4(const std::string& u) {
  if (u.size() != 36) return false;
  for (size_t i = 0; i < u.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    char c = u[i];
    if (dash != (c == '-')) return false;
    if (!dash && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return u[14] == '4' && std::string_view("89ab").find(u[19]) != std::string_view::npos;
}

TEST(Random, UuidV4Layout) {
  EXPECT_FALSE(is_uuid_v4("00000000-0000-0000-0000-000000000000"));
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string u = random_uuid();
    EXPECT_TRUE(is_uuid_v4(u)) << u;
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 100u);
}

}  // namespace
}  // namespace custos::crypto
