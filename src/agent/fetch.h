// Workload side of secure key release (issue #5): attest to a key broker and receive a key or a
// secret wrapped to an ephemeral key that never leaves this process.
//
//   fetch_key       ISecL dialect, /kbs/v1/keys/<id>/transfer: challenge (401 + nonce), evidence
//                   binding SHA-256(nonce || SPKI DER) || 32 zero bytes, {wrapped_key, wrapped_swk}.
//   KbsV0Session    Trustee RCAR dialect, /kbs/v0: auth (nonce + session cookie), attest with
//                   runtime data {"nonce", "tee-pubkey": JWK} bound as SHA-384 of its exact bytes,
//                   then GET resource/<repo>/<type>/<tag> -> flattened JWE decrypted here.
//   attest_login    Vault dialect, auth/attest/login: evidence -> a Vault token.
//
// Wire contract: docs/formats/kbs.md. Every call is independent (its own nonce, its own HTTP
// connection unless one is lent through FetchOptions::http), so concurrent calls from several
// threads are safe as long as each thread lends its own HttpClient (or none).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "agent/producer.h"
#include "base/bytes.h"
#include "base/status.h"
#include "crypto/pkey.h"
#include "net/http.h"

namespace custos::agent {

// The ephemeral key the broker wraps to. RSA-3072 is what the ISecL transfer response is defined
// for; EC P-256 (ECDH-ES+A256KW) is accepted by /kbs/v0.
enum class WrapKeyType { kRsa3072, kEcP256 };
Result<crypto::PrivateKey> generate_ephemeral_key(WrapKeyType type);

struct FetchOptions {
  std::string kbs_addr;  // "http://127.0.0.1:8200" (no trailing path)
  std::string ca_file;   // TLS: trust these roots instead of the system's
  bool insecure_skip_verify = false;

  const EvidenceProducer* producer = nullptr;  // required; not owned

  std::string key_id;    // fetch_key: the key's id
  std::string resource;  // KbsV0Session::get_resource: "repo/type/tag"

  WrapKeyType key_type = WrapKeyType::kRsa3072;
  // When set, used instead of generating a key (one key per release is still the rule for the
  // load driver: it hands out each pooled key once). Not owned.
  const crypto::PrivateKey* ephemeral = nullptr;
  // SPKI DER of `ephemeral` when the caller has it already (saves an encode per release).
  ByteSpan ephemeral_spki;
  // Leave the producer's collateral out of the request: for brokers that hold it (a PCCS cache
  // for DCAP; a dev server's own sim platform). docs/formats/kbs.md §2 makes it optional.
  bool omit_collateral = false;
  // When set, requests go over this keep-alive connection (one per thread). Not owned.
  net::HttpClient* http = nullptr;
};

// Releases key `options.key_id` through /kbs/v1. A refusal by the broker comes back as
// kPermissionDenied carrying the broker's reason; transport errors as kUnavailable.
Result<SecretBytes> fetch_key(const FetchOptions& options);

// Fetches `options.resource` through /kbs/v0 with a fresh session (auth, attest, resource).
Result<SecretBytes> fetch_resource(const FetchOptions& options);

// One /kbs/v0 session: attest once, then read several resources with the session cookie / token.
class KbsV0Session {
 public:
  // Runs auth + attest. `options.resource` is ignored.
  static Result<KbsV0Session> open(const FetchOptions& options);
  KbsV0Session(KbsV0Session&&) noexcept;
  KbsV0Session& operator=(KbsV0Session&&) noexcept;
  ~KbsV0Session();

  Result<SecretBytes> get_resource(std::string_view resource_path);

 private:
  struct State;
  explicit KbsV0Session(std::unique_ptr<State> s);
  std::unique_ptr<State> state_;
};

// auth/attest/login on the Vault API: evidence bound to a fresh nonce and an ephemeral key,
// answered with a Vault client token. `role` may be empty when the server needs none.
// `bind_key`: a key of this workload whose public half the evidence binds (report data
// SHA-256(nonce || SPKI)) and the login sends as "public_key", so the token records it
// (tee_public_key): what attested ledger entries are signed with.
// `evidence_sha256`: set to the token's evidence_sha256 metadata (what attested entries sign).
Result<SecretString> attest_login(const FetchOptions& options, std::string_view role,
                                  std::string_view mount = "attest",
                                  const crypto::PrivateKey* bind_key = nullptr,
                                  std::string* evidence_sha256 = nullptr);

// An attested ledger entry (docs/ledger.md): logs in to auth/<auth_mount> with evidence binding a
// new P-256 key made here, reads the ledger's log id (<ledger_mount>/public-key), signs
// ledger::attested_entry_message() with the key, and appends to the ledger. Returns the append's
// answer (`data` of the response: index, leaf hash, proof, signed tree head).
Result<std::string> append_attested(const FetchOptions& options, std::string_view role,
                                    std::string_view auth_mount, std::string_view ledger_mount,
                                    ByteSpan data, std::string_view content_type);

// Reads a KV secret with a token: `path` is the full API path ("secret/data/app" for kv v2,
// "kv/app" for v1) and `field` one member of its data. The field must be a string.
Result<SecretBytes> read_kv_field(const FetchOptions& options, const SecretString& token,
                                  std::string_view path, std::string_view field);

}  // namespace custos::agent
