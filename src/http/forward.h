// Request forwarding from an HA standby to the active server (docs/ha.md). A standby answers
// a few requests itself (health, seal status, leader, init, unseal, sealing itself) and passes
// every other one, as it came, to the address the active server advertised (sys/leader), then
// returns the active server's answer unchanged: clients may talk to any server of the cluster.
//
// The active server sees the standby's address as the connection's; the client's travels in a
// header signed with a key every unsealed server of the cluster derives from the root key
// (Core::forwarding_key), so the active server believes it (for audit entries, CIDR-bound
// tokens) only from a server that could open the barrier. The signature also binds the body and
// the token headers, and lasts 60 s. A client's TLS certificate does not travel: requests that
// need one (a key transfer policy pinned to client certificates) fail through a standby.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"
#include "net/http.h"

namespace custos::http {

class Forwarder {
 public:
  // `client`: TLS to the other servers' listeners (their CA; default: the system's roots).
  Forwarder(core::Core& core, net::ClientOptions client);

  // A request a standby answers itself rather than forwarding.
  static bool served_locally(const net::HttpRequest& req);
  // True when `req` came from a standby (it carries the forwarding headers).
  static bool was_forwarded(const net::HttpRequest& req);

  // Standby: sends `req` to the active server and returns its answer (503 when no active
  // server is known or it cannot be reached).
  net::HttpResponse forward(const net::HttpRequest& req);
  // Standby: sys/seal seals this server, if the active server says the caller's token may
  // (sudo on sys/seal, asked through sys/capabilities-self).
  net::HttpResponse seal_standby(const net::HttpRequest& req);
  // Active (any HA server): takes the client address a standby signed into remote_addr, and
  // drops the forwarding headers either way (a client cannot set them).
  void accept_forwarded(net::HttpRequest& req);

 private:
  Result<net::HttpResponse> send(std::string_view method, const std::string& url,
                                 const std::vector<net::Header>& headers, std::string_view body);
  // HMAC-SHA256 over the client address, method, target, time, and a digest of the body and
  // the token headers.
  std::string signature(const SecretBytes& key, std::string_view client,
                        const net::HttpRequest& req, std::string_view time) const;

  core::Core& core_;
  const net::ClientOptions client_options_;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<net::HttpClient>> pool_;  // keep-alive connections to the active
};

}  // namespace custos::http
