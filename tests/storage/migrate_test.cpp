// storage::migrate: a whole store copied between backends (SQLite to SQLite and in-memory here;
// tests/integration/migrate.sh copies SQLite to etcd through the CLI).
#include "storage/migrate.h"

#include <gtest/gtest.h>

#include <algorithm>
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

TEST(Migrate, AnEmptySourceIsRefused) {
  // Most likely a mistyped path (SQLite makes an empty file): nothing to copy is an error.
  auto from = open_inmem();
  auto to = open_inmem();
  auto stats = migrate(*from, *to);
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.status().message().find("holds no key"), std::string::npos);
}

TEST(Migrate, LargeValuesGoInSmallerBatches) {
  // 40 values of 100 KiB: batches stay near 1 MiB (etcd's request limit), not 256 entries.
  class Counting final : public Backend {
   public:
    Result<std::optional<Bytes>> get(std::string_view k) override { return inner_->get(k); }
    Status put(std::string_view k, ByteSpan v) override { return inner_->put(k, v); }
    Status del(std::string_view k) override { return inner_->del(k); }
    Result<std::vector<std::string>> list(std::string_view p) override { return inner_->list(p); }
    Status transaction(std::span<const Op> ops) override {
      size_t bytes = 0;
      for (const auto& op : ops) bytes += op.key.size() + op.value.size();
      largest = std::max(largest, bytes);
      ++transactions;
      return inner_->transaction(ops);
    }
    std::string_view name() const override { return "counting"; }
    size_t largest = 0;
    int transactions = 0;

   private:
    std::unique_ptr<Backend> inner_ = open_inmem();
  };
  auto from = open_inmem();
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(from->put("big/" + std::to_string(i), Bytes(100 << 10, 'v')).ok());
  }
  Counting to;
  auto stats = migrate(*from, to);
  ASSERT_TRUE(stats.ok()) << stats.status().to_string();
  EXPECT_EQ(stats->keys, 40u);
  EXPECT_LE(to.largest, size_t{1} << 20);
  EXPECT_GE(to.transactions, 4);
}

}  // namespace
}  // namespace custos::storage
