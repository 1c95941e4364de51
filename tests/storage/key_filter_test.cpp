#include "storage/key_filter.h"

#include <gtest/gtest.h>

#include <string>

namespace custos::storage::internal {
namespace {

TEST(KeyFilter, NeverForgetsAKeyAcrossGrowth) {
  KeyFilter f;
  constexpr int kKeys = 200000;
  for (int i = 0; i < kKeys; ++i) f.add("logical/m/meta/path-" + std::to_string(i));
  EXPECT_GT(f.sub_filters(), 1u);  // the first sub-filter (4,096 keys) overflowed
  // A key whose bits earlier keys happened to set is not added again (it reads "maybe" anyway).
  EXPECT_LE(f.keys_added(), static_cast<size_t>(kKeys));
  EXPECT_GE(f.keys_added(), static_cast<size_t>(kKeys) * 99 / 100);
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_TRUE(f.may_contain("logical/m/meta/path-" + std::to_string(i))) << i;
  }
}

TEST(KeyFilter, RewritesOfTheSameKeysDoNotGrowIt) {
  KeyFilter f;
  for (int round = 0; round < 100; ++round) {
    for (int i = 0; i < 1000; ++i) f.add("core/k" + std::to_string(i));
  }
  EXPECT_EQ(f.sub_filters(), 1u);
  EXPECT_LE(f.keys_added(), 1000u);
  EXPECT_GE(f.keys_added(), 990u);  // a key may collide with earlier ones' bits, rarely
}

TEST(KeyFilter, RarelyClaimsAKeyNeverAdded) {
  KeyFilter f(100000);
  for (int i = 0; i < 100000; ++i) f.add("in/" + std::to_string(i));
  int false_positives = 0;
  for (int i = 0; i < 100000; ++i) false_positives += f.may_contain("out/" + std::to_string(i));
  // 16 bits and 8 probes per key: about 0.06% when full, as this one is.
  EXPECT_LT(false_positives, 100);
  EXPECT_FALSE(KeyFilter().may_contain("anything"));
}

TEST(KeyFilter, CostsAFewBytesPerKey) {
  KeyFilter f;
  for (int i = 0; i < 100000; ++i) f.add(std::to_string(i));
  EXPECT_LE(f.memory_bytes(), 100000u * 8);
  EXPECT_GE(f.memory_bytes(), 100000u * 2);
}

}  // namespace
}  // namespace custos::storage::internal
