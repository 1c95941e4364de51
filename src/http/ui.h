// The web UI (docs/ui.md): seal status and unsealing, sign-in with a token, a KV browser. Static
// files compiled into the binary, served under /ui/ with a strict Content-Security-Policy; the
// page talks to the same /v1/ API as every client. Enabled by `ui = true` (and in dev mode).
#pragma once

#include "net/http.h"

namespace custos::http {

// GET/HEAD /ui, /ui/ and /ui/<file>: the files, or 404. Anything else: 405.
net::HttpResponse serve_ui(const net::HttpRequest& req);

}  // namespace custos::http
