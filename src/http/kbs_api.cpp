#include "http/kbs_api.h"

#include "kbs/routes.h"

namespace custos::http {

namespace {

// Splits the target into a decoded path and decoded query parameters; nullopt-like failure is
// reported as a 400 by the caller. The body moves: the route is the request's last user, and an
// evidence body is large enough that a copy costs a trip through malloc's large-chunk path.
Result<kbs::WireRequest> to_wire(net::HttpRequest& in) {
  kbs::WireRequest w;
  w.method = in.method;
  std::string_view target = in.target;
  size_t q = target.find('?');
  ASSIGN_OR_RETURN(w.path, percent_decode(target.substr(0, q), false));
  RETURN_IF_ERROR(check_path(w.path));
  if (q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
      size_t amp = query.find('&');
      std::string_view pair = query.substr(0, amp);
      size_t eq = pair.find('=');
      ASSIGN_OR_RETURN(std::string k, percent_decode(pair.substr(0, eq), true));
      std::string v;
      if (eq != std::string_view::npos) {
        ASSIGN_OR_RETURN(v, percent_decode(pair.substr(eq + 1), true));
      }
      if (!k.empty()) w.query.emplace(std::move(k), std::move(v));
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }
  for (const auto& h : in.headers) w.headers.emplace_back(h.name, h.value);
  w.body = std::move(in.body);
  w.remote_addr = in.remote_addr;
  w.tls = in.tls;
  w.client_cert_der = std::move(in.client_cert_der);
  return w;
}

net::HttpResponse from_wire(kbs::WireResponse r) {
  net::HttpResponse out;
  out.status = r.status;
  for (auto& [k, v] : r.headers) out.headers.push_back(net::Header{std::move(k), std::move(v)});
  out.body = std::move(r.body);
  return out;
}

RouteHandler route(kbs::Broker& broker, bool v1) {
  return [&broker, v1](net::HttpRequest& req) -> net::HttpResponse {
    auto wire = to_wire(req);
    if (!wire.ok()) return error_response(400, wire.status().message());
    return from_wire(v1 ? kbs::handle_v1(broker, *wire) : kbs::handle_v0(broker, *wire));
  };
}

}  // namespace

void register_kbs_routes(Api& api, kbs::Broker& broker) {
  api.add_route("/kbs/v1/", route(broker, true));
  api.add_route("/kbs/v0/", route(broker, false));
}

}  // namespace custos::http
