// The Vault HTTP API over core: turns a net::HttpRequest into a core::Request (method -> operation,
// query parameters merged for reads, token from X-Vault-Token or Authorization: Bearer), checks
// paths and bodies, and writes Vault's JSON envelope or {"errors": [...]} with Vault's statuses.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/core.h"
#include "net/http.h"

namespace custos::http {

// Maps a Status to Vault's HTTP status.
int http_status(const Status& st);
net::HttpResponse error_response(int status, std::string_view message);
net::HttpResponse error_response(const Status& st);

// Extra route prefixes served beside /v1/ (attestation, key broker, JWKS).
using RouteHandler = std::function<net::HttpResponse(net::HttpRequest&)>;

class Forwarder;

class Api {
 public:
  explicit Api(core::Core& core);
  ~Api();

  // Registers a handler for every request whose path starts with `prefix` ("/kbs/v0/").
  void add_route(std::string prefix, RouteHandler handler);
  // HA (docs/ha.md): while the core is a standby, requests go to the active server
  // (http/forward.h), over TLS verified with `client`.
  void enable_forwarding(net::ClientOptions client);
  // The web UI under /ui/ (http/ui.h), and / redirecting to it.
  void enable_ui();

  // Every response, of /v1/ and of the extra routes, is held until the writes it may reflect
  // are durable (storage/durability.h).
  net::HttpResponse handle(net::HttpRequest& req);
  // For net::ServerOptions::run_inline: a Vault API request that Core says never blocks once its
  // durability is deferred (anything on a KV mount, health). Anything unusual (another prefix,
  // escapes in the path, an unknown method) answers false.
  bool can_run_inline(const net::HttpRequest& req) const;

 private:
  using AfterDurable = std::function<Status(const Status&)>;  // core::Response::after_durable
  net::HttpResponse route(net::HttpRequest& req, AfterDurable& after);
  void hold_until_durable(net::HttpResponse& resp, AfterDurable after);
  net::HttpResponse handle_vault(net::HttpRequest& req, std::string_view path,
                                 std::string_view query, AfterDurable& after);

  core::Core& core_;
  std::map<std::string, RouteHandler> routes_;
  std::unique_ptr<Forwarder> forwarder_;
  bool ui_ = false;
};

// Percent-decodes a path or query component; fails on malformed escapes and on NUL bytes.
Result<std::string> percent_decode(std::string_view s, bool plus_is_space);
// Validates a decoded API path: no "..", "." or empty segments' traversal, no control bytes.
Status check_path(std::string_view path);

}  // namespace custos::http
