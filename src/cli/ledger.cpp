#include "cli/ledger.h"

#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "base/encoding.h"
#include "cli/client.h"
#include "core/engines/ledger.h"
#include "crypto/hash.h"
#include "crypto/pkey.h"
#include "ledger/merkle.h"

namespace custos::cli {
namespace {

namespace json = boost::json;
using ledger::Hash;

Result<Hash> hash_field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (!v || !v->is_string()) return invalid_argument("missing " + std::string(key));
  auto b = hex_decode(std::string_view(v->as_string()));
  if (!b.ok() || b->size() != 32)
    return invalid_argument(std::string(key) + " is not a SHA-256 hash");
  Hash h{};
  std::copy(b->begin(), b->end(), h.begin());
  return h;
}

Result<uint64_t> size_field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (!v || !v->is_number()) return invalid_argument("missing " + std::string(key));
  auto n = v->to_number<int64_t>();
  if (n < 0) return invalid_argument(std::string(key) + " is negative");
  return static_cast<uint64_t>(n);
}

// A signed tree head: well formed, and signed by `key` under `log_id`.
Status check_head(const json::object& sth, const crypto::PublicKey& key,
                  const std::string& log_id) {
  const auto* id = sth.if_contains("log_id");
  const auto* sig = sth.if_contains("signature");
  const auto* ts = sth.if_contains("timestamp");
  if (!id || !id->is_string() || !sig || !sig->is_string() || !ts || !ts->is_number()) {
    return invalid_argument("not a signed tree head");
  }
  if (id->as_string() != log_id)
    return permission_denied("the head is from another log (log_id differs)");
  ASSIGN_OR_RETURN(uint64_t size, size_field(sth, "tree_size"));
  ASSIGN_OR_RETURN(Hash root, hash_field(sth, "root_hash"));
  std::string msg =
      core::sth_message(log_id, size, hex_encode(ByteSpan(root)), ts->to_number<int64_t>());
  auto raw = base64_decode(std::string_view(sig->as_string()));
  if (!raw.ok() || !key.verify(as_bytes(msg), *raw).ok()) {
    return permission_denied("the tree head's signature does not verify with the log's key");
  }
  return ok_status();
}

std::string path_of(const std::string& mount, const std::string& rest) {
  std::string m = mount;
  while (!m.empty() && m.back() == '/') m.pop_back();
  return m + "/" + rest;
}

Result<json::object> data_of(Client& c, const std::string& path) {
  ASSIGN_OR_RETURN(ApiReply r, c.call("GET", path));
  const auto* d = r.body.is_object() ? r.body.as_object().if_contains("data") : nullptr;
  if (!d || !d->is_object()) return invalid_argument(path + ": no data in the answer");
  return d->as_object();
}

struct VerifyArgs {
  std::string mount = "ledger";
  std::string trusted;
  std::string save;
};

// The whole check; prints what it established.
Status verify(Client& c, const VerifyArgs& a) {
  ASSIGN_OR_RETURN(json::object pk, data_of(c, path_of(a.mount, "public-key")));
  const auto* pem = pk.if_contains("public_key");
  const auto* id = pk.if_contains("log_id");
  if (!pem || !pem->is_string() || !id || !id->is_string())
    return invalid_argument("bad public-key answer");
  ASSIGN_OR_RETURN(crypto::PublicKey key,
                   crypto::PublicKey::from_pem(std::string_view(pem->as_string())));
  std::string log_id(id->as_string());
  if (hex_encode(crypto::sha256(key.to_der())) != log_id) {
    return permission_denied("log_id is not the SHA-256 of the log's public key");
  }
  ASSIGN_OR_RETURN(json::object head, data_of(c, path_of(a.mount, "sth")));
  RETURN_IF_ERROR(check_head(head, key, log_id));
  ASSIGN_OR_RETURN(uint64_t size, size_field(head, "tree_size"));
  ASSIGN_OR_RETURN(Hash root, hash_field(head, "root_hash"));
  std::printf("log %s: signed tree head verified, size %llu, root %s\n", log_id.c_str(),
              static_cast<unsigned long long>(size), hex_encode(ByteSpan(root)).c_str());
  if (!a.trusted.empty()) {
    std::ifstream in(a.trusted, std::ios::binary);
    if (!in) return not_found("cannot read " + a.trusted);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    boost::system::error_code ec;
    json::value old = json::parse(text, ec);
    if (ec || !old.is_object()) return invalid_argument(a.trusted + " is not a saved tree head");
    RETURN_IF_ERROR(check_head(old.as_object(), key, log_id).with_context(a.trusted));
    ASSIGN_OR_RETURN(uint64_t old_size, size_field(old.as_object(), "tree_size"));
    ASSIGN_OR_RETURN(Hash old_root, hash_field(old.as_object(), "root_hash"));
    if (old_size > size)
      return permission_denied("the log shrank: the trusted head has more entries");
    ASSIGN_OR_RETURN(
        json::object proof,
        data_of(c, path_of(a.mount, "proof/consistency?first=" + std::to_string(old_size) +
                                        "&second=" + std::to_string(size))));
    const auto* list = proof.if_contains("proof");
    if (!list || !list->is_array()) return invalid_argument("bad consistency answer");
    std::vector<Hash> hashes;
    for (const auto& h : list->as_array()) {
      if (!h.is_string()) return invalid_argument("bad consistency answer");
      json::object wrap{{"h", h}};
      ASSIGN_OR_RETURN(Hash x, hash_field(wrap, "h"));
      hashes.push_back(x);
    }
    // The roots come from the two signed heads, never from the proof's answer.
    if (!ledger::verify_consistency(old_size, size, old_root, root, hashes)) {
      return permission_denied("the log is NOT consistent with the trusted head of size " +
                               std::to_string(old_size) + ": its history was rewritten");
    }
    std::printf("consistent with the trusted head of size %llu (%s)\n",
                static_cast<unsigned long long>(old_size), a.trusted.c_str());
  }
  if (!a.save.empty()) {
    std::ofstream out(a.save, std::ios::binary | std::ios::trunc);
    out << json::serialize(head) << "\n";
    if (!out) return invalid_argument("cannot write " + a.save);
    std::printf("saved the head to %s\n", a.save.c_str());
  }
  return ok_status();
}

}  // namespace

void register_ledger_commands(CLI::App& app, Globals& g) {
  auto* lg =
      app.add_subcommand("ledger", "Append to a ledger mount and verify it (docs/ledger.md)");
  lg->require_subcommand(1);

  static VerifyArgs va;
  auto* v = lg->add_subcommand(
      "verify", "Check the signed tree head and, with --trusted, that the log only grew since");
  v->add_option("--mount", va.mount, "The ledger's mount path")->default_val("ledger");
  v->add_option("--trusted", va.trusted, "A head saved earlier (with --save) to check against");
  v->add_option("--save", va.save, "Save the verified head to this file");
  v->callback([&g] {
    Client c;
    Status st = verify(c, va);
    if (!st.ok()) std::fprintf(stderr, "verification failed: %s\n", st.message().c_str());
    g.exit_code = st.ok() ? 0 : 1;
  });

  static std::string mount = "ledger", content_type, file;
  auto* ap = lg->add_subcommand("append", "Append a file (or - for stdin) as one entry");
  ap->add_option("file", file)->required();
  ap->add_option("--mount", mount, "The ledger's mount path")->default_val("ledger");
  ap->add_option("--content-type", content_type,
                 "Stored beside the entry (not covered by the tree)");
  ap->callback([&g] {
    std::string data;
    if (file == "-") {
      std::stringstream ss;
      ss << std::cin.rdbuf();
      data = ss.str();
    } else {
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        std::fprintf(stderr, "cannot read %s\n", file.c_str());
        g.exit_code = 2;
        return;
      }
      data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    Client c;
    json::value body =
        json::object{{"data", base64_encode(as_bytes(data))}, {"content_type", content_type}};
    auto r = c.call("POST", path_of(mount, "entries"), &body);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().message().c_str());
      g.exit_code = 2;
      return;
    }
    if (g.format == "json") {
      std::printf("%s\n", json::serialize(r->body).c_str());
    } else {
      const auto& d = r->body.as_object().at("data").as_object();
      std::printf("index %s, leaf %s, tree size %s\n", json::serialize(d.at("index")).c_str(),
                  std::string(d.at("leaf_hash").as_string()).c_str(),
                  json::serialize(d.at("signed_tree_head").as_object().at("tree_size")).c_str());
    }
    g.exit_code = 0;
  });
}

}  // namespace custos::cli
