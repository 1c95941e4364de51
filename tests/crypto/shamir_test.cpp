#include "crypto/shamir.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "crypto/gf256.h"
#include "crypto/random.h"

namespace custos::crypto {
namespace {

std::vector<SecretBytes> pick(const std::vector<SecretBytes>& all, std::vector<size_t> idx) {
  std::vector<SecretBytes> out;
  for (size_t i : idx) out.push_back(all[i].clone());
  return out;
}

TEST(Gf256, AesFieldKnownProducts) {
  // FIPS-197 section 4.2: {57} x {83} = {c1}, {57} x {13} = {fe}.
  static_assert(gf256::mul(0x57, 0x83) == 0xc1);
  static_assert(gf256::mul(0x57, 0x13) == 0xfe);
  static_assert(gf256::mul(0x57, 0x02) == 0xae);
  static_assert(gf256::mul(0x80, 0x02) == 0x1b);  // reduction by 0x11b
  EXPECT_EQ(gf256::mul(0, 0x77), 0);
  EXPECT_EQ(gf256::inv(0), 0);
  for (int a = 1; a < 256; ++a) {
    uint8_t x = static_cast<uint8_t>(a);
    EXPECT_EQ(gf256::mul(x, gf256::inv(x)), 1) << a;
    EXPECT_EQ(gf256::div(gf256::mul(x, 0x35), 0x35), x);
  }
}

TEST(Shamir, SplitCombine5of3) {
  Bytes secret = random_bytes(32);
  auto shares = shamir_split(secret, 5, 3);
  ASSERT_TRUE(shares.ok()) << shares.status().to_string();
  ASSERT_EQ(shares->size(), 5u);
  std::set<uint8_t> xs;
  for (const SecretBytes& s : *shares) {
    ASSERT_EQ(s.size(), secret.size() + 1);  // y bytes, then x
    uint8_t x = s.data()[s.size() - 1];
    EXPECT_NE(x, 0);
    xs.insert(x);
  }
  EXPECT_EQ(xs.size(), 5u);

  // Every 3-subset and larger recovers the secret, in any order.
  for (size_t a = 0; a < 5; ++a) {
    for (size_t b = a + 1; b < 5; ++b) {
      for (size_t c = b + 1; c < 5; ++c) {
        auto got = shamir_combine(pick(*shares, {c, a, b}));
        ASSERT_TRUE(got.ok());
        EXPECT_EQ(Bytes(got->span().begin(), got->span().end()), secret);
      }
    }
  }
  auto all = shamir_combine(pick(*shares, {4, 3, 2, 1, 0}));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(Bytes(all->span().begin(), all->span().end()), secret);

  // Reject twin: below the threshold the result is (undetectably) wrong.
  auto two = shamir_combine(pick(*shares, {0, 1}));
  ASSERT_TRUE(two.ok());
  EXPECT_NE(Bytes(two->span().begin(), two->span().end()), secret);
}

TEST(Shamir, VaultLayoutHandBuiltVector) {
  // A degree-1 polynomial f(x) = 0x41 + 0x57*x over GF(2^8)/0x11b, written in Vault's layout
  // (y then x). Combining it must give 0x41: checks the field, the layout and the interpolation.
  std::vector<SecretBytes> shares;
  shares.emplace_back(Bytes{0x41 ^ 0x57, 0x01});
  shares.emplace_back(Bytes{0x41 ^ 0xae, 0x02});
  auto got = shamir_combine(shares);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->data()[0], 0x41);
}

TEST(Shamir, OneOfOne) {
  Bytes secret = random_bytes(16);
  auto shares = shamir_split(secret, 1, 1);
  ASSERT_TRUE(shares.ok());
  ASSERT_EQ(shares->size(), 1u);
  const SecretBytes& s = (*shares)[0];
  ASSERT_EQ(s.size(), 17u);
  EXPECT_TRUE(std::equal(secret.begin(), secret.end(), s.data()));  // the share is the secret + x
  EXPECT_NE(s.data()[16], 0);
  auto got = shamir_combine(pick(*shares, {0}));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(Bytes(got->span().begin(), got->span().end()), secret);
}

TEST(Shamir, MaxParts) {
  Bytes secret = random_bytes(4);
  auto shares = shamir_split(secret, 255, 255);
  ASSERT_TRUE(shares.ok());
  auto got = shamir_combine(*shares);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(Bytes(got->span().begin(), got->span().end()), secret);
}

TEST(Shamir, SplitRejectsBadParameters) {
  Bytes secret(8, 1);
  EXPECT_EQ(shamir_split({}, 3, 2).status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(shamir_split(secret, 3, 1).ok());    // threshold 1 only as 1 of 1
  EXPECT_FALSE(shamir_split(secret, 2, 3).ok());    // threshold above parts
  EXPECT_FALSE(shamir_split(secret, 256, 3).ok());  // too many parts
  EXPECT_FALSE(shamir_split(secret, 0, 0).ok());
  EXPECT_FALSE(shamir_split(secret, -1, 2).ok());
  EXPECT_FALSE(shamir_split(secret, 1, 2).ok());
}

TEST(Shamir, CombineRejectsDuplicatesAndMismatches) {
  Bytes secret = random_bytes(16);
  auto shares = shamir_split(secret, 5, 3);
  ASSERT_TRUE(shares.ok());

  auto dup = shamir_combine(pick(*shares, {0, 1, 1}));
  EXPECT_EQ(dup.status().code(), Code::kInvalidArgument);
  EXPECT_NE(dup.status().message().find("duplicate"), std::string::npos);

  std::vector<SecretBytes> mismatched = pick(*shares, {0, 1});
  SecretBytes shorter(mismatched[0].span().subspan(1));
  mismatched.push_back(std::move(shorter));
  auto mm = shamir_combine(mismatched);
  EXPECT_EQ(mm.status().code(), Code::kInvalidArgument);
  EXPECT_NE(mm.status().message().find("length"), std::string::npos);

  EXPECT_FALSE(shamir_combine({}).ok());
  std::vector<SecretBytes> tiny;
  tiny.emplace_back(Bytes{0x01});
  EXPECT_FALSE(shamir_combine(tiny).ok());
  std::vector<SecretBytes> zero_x;
  zero_x.emplace_back(Bytes{0x01, 0x00});
  zero_x.emplace_back(Bytes{0x02, 0x01});
  EXPECT_FALSE(shamir_combine(zero_x).ok());
}

TEST(Shamir, TamperedShareGivesWrongSecret) {
  Bytes secret = random_bytes(16);
  auto shares = shamir_split(secret, 3, 3);
  ASSERT_TRUE(shares.ok());
  std::vector<SecretBytes> s = pick(*shares, {0, 1, 2});
  s[1].data()[0] ^= 1;
  auto got = shamir_combine(s);
  ASSERT_TRUE(got.ok());
  EXPECT_NE(Bytes(got->span().begin(), got->span().end()), secret);
}

TEST(Shamir, XCoordinatesVary) {
  // x coordinates are random, not 1..n: across a few splits we see more than n distinct values.
  std::set<uint8_t> xs;
  for (int i = 0; i < 10; ++i) {
    auto shares = shamir_split(Bytes{1, 2, 3}, 3, 2);
    ASSERT_TRUE(shares.ok());
    for (const SecretBytes& s : *shares) xs.insert(s.data()[3]);
  }
  EXPECT_GT(xs.size(), 3u);
}

}  // namespace
}  // namespace custos::crypto
