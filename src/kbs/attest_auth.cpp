#include "kbs/attest_auth.h"

#include <exception>

#include <boost/json.hpp>

#include "attestation/service/appraisal.h"
#include "base/encoding.h"
#include "crypto/hash.h"
#include "kbs/broker.h"

namespace custos::kbs {

namespace json = boost::json;

namespace {

constexpr std::string_view kRolePrefix = "role/";

bool valid_role(std::string_view n) {
  if (n.empty() || n.size() > 128) return false;
  for (char c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return n != "." && n != "..";
}

// The claims worth showing as token metadata (all strings: Vault metadata is string-valued).
json::object login_metadata(const attestation::Claims& c, const std::string& role,
                            const std::string& evidence_sha256, ByteSpan spki) {
  json::object m;
  // The key the TEE bound into its evidence (report data): what it signs attested ledger
  // entries with (docs/ledger.md).
  // Stored in canonical form (re-encoded), so that comparisons with a CSR's key do not depend
  // on how the client encoded it.
  if (!spki.empty()) {
    auto key = crypto::PublicKey::from_der(spki);
    m["tee_public_key"] = base64_encode(key.ok() ? ByteSpan(key->to_der()) : spki);
  }
  m["role"] = role;
  m["tee"] = attestation::tee_name(c.tee);
  m["tcb_status"] = attestation::tcb_status_name(c.tcb_status);
  m["evidence_sha256"] = evidence_sha256;
  for (const char* k : {"mrenclave", "mrsigner", "mrtd", "measurement", "host_data", "ak_name"}) {
    if (const auto* v = c.fields.if_contains(k); v != nullptr && v->is_string()) m[k] = *v;
  }
  for (const char* k : {"isv_prod_id", "isv_svn"}) {
    if (const auto* v = c.fields.if_contains(k); v != nullptr && v->is_number()) {
      m[k] = std::to_string(v->to_number<int64_t>());
    }
  }
  return m;
}

class AttestAuth final : public core::Engine {
 public:
  AttestAuth(Broker& broker, core::View storage, std::string mount_uuid, int64_t default_ttl)
      : broker_(broker),
        storage_(std::move(storage)),
        target_("auth:" + std::move(mount_uuid)),
        default_ttl_(default_ttl) {}

  bool unauthenticated(const core::Request& req) const override {
    return req.rel_path == "login" || req.rel_path == "nonce";
  }

  Result<bool> exists(const core::Request& req) override {
    if (req.rel_path.rfind(kRolePrefix, 0) != 0) return true;
    ASSIGN_OR_RETURN(auto v, storage_.get(req.rel_path));
    return v.has_value();
  }

  Result<core::Response> handle(core::Request& req) override {
    // Stored roles are our own JSON, but a corrupted one must not throw into Core.
    try {
      return handle_unguarded(req);
    } catch (const std::exception&) {
      return internal_error("internal error in the attest auth method");
    }
  }

 private:
  Result<core::Response> handle_unguarded(core::Request& req) {
    const std::string& p = req.rel_path;
    if (p == "nonce") return nonce();
    if (p == "login") return login(req);
    if (p == "role" || p == "role/") {
      if (req.op != core::Operation::kList) return unimplemented("use LIST on role/");
      ASSIGN_OR_RETURN(auto names, storage_.list(kRolePrefix));
      json::array keys;
      for (const auto& n : names) keys.emplace_back(n);
      return core::Response::with_data(json::object{{"keys", std::move(keys)}});
    }
    if (p.rfind(kRolePrefix, 0) == 0) return role(req, p.substr(kRolePrefix.size()));
    return not_found("no handler for route \"" + req.path + "\"");
  }

  Result<core::Response> nonce() {
    ASSIGN_OR_RETURN(IssuedNonce n, broker_.nonces().issue(target_));
    return core::Response::with_data(
        json::object{{"nonce", n.nonce}, {"expires_at", format_rfc3339(n.expires_at)}});
  }

  Result<core::Response> role(core::Request& req, const std::string& name) {
    if (!valid_role(name)) return invalid_argument("bad role name");
    std::string key = std::string(kRolePrefix) + name;
    switch (req.op) {
      case core::Operation::kRead: {
        ASSIGN_OR_RETURN(auto v, storage_.get_json(key));
        if (!v || !v->is_object()) return not_found("no such role");
        return core::Response::with_data(v->as_object());
      }
      case core::Operation::kDelete:
        RETURN_IF_ERROR(storage_.del(key));
        return core::Response::empty();
      case core::Operation::kCreate:
      case core::Operation::kUpdate: {
        json::object rec;
        ASSIGN_OR_RETURN(auto policies, core::field_string_list(req.data, "token_policies"));
        if (policies.empty()) {
          ASSIGN_OR_RETURN(policies, core::field_string_list(req.data, "policies"));
        }
        json::array pa;
        for (const auto& x : policies) pa.emplace_back(x);
        rec["token_policies"] = std::move(pa);
        ASSIGN_OR_RETURN(int64_t ttl, core::field_duration(req.data, "token_ttl", 0));
        ASSIGN_OR_RETURN(int64_t max_ttl, core::field_duration(req.data, "token_max_ttl", 0));
        rec["token_ttl"] = ttl;
        rec["token_max_ttl"] = max_ttl;
        // The appraisal policy: "policy" (object or JSON text), else the remaining fields.
        json::object doc;
        if (const auto* pv = req.data.if_contains("policy"); pv != nullptr) {
          if (pv->is_object()) {
            doc = pv->as_object();
          } else if (pv->is_string()) {
            boost::system::error_code ec;
            json::value v = json::parse(pv->as_string(), ec);
            if (ec || !v.is_object()) return invalid_argument("\"policy\" is not a JSON object");
            doc = std::move(v.as_object());
          } else {
            return invalid_argument("\"policy\" must be an object or JSON text");
          }
        } else {
          for (const auto& [k, v] : req.data) {
            if (k != "token_policies" && k != "policies" && k != "token_ttl" &&
                k != "token_max_ttl") {
              doc[k] = v;
            }
          }
        }
        auto parsed = attestation::parse_policy(json::serialize(doc));
        if (!parsed.ok()) return invalid_argument("policy: " + parsed.status().message());
        rec["policy"] = std::move(doc);
        RETURN_IF_ERROR(storage_.put_json(key, rec));
        return core::Response::empty();
      }
      default:
        return unimplemented("unsupported operation on a role");
    }
  }

  Result<core::Response> login(core::Request& req) {
    Decision d;
    d.path = req.path.empty() ? "auth/attest/login" : req.path;
    d.remote_addr = req.remote_addr;
    ASSIGN_OR_RETURN(std::string role_name, core::field_string(req.data, "role"));
    d.target = role_name;
    if (!valid_role(role_name)) return deny(d, invalid_argument("request.invalid: bad role"));
    ASSIGN_OR_RETURN(std::string nonce, core::field_string(req.data, "nonce"));
    if (Status st = broker_.nonces().consume(nonce, target_); !st.ok()) return deny(d, st);
    ASSIGN_OR_RETURN(auto rec, storage_.get_json(std::string(kRolePrefix) + role_name));
    if (!rec || !rec->is_object()) {
      return deny(d, permission_denied("policy.unset: no such role \"" + role_name + "\""));
    }
    const json::object& r = rec->as_object();
    auto policy = attestation::parse_policy(json::serialize(r.at("policy")));
    if (!policy.ok()) return data_loss("stored role does not parse");
    if (policy->id.empty()) policy->id = "role:" + role_name;
    d.policy_id = policy->id;

    ASSIGN_OR_RETURN(std::string pk_b64, core::field_string(req.data, "public_key"));
    Bytes spki;
    if (!pk_b64.empty()) {
      auto der = base64_decode(pk_b64);
      if (!der.ok() || !crypto::PublicKey::from_der(*der).ok()) {
        return deny(d, invalid_argument("key.invalid: public_key must be base64 SPKI DER"));
      }
      spki = std::move(*der);
    }
    auto evidence = parse_evidence(req.data, "evidence");
    if (!evidence.ok()) return deny(d, evidence.status());
    d.tee = std::string(attestation::tee_name(evidence->tee));
    d.evidence_sha256 = evidence->quote_sha256;
    auto binding = nonce_key_binding(nonce, spki);
    if (!binding.ok()) return deny(d, binding.status());
    auto att = broker_.verify_bound(*evidence, *binding, *policy);
    if (!att.ok()) return deny(d, att.status());
    if (!att->appraisal.pass) {
      std::string why;
      for (const auto& x : att->appraisal.reasons()) why += (why.empty() ? "" : "; ") + x;
      return deny(d, permission_denied("policy.denied: " + why));
    }
    core::Auth auth;
    for (const auto& p : r.at("token_policies").as_array()) {
      auth.policies.emplace_back(p.as_string());
    }
    auth.metadata = login_metadata(att->claims, role_name, att->evidence_sha256, spki);
    int64_t ttl = r.at("token_ttl").to_number<int64_t>();
    auth.lease_duration = ttl > 0 ? ttl : default_ttl_;
    auth.explicit_max_ttl = r.at("token_max_ttl").to_number<int64_t>();
    auth.renewable = true;
    auth.display_name = "attest-" + role_name;
    d.released = true;
    d.reason = "released";
    RETURN_IF_ERROR(broker_.audit(d));
    core::Response resp;
    resp.auth = std::move(auth);
    return resp;
  }

  Status deny(Decision d, const Status& st) {
    d.reason = std::string(reason_of(st));
    if (d.reason.empty()) d.reason = "request.invalid";
    d.message = st.message();
    (void)broker_.audit(d);
    return st;
  }

  Broker& broker_;
  core::View storage_;
  std::string target_;
  int64_t default_ttl_;
};

}  // namespace

core::EngineFactory attest_auth_factory(Broker& broker) {
  return [&broker](core::EngineContext ctx,
                   const core::MountEntry& entry) -> Result<std::unique_ptr<core::Engine>> {
    return std::unique_ptr<core::Engine>(
        std::make_unique<AttestAuth>(broker, ctx.storage, entry.uuid, ctx.default_lease_ttl));
  };
}

}  // namespace custos::kbs
