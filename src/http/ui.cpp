#include "http/ui.h"

#include <string>

#include "http/api.h"
#include "http/ui_assets.h"

namespace custos::http {
namespace {

std::string_view content_type(std::string_view name) {
  if (name.ends_with(".html")) return "text/html; charset=utf-8";
  if (name.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (name.ends_with(".css")) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

}  // namespace

net::HttpResponse serve_ui(const net::HttpRequest& req) {
  if (req.method != "GET" && req.method != "HEAD") return error_response(405, "unsupported method");
  std::string_view path = std::string_view(req.target).substr(0, req.target.find('?'));
  if (path == "/ui") {
    net::HttpResponse r;
    r.status = 307;
    r.headers.push_back({"Location", "/ui/"});
    return r;
  }
  std::string_view name = path.substr(std::min<size_t>(path.size(), 4));  // after "/ui/"
  if (path.substr(0, 4) != "/ui/") return error_response(404, "not found");
  // Every page of the app is index.html (no other routes yet).
  if (name.empty()) name = "index.html";
  for (const UiAsset& a : ui_assets()) {
    if (a.name != name) continue;
    net::HttpResponse r;
    r.status = 200;
    r.headers = {
        {"Content-Type", std::string(content_type(a.name))},
        // Only this server's own files and API: no inline script or style, no framing.
        {"Content-Security-Policy",
         "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
         "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"},
        {"X-Content-Type-Options", "nosniff"},
        {"X-Frame-Options", "DENY"},
        {"Referrer-Policy", "no-referrer"},
        {"Cache-Control", "no-store"},
    };
    r.body.assign(reinterpret_cast<const char*>(a.data), a.size);
    return r;
  }
  return error_response(404, "not found");
}

}  // namespace custos::http
