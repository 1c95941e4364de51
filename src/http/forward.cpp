#include "http/forward.h"

#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>

#include "base/encoding.h"
#include "base/log.h"
#include "crypto/hash.h"
#include "http/api.h"

namespace custos::http {
namespace {

constexpr std::string_view kForwardedFor = "X-Custos-Forwarded-For";
constexpr std::string_view kForwardedTime = "X-Custos-Forwarded-Time";
constexpr std::string_view kForwardedSig = "X-Custos-Forwarded-Signature";
// How far the forwarding time may be from the active server's clock.
constexpr int64_t kMaxSkewSeconds = 60;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto l = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (l(a[i]) != l(b[i])) return false;
  }
  return true;
}

// Hop-by-hop headers, framing, and the forwarding headers: never passed on as they came.
bool passed_on(std::string_view name) {
  for (std::string_view h :
       {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade", "content-length", "host", "user-agent",
        "x-custos-forwarded-for", "x-custos-forwarded-time", "x-custos-forwarded-signature"}) {
    if (iequals(name, h)) return false;
  }
  return true;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string path_of(std::string_view target) {
  return std::string(target.substr(0, target.find('?')));
}

// What the signature binds besides the address: the body and the credentials it came with, so
// captured headers cannot vouch for another request.
std::string request_digest(const net::HttpRequest& req) {
  std::string material = std::string(req.header("X-Vault-Token")) + '\n' +
                         std::string(req.header("Authorization")) + '\n' + req.body;
  return hex_encode(crypto::sha256(as_bytes(material)));
}

}  // namespace

Forwarder::Forwarder(core::Core& core, net::ClientOptions client)
    : core_(core), client_options_(std::move(client)) {}

bool Forwarder::served_locally(const net::HttpRequest& req) {
  const std::string path = path_of(req.target);
  // The web UI's static files: every server has them; the page's API calls are forwarded.
  if (path == "/" || path == "/ui" || path.rfind("/ui/", 0) == 0) return true;
  for (std::string_view p : {"/v1/sys/health", "/v1/sys/seal-status", "/v1/sys/leader",
                             "/v1/sys/init", "/v1/sys/unseal", "/v1/sys/seal"}) {
    if (path == p) return true;
  }
  return false;
}

bool Forwarder::was_forwarded(const net::HttpRequest& req) {
  return !req.header(kForwardedFor).empty() || !req.header(kForwardedSig).empty();
}

std::string Forwarder::signature(const SecretBytes& key, std::string_view client,
                                 const net::HttpRequest& req, std::string_view time) const {
  std::string msg = "custos-forwarded-v1\n";
  const std::string digest = request_digest(req);
  for (std::string_view part : {client, std::string_view(req.method), std::string_view(req.target),
                                time, std::string_view(digest)}) {
    msg += part;
    msg += '\n';
  }
  return hex_encode(crypto::hmac_sha256(key.span(), as_bytes(msg)));
}

Result<net::HttpResponse> Forwarder::send(std::string_view method, const std::string& url,
                                          const std::vector<net::Header>& headers,
                                          std::string_view body) {
  std::unique_ptr<net::HttpClient> client;
  {
    std::lock_guard lock(pool_mu_);
    if (!pool_.empty()) {
      client = std::move(pool_.back());
      pool_.pop_back();
    }
  }
  if (!client) client = std::make_unique<net::HttpClient>(client_options_);
  auto r = client->request(method, url, headers, body);
  if (r.ok()) {
    std::lock_guard lock(pool_mu_);
    pool_.push_back(std::move(client));
  }
  return r;
}

net::HttpResponse Forwarder::forward(const net::HttpRequest& req) {
  // Only a path goes after the active server's address: anything else ("@host/...") could
  // point the request elsewhere.
  if (req.target.empty() || req.target[0] != '/') {
    return error_response(400, "malformed request target");
  }
  if (was_forwarded(req)) {
    // Forwarded here by a standby that took this server for the active one: no second hop.
    return error_response(503,
                          "this server is a standby too; the active server changed while "
                          "the request was forwarded: try again");
  }
  auto leader = core_.leader();
  if (!leader.ok()) return error_response(leader.status());
  if (leader->leader_address.empty()) {
    return error_response(503,
                          "this server is a standby and no active server is known at the "
                          "moment: try again shortly");
  }
  auto key = core_.forwarding_key();
  if (!key.ok()) return error_response(key.status());
  std::string base = leader->leader_address;
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::vector<net::Header> headers;
  for (const auto& h : req.headers) {
    if (passed_on(h.name)) headers.push_back(h);
  }
  const std::string time = std::to_string(unix_now());
  headers.push_back({std::string(kForwardedFor), req.remote_addr});
  headers.push_back({std::string(kForwardedTime), time});
  headers.push_back({std::string(kForwardedSig), signature(*key, req.remote_addr, req, time)});
  auto r = send(req.method, base + req.target, headers, req.body);
  // The server named may no longer be the active one: ask the lock again next time.
  if (!r.ok() || r->status >= 500) {
    core_.forget_leader();
  }
  if (!r.ok()) {
    LOG_WARN("http",
             "forwarding to the active server " << base << " failed: " << r.status().message());
    return error_response(503,
                          "this server is a standby and could not reach the active server "
                          "(" +
                              base + "): " + r.status().message());
  }
  net::HttpResponse out;
  out.status = r->status;
  for (auto& h : r->headers) {
    if (passed_on(h.name) && !iequals(h.name, "date") && !iequals(h.name, "server")) {
      out.headers.push_back(std::move(h));
    }
  }
  out.body = std::move(r->body);
  return out;
}

net::HttpResponse Forwarder::seal_standby(const net::HttpRequest& req) {
  if (req.method != "PUT" && req.method != "POST")
    return error_response(405, "unsupported operation");
  // The token store lives with the active server: ask it what the caller's token may do.
  net::HttpRequest check;
  check.method = "POST";
  check.target = "/v1/sys/capabilities-self";
  check.remote_addr = req.remote_addr;
  for (const auto& h : req.headers) {
    if (iequals(h.name, "x-vault-token") || iequals(h.name, "authorization")) {
      check.headers.push_back(h);
    }
  }
  check.headers.push_back({"Content-Type", "application/json"});
  check.body = R"({"paths":["sys/seal"]})";
  net::HttpResponse answer = forward(check);
  if (answer.status != 200) {
    if (answer.status == 403 || answer.status == 400)
      return error_response(403, "permission denied");
    return answer;
  }
  boost::system::error_code ec;
  auto v = boost::json::parse(answer.body, ec);
  const boost::json::value* caps = nullptr;
  if (!ec && v.is_object()) {
    const auto& o = v.as_object();
    caps = o.if_contains("sys/seal");
    if (!caps) {
      if (const auto* d = o.if_contains("data"); d && d->is_object()) {
        caps = d->as_object().if_contains("sys/seal");
      }
    }
  }
  bool root = false, sudo = false, update = false;
  if (caps && caps->is_array()) {
    for (const auto& c : caps->as_array()) {
      if (!c.is_string()) continue;
      root = root || c.as_string() == "root";
      sudo = sudo || c.as_string() == "sudo";
      update = update || c.as_string() == "update";
    }
  }
  if (!root && !(sudo && update)) return error_response(403, "permission denied");
  if (Status st = core_.seal(); !st.ok()) return error_response(st);
  net::HttpResponse out;
  out.status = 204;
  return out;
}

void Forwarder::accept_forwarded(net::HttpRequest& req) {
  if (!was_forwarded(req)) return;
  const std::string client(req.header(kForwardedFor));
  const std::string time(req.header(kForwardedTime));
  const std::string sig(req.header(kForwardedSig));
  std::erase_if(req.headers, [](const net::Header& h) {
    return iequals(h.name, kForwardedFor) || iequals(h.name, kForwardedTime) ||
           iequals(h.name, kForwardedSig);
  });
  auto key = core_.forwarding_key();
  if (!key.ok()) return;
  int64_t t = 0;
  bool time_ok = !time.empty() && time.size() <= 19;
  for (char c : time) time_ok = time_ok && c >= '0' && c <= '9';
  if (time_ok) t = std::stoll(time);
  const std::string want = signature(*key, client, req, time);
  if (!time_ok || std::llabs(unix_now() - t) > kMaxSkewSeconds || !constant_time_equal(want, sig)) {
    LOG_WARN("http",
             "ignored forwarding headers from " << req.remote_addr << " (bad or stale signature)");
    return;
  }
  req.remote_addr = client;
}

}  // namespace custos::http
