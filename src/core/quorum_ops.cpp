// Root token generation and rekeying: the operations a quorum of key holders authorises without
// a token, as Vault's sys/generate-root, sys/rekey and sys/rekey-recovery-key (docs/quorum.md).
#include <boost/json.hpp>
#include <cctype>

#include "base/encoding.h"
#include "base/log.h"
#include "core/core.h"
#include "core/core_paths.h"
#include "crypto/random.h"

namespace custos::core {
namespace {

namespace json = boost::json;

constexpr size_t kRootTokenLength = 28;  // "hvs." and 24 base62 characters (core/tokens.cpp)

bool is_write(const Request& req) {
  return req.http_put_or_post || req.op == Operation::kUpdate || req.op == Operation::kCreate;
}

Response raw(json::object o) {
  Response r;
  r.raw = std::move(o);
  return r;
}

// Vault's optional PGP encryption of new shares or of the token: refused rather than ignored,
// so nothing is ever handed out in the clear when the caller asked for it encrypted.
Status refuse_pgp(const json::object& data) {
  for (const char* k : {"pgp_key", "pgp_keys"}) {
    const auto* v = data.if_contains(k);
    if (!v || v->is_null()) continue;
    if (v->is_string() && v->as_string().empty()) continue;
    if (v->is_array() && v->as_array().empty()) continue;
    return invalid_argument(std::string(k) +
                            ": PGP encryption is not supported by this server (the shares and "
                            "the token are returned in the response)");
  }
  return ok_status();
}

// Vault's encoding of a generated root token: base64 (standard alphabet, no padding) of the
// token's characters XORed with the one-time password's.
std::string encode_token(std::string_view token, std::string_view otp) {
  SecretBytes mixed(Bytes(token.size()));
  for (size_t i = 0; i < token.size(); ++i) {
    mixed.data()[i] = static_cast<uint8_t>(token[i] ^ otp[i]);
  }
  std::string out = base64_encode(mixed.span());
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

}  // namespace

Result<int> Core::quorum_threshold(bool recovery) {
  ASSIGN_OR_RETURN(auto cfg, read_config(recovery ? paths::kRecoveryConfig : paths::kSealConfig));
  return static_cast<int>(cfg.at("secret_threshold").as_int64());
}

// ---------------------------------------------------------------------------------------------
// sys/generate-root

json::object Core::root_generation_status(int required) const {
  const RootGeneration* g = root_generation_.get();
  return json::object{{"started", g != nullptr},
                      {"nonce", g ? g->quorum.nonce() : ""},
                      {"progress", g ? g->quorum.progress() : 0},
                      {"required", required},
                      {"complete", false},
                      {"encoded_token", ""},
                      {"encoded_root_token", ""},
                      {"pgp_fingerprint", ""},
                      {"otp", ""},
                      {"otp_length", static_cast<int64_t>(kRootTokenLength)}};
}

Result<Response> Core::sys_generate_root(Request& req, std::string_view rest) {
  std::lock_guard lock(seal_mu_);
  if (barrier_.sealed()) return unavailable("Vault is sealed");
  // With an auto seal the recovery key holders authorise it (as in Vault).
  const bool recovery = config_.auto_seal != nullptr;
  ASSIGN_OR_RETURN(int required, quorum_threshold(recovery));

  if (rest == "attempt") {
    if (req.op == Operation::kRead) return raw(root_generation_status(required));
    if (req.op == Operation::kDelete) {
      root_generation_.reset();
      return Response::empty();
    }
    if (!is_write(req)) return unimplemented("unsupported operation");
    RETURN_IF_ERROR(refuse_pgp(req.data));
    // An OTP of the caller's (the vault CLI's -generate-otp, then -init -otp=...): exactly
    // otp_length base62 characters. Without one the server makes it and shows it once.
    ASSIGN_OR_RETURN(std::string given_otp, field_string(req.data, "otp"));
    SecretString caller_otp(std::move(given_otp));
    if (!caller_otp.empty()) {
      bool base62 = caller_otp.str().size() == kRootTokenLength;
      for (char ch : caller_otp.str())
        base62 = base62 && std::isalnum(static_cast<unsigned char>(ch));
      if (!base62) {
        return invalid_argument("otp must be " + std::to_string(kRootTokenLength) +
                                " base62 characters (otp_length)");
      }
    }
    if (root_generation_) return invalid_argument("root generation already in progress");
    auto g = std::make_unique<RootGeneration>();
    g->quorum.start(required);
    const bool generated = caller_otp.empty();
    g->otp = generated ? SecretString(random_base62(kRootTokenLength)) : std::move(caller_otp);
    root_generation_ = std::move(g);
    json::object o = root_generation_status(required);
    // The only time a generated password is shown; a caller's is never echoed.
    if (generated) o["otp"] = root_generation_->otp.str();
    return raw(std::move(o));
  }

  if (rest == "update") {
    if (!is_write(req)) return unimplemented("unsupported operation");
    if (!root_generation_) return invalid_argument("no root generation in progress");
    ASSIGN_OR_RETURN(std::string key_text, field_string(req.data, "key"));
    const SecretString key(std::move(key_text));
    ASSIGN_OR_RETURN(std::string nonce, field_string(req.data, "nonce"));
    RootGeneration& g = *root_generation_;
    ASSIGN_OR_RETURN(bool reached, g.quorum.add(key.str(), nonce, ShareQuorum::kOperation));
    if (!reached) return raw(root_generation_status(required));
    ASSIGN_OR_RETURN(SecretBytes combined, g.quorum.combine());
    // Wrong shares cost the progress, not the attempt (its password was handed out already).
    RETURN_IF_ERROR(verify_quorum_key(combined).with_context("root generation"));
    TokenCreateParams p;
    p.policies = {"root"};
    p.display_name = "root";
    p.path = "auth/token/root";
    p.renewable = false;
    p.orphan = true;
    ASSIGN_OR_RETURN(auto created, tokens_->create(p));
    SecretString token(std::move(created.first));
    if (token.str().size() != g.otp.str().size()) {
      // Never handed out: it must not stay valid.
      (void)tokens_->revoke(created.second);
      return internal_error("the new token's length does not match the one-time password's");
    }
    std::string encoded = encode_token(token.str(), g.otp.str());
    json::object o = root_generation_status(required);
    o["progress"] = required;
    o["complete"] = true;
    o["encoded_token"] = encoded;
    o["encoded_root_token"] = encoded;
    root_generation_.reset();
    LOG_INFO("core", "a new root token was generated by a quorum of "
                         << (recovery ? "recovery" : "unseal") << " key holders (accessor "
                         << created.second.accessor << ")");
    return raw(std::move(o));
  }
  return not_found("unsupported path sys/generate-root/" + std::string(rest));
}

// ---------------------------------------------------------------------------------------------
// sys/rekey, sys/rekey-recovery-key

json::object Core::rekey_status(const Rekey* r, int required) const {
  json::object o{{"started", r != nullptr},
                 {"nonce", r ? r->quorum.nonce() : ""},
                 {"t", r ? r->new_threshold : 0},
                 {"n", r ? r->new_shares : 0},
                 {"progress", r ? r->quorum.progress() : 0},
                 {"required", required},
                 {"pgp_fingerprints", nullptr},
                 {"backup", false},
                 {"verification_required", r ? r->require_verification : false}};
  if (r && r->verification.started()) o["verification_nonce"] = r->verification.nonce();
  return o;
}

Status Core::commit_rekey(Rekey& r) {
  json::object cfg{
      {"type", "shamir"}, {"secret_shares", r.new_shares}, {"secret_threshold", r.new_threshold}};
  std::vector<storage::Op> ops;
  ops.push_back({storage::Op::Kind::kPut,
                 std::string(r.recovery ? paths::kRecoveryKey : paths::kRootKey), r.pending_blob});
  ops.push_back({storage::Op::Kind::kPut,
                 std::string(r.recovery ? paths::kRecoveryConfig : paths::kSealConfig),
                 to_bytes(json::serialize(cfg))});
  // The new key material and its share counts change together or not at all.
  RETURN_IF_ERROR(backend_.transaction(std::move(ops)));
  // A root generation under way collected shares of the old key, toward the old threshold.
  root_generation_.reset();
  LOG_INFO("core", "rekeyed the " << (r.recovery ? "recovery" : "unseal") << " key: "
                                  << r.new_shares << " shares, threshold " << r.new_threshold);
  return ok_status();
}

Result<Response> Core::sys_rekey(Request& req, std::string_view rest, bool recovery) {
  std::lock_guard lock(seal_mu_);
  if (barrier_.sealed()) return unavailable("Vault is sealed");
  const std::string seal_type = config_.auto_seal ? config_.auto_seal->type() : "shamir";
  if (recovery && !config_.auto_seal) {
    return invalid_argument(
        "this server has no recovery key: it uses the shamir seal (rekey "
        "the unseal key with sys/rekey)");
  }
  if (!recovery && config_.auto_seal) {
    return invalid_argument("the " + seal_type +
                            " seal holds the root key, so it has no unseal key shares to rekey; "
                            "rekey the recovery key with sys/rekey-recovery-key");
  }
  const std::string what = recovery ? "recovery" : "unseal";
  ASSIGN_OR_RETURN(int required, quorum_threshold(recovery));
  std::unique_ptr<Rekey>& slot = rekeys_[recovery ? 1 : 0];

  if (rest == "init") {
    if (req.op == Operation::kRead) return raw(rekey_status(slot.get(), required));
    if (req.op == Operation::kDelete) {
      slot.reset();
      return Response::empty();
    }
    if (!is_write(req)) return unimplemented("unsupported operation");
    RETURN_IF_ERROR(refuse_pgp(req.data));
    ASSIGN_OR_RETURN(bool backup, field_bool(req.data, "backup", false));
    if (backup) return invalid_argument("backup: needs PGP-encrypted shares, not supported");
    if (slot) return invalid_argument("rekey already in progress");
    ASSIGN_OR_RETURN(int64_t shares, field_int(req.data, "secret_shares", 0));
    ASSIGN_OR_RETURN(int64_t threshold, field_int(req.data, "secret_threshold", 0));
    if (shares < 0 || shares > 255 || threshold < 0 || threshold > 255) {
      return invalid_argument("secret_shares and secret_threshold must be between 1 and 255");
    }
    RETURN_IF_ERROR(
        check_share_counts(static_cast<int>(shares), static_cast<int>(threshold), "secret"));
    ASSIGN_OR_RETURN(bool verify, field_bool(req.data, "require_verification", false));
    auto r = std::make_unique<Rekey>();
    r->recovery = recovery;
    r->new_shares = static_cast<int>(shares);
    r->new_threshold = static_cast<int>(threshold);
    r->require_verification = verify;
    r->quorum.start(required);
    slot = std::move(r);
    return raw(rekey_status(slot.get(), required));
  }

  if (rest == "update") {
    if (!is_write(req)) return unimplemented("unsupported operation");
    if (!slot) return invalid_argument("no rekey in progress");
    Rekey& r = *slot;
    if (r.verification.started()) {
      return invalid_argument("the rekey is waiting for verification of the new shares (" +
                              std::string(recovery ? "sys/rekey-recovery-key" : "sys/rekey") +
                              "/verify)");
    }
    ASSIGN_OR_RETURN(std::string key_text, field_string(req.data, "key"));
    const SecretString key(std::move(key_text));
    ASSIGN_OR_RETURN(std::string nonce, field_string(req.data, "nonce"));
    ASSIGN_OR_RETURN(bool reached, r.quorum.add(key.str(), nonce, ShareQuorum::kOperation));
    if (!reached) return raw(rekey_status(&r, required));
    ASSIGN_OR_RETURN(SecretBytes combined, r.quorum.combine());
    // The new key and what it protects, prepared before anything is written.
    SecretBytes new_key = crypto::random_secret(32);
    if (recovery) {
      RETURN_IF_ERROR(verify_recovery_key(combined).with_context("rekey"));
      ASSIGN_OR_RETURN(r.pending_blob,
                       config_.auto_seal->encrypt(new_key.span(), paths::kRecoveryKey));
      // Read back through the HSM before anything is written: shares of a key the HSM cannot
      // give back would be useless.
      ASSIGN_OR_RETURN(SecretBytes back,
                       config_.auto_seal->decrypt(r.pending_blob, paths::kRecoveryKey));
      if (!(back == new_key)) return internal_error("rekey: the HSM did not return the new key");
    } else {
      auto root_key = open_root_key(combined);
      if (!root_key.ok()) return root_key.status().with_context("rekey");
      ASSIGN_OR_RETURN(r.pending_blob,
                       barrier_.encrypt_with(new_key.span(), paths::kRootKey, root_key->span()));
    }
    ASSIGN_OR_RETURN(std::vector<SecretBytes> shares,
                     split_key_shares(new_key, r.new_shares, r.new_threshold, "secret"));
    json::array hex, b64;
    for (const auto& s : shares) {
      hex.emplace_back(hex_encode(s.span()));
      b64.emplace_back(base64_encode(s.span()));
    }
    json::object o{{"complete", true},
                   {"nonce", r.quorum.nonce()},
                   {"keys", std::move(hex)},
                   {"keys_base64", std::move(b64)},
                   {"pgp_fingerprints", nullptr},
                   {"backup", false},
                   {"verification_required", r.require_verification}};
    if (r.require_verification) {
      // The old key stays in force until a quorum of the new shares proves they were received.
      r.pending_key = std::move(new_key);
      r.verification.start(r.new_threshold);
      o["verification_nonce"] = r.verification.nonce();
      return raw(std::move(o));
    }
    RETURN_IF_ERROR(commit_rekey(r));
    slot.reset();
    return raw(std::move(o));
  }

  if (rest == "verify") {
    auto verify_status = [&]() {
      const Rekey* r = slot.get();
      bool started = r && r->verification.started();
      return json::object{{"started", started},
                          {"nonce", started ? r->verification.nonce() : ""},
                          {"t", started ? r->new_threshold : 0},
                          {"n", started ? r->new_shares : 0},
                          {"progress", started ? r->verification.progress() : 0}};
    };
    if (req.op == Operation::kRead) return raw(verify_status());
    if (!slot || !slot->verification.started()) {
      return invalid_argument("no rekey verification in progress");
    }
    Rekey& r = *slot;
    if (req.op == Operation::kDelete) {
      // Restarts the verification only (Vault): the new shares stay the ones handed out.
      r.verification.start(r.new_threshold);
      return raw(verify_status());
    }
    if (!is_write(req)) return unimplemented("unsupported operation");
    ASSIGN_OR_RETURN(std::string key_text, field_string(req.data, "key"));
    const SecretString key(std::move(key_text));
    ASSIGN_OR_RETURN(std::string nonce, field_string(req.data, "nonce"));
    ASSIGN_OR_RETURN(bool reached, r.verification.add(key.str(), nonce, ShareQuorum::kOperation));
    if (!reached) return raw(verify_status());
    std::string verification_nonce = r.verification.nonce();
    ASSIGN_OR_RETURN(SecretBytes combined, r.verification.combine());
    if (!(combined == r.pending_key)) {
      return invalid_argument("rekey verification: the shares do not combine to the new " + what +
                              " key");
    }
    RETURN_IF_ERROR(commit_rekey(r));
    slot.reset();
    return raw(json::object{{"nonce", verification_nonce}, {"complete", true}});
  }
  return not_found("unsupported path " +
                   std::string(recovery ? "sys/rekey-recovery-key/" : "sys/rekey/") +
                   std::string(rest));
}

}  // namespace custos::core
