// HTTP/1.1 server and client over Boost.Beast, with TLS (OpenSSL through Asio) and limits.
// Transport only: no Vault semantics here (those live in http/).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/status.h"

namespace custos::net {

struct Header {
  std::string name;  // as received; compare case-insensitively
  std::string value;
};

struct HttpRequest {
  std::string method;   // as sent: "GET", "LIST", "PUT", ...
  std::string target;   // path and query, raw ("/v1/secret/data/a?version=2")
  std::vector<Header> headers;
  std::string body;
  std::string remote_addr;  // "127.0.0.1:54321"
  bool tls = false;
  std::string client_cert_der;  // TLS: the verified client certificate (DER), when one was sent
  // First value of a header (case-insensitive name), or empty.
  std::string_view header(std::string_view name) const;
};

// Lets a held response go: OK sends it as it is, an error sends a 500 with the error's message
// instead. Callable from any thread, without blocking; only the first call counts.
using Release = std::function<void(Status)>;

struct HttpResponse {
  int status = 200;
  std::vector<Header> headers;  // Content-Type defaults to application/json when a body is set
  std::string body;
  // A response that may only leave once something else has happened (the writes it reflects
  // are durable): the server calls `hold` once, right after the handler returns, and sends the
  // response when the Release it passes is called. The connection answers nothing else meanwhile.
  std::function<void(Release)> hold;
  // Runs on the connection's thread just before the response leaves (with a hold: once it
  // releases). Takes the release's status (ok without a hold) and returns the one to answer
  // with (not ok: a 500 carrying its message). For work the answer owes once it may leave
  // (the audit of the response), kept off the thread that released it.
  std::function<Status(Status)> on_release;
};

// Called on a worker thread (or the I/O thread, see ServerOptions::run_inline); must not throw.
using Handler = std::function<HttpResponse(HttpRequest&)>;

struct TlsServerConfig {
  std::string cert_file;  // PEM chain, leaf first
  std::string key_file;   // PEM private key
  std::string min_version = "tls12";  // "tls12" | "tls13"
  std::string client_ca_file;  // optional: request and verify client certificates
  // With client_ca_file: reject handshakes without a client certificate. When false, a
  // certificate is requested and, if sent, must verify; handlers see it in client_cert_der.
  bool require_client_cert = true;
};

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8200;  // 0: pick a free port (tests)
  bool tls = false;
  TlsServerConfig tls_config;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 32 * 1024 * 1024;
  std::chrono::seconds idle_timeout{60};     // keep-alive connection without a request
  std::chrono::seconds request_timeout{30};  // reading one whole request
  size_t max_connections = 4096;
  int io_threads = 0;       // 0: number of cores
  int worker_threads = 64;  // handlers run here, so blocking handlers never stall I/O
  // Requests for which this returns true run on the connection's I/O thread, with no hand-off
  // to a worker and back (two thread wake-ups, the largest cost of a small request on a VM).
  // Only for handlers that do not block: no fsync (a handler that writes holds its response
  // until the write is durable instead), no network call. Empty: every request goes to the
  // workers.
  std::function<bool(const HttpRequest&)> run_inline;
};

// Vault's error shape: {"errors":["message"]}, Content-Type application/json.
HttpResponse error_response(int status, std::string_view message);

// Parses one request from raw bytes through the same parser and limits the server uses. The
// error is what the server would answer: InvalidArgument (400), ResourceExhausted with
// http_status_for_parse_error() telling 413 from 431, or FailedPrecondition when the input
// ends before the request does. Used by the fuzz target and tests.
Result<HttpRequest> parse_request_for_fuzz(ByteSpan data, size_t max_header_bytes = 16 * 1024,
                                           size_t max_body_bytes = 32 * 1024 * 1024);
// 431 for "request headers too large", 413 for "request body too large", else 400.
int http_status_for_parse_error(const Status& status);

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // Binds and starts serving in background threads. Errors: address in use, bad TLS files.
  static Result<std::unique_ptr<HttpServer>> start(const ServerOptions& options, Handler handler);
  virtual uint16_t port() const = 0;
  // Stops accepting, closes connections, joins threads. Idempotent.
  virtual void stop() = 0;
};

struct ClientOptions {
  bool insecure_skip_verify = false;  // TLS: accept any server certificate
  std::string ca_file;                // TLS: trust these roots (PEM) instead of the system's
  std::string client_cert_file;
  std::string client_key_file;
  std::chrono::seconds timeout{60};
};

// A blocking client with one keep-alive connection (reconnects as needed). Not thread-safe;
// use one per thread.
class HttpClient {
 public:
  explicit HttpClient(ClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // url: "http://127.0.0.1:8200/v1/sys/health" or https://...
  Result<HttpResponse> request(std::string_view method, std::string_view url,
                               const std::vector<Header>& headers = {},
                               std::string_view body = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::net
