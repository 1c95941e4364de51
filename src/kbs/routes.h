// The /kbs/v1 (ISecL) and /kbs/v0 (Trustee) HTTP dialects over a Broker, transport-free so the
// tests drive them without sockets: http/kbs_api.cpp adapts net::HttpRequest to WireRequest.
// Status codes and error bodies: docs/formats/kbs.md §4, §5, §7.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kbs/broker.h"

namespace custos::kbs {

struct WireRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // percent-decoded, without the query: "/kbs/v1/keys/abc/transfer"
  std::map<std::string, std::string> query;  // decoded
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string remote_addr;
  bool tls = false;
  std::string client_cert_der;
  // First value of a header, case-insensitive; empty when absent.
  std::string_view header(std::string_view name) const;
};

struct WireResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // JSON unless a Content-Type header says otherwise
};

WireResponse handle_v1(Broker& broker, const WireRequest& req);
WireResponse handle_v0(Broker& broker, const WireRequest& req);

// HTTP status for a broker Status (§7): 401 for nonce/session failures, 403 for attestation and
// policy refusals, 429 when challenge capacity is exhausted, ...
int status_for(const Status& st);

}  // namespace custos::kbs
