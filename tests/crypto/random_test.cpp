#include "crypto/random.h"

#include <gtest/gtest.h>

#include <regex>
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

TEST(Random, UuidV4Layout) {
  std::regex re("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string u = random_uuid();
    EXPECT_TRUE(std::regex_match(u, re)) << u;
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 100u);
}

}  // namespace
}  // namespace custos::crypto
