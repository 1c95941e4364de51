#include "core/engines/ledger.h"

#include <boost/json.hpp>
#include <cstdio>
#include <mutex>
#include <string>

#include "base/encoding.h"
#include "core/attested.h"
#include "crypto/hash.h"
#include "crypto/pkey.h"
#include "ledger/attested.h"
#include "ledger/merkle.h"

namespace custos::core {
namespace {

using ledger::Hash;

constexpr size_t kMaxEntryBytes = 1 << 20;  // decoded data per entry
// An attested entry's data is stored base64 inside its statement, itself base64 in storage:
// this keeps the stored record near 1 MiB (and below etcd's default request limit).
constexpr size_t kMaxAttestedBytes = 512 << 10;
constexpr size_t kMaxContentType = 255;
constexpr std::string_view kStatePath = "state";
constexpr std::string_view kKeyPath = "signing-key";
// An attested entry's statement (docs/ledger.md, "Attested entries").
using ledger::attested_entry_message;
constexpr std::string_view kAttestedType = ledger::kAttestedEntryType;
constexpr std::string_view kAttestedContentType = "application/vnd.custos.attested-entry+json";

std::string hex(const Hash& h) {
  return hex_encode(ByteSpan(h));
}

std::string entry_path(uint64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "entry/%020llu", static_cast<unsigned long long>(index));
  return buf;
}

std::string node_path(int level, uint64_t index) {
  return "node/" + std::to_string(level) + "/" + std::to_string(index);
}

boost::json::array hex_list(const std::vector<Hash>& hashes) {
  boost::json::array out;
  for (const Hash& h : hashes) out.emplace_back(hex(h));
  return out;
}

// A non-negative integer request field (GET query parameters arrive as strings).
Result<uint64_t> field_count(const boost::json::object& data, std::string_view key,
                             uint64_t fallback) {
  ASSIGN_OR_RETURN(int64_t v, field_int(data, key, static_cast<int64_t>(fallback)));
  if (v < 0) return invalid_argument("\"" + std::string(key) + "\" must not be negative");
  return static_cast<uint64_t>(v);
}

class Ledger final : public Engine {
 public:
  Ledger(EngineContext ctx, bool attested_only)
      : view_(ctx.storage), clock_(ctx.clock), attested_only_(attested_only) {}

  // Appending creates: POST entries needs the "create" capability.
  Result<bool> exists(const Request& req) override { return req.rel_path != "entries"; }

  Result<Response> handle(Request& req) override {
    const std::string& p = req.rel_path;
    bool write = req.op == Operation::kCreate || req.op == Operation::kUpdate;
    bool read = req.op == Operation::kRead;
    std::lock_guard lock(mu_);
    if (p == "entries" && write) return append(req);
    if (p.rfind("entries/", 0) == 0 && read) return get_entry(req, p.substr(8));
    if (p == "sth" && read) return tree_head();
    if (p == "proof/consistency" && read) return consistency(req);
    if (p == "public-key" && read) return public_key();
    if (p == "entries" || p.rfind("entries/", 0) == 0 || p == "sth" || p == "proof/consistency" ||
        p == "public-key") {
      return unimplemented("unsupported operation");
    }
    return not_found("unsupported path");
  }

 private:
  ledger::NodeReader reader() const {
    return [this](int level, uint64_t index) -> Result<Hash> {
      ASSIGN_OR_RETURN(auto v, view_.get(node_path(level, index)));
      if (!v || v->size() != 32)
        return data_loss("ledger node " + node_path(level, index) + " is missing");
      Hash h{};
      std::copy(v->data(), v->data() + 32, h.begin());
      return h;
    };
  }

  Result<uint64_t> size() const {
    ASSIGN_OR_RETURN(auto state, view_.get_json(kStatePath));
    if (!state) return uint64_t{0};
    const auto* n = state->is_object() ? state->as_object().if_contains("size") : nullptr;
    if (!n || !n->is_int64() || n->as_int64() < 0) return data_loss("ledger state is corrupt");
    return static_cast<uint64_t>(n->as_int64());
  }

  // The signing key, made at first use and kept (encrypted by the barrier) under the mount.
  Result<const crypto::PrivateKey*> key() {
    if (key_.empty()) {
      ASSIGN_OR_RETURN(auto pem, view_.get(kKeyPath));
      if (pem) {
        ASSIGN_OR_RETURN(key_, crypto::PrivateKey::from_pem(pem->view()));
      } else {
        ASSIGN_OR_RETURN(key_, crypto::PrivateKey::generate(crypto::KeyType::kEcP256));
        SecretString text = key_.to_pem();
        RETURN_IF_ERROR(view_.put(kKeyPath, as_bytes(text.str())));
      }
      // The log's id, as Certificate Transparency names a log: SHA-256 of its public key (SPKI).
      log_id_ = hex_encode(crypto::sha256(key_.public_key().to_der()));
    }
    return &key_;
  }

  Result<boost::json::object> signed_head(uint64_t tree_size, const Hash& root) {
    ASSIGN_OR_RETURN(const crypto::PrivateKey* k, key());
    int64_t now = to_unix_seconds(clock_.now());
    std::string msg = sth_message(log_id_, tree_size, hex(root), now);
    ASSIGN_OR_RETURN(Bytes sig, k->sign(as_bytes(msg)));
    return boost::json::object{{"log_id", log_id_},
                               {"tree_size", tree_size},
                               {"root_hash", hex(root)},
                               {"timestamp", now},
                               {"signature", base64_encode(sig)}};
  }

  Result<Response> append(const Request& req) {
    const auto* d = req.data.if_contains("data");
    if (!d || !d->is_string()) return invalid_argument("\"data\" (base64) is required");
    auto data = base64_decode(d->as_string());
    if (!data.ok()) return invalid_argument("\"data\" must be base64");
    if (data->size() > kMaxEntryBytes) {
      return invalid_argument("\"data\" is larger than " + std::to_string(kMaxEntryBytes) +
                              " bytes");
    }
    ASSIGN_OR_RETURN(std::string content_type, field_string(req.data, "content_type"));
    if (content_type.size() > kMaxContentType)
      return invalid_argument("\"content_type\" is too long");
    const auto* signature = req.data.if_contains("signature");
    const bool attested = signature != nullptr && !signature->is_null();
    std::string stored = std::string(d->as_string());
    if (attested) {
      // The leaf becomes the statement: data, signature, key and attestation all under its hash.
      if (data->size() > kMaxAttestedBytes) {
        return invalid_argument("\"data\" of an attested entry is larger than " +
                                std::to_string(kMaxAttestedBytes) + " bytes");
      }
      ASSIGN_OR_RETURN(const crypto::PrivateKey* log_key, key());
      (void)log_key;  // log_id_ is set from here on
      ASSIGN_OR_RETURN(std::string statement,
                       attested_statement(req, log_id_, *data, content_type, *signature));
      data = to_bytes(statement);
      stored = base64_encode(*data);
      content_type = std::string(kAttestedContentType);
    } else if (attested_only_) {
      return permission_denied(
          "this ledger takes attested entries only: sign the data with the key bound at "
          "auth/attest login and send \"signature\"");
    }
    ASSIGN_OR_RETURN(uint64_t n, size());
    Hash leaf = ledger::leaf_hash(*data);
    ASSIGN_OR_RETURN(auto nodes, ledger::nodes_for_append(reader(), n, leaf));
    int64_t now = to_unix_seconds(clock_.now());
    WriteBatch batch;
    batch.put_json(
        entry_path(n),
        boost::json::object{{"data", stored}, {"content_type", content_type}, {"time", now}});
    for (const auto& node : nodes)
      batch.put(node_path(node.level, node.index), ByteSpan(node.hash));
    batch.put_json(kStatePath, boost::json::object{{"size", n + 1}});
    RETURN_IF_ERROR(view_.apply(std::move(batch)));
    ASSIGN_OR_RETURN(Hash root, ledger::root(reader(), n + 1));
    ASSIGN_OR_RETURN(auto proof, ledger::inclusion_proof(reader(), n, n + 1));
    ASSIGN_OR_RETURN(auto sth, signed_head(n + 1, root));
    return Response::with_data({{"index", n},
                                {"attested", attested},
                                {"leaf_hash", hex(leaf)},
                                {"inclusion_proof", hex_list(proof)},
                                {"signed_tree_head", std::move(sth)}});
  }

  // An attested entry: the caller's token must come from an `attest` login (Core sets
  // auth_method_type; meta alone could be anyone's), whose evidence bound a public key, and
  // `signature` must verify with that key over attested_entry_message(): the log, the login's
  // evidence, the content type and the data's digest (so a signature cannot be replayed into
  // another log, under another login that bound the same public key, or with another type).
  // Returns the statement to append.
  static Result<std::string> attested_statement(const Request& req, const std::string& log_id,
                                                ByteSpan data, const std::string& content_type,
                                                const boost::json::value& signature) {
    if (!signature.is_string()) return invalid_argument("\"signature\" must be base64");
    auto sig = base64_decode(signature.as_string());
    if (!sig.ok() || sig->empty()) return invalid_argument("\"signature\" must be base64");
    ASSIGN_OR_RETURN(AttestedCaller caller, attested_caller(req, "an attested entry"));
    ASSIGN_OR_RETURN(crypto::PublicKey key, crypto::PublicKey::from_der(caller.public_key));
    const auto* ev = caller.claims.if_contains("evidence_sha256");
    const std::string evidence = ev && ev->is_string() ? std::string(ev->as_string()) : "";
    const std::string message = attested_entry_message(log_id, evidence, content_type, data);
    if (!key.verify(as_bytes(message), *sig).ok()) {
      return invalid_argument(
          "\"signature\" does not verify with the key the TEE bound at login (it signs "
          "custos.ledger.attested-entry.v1, the log id, the login's evidence_sha256, the content "
          "type and the data's SHA-256; docs/ledger.md)");
    }
    boost::json::object statement{
        {"_type", std::string(kAttestedType)},    {"log_id", log_id},
        {"content_type", content_type},           {"data", base64_encode(data)},
        {"signature", base64_encode(*sig)},       {"public_key", caller.public_key_b64},
        {"attestation", std::move(caller.claims)}};
    return boost::json::serialize(statement);
  }

  Result<Response> get_entry(const Request& req, const std::string& which) {
    uint64_t index = 0;
    auto parsed = parse_uint64(which);
    if (!parsed || which.rfind("0x", 0) == 0)
      return invalid_argument("entry index must be a number");
    index = *parsed;
    ASSIGN_OR_RETURN(uint64_t n, size());
    if (index >= n)
      return not_found("no entry " + which + " (the log holds " + std::to_string(n) + ")");
    ASSIGN_OR_RETURN(uint64_t tree_size, field_count(req.data, "tree_size", n));
    if (tree_size <= index || tree_size > n) {
      return invalid_argument("tree_size must be above the index and at most " + std::to_string(n));
    }
    ASSIGN_OR_RETURN(auto entry, view_.get_json(entry_path(index)));
    if (!entry || !entry->is_object()) return data_loss("ledger entry " + which + " is missing");
    ASSIGN_OR_RETURN(Hash leaf, reader()(0, index));
    ASSIGN_OR_RETURN(Hash root, ledger::root(reader(), tree_size));
    ASSIGN_OR_RETURN(auto proof, ledger::inclusion_proof(reader(), index, tree_size));
    boost::json::object out = entry->as_object();
    out["index"] = index;
    out["leaf_hash"] = hex(leaf);
    out["tree_size"] = tree_size;
    out["root_hash"] = hex(root);
    out["inclusion_proof"] = hex_list(proof);
    return Response::with_data(std::move(out));
  }

  Result<Response> tree_head() {
    ASSIGN_OR_RETURN(uint64_t n, size());
    ASSIGN_OR_RETURN(Hash root, ledger::root(reader(), n));
    ASSIGN_OR_RETURN(auto sth, signed_head(n, root));
    return Response::with_data(std::move(sth));
  }

  Result<Response> consistency(const Request& req) {
    ASSIGN_OR_RETURN(uint64_t n, size());
    ASSIGN_OR_RETURN(uint64_t first, field_count(req.data, "first", 0));
    ASSIGN_OR_RETURN(uint64_t second, field_count(req.data, "second", n));
    if (second > n)
      return invalid_argument("second is larger than the log (" + std::to_string(n) + ")");
    if (first > second) return invalid_argument("first must not be larger than second");
    ASSIGN_OR_RETURN(auto proof, ledger::consistency_proof(reader(), first, second));
    ASSIGN_OR_RETURN(Hash first_root, ledger::root(reader(), first));
    ASSIGN_OR_RETURN(Hash second_root, ledger::root(reader(), second));
    return Response::with_data({{"first", first},
                                {"second", second},
                                {"first_root_hash", hex(first_root)},
                                {"second_root_hash", hex(second_root)},
                                {"proof", hex_list(proof)}});
  }

  Result<Response> public_key() {
    ASSIGN_OR_RETURN(const crypto::PrivateKey* k, key());
    return Response::with_data({{"public_key", k->public_key().to_pem()},
                                {"log_id", log_id_},
                                {"algorithm", "ecdsa-p256-sha256"}});
  }

  View view_;
  const Clock& clock_;
  const bool attested_only_;  // mount option attested_only
  std::mutex mu_;  // one request at a time: appends must see the size they extend
  crypto::PrivateKey key_;
  std::string log_id_;
};

}  // namespace

std::string sth_message(const std::string& log_id, uint64_t tree_size, const std::string& root_hex,
                        int64_t timestamp) {
  return "custos.ledger.sth.v1\n" + log_id + "\n" + std::to_string(tree_size) + "\n" + root_hex +
         "\n" + std::to_string(timestamp) + "\n";
}

Result<std::unique_ptr<Engine>> make_ledger_engine(EngineContext ctx, const MountEntry& entry) {
  ASSIGN_OR_RETURN(bool attested_only, field_bool(entry.options, "attested_only", false));
  return std::unique_ptr<Engine>(std::make_unique<Ledger>(std::move(ctx), attested_only));
}

}  // namespace custos::core
