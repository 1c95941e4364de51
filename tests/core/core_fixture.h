// The Core test fixture: in-memory storage, an injected clock, init/unseal and a request helper.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "base/encoding.h"
#include "core/core.h"
#include "storage/backend.h"

namespace custos::core {

using boost::json::object;

// One API request to `core` as a client would send it (PUT/POST for create and update).
inline Result<Response> handle_as(Core& core, Operation op, const std::string& path,
                                  object data = {}, const std::string& token = "",
                                  int64_t wrap_ttl = 0) {
  Request r;
  r.op = op;
  r.http_put_or_post = op == Operation::kUpdate || op == Operation::kCreate;
  r.path = path;
  r.data = std::move(data);
  r.client_token = token;
  r.wrap_ttl = wrap_ttl;
  return core.handle(r);
}

class CoreTest : public ::testing::Test {
 protected:
  CoreTest()
      : clock_(from_unix_seconds(1'800'000'000)),
        backend_(storage::open_inmem()),
        core_(std::make_unique<Core>(*backend_, clock_, CoreConfig{})) {}

  void init_unseal(int shares = 5, int threshold = 3) {
    auto init = core_->initialize(shares, threshold);
    ASSERT_TRUE(init.ok()) << init.status().to_string();
    root_ = init->root_token;
    for (int i = 0; i < threshold; ++i)
      keys_.push_back(hex_encode(init->shares[static_cast<size_t>(i)].span()));
    for (const auto& k : keys_) ASSERT_TRUE(core_->unseal(k, false).ok());
    ASSERT_FALSE(core_->sealed());
  }

  // `wrap_ttl`: the X-Vault-Wrap-TTL the request is sent with (0: none).
  Result<Response> call(Operation op, const std::string& path, object data = {},
                        const std::string& token = "", int64_t wrap_ttl = 0) {
    return handle_as(*core_, op, path, std::move(data), token.empty() ? root_ : token, wrap_ttl);
  }

  // Enables a file audit device on a fresh file named after `stem` in the temp directory and
  // returns its path; empty if enabling failed.
  std::string enable_file_audit(const std::string& stem) {
    std::string log = (std::filesystem::temp_directory_path() /
                       (stem + "-" + std::to_string(::getpid()) + ".log"))
                          .string();
    std::filesystem::remove(log);
    auto on = call(Operation::kUpdate, "sys/audit/file",
                   object{{"type", "file"}, {"options", object{{"file_path", log}}}});
    return on.ok() ? log : "";
  }

  FakeClock clock_;
  std::unique_ptr<storage::Backend> backend_;
  std::unique_ptr<Core> core_;
  std::string root_;
  std::vector<std::string> keys_;
};

}  // namespace custos::core
