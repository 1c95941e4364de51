// The Vault API holds every answer until what it reflects is durable: a write's own answer, and
// a read's answer that shows a write not yet on disk. Driven through http::Api with the real
// SQLite backend, whose fsyncs a hook holds.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "base/clock.h"
#include "base/encoding.h"
#include "core/core.h"
#include "http/api.h"
#include "storage/sqlite_testing.h"
#include "storage/temp_dir.h"

namespace custos::http {
namespace {

using namespace std::chrono_literals;

class ApiDurability : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::SqliteTestHooks hooks;
    hooks.before_sync = [this]() -> Status {
      std::unique_lock lock(mu_);
      ++syncs_started_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !holding_; });
      return fail_syncs_ ? Status(Code::kUnavailable, "injected EIO") : ok_status();
    };
    auto b = storage::open_sqlite_with_hooks({.path = dir_.file("kv.db")}, std::move(hooks));
    ASSERT_TRUE(b.ok()) << b.status().to_string();
    backend_ = std::move(*b);
    core_ = std::make_unique<core::Core>(*backend_, clock_, core::CoreConfig{});
    auto init = core_->initialize(1, 1);
    ASSERT_TRUE(init.ok());
    root_ = init->root_token;
    ASSERT_TRUE(core_->unseal(hex_encode(init->shares[0].span()), false).ok());
    api_ = std::make_unique<Api>(*core_);
    ASSERT_EQ(request("POST", "/v1/sys/mounts/kv", R"({"type":"kv"})").status, 204);
  }

  void TearDown() override { release_syncs(); }

  net::HttpResponse request(const std::string& method, const std::string& target,
                            const std::string& body = "") {
    net::HttpRequest req;
    req.method = method;
    req.target = target;
    req.body = body;
    req.headers.push_back({"X-Vault-Token", root_});
    return api_->handle(req);
  }

  // From now on every fsync waits; a write on another thread takes the first one, so the
  // writes after it are not alone and are left to the committer (their own fsyncs wait too).
  std::thread hold_syncs() {
    int before = 0;
    {
      std::lock_guard lock(mu_);
      holding_ = true;
      before = syncs_started_;
    }
    std::thread t([this] { (void)backend_->put("holder", as_bytes("h")); });
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return syncs_started_ > before; });
    return t;
  }
  void release_syncs() {
    std::lock_guard lock(mu_);
    holding_ = false;
    cv_.notify_all();
  }

  // Calls the response's hold and reports what its Release says, once it says it.
  struct Outcome {
    std::mutex mu;
    std::condition_variable cv;
    bool called = false;
    Status status;
    void wait() {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return called; });
    }
  };
  static void start_hold(net::HttpResponse& resp, Outcome& out) {
    resp.hold([&out](Status st) {
      std::lock_guard lock(out.mu);
      out.called = true;
      out.status = std::move(st);
      out.cv.notify_all();
    });
  }

  storage::testing::TempDir dir_;
  FakeClock clock_{from_unix_seconds(1'800'000'000)};
  std::unique_ptr<storage::Backend> backend_;
  std::unique_ptr<core::Core> core_;
  std::unique_ptr<Api> api_;
  std::string root_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool holding_ = false;
  bool fail_syncs_ = false;
  int syncs_started_ = 0;
};

TEST_F(ApiDurability, AnswersWaitForTheWritesTheyReflect) {
  // Nothing pending: answers leave at once.
  net::HttpResponse idle = request("GET", "/v1/sys/mounts");
  EXPECT_EQ(idle.status, 200);
  EXPECT_FALSE(idle.hold);

  std::thread holder = hold_syncs();
  net::HttpResponse write = request("PUT", "/v1/kv/app", R"({"password":"s3cr3t"})");
  EXPECT_EQ(write.status, 204);
  ASSERT_TRUE(write.hold) << "a write's answer must wait for its fsync";
  // Another client reads the value at once (it is visible) but is answered only once it is
  // durable: otherwise a crash could undo what it was told.
  net::HttpResponse read = request("GET", "/v1/kv/app");
  EXPECT_EQ(read.status, 200);
  EXPECT_NE(read.body.find("s3cr3t"), std::string::npos);
  ASSERT_TRUE(read.hold);

  Outcome w, r;
  start_hold(write, w);
  start_hold(read, r);
  std::this_thread::sleep_for(50ms);  // a negative: the fsync is held, so no release yet
  {
    std::lock_guard lock(w.mu);
    EXPECT_FALSE(w.called);
  }
  release_syncs();
  holder.join();
  w.wait();
  r.wait();
  EXPECT_TRUE(w.status.ok()) << w.status.to_string();
  EXPECT_TRUE(r.status.ok()) << r.status.to_string();
  EXPECT_FALSE(request("GET", "/v1/kv/app").hold) << "durable now: nothing to wait for";
}

// If the fsync fails, the held answers become errors: the client that wrote is not told its
// write succeeded, and neither is a client that read it.
TEST_F(ApiDurability, AFailedFsyncTurnsHeldAnswersIntoErrors) {
  std::thread holder = hold_syncs();
  net::HttpResponse write = request("PUT", "/v1/kv/app", R"({"password":"s3cr3t"})");
  net::HttpResponse read = request("GET", "/v1/kv/app");
  ASSERT_TRUE(write.hold);
  ASSERT_TRUE(read.hold);
  Outcome w, r;
  start_hold(write, w);
  start_hold(read, r);
  {
    std::lock_guard lock(mu_);
    fail_syncs_ = true;
  }
  release_syncs();
  holder.join();
  w.wait();
  r.wait();
  EXPECT_EQ(w.status.code(), Code::kInternal);
  EXPECT_EQ(r.status.code(), Code::kInternal);
  EXPECT_EQ(w.status.message().find("injected"), std::string::npos)
      << "storage internals stay in the server log: " << w.status.message();
}

}  // namespace
}  // namespace custos::http
