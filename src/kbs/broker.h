// The release engine: keys and resources kept behind Core's barrier (View "kbs/"), challenges,
// evidence verification through the attestation Service, the binding check, appraisal against
// the key's transfer policy, wrapping to the TEE's key, and an audit line per decision.
// Wire contract: docs/formats/kbs.md. Dialect routing: kbs/routes.h. Vault auth method:
// kbs/attest_auth.h.
//
// Errors: every refusal is a Status whose message starts with a reason code of
// docs/formats/kbs.md §7 ("nonce.replayed: ..."); reason_of() extracts it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "attestation/service/service.h"
#include "core/core.h"
#include "core/view.h"
#include "crypto/pkey.h"
#include "kbs/nonce_store.h"

namespace custos::attestation::sim {
class SimPlatform;
}

namespace custos::kbs {

// Reason codes, numbered as in docs/formats/kbs.md §7 (the audit's reason_code).
std::string_view reason_of(const Status& st);
int reason_number(std::string_view reason);

// Trustee's and our TEE names -> TeeType.
Result<attestation::TeeType> parse_tee_name(std::string_view name);

// §2 evidence fields.
struct EvidenceInput {
  attestation::TeeType tee = attestation::TeeType::kSgx;
  Bytes quote;
  std::string quote_sha256;  // lowercase hex, for audit lines and login metadata
  attestation::Collateral collateral;
};
// Reads {tee, <quote_member>, collateral?, tpm?}; `default_tee` applies when "tee" is absent.
Result<EvidenceInput> parse_evidence(const boost::json::object& o, std::string_view quote_member,
                                     std::optional<attestation::TeeType> default_tee = {});

// Acceptable binding values: full 64-byte report data, or the TPM extraData.
struct Binding {
  std::vector<Bytes> report_data;
  std::vector<Bytes> tpm_nonce;
};
// SHA-256(nonce_bytes || spki) || zeros(32) (and SHA-256(...) for TPM): /kbs/v1 and auth/attest.
Result<Binding> nonce_key_binding(std::string_view nonce_b64, ByteSpan spki_der);

// Genuine, bound evidence and its appraisal (which may have failed: callers decide).
struct Attested {
  attestation::Claims claims;
  attestation::Appraisal appraisal;
  std::string evidence_sha256;  // hex
};

// One decision for the audit trail.
struct Decision {
  std::string path;  // "kbs/v1/keys/<id>/transfer", ...
  bool released = false;
  std::string reason = "released";
  std::string message;
  std::string evidence_sha256;
  std::string target;  // key id, resource path, role
  std::string policy_id;
  int64_t policy_version = 0;
  std::string tee;
  std::string remote_addr;
};

struct BrokerConfig {
  Seconds nonce_ttl{300};
  size_t max_nonces = 10000;
  size_t max_sessions = 10000;
  size_t max_resource_bytes = 1024 * 1024;
  // Collateral merged into evidence of a TEE for items the request omits (dev: the sim
  // platform's TCB info, QE identity and CRLs, so sim clients need not send them).
  std::map<attestation::TeeType, attestation::Collateral> default_collateral;
};

class Broker {
 public:
  Broker(core::Core& core, attestation::Service& service, BrokerConfig config = {});
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Registers the "attest" auth method type with Core (call before unseal, like every factory).
  void register_auth_method();

  // ---- Admin authorization: the token's ACL must grant `op` on `path` (Vault's rules).
  Status authorize(std::string_view token, std::string_view remote_addr, const std::string& path,
                   core::Operation op);

  // ---- /kbs/v1 keys and key-transfer policies. base_url: "https://host:port".
  Result<boost::json::object> create_key(const boost::json::object& body,
                                         std::string_view base_url);
  Result<boost::json::array> list_keys(const std::map<std::string, std::string>& filters,
                                       std::string_view base_url);
  Result<boost::json::object> get_key(const std::string& id, std::string_view base_url);
  Status delete_key(const std::string& id);

  // Creates (id unset or new) or replaces a policy; the response is the document plus id,
  // created_at, updated_at, version.
  Result<boost::json::object> put_transfer_policy(const boost::json::object& body,
                                                  std::optional<std::string> id);
  Result<boost::json::object> get_transfer_policy(const std::string& id);
  Result<boost::json::array> list_transfer_policies();
  Status delete_transfer_policy(const std::string& id);

  // ---- /kbs/v1 transfer.
  Result<IssuedNonce> transfer_challenge(const std::string& key_id);
  // `body` is §4's transfer body. Returns {wrapped_key, wrapped_swk} or a JWE.
  Result<boost::json::object> transfer(const std::string& key_id, const boost::json::object& body,
                                       std::string_view client_cert_der,
                                       std::string_view remote_addr);

  // ---- /kbs/v0.
  struct Challenge {
    std::string session_id;
    std::string nonce;
  };
  Result<Challenge> v0_auth(const boost::json::object& body);
  // Returns the EAR token. `body_text` is the raw request body.
  Result<std::string> v0_attest(std::string_view session_id, std::string_view body_text,
                                std::string_view remote_addr);
  // The caller's attestation from a session cookie or a bearer EAR token; then the JWE.
  Result<boost::json::object> v0_resource(std::string_view session_id, std::string_view bearer,
                                          const std::string& resource_path,
                                          std::string_view remote_addr);
  Status put_resource(const std::string& resource_path, ByteSpan value);
  Status delete_resource(const std::string& resource_path);
  // resource_path empty: the default policy. Body: a policy document or {"policy": base64}.
  Status put_resource_policy(const std::string& resource_path, const boost::json::object& body);
  Result<boost::json::object> get_resource_policy(const std::string& resource_path);

  // ---- Shared by every dialect (and auth/attest).
  NonceStore& nonces() { return nonces_; }
  // Verifies evidence with `policy`, checks the binding. Fails with evidence.rejected,
  // binding.mismatch or (sim refused by the policy) policy.denied; the appraisal is returned.
  Result<Attested> verify_bound(const EvidenceInput& evidence, const Binding& binding,
                                const attestation::Policy& policy);
  // Writes the request and response audit lines. Fails when audit devices exist and none could
  // write: the caller must then refuse to release.
  Status audit(const Decision& d);

  core::Core& core() { return core_; }
  attestation::Service& service() { return service_; }
  const BrokerConfig& config() const { return config_; }
  SysTime now() const { return core_.clock().now(); }

 private:
  struct V0Attestation {
    attestation::Claims claims;
    crypto::PublicKey tee_key;
    std::string evidence_sha256;
    SysTime expires_at;
  };
  struct V0Session {
    attestation::TeeType tee = attestation::TeeType::kSgx;
    std::string nonce;
    SysTime expires_at;
    std::shared_ptr<const V0Attestation> attested;
  };

  core::View view() { return core::View(core_.barrier(), "kbs/"); }
  Result<attestation::Policy> load_transfer_policy(const std::string& id, int64_t& version);
  Result<std::optional<attestation::Policy>> load_resource_policy(const std::string& path,
                                                                  std::string& which);
  Result<std::shared_ptr<const V0Attestation>> v0_find(std::string_view session_id,
                                                       std::string_view bearer);
  void sweep_sessions_locked(SysTime now);
  // Refuses and audits: returns `st` (or the audit failure).
  Status deny(Decision d, const Status& st);

  core::Core& core_;
  attestation::Service& service_;
  BrokerConfig config_;
  NonceStore nonces_;

  std::mutex v0_mu_;
  std::map<std::string, V0Session> sessions_;  // sha256(session id) hex -> session
  std::map<std::string, std::shared_ptr<const V0Attestation>> attested_;  // token handle ->
};

// Dev mode: trusts `sim` (adds a SimVerifier for its root to the service's registry, and its
// collateral as the default for sim evidence), registers the auth method, and, when the core is
// unsealed, enables it at auth/attest/ and sets a default /kbs/v0 resource policy allowing sim
// evidence (kept if one exists).
Result<std::unique_ptr<Broker>> make_dev_broker(core::Core& core, attestation::Service& service,
                                                const attestation::sim::SimPlatform& sim,
                                                BrokerConfig config = {});

}  // namespace custos::kbs
