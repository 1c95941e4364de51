#include "cli/client.h"

#include <cstdlib>

#include <boost/json.hpp>

namespace custos::cli {

std::string env_or(const char* primary, const char* fallback, const std::string& dflt) {
  if (const char* v = std::getenv(primary); v && *v) return v;
  if (fallback) {
    if (const char* v = std::getenv(fallback); v && *v) return v;
  }
  return dflt;
}

Client::Client()
    : Client(env_or("CUSTOS_ADDR", "VAULT_ADDR", "https://127.0.0.1:8200"),
             env_or("CUSTOS_TOKEN", "VAULT_TOKEN", "")) {}

Client::Client(std::string addr, std::string token) : addr_(std::move(addr)), token_(std::move(token)) {
  while (!addr_.empty() && addr_.back() == '/') addr_.pop_back();
  options_.ca_file = env_or("CUSTOS_CACERT", "VAULT_CACERT", "");
  std::string skip = env_or("CUSTOS_SKIP_VERIFY", "VAULT_SKIP_VERIFY", "");
  options_.insecure_skip_verify = skip == "1" || skip == "true";
  options_.client_cert_file = env_or("CUSTOS_CLIENT_CERT", "VAULT_CLIENT_CERT", "");
  options_.client_key_file = env_or("CUSTOS_CLIENT_KEY", "VAULT_CLIENT_KEY", "");
  wrap_ttl_ = env_or("CUSTOS_WRAP_TTL", "VAULT_WRAP_TTL", "");
  http_ = std::make_unique<net::HttpClient>(options_);
}

Result<ApiReply> Client::call_any(std::string_view method, std::string_view path,
                                  const boost::json::value* body) {
  std::vector<net::Header> headers;
  if (!token_.empty()) headers.push_back({"X-Vault-Token", token_});
  if (!wrap_ttl_.empty()) headers.push_back({"X-Vault-Wrap-TTL", wrap_ttl_});
  std::string payload;
  if (body) {
    payload = boost::json::serialize(*body);
    headers.push_back({"Content-Type", "application/json"});
  }
  std::string url = addr_ + "/v1/" + std::string(path);
  ASSIGN_OR_RETURN(net::HttpResponse resp, http_->request(method, url, headers, payload));
  ApiReply reply;
  reply.status = resp.status;
  if (!resp.body.empty()) {
    boost::system::error_code ec;
    reply.body = boost::json::parse(resp.body, ec);
    if (ec) return internal_error("server answered with invalid JSON (HTTP " + std::to_string(resp.status) + ")");
  }
  return reply;
}

Result<ApiReply> Client::call(std::string_view method, std::string_view path,
                              const boost::json::value* body) {
  ASSIGN_OR_RETURN(ApiReply reply, call_any(method, path, body));
  if (reply.status >= 200 && reply.status < 300) return reply;
  std::string msg = "Error making API request.\n\nURL: " + std::string(method) + " " + addr_ +
                    "/v1/" + std::string(path) + "\nCode: " + std::to_string(reply.status) + ". Errors:\n";
  if (reply.body.is_object()) {
    if (const auto* e = reply.body.as_object().if_contains("errors"); e && e->is_array()) {
      for (const auto& x : e->as_array()) {
        if (x.is_string()) msg += "\n* " + std::string(x.as_string());
      }
    }
  }
  Code code = reply.status == 404   ? Code::kNotFound
              : reply.status == 403 ? Code::kPermissionDenied
              : reply.status == 503 ? Code::kUnavailable
              : reply.status == 400 ? Code::kInvalidArgument
                                    : Code::kInternal;
  return Status(code, msg);
}

}  // namespace custos::cli
