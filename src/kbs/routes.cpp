#include "kbs/routes.h"

#include <exception>

#include <boost/json.hpp>

#include "base/encoding.h"

namespace custos::kbs {

namespace json = boost::json;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

WireResponse json_response(int status, const json::value& v) {
  WireResponse r;
  r.status = status;
  r.body = json::serialize(v);
  r.headers.emplace_back("Content-Type", "application/json");
  return r;
}

WireResponse v1_error(const Status& st) {
  json::object o;
  o["errors"] = json::array{json::string(st.message())};
  std::string_view reason = reason_of(st);
  if (!reason.empty()) o["reason"] = reason;
  return json_response(status_for(st), o);
}

WireResponse v0_error(const Status& st) {
  std::string_view reason = reason_of(st);
  std::string type = "InternalError";
  if (st.code() == Code::kResourceExhausted) {
    type = "TooManyRequests";
  } else if (st.code() == Code::kNotFound) {
    type = "ResourceNotFound";
  } else if (reason == "evidence.rejected" || reason == "binding.mismatch") {
    type = "AttestationFailed";
  } else if (reason == "policy.denied" || reason == "policy.unset") {
    type = "PolicyDeny";
  } else if (st.code() == Code::kUnauthenticated || st.code() == Code::kPermissionDenied) {
    type = reason == "session.invalid" ? "TokenNotFound" : "Unauthorized";
  } else if (st.code() == Code::kInvalidArgument || st.code() == Code::kFailedPrecondition) {
    type = "InvalidRequest";
  }
  json::object o;
  o["type"] = "https://github.com/confidential-containers/kbs/errors/" + type;
  o["detail"] = st.message();
  WireResponse r = json_response(status_for(st), o);
  r.headers[0].second = "application/problem+json";
  return r;
}

Result<json::object> body_object(const WireRequest& req, bool empty_ok) {
  if (req.body.empty() || req.body.find_first_not_of(" \t\r\n") == std::string::npos) {
    if (empty_ok) return json::object();
    return invalid_argument("request.invalid: empty body");
  }
  boost::system::error_code ec;
  json::value v = json::parse(req.body, ec);
  if (ec || !v.is_object()) return invalid_argument("request.invalid: the body is not a JSON object");
  return std::move(v.as_object());
}

std::string admin_token(const WireRequest& req) {
  std::string_view t = req.header("X-Vault-Token");
  if (!t.empty()) return std::string(t);
  std::string_view a = req.header("Authorization");
  if (a.size() > 7 && iequals(a.substr(0, 7), "Bearer ")) return std::string(a.substr(7));
  return "";
}

std::string base_url(const WireRequest& req) {
  std::string_view host = req.header("Host");
  if (host.empty()) host = "localhost";
  return std::string(req.tls ? "https://" : "http://") + std::string(host);
}

std::vector<std::string> split(std::string_view rest) {
  std::vector<std::string> out;
  while (!rest.empty()) {
    size_t p = rest.find('/');
    out.emplace_back(rest.substr(0, p));
    if (p == std::string_view::npos) break;
    rest.remove_prefix(p + 1);
  }
  if (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

std::string cookie_value(std::string_view cookies, std::string_view name) {
  while (!cookies.empty()) {
    size_t semi = cookies.find(';');
    std::string_view part = cookies.substr(0, semi);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.size() > name.size() && part.substr(0, name.size()) == name &&
        part[name.size()] == '=') {
      return std::string(part.substr(name.size() + 1));
    }
    if (semi == std::string_view::npos) break;
    cookies.remove_prefix(semi + 1);
  }
  return "";
}

// ---- /kbs/v1

WireResponse v1_keys(Broker& b, const WireRequest& req, const std::vector<std::string>& seg) {
  const std::string& m = req.method;
  if (seg.size() == 1) {
    if (m == "POST") {
      if (Status st = b.authorize(admin_token(req), req.remote_addr, "kbs/v1/keys",
                                  core::Operation::kCreate);
          !st.ok()) {
        return v1_error(st);
      }
      auto body = body_object(req, false);
      if (!body.ok()) return v1_error(body.status());
      auto k = b.create_key(*body, base_url(req));
      return k.ok() ? json_response(201, *k) : v1_error(k.status());
    }
    if (m == "GET" || m == "LIST") {
      if (Status st =
              b.authorize(admin_token(req), req.remote_addr, "kbs/v1/keys", core::Operation::kList);
          !st.ok()) {
        return v1_error(st);
      }
      auto l = b.list_keys(req.query, base_url(req));
      return l.ok() ? json_response(200, *l) : v1_error(l.status());
    }
    return v1_error(unimplemented("method not allowed"));
  }
  const std::string& id = seg[1];
  if (seg.size() == 3 && seg[2] == "transfer") {
    if (m != "POST") return v1_error(unimplemented("method not allowed"));
    auto body = body_object(req, true);
    if (!body.ok()) return v1_error(body.status());
    if (!body->contains("quote")) {
      auto n = b.transfer_challenge(id);
      if (!n.ok()) return v1_error(n.status());
      WireResponse r = json_response(
          401, json::object{{"nonce", n->nonce},
                            {"key_id", id},
                            {"expires_at", format_rfc3339(n->expires_at)}});
      r.headers.emplace_back("Nonce", n->nonce);
      return r;
    }
    auto out = b.transfer(id, *body, req.client_cert_der, req.remote_addr);
    return out.ok() ? json_response(200, *out) : v1_error(out.status());
  }
  if (seg.size() != 2) return v1_error(not_found("no such route"));
  std::string path = "kbs/v1/keys/" + id;
  if (m == "GET") {
    if (Status st = b.authorize(admin_token(req), req.remote_addr, path, core::Operation::kRead);
        !st.ok()) {
      return v1_error(st);
    }
    auto k = b.get_key(id, base_url(req));
    return k.ok() ? json_response(200, *k) : v1_error(k.status());
  }
  if (m == "DELETE") {
    if (Status st = b.authorize(admin_token(req), req.remote_addr, path, core::Operation::kDelete);
        !st.ok()) {
      return v1_error(st);
    }
    Status st = b.delete_key(id);
    if (!st.ok()) return v1_error(st);
    WireResponse r;
    r.status = 204;
    return r;
  }
  return v1_error(unimplemented("method not allowed"));
}

WireResponse v1_policies(Broker& b, const WireRequest& req, const std::vector<std::string>& seg) {
  const std::string& m = req.method;
  std::string path = "kbs/v1/key-transfer-policies";
  if (seg.size() == 1) {
    if (m == "POST") {
      if (Status st =
              b.authorize(admin_token(req), req.remote_addr, path, core::Operation::kCreate);
          !st.ok()) {
        return v1_error(st);
      }
      auto body = body_object(req, false);
      if (!body.ok()) return v1_error(body.status());
      auto p = b.put_transfer_policy(*body, std::nullopt);
      return p.ok() ? json_response(201, *p) : v1_error(p.status());
    }
    if (m == "GET" || m == "LIST") {
      if (Status st = b.authorize(admin_token(req), req.remote_addr, path, core::Operation::kList);
          !st.ok()) {
        return v1_error(st);
      }
      auto l = b.list_transfer_policies();
      return l.ok() ? json_response(200, *l) : v1_error(l.status());
    }
    return v1_error(unimplemented("method not allowed"));
  }
  if (seg.size() != 2) return v1_error(not_found("no such route"));
  const std::string& id = seg[1];
  path += "/" + id;
  if (m == "GET") {
    if (Status st = b.authorize(admin_token(req), req.remote_addr, path, core::Operation::kRead);
        !st.ok()) {
      return v1_error(st);
    }
    auto p = b.get_transfer_policy(id);
    return p.ok() ? json_response(200, *p) : v1_error(p.status());
  }
  if (m == "PUT") {
    if (Status st = b.authorize(admin_token(req), req.remote_addr, path, core::Operation::kUpdate);
        !st.ok()) {
      return v1_error(st);
    }
    auto body = body_object(req, false);
    if (!body.ok()) return v1_error(body.status());
    auto p = b.put_transfer_policy(*body, id);
    return p.ok() ? json_response(200, *p) : v1_error(p.status());
  }
  if (m == "DELETE") {
    if (Status st = b.authorize(admin_token(req), req.remote_addr, path, core::Operation::kDelete);
        !st.ok()) {
      return v1_error(st);
    }
    Status st = b.delete_transfer_policy(id);
    if (!st.ok()) return v1_error(st);
    WireResponse r;
    r.status = 204;
    return r;
  }
  return v1_error(unimplemented("method not allowed"));
}

std::string join3(const std::vector<std::string>& seg, size_t from) {
  std::string out;
  for (size_t i = from; i < seg.size(); ++i) out += (i == from ? "" : "/") + seg[i];
  return out;
}

}  // namespace

WireResponse handle_v1_unguarded(Broker& broker, const WireRequest& req);
WireResponse handle_v0_unguarded(Broker& broker, const WireRequest& req);

std::string_view WireRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

int status_for(const Status& st) {
  switch (st.code()) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument:
    case Code::kAlreadyExists:
    case Code::kFailedPrecondition: return 400;
    case Code::kUnauthenticated: return 401;
    case Code::kPermissionDenied: return 403;
    case Code::kNotFound: return 404;
    case Code::kUnimplemented: return 405;
    case Code::kResourceExhausted: return 429;
    case Code::kUnavailable: return 503;
    case Code::kDeadlineExceeded: return 504;
    case Code::kDataLoss:
    case Code::kInternal: return 500;
  }
  return 500;
}

namespace {
// Stored records are our own JSON, but a corrupted one must not throw out of a handler.
template <typename Fn>
WireResponse guarded(Fn fn, bool v0) {
  try {
    return fn();
  } catch (const std::exception&) {
    Status st = internal_error("internal error while handling the key broker request");
    return v0 ? v0_error(st) : v1_error(st);
  }
}
}  // namespace

// The broker uses the core's token store, ACLs and barrier: counted as a request (so a seal
// waits for it), and refused while the core does not serve (sealed, or an HA standby).
WireResponse handle_v1(Broker& broker, const WireRequest& req) {
  core::Core::RequestScope scope(broker.core());
  if (!broker.core().serving()) return v1_error(unavailable("Vault is sealed"));
  return guarded([&] { return handle_v1_unguarded(broker, req); }, false);
}

WireResponse handle_v0(Broker& broker, const WireRequest& req) {
  core::Core::RequestScope scope(broker.core());
  if (!broker.core().serving()) return v0_error(unavailable("Vault is sealed"));
  return guarded([&] { return handle_v0_unguarded(broker, req); }, true);
}

WireResponse handle_v1_unguarded(Broker& broker, const WireRequest& req) {
  constexpr std::string_view kPrefix = "/kbs/v1/";
  if (req.path.rfind(kPrefix, 0) != 0) return v1_error(not_found("no such route"));
  std::vector<std::string> seg = split(std::string_view(req.path).substr(kPrefix.size()));
  if (seg.empty()) return v1_error(not_found("no such route"));
  if (seg[0] == "keys") return v1_keys(broker, req, seg);
  if (seg[0] == "key-transfer-policies") return v1_policies(broker, req, seg);
  return v1_error(not_found("no such route"));
}

WireResponse handle_v0_unguarded(Broker& broker, const WireRequest& req) {
  constexpr std::string_view kPrefix = "/kbs/v0/";
  if (req.path.rfind(kPrefix, 0) != 0) return v0_error(not_found("no such route"));
  std::vector<std::string> seg = split(std::string_view(req.path).substr(kPrefix.size()));
  if (seg.empty()) return v0_error(not_found("no such route"));
  const std::string& m = req.method;
  std::string session = cookie_value(req.header("Cookie"), "kbs-session-id");

  if (seg.size() == 1 && seg[0] == "auth" && m == "POST") {
    auto body = body_object(req, false);
    if (!body.ok()) return v0_error(body.status());
    auto c = broker.v0_auth(*body);
    if (!c.ok()) return v0_error(c.status());
    WireResponse r = json_response(200, json::object{{"nonce", c->nonce}, {"extra-params", ""}});
    r.headers.emplace_back("Set-Cookie", "kbs-session-id=" + c->session_id +
                                             "; Path=/kbs/v0; HttpOnly; Max-Age=" +
                                             std::to_string(broker.config().nonce_ttl.count()));
    return r;
  }
  if (seg.size() == 1 && seg[0] == "attest" && m == "POST") {
    auto token = broker.v0_attest(session, req.body, req.remote_addr);
    if (!token.ok()) return v0_error(token.status());
    WireResponse r = json_response(200, json::object{{"token", *token}});
    r.headers.emplace_back("Set-Cookie", "kbs-session-id=" + session +
                                             "; Path=/kbs/v0; HttpOnly; Max-Age=" +
                                             std::to_string(broker.config().nonce_ttl.count()));
    return r;
  }
  if (seg[0] == "resource" && seg.size() == 4) {
    std::string path = join3(seg, 1);
    if (m == "GET") {
      std::string bearer;
      std::string_view a = req.header("Authorization");
      if (a.size() > 7 && iequals(a.substr(0, 7), "Bearer ")) bearer = std::string(a.substr(7));
      auto jwe = broker.v0_resource(session, bearer, path, req.remote_addr);
      return jwe.ok() ? json_response(200, *jwe) : v0_error(jwe.status());
    }
    std::string acl = "kbs/v0/resource/" + path;
    if (m == "PUT" || m == "POST") {
      if (Status st =
              broker.authorize(admin_token(req), req.remote_addr, acl, core::Operation::kUpdate);
          !st.ok()) {
        return v0_error(st);
      }
      Status st = broker.put_resource(path, as_bytes(req.body));
      if (!st.ok()) return v0_error(st);
      WireResponse r;
      r.status = 204;
      return r;
    }
    if (m == "DELETE") {
      if (Status st =
              broker.authorize(admin_token(req), req.remote_addr, acl, core::Operation::kDelete);
          !st.ok()) {
        return v0_error(st);
      }
      Status st = broker.delete_resource(path);
      if (!st.ok()) return v0_error(st);
      WireResponse r;
      r.status = 204;
      return r;
    }
    return v0_error(unimplemented("method not allowed"));
  }
  if (seg[0] == "resource-policy" && (seg.size() == 1 || seg.size() == 4)) {
    std::string path = seg.size() == 4 ? join3(seg, 1) : "";
    std::string acl = "kbs/v0/resource-policy" + (path.empty() ? "" : "/" + path);
    if (m == "GET") {
      if (Status st =
              broker.authorize(admin_token(req), req.remote_addr, acl, core::Operation::kRead);
          !st.ok()) {
        return v0_error(st);
      }
      auto p = broker.get_resource_policy(path);
      return p.ok() ? json_response(200, *p) : v0_error(p.status());
    }
    if (m == "PUT" || m == "POST") {
      if (Status st =
              broker.authorize(admin_token(req), req.remote_addr, acl, core::Operation::kUpdate);
          !st.ok()) {
        return v0_error(st);
      }
      auto body = body_object(req, false);
      if (!body.ok()) return v0_error(body.status());
      Status st = broker.put_resource_policy(path, *body);
      if (!st.ok()) return v0_error(st);
      WireResponse r;
      r.status = 204;
      return r;
    }
    return v0_error(unimplemented("method not allowed"));
  }
  return v0_error(not_found("no such route"));
}

}  // namespace custos::kbs
