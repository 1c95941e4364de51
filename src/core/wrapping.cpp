// Response wrapping (docs/wrapping.md), as Vault does it. A request sent with X-Vault-Wrap-TTL
// is answered with a single-use token instead of its response: the token holds only the
// "response-wrapping" policy, is an orphan, cannot be renewed and lives for the wrap TTL; the
// response waits in the token's cubbyhole until sys/wrapping/unwrap returns it, once. Keys in a
// wrapping token's cubbyhole (Vault's layout):
//   response   {"response": "<the response's JSON text>"}
//   wrapinfo   {"creation_ttl": seconds, "creation_time": RFC 3339, "creation_path": path}
#include <boost/json.hpp>

#include "base/cleanup.h"
#include "base/log.h"
#include "core/core.h"
#include "core/engines/cubbyhole.h"
#include "core/envelope.h"

namespace custos::core {
namespace {

constexpr std::string_view kResponseKey = "response";
constexpr std::string_view kWrapInfoKey = "wrapinfo";

Status invalid_wrapping_token() {
  return invalid_argument("wrapping token is not valid or does not exist");
}

}  // namespace

Result<View> Core::cubbyhole_mount() {
  std::shared_lock lock(mounts_mu_);
  auto it = mounts_.find(std::string(kCubbyholePath));
  if (it == mounts_.end()) return internal_error("the cubbyhole mount is missing");
  return View(barrier_, "logical/" + it->second->entry.uuid + "/");
}

Result<View> Core::cubbyhole(const std::string& token_hash) {
  ASSIGN_OR_RETURN(View mount, cubbyhole_mount());
  return cubbyhole_of(mount, token_hash);
}

Result<Response> Core::wrap_response(const Request& req, Response resp) {
  if (req.wrap_ttl <= 0 || resp.wrap_info) return resp;
  if (resp.raw_body) {
    return invalid_argument("the response of " + req.path + " is not JSON and cannot be wrapped");
  }
  if (!resp.raw && !has_envelope(resp)) return resp;  // 204: nothing to wrap
  // What the wrapped response lets its holder use, named without unwrapping it (Vault): a
  // token's accessor, or an AppRole secret ID's.
  std::string wrapped_accessor = resp.auth ? resp.auth->accessor : "";
  if (!resp.auth && resp.data) {
    if (const auto* a = resp.data->if_contains("secret_id_accessor"); a && a->is_string()) {
      wrapped_accessor = std::string(a->as_string());
    }
  }
  SecretString text(boost::json::serialize(
      resp.raw ? *resp.raw : boost::json::value(render_envelope(req, resp))));
  return mint_wrapping_token(text.str(), req.wrap_ttl, req.path, wrapped_accessor);
}

Result<Response> Core::mint_wrapping_token(const std::string& text, int64_t ttl,
                                           const std::string& creation_path,
                                           const std::string& wrapped_accessor) {
  TokenCreateParams p;
  p.policies = {std::string(policy::kResponseWrappingPolicyName)};
  p.no_default_policy = true;
  p.wrapping = true;
  p.num_uses = 1;
  p.ttl = ttl;
  p.explicit_max_ttl = ttl;
  p.renewable = false;
  p.orphan = true;
  p.path = creation_path;
  ASSIGN_OR_RETURN(auto created, tokens_->create(p));
  SecretString token(std::move(created.first));
  const TokenEntry& e = created.second;
  std::string created_at = format_rfc3339_nanos(from_unix_seconds(e.creation_time));
  Status stored = [&]() -> Status {
    ASSIGN_OR_RETURN(View box, cubbyhole(e.hash));
    WriteBatch batch;
    batch.put_json(kResponseKey, boost::json::object{{"response", text}});
    batch.put_json(kWrapInfoKey, boost::json::object{{"creation_ttl", e.creation_ttl},
                                                     {"creation_time", created_at},
                                                     {"creation_path", creation_path}});
    return box.apply(std::move(batch));
  }();
  if (!stored.ok()) {
    if (Status st = tokens_->revoke(e); !st.ok()) {
      LOG_WARN("core", "could not revoke an empty wrapping token: " << st.message());
    }
    return stored;
  }
  WrapInfo w;
  w.token = token.str();
  w.accessor = e.accessor;
  w.ttl = e.creation_ttl;
  w.creation_time = std::move(created_at);
  w.creation_path = creation_path;
  w.wrapped_accessor = wrapped_accessor;
  Response out;
  out.wrap_info = std::move(w);
  return out;
}

Result<Response> Core::sys_wrapping(Request& req, const std::string& rest) {
  if (req.op != Operation::kUpdate && req.op != Operation::kCreate) {
    return unimplemented("unsupported operation");
  }
  if (rest == "wrap") {
    if (req.wrap_ttl <= 0)
      return invalid_argument("endpoint requires response wrapping to be used");
    return Response::with_data(req.data);  // handle() wraps it
  }
  if (rest != "unwrap" && rest != "rewrap") return not_found("unsupported path");

  // The wrapping token is either given in the body (any token allowed to call this endpoint
  // may unwrap it) or is the request's own token, whose only use handle() already took (and
  // which it revokes once this request is done).
  ASSIGN_OR_RETURN(std::string given_text, field_string(req.data, "token"));
  SecretString given(std::move(given_text));
  std::optional<TokenEntry> entry;
  if (given.empty()) {
    if (req.token == nullptr || !is_wrapping_token(*req.token)) return invalid_wrapping_token();
    entry = *req.token;
  } else {
    ASSIGN_OR_RETURN(entry, tokens_->lookup(given.str()));
    if (!entry || !is_wrapping_token(*entry)) return invalid_wrapping_token();
    Result<bool> used = tokens_->use(*entry);
    if (!used.ok()) {
      // Another request took its only use first.
      return used.status().code() == Code::kPermissionDenied ? invalid_wrapping_token()
                                                             : used.status();
    }
  }
  Cleanup revoke_given([&] {
    if (given.empty()) return;
    if (Status st = tokens_->revoke(*entry); !st.ok()) {
      LOG_WARN("core", "could not revoke a used wrapping token: " << st.message());
    }
  });
  ASSIGN_OR_RETURN(View box, cubbyhole(entry->hash));
  ASSIGN_OR_RETURN(auto held, box.get_json(kResponseKey));
  ASSIGN_OR_RETURN(auto info, box.get_json(kWrapInfoKey));
  if (!held || !info || !info->is_object()) return invalid_wrapping_token();
  const auto* text = held->is_object() ? held->as_object().if_contains("response") : nullptr;
  if (text == nullptr || !text->is_string()) return data_loss("a wrapped response is corrupt");
  if (rest == "unwrap") {
    boost::system::error_code ec;
    boost::json::value original = boost::json::parse(text->as_string(), ec);
    if (ec) return data_loss("a wrapped response is corrupt");
    Response r;
    r.raw = std::move(original);  // returned as it was wrapped, on the wire
    return r;
  }
  // rewrap: a fresh token for the same response, creation TTL and path; the old one is revoked.
  ASSIGN_OR_RETURN(int64_t ttl, field_int(info->as_object(), "creation_ttl", 0));
  ASSIGN_OR_RETURN(std::string path, field_string(info->as_object(), "creation_path"));
  if (ttl <= 0) return data_loss("a wrapped response's creation TTL is corrupt");
  SecretString copy(std::string(text->as_string()));
  return mint_wrapping_token(copy.str(), ttl, path, "");
}

Result<Response> Core::wrapping_lookup(Request& req) {
  RequestScope scope(*this);  // reached before handle() counts requests
  if (!serving()) return unavailable("Vault is sealed");
  if (req.http_put_or_post) req.op = Operation::kUpdate;
  if (req.op != Operation::kUpdate && req.op != Operation::kRead) {
    return unimplemented("unsupported operation");
  }
  req.mount_point = "sys/";
  req.mount_type = "system";
  req.rel_path = "wrapping/lookup";
  ASSIGN_OR_RETURN(std::string given_text, field_string(req.data, "token"));
  SecretString given(std::move(given_text));
  const std::string& token = given.empty() ? req.client_token : given.str();
  RETURN_IF_ERROR(audit_.log_request(req, nullptr));
  Result<Response> resp = [&]() -> Result<Response> {
    ASSIGN_OR_RETURN(auto entry, tokens_->lookup(token));
    if (!entry || !is_wrapping_token(*entry)) return invalid_wrapping_token();
    ASSIGN_OR_RETURN(View box, cubbyhole(entry->hash));
    ASSIGN_OR_RETURN(auto info, box.get_json(kWrapInfoKey));
    if (!info || !info->is_object()) return invalid_wrapping_token();
    return Response::with_data(info->as_object());
  }();
  return audit_response(req, nullptr, std::move(resp));
}

}  // namespace custos::core
