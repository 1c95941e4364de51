// The CLI's API client: address, token and TLS settings from the environment
// (CUSTOS_ADDR/CUSTOS_TOKEN/CUSTOS_CACERT/CUSTOS_SKIP_VERIFY, falling back to the VAULT_* names).
#pragma once

#include <optional>
#include <string>

#include <boost/json/value.hpp>

#include "base/status.h"
#include "net/http.h"

namespace custos::cli {

struct ApiReply {
  int status = 0;
  boost::json::value body;  // null for empty bodies
};

class Client {
 public:
  Client();
  Client(std::string addr, std::string token);

  const std::string& addr() const { return addr_; }
  const std::string& token() const { return token_; }
  void set_token(std::string t) { token_ = std::move(t); }
  // Sent as X-Vault-Wrap-TTL with every call (empty: responses are not wrapped).
  void set_wrap_ttl(std::string ttl) { wrap_ttl_ = std::move(ttl); }

  // Calls /v1/<path>. Non-2xx answers become errors carrying Vault's error strings.
  Result<ApiReply> call(std::string_view method, std::string_view path,
                        const boost::json::value* body = nullptr);
  // The same, returning any status (for sys/health and sys/seal-status style calls).
  Result<ApiReply> call_any(std::string_view method, std::string_view path,
                            const boost::json::value* body = nullptr);

 private:
  std::string addr_;
  std::string token_;
  std::string wrap_ttl_;
  net::ClientOptions options_;
  std::unique_ptr<net::HttpClient> http_;
};

std::string env_or(const char* primary, const char* fallback, const std::string& dflt);

}  // namespace custos::cli
