#include "core/attested.h"

#include "base/encoding.h"
#include "core/tokens.h"

namespace custos::core {

Result<AttestedCaller> attested_caller(const Request& req, std::string_view what) {
  const TokenEntry* token = req.token;
  if (token == nullptr || token->auth_method_type != "attest") {
    return permission_denied(std::string(what) +
                             " needs a token from the attest auth method (auth/attest/login)");
  }
  const auto* pk = token->meta.if_contains("tee_public_key");
  if (pk == nullptr || !pk->is_string() || pk->as_string().empty()) {
    return permission_denied(
        "the token's attestation bound no key: log in to auth/attest with \"public_key\"");
  }
  AttestedCaller c;
  c.public_key_b64 = std::string(pk->as_string());
  auto der = base64_decode(c.public_key_b64);
  if (!der.ok()) return data_loss("the token's tee_public_key is not base64");
  c.public_key = std::move(*der);
  for (const char* k : {"tee", "tcb_status", "evidence_sha256", "role", "mrenclave", "mrsigner",
                        "mrtd", "measurement", "host_data", "ak_name", "isv_prod_id", "isv_svn"}) {
    if (const auto* v = token->meta.if_contains(k); v && v->is_string()) c.claims[k] = *v;
  }
  c.claims["auth_path"] = token->path;  // the login path of the attest mount that appraised it
  c.attested_at = token->creation_time;
  return c;
}

}  // namespace custos::core
