// The transit engine against an in-memory barrier (no dispatcher): every endpoint, each accept
// path with its reject twins.
#include "core/engines/transit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/encoding.h"
#include "core/barrier.h"
#include "core/view.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/pkey.h"
#include "storage/backend.h"

namespace custos::core {
namespace {

namespace json = boost::json;
using Op = Operation;

std::string b64(std::string_view s) {
  return base64_encode(as_bytes(s));
}
std::string unb64(std::string_view s) {
  auto r = base64_decode(s);
  EXPECT_TRUE(r.ok()) << "not base64: " << s;
  return r.ok() ? to_string(*r) : std::string();
}
std::string str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return "<missing " + std::string(key) + ">";
  return std::string(v->as_string());
}
int64_t num(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_int64() ? v->as_int64() : -1;
}
// Flips one bit in the base64 body of "vault:vN:<body>", keeping it valid base64.
std::string tamper(const std::string& versioned) {
  size_t colon = versioned.rfind(':');
  auto raw = base64_decode(versioned.substr(colon + 1));
  EXPECT_TRUE(raw.ok());
  Bytes b = raw.ok() ? *raw : Bytes{0};
  b[b.size() / 2] ^= 0x01;
  return versioned.substr(0, colon + 1) + base64_encode(b);
}

class TransitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = storage::open_inmem();
    barrier_ = std::make_unique<Barrier>(*backend_, clock_);
    ASSERT_TRUE(barrier_->initialize().ok());
    mount_.path = "transit/";
    mount_.type = "transit";
    mount_.uuid = "0000-transit";
    engine_ = new_engine();
    ASSERT_NE(engine_, nullptr);
  }

  std::unique_ptr<Engine> new_engine() {
    EngineContext ctx{View(*barrier_, "logical/0000-transit/"), clock_, mount_};
    auto e = make_transit_engine(ctx, mount_);
    EXPECT_TRUE(e.ok());
    return e.ok() ? std::move(*e) : nullptr;
  }

  Request request(Op op, const std::string& path, json::object data) {
    Request req;
    req.op = op;
    req.path = "transit/" + path;
    req.mount_point = "transit/";
    req.mount_type = "transit";
    req.rel_path = path;
    req.data = std::move(data);
    return req;
  }

  Result<Response> call(Op op, const std::string& path, json::object data = {},
                        Engine* engine = nullptr) {
    Request req = request(op, path, std::move(data));
    return (engine != nullptr ? engine : engine_.get())->handle(req);
  }

  // The data of a successful call (a test failure otherwise).
  json::object ok(Op op, const std::string& path, json::object data = {}) {
    auto r = call(op, path, std::move(data));
    EXPECT_TRUE(r.ok()) << path << ": " << r.status().to_string();
    if (!r.ok() || !r->data) return {};
    return *r->data;
  }

  // The status of a call expected to fail.
  Status fail(Op op, const std::string& path, json::object data = {}) {
    auto r = call(op, path, std::move(data));
    EXPECT_FALSE(r.ok()) << path << " unexpectedly succeeded";
    return r.ok() ? ok_status() : r.status();
  }

  std::string encrypt(const std::string& key, std::string_view plaintext, json::object extra = {}) {
    extra["plaintext"] = b64(plaintext);
    return str(ok(Op::kUpdate, "encrypt/" + key, std::move(extra)), "ciphertext");
  }
  std::string decrypt(const std::string& key, const std::string& ct) {
    return unb64(str(ok(Op::kUpdate, "decrypt/" + key, {{"ciphertext", ct}}), "plaintext"));
  }
  void create(const std::string& key, json::object params = {}) {
    ok(Op::kUpdate, "keys/" + key, std::move(params));
  }

  FakeClock clock_{from_unix_seconds(1700000000)};
  std::unique_ptr<storage::Backend> backend_;
  std::unique_ptr<Barrier> barrier_;
  MountEntry mount_;
  std::unique_ptr<Engine> engine_;
};

void expect_invalid(const Status& st, std::string_view fragment) {
  EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find(fragment), std::string::npos)
      << "\"" << st.message() << "\" lacks \"" << fragment << "\"";
}

// --- keys -----------------------------------------------------------------------------------

TEST_F(TransitTest, CreateReadListDelete) {
  create("app");
  auto info = ok(Op::kRead, "keys/app");
  EXPECT_EQ(str(info, "name"), "app");
  EXPECT_EQ(str(info, "type"), "aes256-gcm96");
  EXPECT_EQ(num(info, "latest_version"), 1);
  EXPECT_EQ(num(info, "min_decryption_version"), 1);
  EXPECT_EQ(num(info, "min_encryption_version"), 0);
  EXPECT_EQ(info.at("deletion_allowed"), false);
  EXPECT_EQ(info.at("exportable"), false);
  EXPECT_EQ(info.at("supports_encryption"), true);
  EXPECT_EQ(info.at("supports_decryption"), true);
  EXPECT_EQ(info.at("supports_signing"), false);
  EXPECT_EQ(info.at("supports_derivation"), false);
  ASSERT_TRUE(info.at("keys").is_object());
  EXPECT_EQ(info.at("keys").as_object().at("1"), 1700000000);

  create("other", {{"type", "chacha20-poly1305"}});
  auto list = ok(Op::kList, "keys");
  EXPECT_EQ(json::serialize(list.at("keys")), R"(["app","other"])");
  EXPECT_EQ(json::serialize(ok(Op::kList, "keys/").at("keys")), R"(["app","other"])");

  // Deletion is refused until the key's config allows it.
  expect_invalid(fail(Op::kDelete, "keys/app"), "deletion is not allowed for this key");
  ok(Op::kUpdate, "keys/app/config", {{"deletion_allowed", true}});
  auto del = call(Op::kDelete, "keys/app");
  ASSERT_TRUE(del.ok());
  EXPECT_FALSE(del->data.has_value());
  EXPECT_EQ(fail(Op::kRead, "keys/app").code(), Code::kNotFound);
  expect_invalid(fail(Op::kDelete, "keys/app"), "not found");
  EXPECT_EQ(json::serialize(ok(Op::kList, "keys").at("keys")), R"(["other"])");
}

TEST_F(TransitTest, CreateAnswersKeyInfoAndWarnsWhenItExists) {
  auto r = call(Op::kCreate, "keys/k", {{"type", "aes128-gcm96"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(str(*r->data, "type"), "aes128-gcm96");
  EXPECT_TRUE(r->warnings.empty());
  // A second create keeps the existing key and its type.
  auto again = call(Op::kUpdate, "keys/k", {{"type", "chacha20-poly1305"}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(str(*again->data, "type"), "aes128-gcm96");
  EXPECT_EQ(again->warnings.size(), 1u);
}

TEST_F(TransitTest, CreateRejectsBadParameters) {
  expect_invalid(fail(Op::kUpdate, "keys/k", {{"type", "des"}}), "unknown key type");
  expect_invalid(fail(Op::kUpdate, "keys/k", {{"derived", true}}), "not supported");
  expect_invalid(fail(Op::kUpdate, "keys/k", {{"convergent_encryption", true}}), "not supported");
  expect_invalid(fail(Op::kUpdate, "keys/k", {{"auto_rotate_period", "10m"}}), "at least an hour");
  expect_invalid(fail(Op::kUpdate, "keys/k", {{"auto_rotate_period", "banana"}}),
                 "auto_rotate_period");
  expect_invalid(fail(Op::kUpdate, "keys/k", {{"key_size", 64}}), "only valid for hmac");
  expect_invalid(fail(Op::kUpdate, "keys/k", {{"type", "hmac"}, {"key_size", 16}}), "key_size");
  expect_invalid(fail(Op::kUpdate, "keys/k", {{"exportable", json::array{}}}), "boolean");
  for (const char* bad : {"-lead", "trail.", "sp ace", "ü", "a*b", ".."}) {
    expect_invalid(fail(Op::kUpdate, std::string("keys/") + bad), "invalid key name");
  }
  expect_invalid(fail(Op::kUpdate, "keys/" + std::string(300, 'a')), "invalid key name");
  // Nothing was created along the way.
  EXPECT_EQ(ok(Op::kList, "keys").at("keys").as_array().size(), 0u);
  create("a.b-c_d");
}

TEST_F(TransitTest, UnknownPathsAndOperations) {
  EXPECT_EQ(fail(Op::kUpdate, "nonsense/x").code(), Code::kNotFound);
  EXPECT_EQ(fail(Op::kUpdate, "keys/a/b/c").code(), Code::kNotFound);
  EXPECT_EQ(fail(Op::kUpdate, "").code(), Code::kNotFound);
  EXPECT_EQ(fail(Op::kRead, "encrypt/a").code(), Code::kUnimplemented);
  EXPECT_EQ(fail(Op::kPatch, "keys/a").code(), Code::kUnimplemented);
  EXPECT_EQ(fail(Op::kUpdate, "export/encryption-key/a").code(), Code::kUnimplemented);
  EXPECT_EQ(fail(Op::kRead, "keys/a/rotate").code(), Code::kUnimplemented);
}

TEST_F(TransitTest, ConfigValidatesVersionsAndOneWaySettings) {
  create("k");
  ok(Op::kUpdate, "keys/k/rotate");
  ok(Op::kUpdate, "keys/k/rotate");  // latest 3
  expect_invalid(fail(Op::kUpdate, "keys/k/config", {{"min_decryption_version", 4}}),
                 "latest key version is 3");
  expect_invalid(fail(Op::kUpdate, "keys/k/config", {{"min_encryption_version", 4}}),
                 "latest key version is 3");
  expect_invalid(fail(Op::kUpdate, "keys/k/config", {{"min_encryption_version", -1}}), "negative");
  expect_invalid(fail(Op::kUpdate, "keys/k/config",
                      {{"min_decryption_version", 3}, {"min_encryption_version", 2}}),
                 "should not be less than min decryption version");
  // A rejected config leaves the key as it was.
  EXPECT_EQ(num(ok(Op::kRead, "keys/k"), "min_decryption_version"), 1);

  auto info = ok(Op::kUpdate, "keys/k/config",
                 {{"min_decryption_version", "2"},
                  {"exportable", true},
                  {"auto_rotate_period", "24h"},
                  {"allow_plaintext_backup", true}});
  EXPECT_EQ(num(info, "min_decryption_version"), 2);
  EXPECT_EQ(num(info, "auto_rotate_period"), 86400);
  EXPECT_EQ(info.at("exportable"), true);
  EXPECT_EQ(info.at("keys").as_object().size(), 2u);  // version 1 is archived from view
  expect_invalid(fail(Op::kUpdate, "keys/k/config", {{"exportable", false}}), "cannot be disabled");
  expect_invalid(fail(Op::kUpdate, "keys/k/config", {{"allow_plaintext_backup", false}}),
                 "cannot be disabled");
  expect_invalid(fail(Op::kUpdate, "keys/k/config", {{"auto_rotate_period", 60}}), "an hour");
  EXPECT_EQ(fail(Op::kUpdate, "keys/missing/config", {{"deletion_allowed", true}}).code(),
            Code::kNotFound);
}

// --- encrypt / decrypt ------------------------------------------------------------------------

TEST_F(TransitTest, EncryptDecryptEverySymmetricType) {
  for (const char* type : {"aes256-gcm96", "aes128-gcm96", "chacha20-poly1305"}) {
    SCOPED_TRACE(type);
    std::string name = std::string("k-") + type;
    create(name, {{"type", type}});
    auto out = ok(Op::kUpdate, "encrypt/" + name, {{"plaintext", b64("the quick brown fox")}});
    std::string ct = str(out, "ciphertext");
    EXPECT_EQ(num(out, "key_version"), 1);
    ASSERT_TRUE(ct.starts_with("vault:v1:"));
    // nonce(12) || ciphertext || tag(16)
    EXPECT_EQ(unb64(ct.substr(9)).size(), 12u + 19u + 16u);
    EXPECT_EQ(decrypt(name, ct), "the quick brown fox");
    EXPECT_EQ(decrypt(name, encrypt(name, "")), "");
  }
}

TEST_F(TransitTest, CiphertextIsRandomized) {
  create("k");
  std::string a = encrypt("k", "same");
  std::string b = encrypt("k", "same");
  EXPECT_NE(a, b);
  EXPECT_NE(unb64(a.substr(9)).substr(0, 12), unb64(b.substr(9)).substr(0, 12));
  EXPECT_EQ(decrypt("k", a), decrypt("k", b));
}

TEST_F(TransitTest, CiphertextMatchesVaultLayoutUnderTheExportedKey) {
  create("k", {{"exportable", true}});
  std::string ct = encrypt("k", "interop");
  auto keys = ok(Op::kRead, "export/encryption-key/k").at("keys").as_object();
  std::string key = unb64(str(keys, "1"));
  ASSERT_EQ(key.size(), 32u);
  Bytes raw = to_bytes(unb64(ct.substr(9)));
  auto pt = crypto::aead_open(crypto::AeadAlg::kAes256Gcm, as_bytes(key), ByteSpan(raw).first(12),
                              ByteSpan(raw).subspan(12), {});
  ASSERT_TRUE(pt.ok()) << pt.status().to_string();
  EXPECT_EQ(pt->view(), "interop");
}

TEST_F(TransitTest, EncryptCreatesMissingKey) {
  Request probe = request(Op::kUpdate, "encrypt/fresh", {});
  auto before = engine_->exists(probe);
  ASSERT_TRUE(before.ok());
  EXPECT_FALSE(*before);
  std::string ct = encrypt("fresh", "hello");
  EXPECT_TRUE(ct.starts_with("vault:v1:"));
  auto after = engine_->exists(probe);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(*after);
  EXPECT_EQ(str(ok(Op::kRead, "keys/fresh"), "type"), "aes256-gcm96");
  // Upsert honours `type`; asking for a derived key (a context) is refused.
  encrypt("fresh2", "x", {{"type", "chacha20-poly1305"}});
  EXPECT_EQ(str(ok(Op::kRead, "keys/fresh2"), "type"), "chacha20-poly1305");
  expect_invalid(
      fail(Op::kUpdate, "encrypt/derived", {{"plaintext", b64("x")}, {"context", b64("ctx")}}),
      "derivation");
  expect_invalid(
      fail(Op::kUpdate, "encrypt/signer", {{"plaintext", b64("x")}, {"type", "ed25519"}}),
      "does not support encryption");
  EXPECT_EQ(fail(Op::kRead, "keys/derived").code(), Code::kNotFound);
}

TEST_F(TransitTest, EncryptRejectsBadInput) {
  create("k");
  expect_invalid(fail(Op::kUpdate, "encrypt/k"), "missing plaintext to encrypt");
  expect_invalid(fail(Op::kUpdate, "encrypt/k", {{"plaintext", "not base64!"}}),
                 "failed to base64-decode plaintext");
  expect_invalid(fail(Op::kUpdate, "encrypt/k", {{"plaintext", json::object{}}}), "string");
  expect_invalid(fail(Op::kUpdate, "encrypt/k", {{"plaintext", b64("x")}, {"key_version", 2}}),
                 "higher than the latest");
  expect_invalid(fail(Op::kUpdate, "encrypt/k", {{"plaintext", b64("x")}, {"nonce", b64("n")}}),
                 "nonce not allowed");
  expect_invalid(fail(Op::kUpdate, "encrypt/bad%name", {{"plaintext", b64("x")}}),
                 "invalid key name");
  create("mac", {{"type", "hmac"}});
  expect_invalid(fail(Op::kUpdate, "encrypt/mac", {{"plaintext", b64("x")}}),
                 "does not support encryption");
}

TEST_F(TransitTest, DecryptRejectsTamperedAndMalformedCiphertext) {
  create("k");
  std::string ct = encrypt("k", "secret data");
  expect_invalid(fail(Op::kUpdate, "decrypt/k", {{"ciphertext", tamper(ct)}}),
                 "message authentication failed");
  expect_invalid(fail(Op::kUpdate, "decrypt/k", {{"ciphertext", ct.substr(0, ct.size() - 4)}}),
                 "message authentication failed");
  expect_invalid(fail(Op::kUpdate, "decrypt/k", {{"ciphertext", "vault:v1:" + b64("short")}}),
                 "too short");
  expect_invalid(fail(Op::kUpdate, "decrypt/k", {{"ciphertext", ct.substr(6)}}), "no prefix");
  expect_invalid(fail(Op::kUpdate, "decrypt/k", {{"ciphertext", "vault:v1"}}),
                 "wrong number of fields");
  expect_invalid(fail(Op::kUpdate, "decrypt/k", {{"ciphertext", "vault:vx:AAAA"}}),
                 "version number could not be decoded");
  expect_invalid(fail(Op::kUpdate, "decrypt/k", {{"ciphertext", "vault:v0:AAAA"}}),
                 "version number could not be decoded");
  expect_invalid(fail(Op::kUpdate, "decrypt/k", {{"ciphertext", "vault:v2" + ct.substr(8)}}),
                 "version is too new");
  expect_invalid(fail(Op::kUpdate, "decrypt/k", {{"ciphertext", "vault:v1:***"}}),
                 "could not decode base64");
  expect_invalid(fail(Op::kUpdate, "decrypt/k"), "missing ciphertext to decrypt");
  expect_invalid(fail(Op::kUpdate, "decrypt/nokey", {{"ciphertext", ct}}),
                 "encryption key not found");
  // Another key of the same type cannot open it.
  create("k2");
  expect_invalid(fail(Op::kUpdate, "decrypt/k2", {{"ciphertext", ct}}),
                 "message authentication failed");
}

TEST_F(TransitTest, AssociatedDataIsBound) {
  create("k");
  std::string ct = encrypt("k", "payload", {{"associated_data", b64("row-7")}});
  auto out = ok(Op::kUpdate, "decrypt/k", {{"ciphertext", ct}, {"associated_data", b64("row-7")}});
  EXPECT_EQ(unb64(str(out, "plaintext")), "payload");
  expect_invalid(
      fail(Op::kUpdate, "decrypt/k", {{"ciphertext", ct}, {"associated_data", b64("row-8")}}),
      "message authentication failed");
  expect_invalid(fail(Op::kUpdate, "decrypt/k", {{"ciphertext", ct}}),
                 "message authentication failed");
}

TEST_F(TransitTest, RotationVersionsAndMinimums) {
  create("k");
  std::string v1 = encrypt("k", "one");
  auto rotated = ok(Op::kUpdate, "keys/k/rotate");
  EXPECT_EQ(num(rotated, "latest_version"), 2);
  EXPECT_EQ(rotated.at("keys").as_object().size(), 2u);
  std::string v2 = encrypt("k", "two");
  EXPECT_TRUE(v2.starts_with("vault:v2:"));
  EXPECT_TRUE(encrypt("k", "old", {{"key_version", 1}}).starts_with("vault:v1:"));
  EXPECT_EQ(decrypt("k", v1), "one");
  EXPECT_EQ(decrypt("k", v2), "two");
  // A ciphertext relabelled with the other version does not open.
  expect_invalid(fail(Op::kUpdate, "decrypt/k", {{"ciphertext", "vault:v2" + v1.substr(8)}}),
                 "message authentication failed");

  ok(Op::kUpdate, "keys/k/config", {{"min_decryption_version", 2}});
  expect_invalid(fail(Op::kUpdate, "decrypt/k", {{"ciphertext", v1}}),
                 "disallowed by policy (too old)");
  EXPECT_EQ(decrypt("k", v2), "two");
  // Lowering it again restores access: versions are archived, not destroyed.
  ok(Op::kUpdate, "keys/k/config", {{"min_decryption_version", 1}});
  EXPECT_EQ(decrypt("k", v1), "one");

  ok(Op::kUpdate, "keys/k/config", {{"min_encryption_version", 2}});
  expect_invalid(fail(Op::kUpdate, "encrypt/k", {{"plaintext", b64("x")}, {"key_version", 1}}),
                 "less than the minimum encryption key version");
  EXPECT_TRUE(encrypt("k", "x").starts_with("vault:v2:"));
}

TEST_F(TransitTest, TrimDeletesOldVersionsForGood) {
  create("k", {{"exportable", true}});
  std::string v1 = encrypt("k", "one");
  ok(Op::kUpdate, "keys/k/rotate");
  ok(Op::kUpdate, "keys/k/rotate");
  expect_invalid(fail(Op::kUpdate, "keys/k/trim", {{"min_available_version", 2}}),
                 "minimum encryption version is not set");
  ok(Op::kUpdate, "keys/k/config", {{"min_decryption_version", 2}, {"min_encryption_version", 3}});
  expect_invalid(fail(Op::kUpdate, "keys/k/trim", {{"min_available_version", 3}}),
                 "greater than minimum decryption version");
  expect_invalid(fail(Op::kUpdate, "keys/k/trim"), "missing min_available_version");
  auto info = ok(Op::kUpdate, "keys/k/trim", {{"min_available_version", 2}});
  EXPECT_EQ(num(info, "min_available_version"), 2);
  expect_invalid(fail(Op::kUpdate, "keys/k/trim", {{"min_available_version", 1}}),
                 "cannot be decremented");
  // Version 1 is gone: lowering min_decryption_version cannot bring it back.
  expect_invalid(fail(Op::kUpdate, "keys/k/config", {{"min_decryption_version", 1}}),
                 "min available version");
  expect_invalid(fail(Op::kUpdate, "decrypt/k", {{"ciphertext", v1}}), "too old");
  EXPECT_EQ(ok(Op::kRead, "export/encryption-key/k").at("keys").as_object().size(), 2u);
  // The trim is persisted.
  auto fresh = new_engine();
  auto r = call(Op::kRead, "export/encryption-key/k/1", {}, fresh.get());
  ASSERT_FALSE(r.ok());
  expect_invalid(r.status(), "below minimum decryption version");
}

// --- batches ----------------------------------------------------------------------------------

TEST_F(TransitTest, BatchEncryptDecryptWithOneBadItem) {
  create("k");
  json::array in{json::object{{"plaintext", b64("a")}, {"reference", "r1"}},
                 json::object{{"plaintext", "!!not-base64"}, {"reference", "r2"}},
                 json::object{{"plaintext", b64("c")}}};
  auto r = call(Op::kUpdate, "encrypt/k", {{"batch_input", in}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 0);  // partial failure answers 200
  const auto& results = r->data->at("batch_results").as_array();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(str(results[0].as_object(), "reference"), "r1");
  EXPECT_EQ(str(results[1].as_object(), "reference"), "r2");
  EXPECT_NE(str(results[1].as_object(), "error").find("base64"), std::string::npos);
  EXPECT_FALSE(results[1].as_object().contains("ciphertext"));
  std::string c0 = str(results[0].as_object(), "ciphertext");
  std::string c2 = str(results[2].as_object(), "ciphertext");

  json::array dec{json::object{{"ciphertext", c0}}, json::object{{"ciphertext", tamper(c2)}},
                  json::object{{"ciphertext", c2}}};
  auto d = call(Op::kUpdate, "decrypt/k", {{"batch_input", dec}});
  ASSERT_TRUE(d.ok());
  const auto& dr = d->data->at("batch_results").as_array();
  ASSERT_EQ(dr.size(), 3u);
  EXPECT_EQ(unb64(str(dr[0].as_object(), "plaintext")), "a");
  EXPECT_NE(str(dr[1].as_object(), "error").find("message authentication failed"),
            std::string::npos);
  EXPECT_EQ(unb64(str(dr[2].as_object(), "plaintext")), "c");

  // partial_failure_response_code chooses the status of a partial failure.
  auto p = call(Op::kUpdate, "decrypt/k",
                {{"batch_input", dec}, {"partial_failure_response_code", 207}});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->status, 207);
}

TEST_F(TransitTest, BatchWhereEveryItemFailsIs400) {
  create("k");
  json::array in{json::object{{"ciphertext", "garbage"}}, json::object{}};
  auto r = call(Op::kUpdate, "decrypt/k", {{"batch_input", in}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400);
  const auto& results = r->data->at("batch_results").as_array();
  EXPECT_NE(str(results[0].as_object(), "error").find("no prefix"), std::string::npos);
  EXPECT_NE(str(results[1].as_object(), "error").find("missing ciphertext"), std::string::npos);
  expect_invalid(fail(Op::kUpdate, "encrypt/k", {{"batch_input", json::array{}}}),
                 "missing batch input");
  expect_invalid(fail(Op::kUpdate, "encrypt/k", {{"batch_input", "nope"}}), "array of objects");
  expect_invalid(fail(Op::kUpdate, "encrypt/k", {{"batch_input", json::array{1, 2}}}),
                 "array of objects");
}

TEST_F(TransitTest, BatchEncryptUpsertsKey) {
  json::array in{json::object{{"plaintext", b64("a")}}, json::object{{"plaintext", b64("b")}}};
  auto r = call(Op::kCreate, "encrypt/new", {{"batch_input", in}});
  ASSERT_TRUE(r.ok());
  const auto& results = r->data->at("batch_results").as_array();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(decrypt("new", str(results[1].as_object(), "ciphertext")), "b");
}

// --- rewrap / datakey --------------------------------------------------------------------------

TEST_F(TransitTest, RewrapMovesToLatestVersion) {
  create("k");
  std::string v1 = encrypt("k", "keep me");
  ok(Op::kUpdate, "keys/k/rotate");
  auto out = ok(Op::kUpdate, "rewrap/k", {{"ciphertext", v1}});
  std::string v2 = str(out, "ciphertext");
  EXPECT_TRUE(v2.starts_with("vault:v2:"));
  EXPECT_EQ(num(out, "key_version"), 2);
  EXPECT_EQ(decrypt("k", v2), "keep me");
  expect_invalid(fail(Op::kUpdate, "rewrap/k", {{"ciphertext", tamper(v1)}}),
                 "message authentication failed");
  expect_invalid(fail(Op::kUpdate, "rewrap/k"), "missing ciphertext");
  auto batch = call(Op::kUpdate, "rewrap/k",
                    {{"batch_input", json::array{json::object{{"ciphertext", v1}},
                                                 json::object{{"ciphertext", "x"}}}}});
  ASSERT_TRUE(batch.ok());
  const auto& results = batch->data->at("batch_results").as_array();
  EXPECT_TRUE(str(results[0].as_object(), "ciphertext").starts_with("vault:v2:"));
  EXPECT_TRUE(results[1].as_object().contains("error"));
}

TEST_F(TransitTest, DataKeys) {
  create("k");
  for (int bits : {128, 256, 512}) {
    auto out = ok(Op::kUpdate, "datakey/plaintext/k", {{"bits", bits}});
    std::string plain = unb64(str(out, "plaintext"));
    EXPECT_EQ(plain.size(), static_cast<size_t>(bits / 8));
    EXPECT_EQ(decrypt("k", str(out, "ciphertext")), plain);
  }
  auto wrapped = ok(Op::kUpdate, "datakey/wrapped/k");
  EXPECT_FALSE(wrapped.contains("plaintext"));
  EXPECT_EQ(decrypt("k", str(wrapped, "ciphertext")).size(), 32u);
  expect_invalid(fail(Op::kUpdate, "datakey/plaintext/k", {{"bits", 100}}), "bits");
  expect_invalid(fail(Op::kUpdate, "datakey/both/k"), "plaintext");
  expect_invalid(fail(Op::kUpdate, "datakey/plaintext/none"), "encryption key not found");
}

// --- random / hash -----------------------------------------------------------------------------

TEST_F(TransitTest, RandomBytes) {
  EXPECT_EQ(unb64(str(ok(Op::kUpdate, "random"), "random_bytes")).size(), 32u);
  EXPECT_EQ(str(ok(Op::kUpdate, "random/16", {{"format", "hex"}}), "random_bytes").size(), 32u);
  EXPECT_EQ(unb64(str(ok(Op::kUpdate, "random", {{"bytes", 7}}), "random_bytes")).size(), 7u);
  EXPECT_EQ(unb64(str(ok(Op::kUpdate, "random/platform/9"), "random_bytes")).size(), 9u);
  EXPECT_EQ(unb64(str(ok(Op::kUpdate, "random/all"), "random_bytes")).size(), 32u);
  EXPECT_NE(str(ok(Op::kUpdate, "random"), "random_bytes"),
            str(ok(Op::kUpdate, "random"), "random_bytes"));
  expect_invalid(fail(Op::kUpdate, "random/0"), "greater than 0");
  expect_invalid(fail(Op::kUpdate, "random", {{"bytes", -3}}), "greater than 0");
  expect_invalid(fail(Op::kUpdate, "random/200000"), "cannot be greater");
  expect_invalid(fail(Op::kUpdate, "random", {{"format", "base32"}}), "encoding format");
  expect_invalid(fail(Op::kUpdate, "random/dice/4"), "entropy source");
  expect_invalid(fail(Op::kUpdate, "random/seal/4x"), "bytes");
}

TEST_F(TransitTest, Hash) {
  // SHA-256("hello")
  const std::string kHello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
  EXPECT_EQ(str(ok(Op::kUpdate, "hash", {{"input", b64("hello")}}), "sum"), kHello);
  EXPECT_EQ(str(ok(Op::kUpdate, "hash/sha2-256", {{"input", b64("hello")}}), "sum"), kHello);
  auto b = ok(Op::kUpdate, "hash", {{"input", b64("hello")}, {"format", "base64"}});
  EXPECT_EQ(hex_encode(as_bytes(unb64(str(b, "sum")))), kHello);
  EXPECT_EQ(str(ok(Op::kUpdate, "hash/sha2-512", {{"input", b64("hello")}}), "sum").size(), 128u);
  EXPECT_EQ(
      str(ok(Op::kUpdate, "hash", {{"input", b64("hello")}, {"algorithm", "sha2-384"}}), "sum")
          .size(),
      96u);
  expect_invalid(fail(Op::kUpdate, "hash"), "missing input");
  expect_invalid(fail(Op::kUpdate, "hash", {{"input", "%%%"}}), "base64");
  expect_invalid(fail(Op::kUpdate, "hash/sha3-256", {{"input", b64("x")}}), "unsupported hash");
  expect_invalid(fail(Op::kUpdate, "hash/md5", {{"input", b64("x")}}), "unsupported hash");
  expect_invalid(fail(Op::kUpdate, "hash", {{"input", b64("x")}, {"format", "raw"}}), "format");
}

// --- hmac ------------------------------------------------------------------------------------

TEST_F(TransitTest, HmacAndVerify) {
  create("k", {{"exportable", true}});
  auto out = ok(Op::kUpdate, "hmac/k", {{"input", b64("message")}});
  std::string mac = str(out, "hmac");
  ASSERT_TRUE(mac.starts_with("vault:v1:"));
  // Recompute with the exported HMAC key.
  auto exported = ok(Op::kRead, "export/hmac-key/k/1").at("keys").as_object();
  std::string key = unb64(str(exported, "1"));
  EXPECT_EQ(key.size(), 32u);
  EXPECT_EQ(mac.substr(9), base64_encode(crypto::hmac(crypto::HashAlg::kSha256, as_bytes(key),
                                                      as_bytes("message"))));

  auto valid = [&](json::object data) {
    auto o = ok(Op::kUpdate, "verify/k", std::move(data));
    return o.contains("valid") && o.at("valid") == true;
  };
  EXPECT_TRUE(valid({{"input", b64("message")}, {"hmac", mac}}));
  EXPECT_FALSE(valid({{"input", b64("massage")}, {"hmac", mac}}));
  EXPECT_FALSE(valid({{"input", b64("message")}, {"hmac", tamper(mac)}}));
  // Algorithm from the URL must match.
  std::string mac512 = str(ok(Op::kUpdate, "hmac/k/sha2-512", {{"input", b64("message")}}), "hmac");
  EXPECT_NE(mac512, mac);
  EXPECT_FALSE(valid({{"input", b64("message")}, {"hmac", mac512}}));
  EXPECT_TRUE(ok(Op::kUpdate, "verify/k/sha2-512", {{"input", b64("message")}, {"hmac", mac512}})
                  .at("valid")
                  .as_bool());

  expect_invalid(fail(Op::kUpdate, "hmac/k"), "missing input for HMAC");
  expect_invalid(fail(Op::kUpdate, "hmac/k/sha3-256", {{"input", b64("x")}}), "unsupported hash");
  expect_invalid(fail(Op::kUpdate, "hmac/none", {{"input", b64("x")}}), "key not found");
  expect_invalid(fail(Op::kUpdate, "verify/k", {{"input", b64("x")}}), "missing signature or hmac");
  expect_invalid(fail(Op::kUpdate, "verify/k", {{"input", b64("x")}, {"hmac", "vault:v7:AAAA"}}),
                 "too new");

  // Rotation: old HMACs verify until min_decryption_version passes them.
  ok(Op::kUpdate, "keys/k/rotate");
  EXPECT_TRUE(
      str(ok(Op::kUpdate, "hmac/k", {{"input", b64("m")}}), "hmac").starts_with("vault:v2:"));
  EXPECT_TRUE(valid({{"input", b64("message")}, {"hmac", mac}}));
  ok(Op::kUpdate, "keys/k/config", {{"min_decryption_version", 2}});
  expect_invalid(fail(Op::kUpdate, "verify/k", {{"input", b64("message")}, {"hmac", mac}}),
                 "too old");

  // Batch: an empty input is fine, a missing one is an item error.
  json::array in{json::object{{"input", b64("a")}}, json::object{}, json::object{{"input", ""}}};
  auto r = call(Op::kUpdate, "hmac/k", {{"batch_input", in}});
  ASSERT_TRUE(r.ok());
  const auto& results = r->data->at("batch_results").as_array();
  EXPECT_TRUE(str(results[0].as_object(), "hmac").starts_with("vault:v2:"));
  EXPECT_EQ(str(results[1].as_object(), "error"), "missing input for HMAC");
  EXPECT_TRUE(str(results[2].as_object(), "hmac").starts_with("vault:v2:"));
}

TEST_F(TransitTest, HmacTypeKey) {
  create("mac", {{"type", "hmac"}, {"key_size", 64}, {"exportable", true}});
  auto info = ok(Op::kRead, "keys/mac");
  EXPECT_EQ(info.at("supports_encryption"), false);
  EXPECT_EQ(info.at("supports_signing"), false);
  EXPECT_EQ(num(info, "key_size"), 64);
  std::string mac = str(ok(Op::kUpdate, "hmac/mac", {{"input", b64("x")}}), "hmac");
  std::string key =
      unb64(str(ok(Op::kRead, "export/hmac-key/mac/latest").at("keys").as_object(), "1"));
  EXPECT_EQ(key.size(), 64u);
  EXPECT_EQ(mac.substr(9),
            base64_encode(crypto::hmac(crypto::HashAlg::kSha256, as_bytes(key), as_bytes("x"))));
  expect_invalid(fail(Op::kUpdate, "sign/mac", {{"input", b64("x")}}), "does not support signing");
  expect_invalid(fail(Op::kRead, "export/encryption-key/mac"), "not supported");
  // Rotation keeps the configured size.
  ok(Op::kUpdate, "keys/mac/rotate");
  EXPECT_EQ(unb64(str(ok(Op::kRead, "export/hmac-key/mac/2").at("keys").as_object(), "2")).size(),
            64u);
}

// --- sign / verify -------------------------------------------------------------------------------

struct SignCase {
  const char* type;
  const char* public_name;
};

TEST_F(TransitTest, SignVerifyRoundTripForEveryAsymmetricType) {
  const SignCase cases[] = {{"ecdsa-p256", "P-256"},  {"ecdsa-p384", "P-384"},
                            {"ecdsa-p521", "P-521"},  {"ed25519", "ed25519"},
                            {"rsa-2048", "rsa-2048"}, {"rsa-3072", "rsa-3072"},
                            {"rsa-4096", "rsa-4096"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.type);
    std::string name = std::string("s-") + c.type;
    create(name, {{"type", c.type}});
    auto info = ok(Op::kRead, "keys/" + name);
    EXPECT_EQ(info.at("supports_signing"), true);
    const auto& v1 = info.at("keys").as_object().at("1").as_object();
    EXPECT_EQ(str(v1, "name"), c.public_name);
    EXPECT_FALSE(str(v1, "public_key").empty());
    EXPECT_EQ(str(v1, "creation_time"), "2023-11-14T22:13:20Z");

    auto out = ok(Op::kUpdate, "sign/" + name, {{"input", b64("to be signed")}});
    std::string sig = str(out, "signature");
    ASSERT_TRUE(sig.starts_with("vault:v1:")) << sig;
    EXPECT_EQ(num(out, "key_version"), 1);
    auto verify = [&](std::string_view input, const std::string& s) {
      auto o = ok(Op::kUpdate, "verify/" + name, {{"input", b64(input)}, {"signature", s}});
      return o.contains("valid") && o.at("valid") == true;
    };
    EXPECT_TRUE(verify("to be signed", sig));
    EXPECT_FALSE(verify("to be signeD", sig));
    EXPECT_FALSE(verify("to be signed", tamper(sig)));
    expect_invalid(fail(Op::kUpdate, "verify/" + name,
                        {{"input", b64("to be signed")}, {"signature", sig.substr(6)}}),
                   "no prefix");

    // The public key shown by read verifies the signature outside the engine.
    Result<crypto::PublicKey> pub =
        std::string_view(c.type) == "ed25519"
            ? crypto::PublicKey::from_ed25519(as_bytes(unb64(str(v1, "public_key"))))
            : crypto::PublicKey::from_pem(str(v1, "public_key"));
    ASSERT_TRUE(pub.ok()) << pub.status().to_string();
    EXPECT_TRUE(pub->verify(as_bytes("to be signed"), as_bytes(unb64(sig.substr(9)))).ok());
  }
}

TEST_F(TransitTest, EcdsaMarshalingAndPrehashed) {
  create("ec", {{"type", "ecdsa-p256"}});
  auto jws = ok(Op::kUpdate, "sign/ec", {{"input", b64("m")}, {"marshaling_algorithm", "jws"}});
  std::string sig = str(jws, "signature");
  auto raw = base64url_decode(sig.substr(9));
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->size(), 64u);  // r || s
  EXPECT_TRUE(ok(Op::kUpdate, "verify/ec",
                 {{"input", b64("m")}, {"signature", sig}, {"marshaling_algorithm", "jws"}})
                  .at("valid")
                  .as_bool());
  EXPECT_FALSE(ok(Op::kUpdate, "verify/ec",
                  {{"input", b64("n")}, {"signature", sig}, {"marshaling_algorithm", "jws"}})
                   .at("valid")
                   .as_bool());

  Bytes digest = crypto::sha256(as_bytes("big document"));
  std::string d64 = base64_encode(digest);
  std::string pre =
      str(ok(Op::kUpdate, "sign/ec", {{"input", d64}, {"prehashed", true}}), "signature");
  // Signing the digest as prehashed equals signing the document.
  EXPECT_TRUE(ok(Op::kUpdate, "verify/ec", {{"input", b64("big document")}, {"signature", pre}})
                  .at("valid")
                  .as_bool());
  expect_invalid(fail(Op::kUpdate, "sign/ec", {{"input", b64("short")}, {"prehashed", true}}),
                 "length");
  auto s384 = str(ok(Op::kUpdate, "sign/ec/sha2-384", {{"input", b64("m")}}), "signature");
  EXPECT_TRUE(ok(Op::kUpdate, "verify/ec/sha2-384", {{"input", b64("m")}, {"signature", s384}})
                  .at("valid")
                  .as_bool());
  EXPECT_FALSE(ok(Op::kUpdate, "verify/ec/sha2-256", {{"input", b64("m")}, {"signature", s384}})
                   .at("valid")
                   .as_bool());
  expect_invalid(
      fail(Op::kUpdate, "sign/ec", {{"input", b64("m")}, {"marshaling_algorithm", "der"}}),
      "marshaling_algorithm");
}

TEST_F(TransitTest, RsaPaddingsAndEncryption) {
  create("rsa", {{"type", "rsa-2048"}});
  for (const char* alg : {"pss", "pkcs1v15"}) {
    SCOPED_TRACE(alg);
    std::string sig = str(
        ok(Op::kUpdate, "sign/rsa/sha2-512", {{"input", b64("doc")}, {"signature_algorithm", alg}}),
        "signature");
    EXPECT_TRUE(ok(Op::kUpdate, "verify/rsa/sha2-512",
                   {{"input", b64("doc")}, {"signature", sig}, {"signature_algorithm", alg}})
                    .at("valid")
                    .as_bool());
    EXPECT_FALSE(ok(Op::kUpdate, "verify/rsa/sha2-512",
                    {{"input", b64("dog")}, {"signature", sig}, {"signature_algorithm", alg}})
                     .at("valid")
                     .as_bool());
  }
  std::string pre =
      str(ok(Op::kUpdate, "sign/rsa",
             {{"input", base64_encode(crypto::sha256(as_bytes("doc")))}, {"prehashed", true}}),
          "signature");
  EXPECT_TRUE(ok(Op::kUpdate, "verify/rsa", {{"input", b64("doc")}, {"signature", pre}})
                  .at("valid")
                  .as_bool());
  expect_invalid(
      fail(Op::kUpdate, "sign/rsa", {{"input", b64("x")}, {"signature_algorithm", "raw"}}),
      "signature_algorithm");
  expect_invalid(
      fail(Op::kUpdate, "sign/rsa", {{"input", b64("x")}, {"marshaling_algorithm", "jws"}}),
      "only supported for ECDSA");

  // RSA keys encrypt with OAEP-SHA256.
  auto info = ok(Op::kRead, "keys/rsa");
  EXPECT_EQ(info.at("supports_encryption"), true);
  std::string ct = encrypt("rsa", "wrapped secret");
  EXPECT_TRUE(ct.starts_with("vault:v1:"));
  EXPECT_EQ(unb64(ct.substr(9)).size(), 256u);
  EXPECT_EQ(decrypt("rsa", ct), "wrapped secret");
  expect_invalid(fail(Op::kUpdate, "decrypt/rsa", {{"ciphertext", tamper(ct)}}),
                 "invalid ciphertext");
}

TEST_F(TransitTest, SignRejects) {
  create("aes");
  expect_invalid(fail(Op::kUpdate, "sign/aes", {{"input", b64("x")}}), "does not support signing");
  expect_invalid(
      fail(Op::kUpdate, "verify/aes", {{"input", b64("x")}, {"signature", "vault:v1:AA"}}),
      "does not support verification");
  expect_invalid(fail(Op::kUpdate, "sign/none", {{"input", b64("x")}}), "signing key not found");
  create("ed", {{"type", "ed25519"}});
  expect_invalid(fail(Op::kUpdate, "sign/ed"), "missing input");
  expect_invalid(fail(Op::kUpdate, "sign/ed", {{"input", "??"}}), "base64");
  expect_invalid(fail(Op::kUpdate, "sign/ed", {{"input", b64("x")}, {"prehashed", true}}),
                 "prehashed");
  expect_invalid(fail(Op::kUpdate, "sign/ed", {{"input", b64("x")}, {"key_version", 2}}),
                 "higher than the latest");
  expect_invalid(fail(Op::kUpdate, "encrypt/ed", {{"plaintext", b64("x")}}),
                 "does not support encryption");
  std::string sig = str(ok(Op::kUpdate, "sign/ed", {{"input", b64("x")}}), "signature");
  expect_invalid(fail(Op::kUpdate, "verify/ed",
                      {{"input", b64("x")}, {"signature", sig}, {"hmac", "vault:v1:AA"}}),
                 "not both");
  // Signatures of versions below min_decryption_version are refused.
  ok(Op::kUpdate, "keys/ed/rotate");
  ok(Op::kUpdate, "keys/ed/config", {{"min_decryption_version", 2}});
  expect_invalid(fail(Op::kUpdate, "verify/ed", {{"input", b64("x")}, {"signature", sig}}),
                 "too old");
}

TEST_F(TransitTest, BatchSignAndVerify) {
  create("ec", {{"type", "ecdsa-p256"}});
  json::array in{json::object{{"input", b64("a")}}, json::object{{"input", "*"}},
                 json::object{{"input", b64("c")}}};
  auto r = call(Op::kUpdate, "sign/ec", {{"batch_input", in}});
  ASSERT_TRUE(r.ok());
  const auto& s = r->data->at("batch_results").as_array();
  ASSERT_EQ(s.size(), 3u);
  EXPECT_TRUE(s[1].as_object().contains("error"));
  json::array check{
      json::object{{"input", b64("a")}, {"signature", str(s[0].as_object(), "signature")}},
      json::object{{"input", b64("x")}, {"signature", str(s[2].as_object(), "signature")}},
      json::object{{"input", b64("c")}, {"signature", str(s[2].as_object(), "signature")}}};
  auto v = call(Op::kUpdate, "verify/ec", {{"batch_input", check}});
  ASSERT_TRUE(v.ok());
  const auto& vr = v->data->at("batch_results").as_array();
  EXPECT_EQ(vr[0].as_object().at("valid"), true);
  EXPECT_EQ(vr[1].as_object().at("valid"), false);
  EXPECT_EQ(vr[2].as_object().at("valid"), true);
}

// --- export ------------------------------------------------------------------------------------

TEST_F(TransitTest, Export) {
  create("plain");
  expect_invalid(fail(Op::kRead, "export/encryption-key/plain"), "not exportable");
  expect_invalid(fail(Op::kRead, "export/hmac-key/plain"), "not exportable");
  EXPECT_EQ(fail(Op::kRead, "export/encryption-key/none").code(), Code::kNotFound);
  expect_invalid(fail(Op::kRead, "export/bogus-key/plain"), "invalid export type");

  create("ex", {{"exportable", true}});
  ok(Op::kUpdate, "keys/ex/rotate");
  auto all = ok(Op::kRead, "export/encryption-key/ex");
  EXPECT_EQ(str(all, "name"), "ex");
  EXPECT_EQ(str(all, "type"), "aes256-gcm96");
  EXPECT_EQ(all.at("keys").as_object().size(), 2u);
  auto latest = ok(Op::kRead, "export/encryption-key/ex/latest").at("keys").as_object();
  EXPECT_TRUE(latest.contains("2"));
  EXPECT_EQ(latest.size(), 1u);
  expect_invalid(fail(Op::kRead, "export/encryption-key/ex/3"), "does not exist");
  expect_invalid(fail(Op::kRead, "export/encryption-key/ex/two"), "parse version");
  expect_invalid(fail(Op::kRead, "export/signing-key/ex"), "not supported");

  create("ec", {{"type", "ecdsa-p384"}, {"exportable", true}});
  std::string pem = str(ok(Op::kRead, "export/signing-key/ec/1").at("keys").as_object(), "1");
  auto priv = crypto::PrivateKey::from_pem(pem);
  ASSERT_TRUE(priv.ok()) << priv.status().to_string();
  EXPECT_EQ(priv->type(), crypto::KeyType::kEcP384);
  std::string sig = str(ok(Op::kUpdate, "sign/ec", {{"input", b64("m")}}), "signature");
  crypto::SignOptions opts;
  EXPECT_TRUE(priv->public_key().verify(as_bytes("m"), as_bytes(unb64(sig.substr(9))), opts).ok());

  create("ed", {{"type", "ed25519"}, {"exportable", true}});
  std::string ed = unb64(str(ok(Op::kRead, "export/signing-key/ed").at("keys").as_object(), "1"));
  ASSERT_EQ(ed.size(), 64u);  // seed || public key, Go's layout
  std::string pub =
      unb64(str(ok(Op::kRead, "keys/ed").at("keys").as_object().at("1").as_object(), "public_key"));
  EXPECT_EQ(ed.substr(32), pub);
  EXPECT_EQ(unb64(str(ok(Op::kRead, "export/public-key/ed").at("keys").as_object(), "1")), pub);

  create("rsa", {{"type", "rsa-2048"}, {"exportable", true}});
  auto rsa_pem = str(ok(Op::kRead, "export/encryption-key/rsa").at("keys").as_object(), "1");
  EXPECT_TRUE(crypto::PrivateKey::from_pem(rsa_pem).ok());
}

// --- persistence, sealing, rotation, concurrency ------------------------------------------------

TEST_F(TransitTest, KeysSurviveANewEngineInstance) {
  create("k", {{"type", "chacha20-poly1305"}});
  ok(Op::kUpdate, "keys/k/rotate");
  ok(Op::kUpdate, "keys/k/config", {{"deletion_allowed", true}});
  std::string ct = encrypt("k", "persisted");
  create("ed", {{"type", "ed25519"}});
  std::string sig = str(ok(Op::kUpdate, "sign/ed", {{"input", b64("m")}}), "signature");

  auto fresh = new_engine();
  auto out = call(Op::kUpdate, "decrypt/k", {{"ciphertext", ct}}, fresh.get());
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(unb64(str(*out->data, "plaintext")), "persisted");
  auto info = call(Op::kRead, "keys/k", {}, fresh.get());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(num(*info->data, "latest_version"), 2);
  EXPECT_EQ(info->data->at("deletion_allowed"), true);
  auto v = call(Op::kUpdate, "verify/ed", {{"input", b64("m")}, {"signature", sig}}, fresh.get());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->data->at("valid"), true);

  // The stored record carries no key bytes in the clear below the barrier.
  auto raw = backend_->get("logical/0000-transit/policy/k");
  ASSERT_TRUE(raw.ok());
  ASSERT_TRUE(raw->has_value());
  EXPECT_EQ(to_string(**raw).find("chacha20"), std::string::npos);
}

TEST_F(TransitTest, SealedBarrierRefusesAndForgetsKeys) {
  create("k");
  std::string ct = encrypt("k", "x");
  barrier_->seal();
  EXPECT_EQ(fail(Op::kUpdate, "decrypt/k", {{"ciphertext", ct}}).code(), Code::kUnavailable);
  EXPECT_EQ(fail(Op::kUpdate, "random").code(), Code::kUnavailable);
}

TEST_F(TransitTest, AutoRotateOnUseAfterThePeriod) {
  create("k", {{"auto_rotate_period", "1h"}});
  EXPECT_TRUE(encrypt("k", "x").starts_with("vault:v1:"));
  clock_.advance(std::chrono::minutes(59));
  EXPECT_TRUE(encrypt("k", "x").starts_with("vault:v1:"));
  clock_.advance(std::chrono::minutes(2));
  EXPECT_TRUE(encrypt("k", "x").starts_with("vault:v2:"));
  EXPECT_EQ(num(ok(Op::kRead, "keys/k"), "latest_version"), 2);
  ok(Op::kUpdate, "keys/k/config", {{"auto_rotate_period", 0}});
  clock_.advance(std::chrono::hours(5));
  EXPECT_TRUE(encrypt("k", "x").starts_with("vault:v2:"));
}

TEST_F(TransitTest, ConcurrentEncryptDecryptDuringRotation) {
  create("k");
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        std::string msg = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto e = call(Op::kUpdate, "encrypt/k", {{"plaintext", b64(msg)}});
        if (!e.ok()) {
          ++failures;
          continue;
        }
        auto d = call(Op::kUpdate, "decrypt/k", {{"ciphertext", str(*e->data, "ciphertext")}});
        if (!d.ok() || unb64(str(*d->data, "plaintext")) != msg) ++failures;
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 20; ++i) {
      if (!call(Op::kUpdate, "keys/k/rotate").ok()) ++failures;
    }
  });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(num(ok(Op::kRead, "keys/k"), "latest_version"), 21);
}

}  // namespace
}  // namespace custos::core
