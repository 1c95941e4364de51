// The Vault API end to end on an unsealed in-memory server: arbitrary bytes are parsed as the
// server parses a request, then go through http::Api and core with the root token (unless the
// input brings a token of its own), so JSON bodies, query parameters and headers
// (X-Vault-Wrap-TTL) reach every handler that reads them: tokens and token roles, policies, kv
// v1 and v2, the cubbyhole, response wrapping, leases (tokens' own included), auth methods
// (enabled and disabled: sys/auth), AppRole, userpass, capabilities. State carries over between
// inputs, as on a real server.
//
// Only paths on an allow-list run: the rest could touch the world outside the process (audit
// devices write files, mounts could reach a database) or stop the server (seal).
//
// Invariants checked on every answer: a status from 200 to 599; unless sys/health was told which
// status to answer with, a JSON body that parses, an error body of Vault's shape
// {"errors": [strings]} and no 5xx, since every input here is a client's.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/encoding.h"
#include "core/core.h"
#include "http/api.h"
#include "net/http.h"
#include "storage/backend.h"

namespace {

using namespace custos;

struct Server {
  std::unique_ptr<storage::Backend> backend = storage::open_inmem();
  core::Core core{*backend, SystemClock::instance(), core::CoreConfig{}};
  http::Api api{core};
  std::string root = "fuzz-root-token";

  Server() {
    auto init = core.initialize(1, 1, root);
    if (!init.ok() || !core.unseal(hex_encode(init->shares[0].span()), false).ok()) std::abort();
    if (!core.mount("secret/", "kv-v2", {}).ok() || !core.mount("kv1/", "kv", {}).ok() ||
        !core.enable_auth("approle/", "approle").ok() ||
        !core.enable_auth("userpass/", "userpass").ok()) {
      std::abort();
    }
  }
};

Server& server() {
  static Server* s = new Server();  // never destroyed: the lease scheduler keeps running
  return *s;
}

bool allowed_path(std::string_view p) {
  static constexpr std::string_view kPrefixes[] = {"secret/",          "kv1/",
                                                   "cubbyhole/",       "auth/",
                                                   "sys/auth",         "sys/wrapping/",
                                                   "sys/policy",       "sys/policies/",
                                                   "sys/capabilities", "sys/leases/",
                                                   "sys/renew",        "sys/revoke",
                                                   "sys/tools/",       "sys/internal/ui/mounts",
                                                   "sys/health",       "sys/seal-status",
                                                   "sys/key-status",   "sys/leader"};
  for (std::string_view prefix : kPrefixes) {
    if (p.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = net::parse_request_for_fuzz(ByteSpan(data, size), 8192, 64 * 1024);
  if (!parsed.ok()) return 0;
  net::HttpRequest req = std::move(*parsed);
  std::string_view target = req.target;
  std::string_view raw_path = target.substr(0, target.find('?'));
  if (raw_path.substr(0, 4) != "/v1/") return 0;
  // Screen the path as the API will see it, decoded.
  auto path = http::percent_decode(raw_path.substr(4), false);
  if (!path.ok() || !allowed_path(*path)) return 0;
  if (req.header("X-Vault-Token").empty() && req.header("Authorization").empty()) {
    req.headers.push_back({"X-Vault-Token", server().root});
  }
  req.remote_addr = "127.0.0.1:40000";

  // sys/health answers with whatever status its caller asks for (activecode=...).
  const bool chosen_status = path->substr(0, 10) == "sys/health";
  net::HttpResponse resp = server().api.handle(req);
  if (resp.hold) std::abort();  // in-memory storage: nothing is ever waiting for an fsync
  if (resp.status < 200 || resp.status > 599) std::abort();
  if (chosen_status) return 0;
  if (resp.status >= 500 && resp.status != 503) std::abort();
  if (!resp.body.empty()) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(resp.body, ec);
    if (ec) {
      // Only PKI answers non-JSON bodies, and it is not mounted here.
      std::abort();
    }
    if (resp.status >= 400) {
      const auto* errors = v.is_object() ? v.as_object().if_contains("errors") : nullptr;
      if (errors == nullptr || !errors->is_array()) std::abort();
      for (const auto& e : errors->as_array()) {
        if (!e.is_string()) std::abort();
      }
    }
  }
  return 0;
}
