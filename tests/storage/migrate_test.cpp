// storage::migrate: a whole store copied between backends (SQLite to SQLite and in-memory here;
// tests/integration/migrate.sh copies SQLite to etcd through the CLI).
#include "storage/migrate.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "storage/backend.h"
#include "storage/temp_dir.h"

namespace custos::storage {
namespace {

using testing::TempDir;

// Keys of every shape the walk must find: nested folders, a key beside a folder of its name,
// odd bytes, an empty value, a key ending in '/'.
const std::vector<std::string> kKeys = {"core/keyring",
                                        "core/seal-config",
                                        "logical/a/meta/x",
                                        "logical/a/ver/1/x",
                                        "logical/a",
                                        "sys/token/id/h1",
                                        std::string("odd\0key", 7),
                                        "trailing/",
                                        "z"};

TEST(Migrate, CopiesEveryKeyAndChecksTheCopy) {
  TempDir dir;
  auto from = open_sqlite({.path = dir.file("from.db")});
  ASSERT_TRUE(from.ok());
  for (size_t i = 0; i < kKeys.size(); ++i) {
    std::string v = i == 8 ? "" : "value-" + std::to_string(i);
    ASSERT_TRUE((*from)->put(kKeys[i], as_bytes(v)).ok()) << i;
  }
  for (int i = 0; i < 600; ++i) {  // more than one batch
    ASSERT_TRUE((*from)->put("bulk/" + std::to_string(i), as_bytes("b")).ok());
  }
  auto to = open_sqlite({.path = dir.file("to.db")});
  ASSERT_TRUE(to.ok());
  std::vector<uint64_t> progress;
  auto stats = migrate(**from, **to, [&](uint64_t n) { progress.push_back(n); });
  ASSERT_TRUE(stats.ok()) << stats.status().to_string();
  EXPECT_EQ(stats->keys, kKeys.size() + 600);
  EXPECT_GE(progress.size(), 3u);  // batches of 256
  for (size_t i = 0; i < kKeys.size(); ++i) {
    auto got = (*to)->get(kKeys[i]);
    ASSERT_TRUE(got.ok() && got->has_value()) << i;
    EXPECT_EQ(as_string_view(**got), i == 8 ? "" : "value-" + std::to_string(i));
  }
  // A second run finds the destination full and refuses, changing nothing.
  auto again = migrate(**from, **to);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(again.status().message().find("not empty"), std::string::npos);
}

TEST(Migrate, AnEmptySourceCopiesNothing) {
  auto from = open_inmem();
  auto to = open_inmem();
  auto stats = migrate(*from, *to);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->keys, 0u);
}

}  // namespace
}  // namespace custos::storage
