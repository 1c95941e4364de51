// Core's auto-unseal logic (core/seal.h): init with recovery shares, auto-unseal on start,
// recovery-share unseal after a manual seal, and refusals. The seal here is an in-process AES-GCM
// stand-in whose failures the tests switch on: an HSM outage is a fault the real SoftHSM cannot be
// made to produce on demand. tests/hsm and tests/integration/hsm_autounseal.sh run the real one.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "base/encoding.h"
#include "core/core.h"
#include "core/seal.h"
#include "core_fixture.h"
#include "crypto/aead.h"
#include "crypto/random.h"
#include "storage/backend.h"

namespace custos::core {
namespace {

using boost::json::object;

class FakeSeal final : public AutoSeal {
 public:
  std::string type() const override { return "pkcs11"; }
  Result<Bytes> encrypt(ByteSpan plaintext, std::string_view aad) override {
    ++encrypts;
    if (down || encrypts == fail_encrypt) return unavailable("HSM unreachable (test)");
    Bytes nonce = crypto::random_bytes(crypto::kAeadNonceSize);
    ASSIGN_OR_RETURN(Bytes ct, crypto::aead_seal(crypto::AeadAlg::kAes256Gcm, key.span(), nonce,
                                                 plaintext, as_bytes(aad)));
    nonce.insert(nonce.end(), ct.begin(), ct.end());
    return nonce;
  }
  Result<SecretBytes> decrypt(ByteSpan blob, std::string_view aad) override {
    ++decrypts;
    if (down) return unavailable("HSM unreachable (test)");
    if (blob.size() < crypto::kAeadNonceSize) return data_loss("short blob");
    return crypto::aead_open(crypto::AeadAlg::kAes256Gcm, key.span(),
                             blob.first(crypto::kAeadNonceSize),
                             blob.subspan(crypto::kAeadNonceSize), as_bytes(aad));
  }
  SecretBytes key = crypto::random_secret(32);
  std::atomic<bool> down{false};  // the retry test's thread reads it
  int fail_encrypt = 0;  // the encrypt call (1-based) that fails, 0: none
  int encrypts = 0;
  std::atomic<int> decrypts{0};
};

class AutoSealTest : public ::testing::Test {
 protected:
  AutoSealTest() : clock_(from_unix_seconds(1'800'000'000)), backend_(storage::open_inmem()) {
    seal_ = std::make_shared<FakeSeal>();
    core_ = make_core(seal_);
  }

  std::unique_ptr<Core> make_core(std::shared_ptr<AutoSeal> seal) {
    CoreConfig cfg;
    cfg.auto_seal = std::move(seal);
    return std::make_unique<Core>(*backend_, clock_, cfg);
  }

  Result<Response> call(Core& core, Operation op, const std::string& path, object data = {},
                        const std::string& token = "") {
    return handle_as(core, op, path, std::move(data), token);
  }

  // Initialises through sys/init and returns the response body.
  object init(int shares, int threshold) {
    auto r = call(*core_, Operation::kUpdate, "sys/init",
                  object{{"recovery_shares", shares}, {"recovery_threshold", threshold}});
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? r->raw->as_object() : object{};
  }

  static std::string key_at(const object& init, size_t i) {
    return std::string(init.at("recovery_keys").as_array().at(i).as_string());
  }

  FakeClock clock_;
  std::unique_ptr<storage::Backend> backend_;
  std::shared_ptr<FakeSeal> seal_;
  std::unique_ptr<Core> core_;
};

TEST_F(AutoSealTest, InitReturnsRecoveryKeysAndLeavesTheServerUnsealed) {
  object out = init(5, 3);
  EXPECT_TRUE(out.at("keys").as_array().empty());
  EXPECT_TRUE(out.at("keys_base64").as_array().empty());
  ASSERT_EQ(out.at("recovery_keys").as_array().size(), 5u);
  EXPECT_EQ(out.at("recovery_keys_base64").as_array().size(), 5u);
  EXPECT_FALSE(core_->sealed());
  EXPECT_EQ(seal_->encrypts, 2);  // the recovery key and the root key

  auto st = call(*core_, Operation::kRead, "sys/seal-status");
  ASSERT_TRUE(st.ok());
  const object& s = st->raw->as_object();
  EXPECT_EQ(s.at("type").as_string(), "pkcs11");
  EXPECT_EQ(s.at("recovery_seal").as_bool(), true);
  EXPECT_EQ(s.at("recovery_seal_type").as_string(), "shamir");
  EXPECT_EQ(s.at("n").as_int64(), 5);
  EXPECT_EQ(s.at("t").as_int64(), 3);
  EXPECT_FALSE(s.at("sealed").as_bool());

  // The root token works at once.
  std::string root(out.at("root_token").as_string());
  EXPECT_TRUE(call(*core_, Operation::kRead, "sys/mounts", {}, root).ok());
}

TEST_F(AutoSealTest, InitRefusesShamirParametersAndHsmOutages) {
  auto r = call(*core_, Operation::kUpdate, "sys/init",
                object{{"secret_shares", 5}, {"secret_threshold", 3}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "parameters secret_shares,secret_threshold not applicable to seal type pkcs11");

  // As in Vault's API, the recovery counts are required (the CLI sends 5 and 3).
  r = call(*core_, Operation::kUpdate, "sys/init", object{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("recovery_shares must be between 1 and 255"),
            std::string::npos);

  // An HSM that fails on the first (recovery key) or the second (root key) encryption leaves the
  // store uninitialised and sealed, so init can be retried.
  for (int failing : {1, 2}) {
    seal_->encrypts = 0;
    seal_->fail_encrypt = failing;
    r = call(*core_, Operation::kUpdate, "sys/init",
             object{{"recovery_shares", 3}, {"recovery_threshold", 2}});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("HSM unreachable"), std::string::npos);
    EXPECT_EQ(seal_->encrypts, failing);
    auto inited = call(*core_, Operation::kRead, "sys/init");
    ASSERT_TRUE(inited.ok());
    EXPECT_FALSE(inited->raw->as_object().at("initialized").as_bool()) << failing;
    EXPECT_TRUE(core_->sealed());
  }
  seal_->fail_encrypt = 0;
  init(3, 2);
  EXPECT_FALSE(core_->sealed());
}

TEST_F(AutoSealTest, ARestartedServerUnsealsItselfAndStaysSealedWhileTheHsmCannotDecrypt) {
  object out = init(3, 2);
  std::string root(out.at("root_token").as_string());
  ASSERT_TRUE(call(*core_, Operation::kUpdate, "sys/mounts/kv", object{{"type", "kv"}}, root).ok());
  ASSERT_TRUE(call(*core_, Operation::kUpdate, "kv/a", object{{"v", "1"}}, root).ok());
  core_.reset();

  // The HSM fails at auto-unseal (the real seal's open succeeded, then the HSM went away or its
  // key changed): sealed, with the reason.
  seal_->down = true;
  core_ = make_core(seal_);
  Status st = core_->auto_unseal();
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("HSM unreachable"), std::string::npos);
  EXPECT_TRUE(core_->sealed());

  // Back up: auto-unseal opens it, and the data is there.
  seal_->down = false;
  ASSERT_TRUE(core_->auto_unseal().ok());
  EXPECT_FALSE(core_->sealed());
  auto got = call(*core_, Operation::kRead, "kv/a", {}, root);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->data->at("v").as_string(), "1");
}

TEST_F(AutoSealTest, AutoUnsealRetriesUntilTheHsmIsBackButNotAfterAManualSeal) {
  init(3, 2);
  core_.reset();
  seal_->down = true;
  core_ = make_core(seal_);
  ASSERT_FALSE(core_->auto_unseal().ok());
  core_->retry_auto_unseal(std::chrono::milliseconds(10), std::chrono::milliseconds(40));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(core_->sealed());
  int tried = seal_->decrypts;
  EXPECT_GE(tried, 2);  // it kept trying
  seal_->down = false;
  for (int i = 0; i < 200 && core_->sealed(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(core_->sealed());

  // Again, but an operator seals the server while the HSM is down: the retries stop, and the
  // server stays sealed when the HSM comes back.
  core_.reset();
  seal_->down = true;
  core_ = make_core(seal_);
  ASSERT_FALSE(core_->auto_unseal().ok());
  core_->retry_auto_unseal(std::chrono::milliseconds(10), std::chrono::milliseconds(20));
  ASSERT_TRUE(core_->seal().ok());
  seal_->down = false;
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_TRUE(core_->sealed());
}

TEST_F(AutoSealTest, RecoverySharesUnsealAfterAManualSeal) {
  object out = init(3, 2);
  ASSERT_TRUE(core_->seal().ok());
  ASSERT_TRUE(core_->sealed());

  auto s = core_->unseal(key_at(out, 2), false);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->sealed);
  EXPECT_EQ(s->progress, 1);
  s = core_->unseal(key_at(out, 0), false);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_FALSE(s->sealed);
  EXPECT_FALSE(core_->sealed());
}

TEST_F(AutoSealTest, SharesOfAnotherRecoveryKeyDoNotUnseal) {
  // Shares from another server with the same HSM key do not combine to this recovery key.
  auto other_backend = storage::open_inmem();
  CoreConfig cfg;
  cfg.auto_seal = seal_;
  Core other(*other_backend, clock_, cfg);
  auto other_init = other.initialize_recovery(3, 2);
  ASSERT_TRUE(other_init.ok());

  object mine = init(3, 2);
  ASSERT_TRUE(core_->seal().ok());
  ASSERT_TRUE(core_->unseal(hex_encode(other_init->recovery_shares[0].span()), false).ok());
  auto s = core_->unseal(hex_encode(other_init->recovery_shares[1].span()), false);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("do not match the recovery key"), std::string::npos);
  EXPECT_TRUE(core_->sealed());

  // With the HSM down, even the right shares cannot unseal: they only authorise.
  seal_->down = true;
  ASSERT_TRUE(core_->unseal(key_at(mine, 0), false).ok());
  s = core_->unseal(key_at(mine, 1), false);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kUnavailable);
  EXPECT_TRUE(core_->sealed());
  seal_->down = false;
  ASSERT_TRUE(core_->unseal(key_at(mine, 1), false).ok());
  ASSERT_TRUE(core_->unseal(key_at(mine, 2), false).ok());
  EXPECT_FALSE(core_->sealed());
}

TEST_F(AutoSealTest, ShamirServersRefuseRecoveryParametersAndMismatchedStores) {
  // A Shamir server refuses recovery parameters by name.
  auto shamir = make_core(nullptr);
  auto r = call(*shamir, Operation::kUpdate, "sys/init",
                object{{"recovery_shares", 5}, {"recovery_threshold", 3}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "parameters recovery_shares,recovery_threshold not applicable to seal type shamir");
  shamir.reset();

  // A store initialised with the auto seal, opened by a Shamir server: refused at start.
  init(3, 2);
  core_.reset();
  shamir = make_core(nullptr);
  Status st = shamir->check_seal_type();
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("initialized with the pkcs11 seal"), std::string::npos);
  shamir.reset();

  // And the other way round.
  auto other_backend = storage::open_inmem();
  Core plain(*other_backend, clock_, CoreConfig{});
  ASSERT_TRUE(plain.initialize(1, 1).ok());
  CoreConfig cfg;
  cfg.auto_seal = seal_;
  Core sealed(*other_backend, clock_, cfg);
  st = sealed.check_seal_type();
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("initialized with the shamir seal"), std::string::npos);
  EXPECT_EQ(sealed.auto_unseal().code(), Code::kFailedPrecondition);
}

TEST_F(AutoSealTest, RecoveryKeyHoldersGenerateRootAndRekeyTheRecoveryKey) {
  object out = init(3, 2);
  auto anon = [&](Operation op, const std::string& path, object data = {}) {
    return call(*core_, op, path, std::move(data));
  };
  // The barrier key lives in the HSM: no unseal key shares to rekey.
  auto refused = anon(Operation::kUpdate, "sys/rekey/init",
                      object{{"secret_shares", 3}, {"secret_threshold", 2}});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("sys/rekey-recovery-key"), std::string::npos);

  // generate-root takes recovery shares.
  auto start = anon(Operation::kUpdate, "sys/generate-root/attempt");
  ASSERT_TRUE(start.ok()) << start.status().to_string();
  std::string nonce(start->raw->as_object().at("nonce").as_string());
  ASSERT_TRUE(anon(Operation::kUpdate, "sys/generate-root/update",
                   object{{"key", key_at(out, 1)}, {"nonce", nonce}})
                  .ok());
  auto done = anon(Operation::kUpdate, "sys/generate-root/update",
                   object{{"key", key_at(out, 2)}, {"nonce", nonce}});
  ASSERT_TRUE(done.ok()) << done.status().to_string();
  EXPECT_TRUE(done->raw->as_object().at("complete").as_bool());

  // Rekey the recovery key to 4 shares, threshold 3: the HSM encrypts the new one.
  auto init_r = anon(Operation::kUpdate, "sys/rekey-recovery-key/init",
                     object{{"secret_shares", 4}, {"secret_threshold", 3}});
  ASSERT_TRUE(init_r.ok()) << init_r.status().to_string();
  nonce = std::string(init_r->raw->as_object().at("nonce").as_string());
  ASSERT_TRUE(anon(Operation::kUpdate, "sys/rekey-recovery-key/update",
                   object{{"key", key_at(out, 0)}, {"nonce", nonce}})
                  .ok());
  int before = seal_->encrypts;
  auto rekeyed = anon(Operation::kUpdate, "sys/rekey-recovery-key/update",
                      object{{"key", key_at(out, 2)}, {"nonce", nonce}});
  ASSERT_TRUE(rekeyed.ok()) << rekeyed.status().to_string();
  EXPECT_EQ(seal_->encrypts, before + 1);
  std::vector<std::string> fresh;
  for (const auto& k : rekeyed->raw->as_object().at("keys").as_array())
    fresh.emplace_back(k.as_string());
  ASSERT_EQ(fresh.size(), 4u);

  auto st = call(*core_, Operation::kRead, "sys/seal-status");
  EXPECT_EQ(st->raw->as_object().at("n").as_int64(), 4);
  EXPECT_EQ(st->raw->as_object().at("t").as_int64(), 3);
  // After a seal, the old recovery shares no longer authorise an unseal; three new ones do.
  ASSERT_TRUE(core_->seal().ok());
  ASSERT_TRUE(core_->unseal(key_at(out, 0), false).ok());
  ASSERT_TRUE(core_->unseal(key_at(out, 1), false).ok());
  auto old = core_->unseal(key_at(out, 2), false);
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.status().message().find("do not match the recovery key"), std::string::npos);
  for (int i : {3, 1, 0}) ASSERT_TRUE(core_->unseal(fresh[static_cast<size_t>(i)], false).ok());
  EXPECT_FALSE(core_->sealed());

  // An HSM that cannot encrypt the new recovery key leaves the old one in force.
  init_r = anon(Operation::kUpdate, "sys/rekey-recovery-key/init",
                object{{"secret_shares", 2}, {"secret_threshold", 2}});
  ASSERT_TRUE(init_r.ok());
  nonce = std::string(init_r->raw->as_object().at("nonce").as_string());
  for (int i : {0, 1}) {
    ASSERT_TRUE(anon(Operation::kUpdate, "sys/rekey-recovery-key/update",
                     object{{"key", fresh[static_cast<size_t>(i)]}, {"nonce", nonce}})
                    .ok());
  }
  seal_->encrypts = 0;
  seal_->fail_encrypt = 1;  // the next encryption, the new recovery key's, fails
  auto stored = backend_->get("core/recovery-key");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  auto failed = anon(Operation::kUpdate, "sys/rekey-recovery-key/update",
                     object{{"key", fresh[2]}, {"nonce", nonce}});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(seal_->encrypts, 1);
  seal_->fail_encrypt = 0;
  st = call(*core_, Operation::kRead, "sys/seal-status");
  EXPECT_EQ(st->raw->as_object().at("n").as_int64(), 4);
  auto after = backend_->get("core/recovery-key");
  ASSERT_TRUE(after.ok() && after->has_value());
  EXPECT_TRUE(**after == **stored);  // untouched
  // And the current shares still authorise an unseal.
  ASSERT_TRUE(core_->seal().ok());
  for (int i : {2, 0, 1}) ASSERT_TRUE(core_->unseal(fresh[static_cast<size_t>(i)], false).ok());
  EXPECT_FALSE(core_->sealed());
}

}  // namespace
}  // namespace custos::core
