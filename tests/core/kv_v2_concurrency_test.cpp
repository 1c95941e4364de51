// KV v2 mutations are atomic storage transactions serialized per secret path: concurrent
// check-and-set writers to one secret never both succeed, writers to different secrets all do,
// and a transaction that fails leaves neither its version record nor its metadata behind.
// Run against SQLite (batched commits, fault injection) and the in-memory backend.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/encoding.h"
#include "core/core.h"
#include "core_fixture.h"
#include "storage/backend.h"
#include "storage/sqlite_testing.h"
#include "storage/temp_dir.h"

namespace custos::core {
namespace {

using boost::json::object;

class KvV2Concurrency : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    open_backend();
    core_ = std::make_unique<Core>(*backend_, clock_, CoreConfig{});
    auto init = core_->initialize(1, 1);
    ASSERT_TRUE(init.ok()) << init.status().to_string();
    root_ = init->root_token;
    unseal_key_ = hex_encode(init->shares[0].span());
    ASSERT_TRUE(core_->unseal(unseal_key_, false).ok());
    ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/secret", object{{"type", "kv-v2"}}).ok());
  }

  void open_backend() {
    if (!GetParam()) {
      backend_ = storage::open_inmem();
      return;
    }
    storage::SqliteTestHooks hooks;
    // Fails, while armed, every COMMIT, as an I/O error would: the write must not be applied
    // in part, and the backend stops until it is reopened.
    hooks.before_commit = [this](size_t) -> Status {
      if (fail_commits_.load()) return Status(Code::kUnavailable, "injected storage failure");
      return ok_status();
    };
    auto r = storage::open_sqlite_with_hooks({.path = dir_.file("kv.db")}, std::move(hooks));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    backend_ = std::move(r).value();
  }

  // As a restart does: a new backend on the same file, a new core, unsealed.
  void reopen() {
    core_.reset();
    backend_.reset();
    fail_commits_ = false;
    open_backend();
    core_ = std::make_unique<Core>(*backend_, clock_, CoreConfig{});
    ASSERT_TRUE(core_->unseal(unseal_key_, false).ok());
  }

  Result<Response> call(Operation op, const std::string& path, object data = {}) {
    return handle_as(*core_, op, path, std::move(data), root_);
  }

  Result<Response> write(const std::string& secret, object data, int64_t cas = -1) {
    object body{{"data", std::move(data)}};
    if (cas >= 0) body["options"] = object{{"cas", cas}};
    return call(Operation::kUpdate, "secret/data/" + secret, std::move(body));
  }

  int64_t current_version(const std::string& secret) {
    auto m = call(Operation::kRead, "secret/metadata/" + secret);
    EXPECT_TRUE(m.ok()) << m.status().to_string();
    return m.ok() ? m->data->at("current_version").as_int64() : -1;
  }

  // Physical keys below the (single) kv mount's storage whose path starts with `rel`.
  std::vector<std::string> stored_below(const std::string& rel) {
    auto mounts = backend_->list("logical/");
    EXPECT_TRUE(mounts.ok());
    std::vector<std::string> out;
    for (const auto& m : *mounts) {
      auto keys = backend_->list("logical/" + m + rel);
      if (keys.ok()) out.insert(out.end(), keys->begin(), keys->end());
    }
    return out;
  }

  storage::testing::TempDir dir_;
  FakeClock clock_{from_unix_seconds(1'800'000'000)};
  std::unique_ptr<storage::Backend> backend_;
  std::unique_ptr<Core> core_;
  std::string root_;
  std::string unseal_key_;
  std::atomic<bool> fail_commits_{false};
};

TEST_P(KvV2Concurrency, CasWritersToOneSecretNeverBothSucceed) {
  ASSERT_TRUE(write("app", object{{"writer", -1}}).ok());
  constexpr int kWriters = 8;
  constexpr int kRounds = 15;
  for (int round = 1; round <= kRounds; ++round) {
    std::atomic<int> won{0};
    std::atomic<int> winner{-1};
    std::atomic<int> unexpected{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kWriters; ++t) {
      threads.emplace_back([&, t] {
        auto r = write("app", object{{"writer", t}}, round);
        if (r.ok()) {
          won.fetch_add(1);
          winner = t;
          if (r->data->at("version").as_int64() != round + 1) unexpected.fetch_add(1);
        } else if (r.status().code() != Code::kInvalidArgument) {
          unexpected.fetch_add(1);
        }
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_EQ(won.load(), 1) << "round " << round;
    ASSERT_EQ(unexpected.load(), 0) << "round " << round;
    ASSERT_EQ(current_version("app"), round + 1);
    auto r = call(Operation::kRead, "secret/data/app");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->data->at("data").as_object().at("writer").as_int64(), winner.load());
  }
}

TEST_P(KvV2Concurrency, WritersToDifferentSecretsAllSucceed) {
  constexpr int kWriters = 16;
  constexpr int kWritesEach = 6;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 1; i <= kWritesEach; ++i) {
        // Also check-and-set: each writer owns its secret, so every cas must match.
        auto r = write("s" + std::to_string(t), object{{"i", i}}, i - 1);
        if (!r.ok() || r->data->at("version").as_int64() != i) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kWriters; ++t) EXPECT_EQ(current_version("s" + std::to_string(t)), kWritesEach);
  auto keys = call(Operation::kList, "secret/metadata/");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->data->at("keys").as_array().size(), static_cast<size_t>(kWriters));
}

// Fault injection needs the SQLite backend's hooks: instantiated for SQLite only.
class KvV2Faults : public KvV2Concurrency {};

TEST_P(KvV2Faults, FailedWriteLeavesNeitherVersionNorMetadata) {
  ASSERT_TRUE(write("app", object{{"v", 1}}).ok());
  ASSERT_TRUE(call(Operation::kUpdate, "secret/metadata/app", object{{"max_versions", 1}}).ok());

  // A write puts ver/2/app, deletes the trimmed ver/1/app and puts meta/app in one transaction.
  fail_commits_ = true;
  EXPECT_FALSE(write("app", object{{"v", 2}}).ok());
  ASSERT_NO_FATAL_FAILURE(reopen());
  EXPECT_TRUE(stored_below("ver/2/").empty()) << "version 2 written without its metadata";
  EXPECT_EQ(stored_below("ver/1/"), std::vector<std::string>{"app"}) << "trim applied alone";
  EXPECT_EQ(current_version("app"), 1);
  auto r = call(Operation::kRead, "secret/data/app");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->data->at("data").as_object().at("v").as_int64(), 1);

  // Destroy deletes ver/1/app and marks it destroyed in meta/app.
  fail_commits_ = true;
  EXPECT_FALSE(
      call(Operation::kUpdate, "secret/destroy/app", object{{"versions", boost::json::array{1}}})
          .ok());
  ASSERT_NO_FATAL_FAILURE(reopen());
  // Metadata delete deletes every version and then meta/app.
  fail_commits_ = true;
  EXPECT_FALSE(call(Operation::kDelete, "secret/metadata/app").ok());
  ASSERT_NO_FATAL_FAILURE(reopen());
  EXPECT_EQ(stored_below("ver/1/"), std::vector<std::string>{"app"});
  r = call(Operation::kRead, "secret/data/app");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->data->at("data").as_object().at("v").as_int64(), 1);

  // With storage healthy again, the same operations go through whole.
  auto w = write("app", object{{"v", 2}});
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  EXPECT_EQ(w->data->at("version").as_int64(), 2);
  EXPECT_TRUE(stored_below("ver/1/").empty());  // trimmed: max_versions is 1
  ASSERT_TRUE(call(Operation::kDelete, "secret/metadata/app").ok());
  EXPECT_TRUE(stored_below("ver/").empty());
  EXPECT_TRUE(stored_below("meta/").empty());
}

std::string backend_name(const ::testing::TestParamInfo<bool>& p) {
  return p.param ? "Sqlite" : "Inmem";
}
INSTANTIATE_TEST_SUITE_P(Backends, KvV2Concurrency, ::testing::Values(true, false), backend_name);
INSTANTIATE_TEST_SUITE_P(Backends, KvV2Faults, ::testing::Values(true), backend_name);

}  // namespace
}  // namespace custos::core
