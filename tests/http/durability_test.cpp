// The Vault API holds every answer until what it reflects is durable: a write's own answer, and
// a read's answer that shows a write not yet on disk. Driven through http::Api with the real
// SQLite backend, whose fsyncs a hook holds.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

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
    net::HttpResponse mount = request("POST", "/v1/sys/mounts/kv", R"({"type":"kv"})");
    ASSERT_EQ(mount.status, 204);
    ASSERT_TRUE(settle(mount).ok());
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
  // As the server does: on_release runs when the answer may leave, and decides its status.
  static void start_hold(net::HttpResponse& resp, Outcome& out) {
    auto on_release = std::move(resp.on_release);
    resp.hold([&out, on_release](Status st) {
      if (on_release) st = on_release(std::move(st));
      std::lock_guard lock(out.mu);
      out.called = true;
      out.status = std::move(st);
      out.cv.notify_all();
    });
  }

  // Lets the answer leave, as the server does: at once, or once its hold releases (the backend
  // may leave even a lone write's fsync to its syncer thread when fsyncs are slow). Returns the
  // status the client gets.
  static Status settle(net::HttpResponse& resp) {
    if (!resp.hold) return resp.on_release ? resp.on_release(ok_status()) : ok_status();
    Outcome out;
    start_hold(resp, out);
    out.wait();
    return out.status;
  }

  // The audit log's entries of one type ("request" or "response") for one API path.
  std::vector<boost::json::object> audited(const std::string& type, const std::string& path) {
    std::ifstream in(dir_.file("audit.log"));
    std::vector<boost::json::object> out;
    std::string line;
    while (std::getline(in, line)) {
      boost::json::object e = boost::json::parse(line).as_object();
      if (e.at("type").as_string() == type && e.at("request").at("path").as_string() == path) {
        out.push_back(std::move(e));
      }
    }
    return out;
  }
  void enable_audit() {
    boost::json::object body{
        {"type", "file"}, {"options", boost::json::object{{"file_path", dir_.file("audit.log")}}}};
    net::HttpResponse on = request("PUT", "/v1/sys/audit/file", boost::json::serialize(body));
    ASSERT_EQ(on.status, 204) << on.body;
    ASSERT_TRUE(settle(on).ok());
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

// The audit log records an answer when the client gets it: a held answer's entry waits for the
// fsync, so the log never shows a write as answered that a crash could still undo.
TEST_F(ApiDurability, AuditRecordsAHeldAnswerOnceItIsDurable) {
  enable_audit();
  std::thread holder = hold_syncs();
  net::HttpResponse write = request("PUT", "/v1/kv/app", R"({"password":"s3cr3t"})");
  ASSERT_TRUE(write.hold);
  EXPECT_EQ(audited("request", "kv/app").size(), 1u) << "requests are audited before they run";
  EXPECT_EQ(audited("response", "kv/app").size(), 0u) << "the answer has not left yet";
  Outcome w;
  start_hold(write, w);
  release_syncs();
  holder.join();
  w.wait();
  ASSERT_TRUE(w.status.ok()) << w.status.to_string();
  auto responses = audited("response", "kv/app");
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].at("error").as_string(), "");

  // An answer with nothing to wait for is audited as it leaves, at once.
  net::HttpResponse read = request("GET", "/v1/kv/app");
  ASSERT_FALSE(read.hold);
  EXPECT_EQ(read.status, 200);
  ASSERT_TRUE(read.on_release);
  EXPECT_TRUE(read.on_release(ok_status()).ok());
  EXPECT_EQ(audited("response", "kv/app").size(), 2u);
}

// A write whose fsync fails is answered with an error, and audited with that error, not with
// the success its handler rendered.
TEST_F(ApiDurability, AFailedFsyncIsAuditedAsTheErrorTheClientGets) {
  enable_audit();
  std::thread holder = hold_syncs();
  net::HttpResponse write = request("PUT", "/v1/kv/app", R"({"password":"s3cr3t"})");
  ASSERT_TRUE(write.hold);
  Outcome w;
  start_hold(write, w);
  {
    std::lock_guard lock(mu_);
    fail_syncs_ = true;
  }
  release_syncs();
  holder.join();
  w.wait();
  ASSERT_EQ(w.status.code(), Code::kInternal);
  auto responses = audited("response", "kv/app");
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].at("error").as_string(), w.status.message());
  EXPECT_TRUE(responses[0].at("response").as_object().empty());
}

}  // namespace
}  // namespace custos::http
