#include "http/api.h"

#include <array>
#include <boost/json.hpp>
#include <chrono>
#include <optional>

#include "base/clock.h"
#include "base/encoding.h"
#include "base/log.h"
#include "base/metrics.h"
#include "core/envelope.h"
#include "crypto/random.h"
#include "http/forward.h"
#include "http/ui.h"
#include "storage/durability.h"

namespace custos::http {
namespace {

// Vault's method -> operation mapping, before ?list=true and the create/update split Core
// makes. nullopt: not a method of the API.
std::optional<core::Operation> operation_for(std::string_view method) {
  if (method == "GET" || method == "HEAD") return core::Operation::kRead;
  if (method == "LIST") return core::Operation::kList;
  if (method == "POST" || method == "PUT") return core::Operation::kUpdate;
  if (method == "DELETE") return core::Operation::kDelete;
  if (method == "PATCH") return core::Operation::kPatch;
  return std::nullopt;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

net::HttpResponse json_response(int status, const boost::json::value& v) {
  net::HttpResponse r;
  r.status = status;
  r.headers.push_back({"Content-Type", "application/json"});
  r.headers.push_back({"Cache-Control", "no-store"});
  r.body = boost::json::serialize(v);
  r.body += '\n';
  return r;
}

}  // namespace

int http_status(const Status& st) {
  switch (st.code()) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument:
    case Code::kAlreadyExists:
    case Code::kFailedPrecondition: return 400;
    case Code::kNotFound: return 404;
    case Code::kPermissionDenied: return 403;
    case Code::kUnavailable: return 503;
    case Code::kResourceExhausted: return 429;
    case Code::kUnauthenticated: return 401;
    case Code::kDeadlineExceeded: return 504;
    case Code::kUnimplemented: return 405;
    case Code::kDataLoss:
    case Code::kInternal: return 500;
  }
  return 500;
}

net::HttpResponse error_response(int status, std::string_view message) {
  boost::json::array errors;
  if (!message.empty()) errors.emplace_back(message);
  return json_response(status, boost::json::object{{"errors", std::move(errors)}});
}

net::HttpResponse error_response(const Status& st) {
  int status = http_status(st);
  // Internal details stay in the server log; clients get a stable message.
  if (st.code() == Code::kDataLoss) {
    LOG_ERROR("http", "storage integrity error: " << st.message());
    return error_response(status, "internal error: stored data failed integrity checks");
  }
  return error_response(status, st.message());
}

Result<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return invalid_argument("malformed percent-encoding");
      int hi = hex_digit(s[i + 1]);
      int lo = hex_digit(s[i + 2]);
      if (hi < 0 || lo < 0) return invalid_argument("malformed percent-encoding");
      c = static_cast<char>((hi << 4) | lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') return invalid_argument("NUL bytes are not allowed in paths or parameters");
    out += c;
  }
  // Paths and parameters can be echoed in answers (error messages, lists), which are JSON.
  if (!valid_utf8(out)) return invalid_argument("paths and parameters must be valid UTF-8");
  return out;
}

Status check_path(std::string_view path) {
  if (path.size() > 4096) return invalid_argument("path is too long");
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    std::string_view seg = path.substr(start, slash == std::string_view::npos ? std::string_view::npos
                                                                               : slash - start);
    if (seg == ".." || seg == ".") return invalid_argument("invalid path: relative segments are not allowed");
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  for (char c : path) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return invalid_argument("invalid path: control characters are not allowed");
    }
  }
  return ok_status();
}

void Api::add_route(std::string prefix, RouteHandler handler) {
  routes_[std::move(prefix)] = std::move(handler);
}

namespace {

// Every request, by method and status class (a fixed set of series, resolved once), and the
// time to its answer (built and, for a write, durable): Vault's vault.core.handle_request.
struct RequestMetrics {
  static constexpr std::array<std::string_view, 8> kMethods = {"GET",  "PUT",   "POST", "DELETE",
                                                               "LIST", "PATCH", "HEAD", "other"};
  static constexpr std::array<std::string_view, 5> kClasses = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  std::array<std::array<metrics::Counter*, kClasses.size()>, kMethods.size()> requests{};
  metrics::Histogram* latency = nullptr;

  RequestMetrics() {
    auto& r = metrics::Registry::global();
    for (size_t m = 0; m < kMethods.size(); ++m) {
      for (size_t c = 0; c < kClasses.size(); ++c) {
        requests[m][c] =
            &r.counter("custos_http_requests_total", "HTTP requests answered",
                       {{"method", std::string(kMethods[m])}, {"code", std::string(kClasses[c])}});
      }
    }
    latency =
        &r.histogram("vault_core_handle_request",
                     "Seconds spent on a request, to its answer (a lone writer's fsync included)");
  }

  void record(std::string_view method, int status, std::chrono::steady_clock::duration took) {
    size_t m = 0;
    while (m + 1 < kMethods.size() && kMethods[m] != method) ++m;
    const size_t c = status >= 100 && status < 600 ? static_cast<size_t>(status / 100 - 1) : 4;
    requests[m][c]->inc();
    latency->observe_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count());
  }
};

RequestMetrics& request_metrics() {
  static RequestMetrics m;
  return m;
}

}  // namespace

net::HttpResponse Api::handle(net::HttpRequest& req) {
  const auto started = std::chrono::steady_clock::now();
  // Writes made for this request do not wait for their fsync; its answer does (below).
  AfterDurable after;
  net::HttpResponse resp;
  {
    storage::DeferDurability defer;
    resp = route(req, after);
  }  // a lone writer's fsync runs here, the answer built while the device wrote
  hold_until_durable(resp, std::move(after));
  request_metrics().record(req.method, resp.status, std::chrono::steady_clock::now() - started);
  return resp;
}

// Everything the answer may reflect (this request's writes, or other requests' writes it read)
// was visible before this point; the answer leaves once all of that is durable, so no client
// is ever told of a write a crash could still undo. With nothing pending (no write in flight)
// it leaves at once. `after` (the response's audit entries) runs as it leaves, on the
// connection's thread, with the outcome the client is given.
void Api::hold_until_durable(net::HttpResponse& resp, AfterDurable after) {
  if (after) resp.on_release = std::move(after);
  storage::Backend& backend = core_.barrier().physical();
  uint64_t ticket = backend.sync_point();
  if (ticket == 0) return;
  resp.hold = [&backend, ticket](net::Release release) {
    backend.on_durable(ticket, [release = std::move(release)](Status st) {
      if (!st.ok()) {
        LOG_ERROR("http", "a response was withheld: the writes it reflects are not durable: "
                              << st.message());
        release(internal_error("storage failure: the write could not be made durable"));
        return;
      }
      release(ok_status());
    });
  };
}

Api::Api(core::Core& core) : core_(core) {}
Api::~Api() = default;

void Api::enable_ui() {
  ui_ = true;
  add_route("/ui/", serve_ui);  // and "/ui" itself, in route()
}

void Api::enable_forwarding(net::ClientOptions client) {
  forwarder_ = std::make_unique<Forwarder>(core_, std::move(client));
}

net::HttpResponse Api::route(net::HttpRequest& req, AfterDurable& after) {
  if (forwarder_) {
    if (core_.standby()) {
      if (Forwarder::served_locally(req)) {
        if (req.target.substr(0, req.target.find('?')) == "/v1/sys/seal") {
          return forwarder_->seal_standby(req);
        }
      } else {
        return forwarder_->forward(req);
      }
    } else {
      forwarder_->accept_forwarded(req);
    }
  }
  std::string_view target = req.target;
  size_t q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  if (raw_path.substr(0, 4) == "/v1/") return handle_vault(req, raw_path.substr(4), query, after);
  for (auto it = routes_.rbegin(); it != routes_.rend(); ++it) {
    if (raw_path.substr(0, it->first.size()) == it->first) return it->second(req);
  }
  if (raw_path == "/ui" && ui_) return serve_ui(req);
  if (raw_path == "/" && ui_) {
    net::HttpResponse r;
    r.status = 307;
    r.headers.push_back({"Location", "/ui/"});
    return r;
  }
  if (raw_path == "/" || raw_path == "/ui" || raw_path == "/ui/") {
    return error_response(404, "the web UI is off: set ui = true in the configuration");
  }
  return error_response(404, "not found: the Vault API is served under /v1/");
}

bool Api::can_run_inline(const net::HttpRequest& req) const {
  std::string_view target = req.target;
  std::string_view path = target.substr(0, target.find('?'));
  if (!path.starts_with("/v1/")) return false;
  path.remove_prefix(4);
  // Escapes and dot segments are left to handle_vault's checks, on a worker.
  if (path.find('%') != std::string_view::npos || path.find("..") != std::string_view::npos) {
    return false;
  }
  std::optional<core::Operation> op = operation_for(req.method);
  return op && core_.never_blocks(std::string(path), *op);
}

net::HttpResponse Api::handle_vault(net::HttpRequest& http, std::string_view raw_path,
                                    std::string_view query, AfterDurable& after) {
  auto path = percent_decode(raw_path, false);
  if (!path.ok()) return error_response(path.status());
  if (Status st = check_path(*path); !st.ok()) return error_response(st);

  core::Request req;
  req.path = *path;
  req.remote_addr = http.remote_addr;
  req.request_id = crypto::random_uuid();
  const std::string& m = http.method;
  bool list_query = false;

  // Query parameters: merged into data for read-like requests (Vault's behaviour).
  boost::json::object params;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    auto val = percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!key.ok() || !val.ok()) return error_response(400, "malformed query string");
    if (!key->empty()) {
      if (*key == "list") {
        list_query = (*val == "true" || *val == "1" || val->empty());
      } else {
        params[*key] = *val;
      }
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }

  std::optional<core::Operation> op = operation_for(m);
  if (!op) {
    return error_response(405, "unsupported HTTP method " + (m.size() <= 16 ? m : m.substr(0, 16)));
  }
  req.op = *op == core::Operation::kRead && list_query ? core::Operation::kList : *op;
  req.http_put_or_post = m == "POST" || m == "PUT";

  if (!http.body.empty()) {
    boost::system::error_code ec;
    boost::json::parse_options opts;
    opts.max_depth = 64;
    auto v = boost::json::parse(http.body, ec, {}, opts);
    if (ec) return error_response(400, "failed to parse JSON input: " + ec.message());
    if (!v.is_object()) {
      if (v.is_null()) {
        // "null" is an empty body.
      } else {
        return error_response(400, "failed to parse JSON input: the body must be a JSON object");
      }
    } else {
      req.data = std::move(v.as_object());
    }
  }
  if (req.op == core::Operation::kRead || req.op == core::Operation::kList ||
      req.op == core::Operation::kDelete) {
    for (auto& [k, v] : params) {
      if (!req.data.contains(k)) req.data[k] = v;
    }
  }

  std::string_view token = http.header("X-Vault-Token");
  if (token.empty()) {
    std::string_view auth = http.header("Authorization");
    if (auth.size() > 7 && (auth.substr(0, 7) == "Bearer " || auth.substr(0, 7) == "bearer ")) {
      token = auth.substr(7);
    }
  }
  req.client_token = std::string(token);
  if (std::string_view wrap = http.header("X-Vault-Wrap-TTL"); !wrap.empty()) {
    auto ttl = parse_duration(wrap);
    if (!ttl.ok() || ttl->count() <= 0) {
      return error_response(400, "invalid X-Vault-Wrap-TTL header: a positive duration is needed");
    }
    req.wrap_ttl = ttl->count();
  }
  if (std::string_view format = http.header("X-Vault-Wrap-Format");
      !format.empty() && format != "json") {
    return error_response(400, "unsupported X-Vault-Wrap-Format: only \"json\" is supported");
  }

  Result<core::Response> result = core_.handle(req);
  SecretString wipe_token(std::move(req.client_token));
  if (!result.ok()) return error_response(result.status());
  core::Response& r = *result;
  after = std::move(r.after_durable);
  if (r.raw) {
    auto resp = json_response(r.status ? r.status : 200, *r.raw);
    if (m == "HEAD") resp.body.clear();
    return resp;
  }
  if (r.raw_body) {
    net::HttpResponse resp;
    resp.status = r.status ? r.status : 200;
    resp.headers.push_back({"Content-Type", r.raw_content_type.empty()
                                               ? std::string("application/octet-stream")
                                               : r.raw_content_type});
    if (m != "HEAD") resp.body = std::move(*r.raw_body);
    return resp;
  }
  if (!core::has_envelope(r)) {
    net::HttpResponse resp;
    resp.status = r.status ? r.status : 204;
    return resp;
  }
  boost::json::object env = core::render_envelope(req, r);
  return json_response(r.status ? r.status : 200, env);
}

}  // namespace custos::http
