// The key broker's HTTP routes beside /v1/: /kbs/v1/ (Intel SecL KBS) and /kbs/v0/ (Trustee
// RCAR). A thin adapter from net::HttpRequest to kbs::WireRequest; the dialects live in
// kbs/routes.h and the wire contract in docs/formats/kbs.md. (auth/attest is a Vault auth
// method and needs no route: Broker::register_auth_method + Core::enable_auth.)
#pragma once

#include "http/api.h"
#include "kbs/broker.h"

namespace custos::http {

// Registers "/kbs/v1/" and "/kbs/v0/" on `api`. `broker` must outlive `api`.
void register_kbs_routes(Api& api, kbs::Broker& broker);

}  // namespace custos::http
