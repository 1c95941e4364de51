// The Vault request/response model that http/ builds and core/ answers. Paths never include the
// "/v1/" prefix. docs/api.md lists the endpoints.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "policy/policy.h"

namespace custos::core {

using Operation = policy::Operation;  // create, read, update, patch, delete, list
using policy::operation_name;

struct TokenEntry;

struct Request {
  Operation op = Operation::kRead;
  std::string path;  // "secret/data/app" (no leading slash, no /v1/)
  boost::json::object data;  // JSON body, merged with query parameters for GET/LIST
  std::string client_token;  // from X-Vault-Token or Authorization: Bearer
  std::string remote_addr;
  std::string request_id;
  bool http_put_or_post = false;  // POST/PUT: core decides create vs update by existence
  // X-Vault-Wrap-TTL in seconds: answer with a response-wrapping token holding the response
  // for this long (docs/wrapping.md). 0: not wrapped.
  int64_t wrap_ttl = 0;

  // Filled by core before an engine sees the request.
  const TokenEntry* token = nullptr;
  std::string mount_point;  // "secret/"
  std::string mount_type;   // "kv"
  std::string rel_path;     // path inside the mount: "data/app"
};

struct Auth {
  std::string client_token;
  std::string accessor;
  std::vector<std::string> policies;
  std::vector<std::string> token_policies;
  boost::json::object metadata;
  int64_t lease_duration = 0;
  bool renewable = false;
  std::string entity_id;
  std::string token_type = "service";
  bool orphan = false;
  int64_t num_uses = 0;
  int64_t period = 0;
  int64_t explicit_max_ttl = 0;
  std::string display_name;
  std::vector<std::string> bound_cidrs;  // token_bound_cidrs of the minted token
};

// A leased secret an engine returns (dynamic credentials): core registers a lease for it and
// the lease manager later calls the engine back to renew or revoke it with `internal`.
struct Secret {
  boost::json::object internal;  // engine-private data kept with the lease (never returned)
  int64_t ttl = 0;               // requested TTL in seconds (0: the mount's default)
  int64_t max_ttl = 0;           // 0: the mount's max
  bool renewable = true;
};

// A wrapped response's "wrap_info": the single-use token whose cubbyhole holds the response.
struct WrapInfo {
  std::string token;
  std::string accessor;
  int64_t ttl = 0;
  std::string creation_time;  // RFC 3339
  std::string creation_path;
  std::string wrapped_accessor;  // the accessor of a token whose creation was wrapped
};

struct Response {
  // 0: decided by the envelope writer (200 with a body, 204 without).
  int status = 0;
  std::optional<boost::json::object> data;
  // From an auth method's login: core mints a token when auth->client_token is empty, using
  // policies, metadata, lease_duration (requested TTL), renewable and display_name.
  std::optional<Auth> auth;
  std::optional<Secret> secret;
  std::string lease_id;
  int64_t lease_duration = 0;
  bool renewable = false;
  std::vector<std::string> warnings;
  // Set when the response was wrapped: everything else is then empty.
  std::optional<WrapInfo> wrap_info;
  // Some sys/ endpoints answer with a bare JSON document, not the envelope.
  std::optional<boost::json::value> raw;
  // A non-JSON body written as is (PKI's DER/PEM certificates and CRLs), with its Content-Type.
  std::optional<std::string> raw_body;
  std::string raw_content_type;
  // Set by Core when the caller defers durability (storage::DeferDurability): what the answer
  // still owes once the writes it reflects are durable, or could not be made so (`outcome`):
  // its audit entries. Returns the status to answer with (a failed outcome stays the answer).
  // The caller must run it exactly once.
  std::function<Status(const Status& outcome)> after_durable;

  static Response with_data(boost::json::object d) {
    Response r;
    r.data = std::move(d);
    return r;
  }
  static Response empty() { return {}; }
};

}  // namespace custos::core
