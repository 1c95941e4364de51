// Root token generation and rekeying of the unseal key (core/quorum_ops.cpp, docs/quorum.md),
// through Core::handle as the HTTP layer calls it, without a token. The auto-seal variants (the
// recovery key) are in auto_seal_test.cpp.
#include "core/quorum.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core_fixture.h"

namespace custos::core {
namespace {

class QuorumTest : public CoreTest {
 protected:
  // Initialises with `shares`/`threshold`, keeps every share, and unseals.
  void init_all(int shares, int threshold) {
    auto init = core_->initialize(shares, threshold);
    ASSERT_TRUE(init.ok()) << init.status().to_string();
    root_ = init->root_token;
    all_.clear();
    for (const auto& s : init->shares) all_.push_back(hex_encode(s.span()));
    unseal_with(all_, threshold);
  }

  void unseal_with(const std::vector<std::string>& keys, int n) {
    for (int i = 0; i < n; ++i)
      ASSERT_TRUE(core_->unseal(keys[static_cast<size_t>(i)], false).ok());
    ASSERT_FALSE(core_->sealed());
  }

  // An unauthenticated request, as sys/generate-root and sys/rekey are.
  Result<Response> anon(Operation op, const std::string& path, object data = {}) {
    Request r;
    r.op = op;
    r.http_put_or_post = op == Operation::kUpdate;
    r.path = path;
    r.data = std::move(data);
    return core_->handle(r);
  }

  object body(const Result<Response>& r) {
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() && r->raw ? r->raw->as_object() : object{};
  }

  static std::string str(const object& o, const char* k) {
    return std::string(o.at(k).as_string());
  }

  static std::string decode_token(const std::string& encoded, const std::string& otp) {
    auto raw = base64_decode(encoded);
    EXPECT_TRUE(raw.ok());
    if (!raw.ok() || raw->size() != otp.size()) return "";
    std::string token(otp.size(), '\0');
    for (size_t i = 0; i < otp.size(); ++i) token[i] = static_cast<char>((*raw)[i] ^ otp[i]);
    return token;
  }

  std::vector<std::string> all_;
};

TEST(ShareQuorum, UnsealCountsARepeatedShareOnceOperationsRefuseItAndCheckTheNonce) {
  ShareQuorum q;
  EXPECT_FALSE(q.add("00ff", "", ShareQuorum::kUnseal).ok());  // not started
  q.start(2);
  EXPECT_EQ(q.nonce().size(), 36u);
  auto r = q.add("0102", "other", ShareQuorum::kOperation);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "incorrect nonce supplied");
  EXPECT_FALSE(q.add("0102", "", ShareQuorum::kOperation).ok());
  EXPECT_FALSE(q.add("zz!", q.nonce(), ShareQuorum::kOperation).ok());  // neither hex nor base64
  EXPECT_FALSE(q.add("01", q.nonce(), ShareQuorum::kOperation).ok());   // one byte: no share
  r = q.add("0102", q.nonce(), ShareQuorum::kOperation);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  r = q.add("0102", q.nonce(), ShareQuorum::kOperation);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "given key has already been provided during this operation");
  r = q.add("0102", "", ShareQuorum::kUnseal);  // unseal: silently counted once
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(q.progress(), 1);
  r = q.add("0304", "", ShareQuorum::kUnseal);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);
}

TEST_F(QuorumTest, GenerateRootGivesANewRootTokenEncodedWithTheOneTimePassword) {
  init_all(5, 3);
  auto st = body(anon(Operation::kRead, "sys/generate-root/attempt"));
  EXPECT_FALSE(st.at("started").as_bool());
  EXPECT_EQ(st.at("required").as_int64(), 3);
  EXPECT_EQ(st.at("otp_length").as_int64(), 28);

  object start = body(anon(Operation::kUpdate, "sys/generate-root/attempt"));
  ASSERT_TRUE(start.at("started").as_bool());
  std::string otp = str(start, "otp"), nonce = str(start, "nonce");
  ASSERT_EQ(otp.size(), 28u);
  // The password is shown once; a second attempt is refused while this one runs.
  EXPECT_EQ(str(body(anon(Operation::kRead, "sys/generate-root/attempt")), "otp"), "");
  EXPECT_FALSE(anon(Operation::kUpdate, "sys/generate-root/attempt").ok());
  // PGP and caller-chosen passwords are refused, not ignored.
  EXPECT_FALSE(
      anon(Operation::kUpdate, "sys/generate-root/attempt", object{{"pgp_key", "x"}}).ok());

  auto wrong_nonce = anon(Operation::kUpdate, "sys/generate-root/update",
                          object{{"key", all_[4]}, {"nonce", "not-the-nonce"}});
  ASSERT_FALSE(wrong_nonce.ok());
  EXPECT_EQ(wrong_nonce.status().code(), Code::kInvalidArgument);
  object p = body(anon(Operation::kUpdate, "sys/generate-root/update",
                       object{{"key", all_[4]}, {"nonce", nonce}}));
  EXPECT_EQ(p.at("progress").as_int64(), 1);
  EXPECT_FALSE(p.at("complete").as_bool());
  body(anon(Operation::kUpdate, "sys/generate-root/update",
            object{{"key", all_[2]}, {"nonce", nonce}}));
  object done = body(anon(Operation::kUpdate, "sys/generate-root/update",
                          object{{"key", all_[0]}, {"nonce", nonce}}));
  ASSERT_TRUE(done.at("complete").as_bool());
  std::string encoded = str(done, "encoded_token");
  EXPECT_EQ(encoded, str(done, "encoded_root_token"));
  EXPECT_EQ(encoded.find('='), std::string::npos);  // unpadded, as Vault encodes it
  std::string token = decode_token(encoded, otp);
  ASSERT_EQ(token.rfind("hvs.", 0), 0u) << token;
  EXPECT_NE(token, root_);

  // A root token: it may do what only root may.
  auto self = call(Operation::kRead, "auth/token/lookup-self", {}, token);
  ASSERT_TRUE(self.ok()) << self.status().to_string();
  EXPECT_EQ(self->data->at("policies").as_array().at(0).as_string(), "root");
  EXPECT_TRUE(call(Operation::kUpdate, "sys/policies/acl/p",
                   object{{"policy", "path \"secret/*\" { capabilities = [\"read\"] }"}}, token)
                  .ok());
  EXPECT_FALSE(body(anon(Operation::kRead, "sys/generate-root/attempt")).at("started").as_bool());
}

TEST_F(QuorumTest, GenerateRootTakesTheCallersOneTimePassword) {
  init_all(1, 1);
  // The vault CLI's -generate-otp, then -init -otp=...: 28 base62 characters, never echoed.
  EXPECT_FALSE(
      anon(Operation::kUpdate, "sys/generate-root/attempt", object{{"otp", "short"}}).ok());
  EXPECT_FALSE(anon(Operation::kUpdate, "sys/generate-root/attempt",
                    object{{"otp", "abcdefghijklmnopqrstuvwxy-01"}})
                   .ok());
  const std::string otp = "Zq3ZbX8k2LmN0pQrS7tUvWxY1a2B";
  object start = body(anon(Operation::kUpdate, "sys/generate-root/attempt", object{{"otp", otp}}));
  EXPECT_EQ(str(start, "otp"), "");
  object done = body(anon(Operation::kUpdate, "sys/generate-root/update",
                          object{{"key", all_[0]}, {"nonce", str(start, "nonce")}}));
  std::string token = decode_token(str(done, "encoded_token"), otp);
  ASSERT_EQ(token.rfind("hvs.", 0), 0u) << token;
  EXPECT_TRUE(call(Operation::kRead, "auth/token/lookup-self", {}, token).ok());
}

TEST_F(QuorumTest, GenerateRootRefusesSharesOfAnotherKeyAndKeepsTheAttempt) {
  init_all(3, 2);
  object start = body(anon(Operation::kUpdate, "sys/generate-root/attempt"));
  std::string nonce = str(start, "nonce");
  // Two shares that are not this server's: combined, they do not open the root key.
  body(anon(Operation::kUpdate, "sys/generate-root/update",
            object{{"key", "0a0b0c0d0e0f1011121314151617181920212223242526272829303132333435ab"},
                   {"nonce", nonce}}));
  auto r =
      anon(Operation::kUpdate, "sys/generate-root/update",
           object{{"key", "1a0b0c0d0e0f1011121314151617181920212223242526272829303132333435cd"},
                  {"nonce", nonce}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "root generation: the unseal key shares do not open the root key");
  object st = body(anon(Operation::kRead, "sys/generate-root/attempt"));
  EXPECT_TRUE(st.at("started").as_bool());
  EXPECT_EQ(st.at("progress").as_int64(), 0);  // progress lost, attempt kept
  EXPECT_EQ(str(st, "nonce"), nonce);

  // Cancel: gone.
  auto cancel = anon(Operation::kDelete, "sys/generate-root/attempt");
  ASSERT_TRUE(cancel.ok());
  EXPECT_FALSE(body(anon(Operation::kRead, "sys/generate-root/attempt")).at("started").as_bool());
}

TEST_F(QuorumTest, SealedServersRefuseBoth) {
  init_all(3, 2);
  ASSERT_TRUE(core_->seal().ok());
  for (const char* path : {"sys/generate-root/attempt", "sys/rekey/init"}) {
    auto r = anon(Operation::kRead, path);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kUnavailable) << path;
  }
  // Recovery rekeying needs an auto seal.
  unseal_with(all_, 2);
  auto r = anon(Operation::kRead, "sys/rekey-recovery-key/init");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("shamir"), std::string::npos);
}

TEST_F(QuorumTest, RekeyReplacesTheUnsealKeyAndItsShareCounts) {
  init_all(5, 3);
  auto bad = anon(Operation::kUpdate, "sys/rekey/init",
                  object{{"secret_shares", 3}, {"secret_threshold", 4}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "secret_threshold must be between 1 and secret_shares");

  // A root generation under way collects shares of the key being replaced: the rekey ends it.
  object gen = body(anon(Operation::kUpdate, "sys/generate-root/attempt"));
  body(anon(Operation::kUpdate, "sys/generate-root/update",
            object{{"key", all_[0]}, {"nonce", str(gen, "nonce")}}));

  // The same threshold as before, so that three old shares are enough to try the old key.
  object st = body(anon(Operation::kUpdate, "sys/rekey/init",
                        object{{"secret_shares", 4}, {"secret_threshold", 3}}));
  EXPECT_TRUE(st.at("started").as_bool());
  EXPECT_EQ(st.at("n").as_int64(), 4);
  EXPECT_EQ(st.at("t").as_int64(), 3);
  EXPECT_EQ(st.at("required").as_int64(), 3);
  EXPECT_FALSE(anon(Operation::kUpdate, "sys/rekey/init",
                    object{{"secret_shares", 3}, {"secret_threshold", 2}})
                   .ok());  // one at a time
  std::string nonce = str(st, "nonce");
  EXPECT_FALSE(
      anon(Operation::kUpdate, "sys/rekey/update", object{{"key", all_[1]}, {"nonce", "x"}}).ok());
  body(anon(Operation::kUpdate, "sys/rekey/update", object{{"key", all_[1]}, {"nonce", nonce}}));
  body(anon(Operation::kUpdate, "sys/rekey/update", object{{"key", all_[3]}, {"nonce", nonce}}));
  object done = body(
      anon(Operation::kUpdate, "sys/rekey/update", object{{"key", all_[4]}, {"nonce", nonce}}));
  ASSERT_TRUE(done.at("complete").as_bool());
  ASSERT_EQ(done.at("keys").as_array().size(), 4u);
  EXPECT_EQ(done.at("keys_base64").as_array().size(), 4u);
  EXPECT_FALSE(done.at("verification_required").as_bool());
  std::vector<std::string> fresh;
  for (const auto& k : done.at("keys").as_array()) fresh.emplace_back(k.as_string());

  EXPECT_FALSE(body(anon(Operation::kRead, "sys/generate-root/attempt")).at("started").as_bool());

  // Seal-status counts the new shares; three old ones (which opened it before) no longer unseal;
  // three new ones do.
  ASSERT_TRUE(core_->seal().ok());
  auto s = core_->seal_status();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->shares, 4);
  EXPECT_EQ(s->threshold, 3);
  ASSERT_TRUE(core_->unseal(all_[0], false).ok());
  ASSERT_TRUE(core_->unseal(all_[1], false).ok());
  auto old = core_->unseal(all_[2], false);
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.status().message().find("do not open the root key"), std::string::npos);
  EXPECT_TRUE(core_->sealed());
  unseal_with({fresh[2], fresh[0], fresh[3]}, 3);
  EXPECT_TRUE(call(Operation::kRead, "sys/mounts").ok());  // the same root key and keyring
}

TEST_F(QuorumTest, RekeyWithVerificationKeepsTheOldKeyUntilTheNewSharesAreShown) {
  init_all(3, 2);
  object st = body(
      anon(Operation::kUpdate, "sys/rekey/init",
           object{{"secret_shares", 4}, {"secret_threshold", 3}, {"require_verification", true}}));
  std::string nonce = str(st, "nonce");
  body(anon(Operation::kUpdate, "sys/rekey/update", object{{"key", all_[0]}, {"nonce", nonce}}));
  object done = body(
      anon(Operation::kUpdate, "sys/rekey/update", object{{"key", all_[2]}, {"nonce", nonce}}));
  ASSERT_TRUE(done.at("verification_required").as_bool());
  std::string vnonce = str(done, "verification_nonce");
  ASSERT_FALSE(vnonce.empty());
  std::vector<std::string> fresh;
  for (const auto& k : done.at("keys").as_array()) fresh.emplace_back(k.as_string());
  ASSERT_EQ(fresh.size(), 4u);

  // Until verified, the old shares still unseal.
  ASSERT_TRUE(core_->seal().ok());
  unseal_with(all_, 2);
  // The seal dropped the pending rekey: its new shares were never put in force.
  auto gone = anon(Operation::kRead, "sys/rekey/verify");
  EXPECT_FALSE(body(gone).at("started").as_bool());

  // Again, verified this time: a wrong share combination resets the verification progress only.
  st = body(
      anon(Operation::kUpdate, "sys/rekey/init",
           object{{"secret_shares", 4}, {"secret_threshold", 3}, {"require_verification", true}}));
  nonce = str(st, "nonce");
  body(anon(Operation::kUpdate, "sys/rekey/update", object{{"key", all_[1]}, {"nonce", nonce}}));
  done = body(
      anon(Operation::kUpdate, "sys/rekey/update", object{{"key", all_[2]}, {"nonce", nonce}}));
  vnonce = str(done, "verification_nonce");
  fresh.clear();
  for (const auto& k : done.at("keys").as_array()) fresh.emplace_back(k.as_string());
  auto busy =
      anon(Operation::kUpdate, "sys/rekey/update", object{{"key", all_[0]}, {"nonce", nonce}});
  EXPECT_FALSE(busy.ok());  // waiting for verification

  object v = body(anon(Operation::kRead, "sys/rekey/verify"));
  EXPECT_TRUE(v.at("started").as_bool());
  EXPECT_EQ(v.at("t").as_int64(), 3);
  // Old shares are not shares of the new key.
  body(anon(Operation::kUpdate, "sys/rekey/verify", object{{"key", all_[0]}, {"nonce", vnonce}}));
  body(anon(Operation::kUpdate, "sys/rekey/verify", object{{"key", all_[1]}, {"nonce", vnonce}}));
  auto mismatch =
      anon(Operation::kUpdate, "sys/rekey/verify", object{{"key", all_[2]}, {"nonce", vnonce}});
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("do not combine to the new unseal key"),
            std::string::npos);
  EXPECT_EQ(body(anon(Operation::kRead, "sys/rekey/verify")).at("progress").as_int64(), 0);

  for (int i : {3, 0}) {
    object p = body(anon(Operation::kUpdate, "sys/rekey/verify",
                         object{{"key", fresh[static_cast<size_t>(i)]}, {"nonce", vnonce}}));
    EXPECT_FALSE(p.contains("complete")) << i;
  }
  object fin = body(
      anon(Operation::kUpdate, "sys/rekey/verify", object{{"key", fresh[1]}, {"nonce", vnonce}}));
  ASSERT_TRUE(fin.at("complete").as_bool());
  EXPECT_EQ(str(fin, "nonce"), vnonce);

  ASSERT_TRUE(core_->seal().ok());
  EXPECT_EQ(core_->seal_status()->threshold, 3);
  unseal_with({fresh[0], fresh[2], fresh[3]}, 3);
}

}  // namespace
}  // namespace custos::core
