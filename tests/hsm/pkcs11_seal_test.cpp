// The PKCS#11 seal against a real SoftHSM2 token (Debian's softhsm2): each test makes its own token
// in a token directory of this process, with softhsm2-util (and pkcs11-tool for RSA key pairs).
#include "hsm/pkcs11_seal.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "hsm/blob.h"

namespace custos::hsm {
namespace {

namespace fs = std::filesystem;

const char* softhsm_lib() {
  for (const char* p :
       {"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"}) {
    if (fs::exists(p)) return p;
  }
  return nullptr;
}

class Pkcs11SealTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("custos-softhsm-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tokens");
    std::ofstream(dir_ / "softhsm2.conf") << "directories.tokendir = " << (dir_ / "tokens").string()
                                          << "\nobjectstore.backend = file\nlog.level = ERROR\n";
    setenv("SOFTHSM2_CONF", (dir_ / "softhsm2.conf").c_str(), 1);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  void SetUp() override {
    ASSERT_NE(softhsm_lib(), nullptr) << "softhsm2 is not installed (scripts/install-deps)";
    token_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    token_ = token_.substr(0, 32);
    ASSERT_EQ(run("softhsm2-util --init-token --free --label '" + token_ +
                  "' --pin 1234 --so-pin 5678 >/dev/null"),
              0);
  }

  static int run(const std::string& cmd) { return std::system(cmd.c_str()); }

  Pkcs11SealOptions options(bool generate = true) {
    Pkcs11SealOptions o;
    o.lib = softhsm_lib();
    o.token_label = token_;
    o.pin = SecretString("1234");
    o.key_label = "custos-seal";
    o.generate_key = generate;
    return o;
  }

  // Encrypts kSecret for core/root-key; the blob and its parsed form (empty on failure).
  static std::pair<Bytes, SealBlob> seal_root_key(Pkcs11Seal& seal) {
    auto blob = seal.encrypt(to_bytes(kSecret), "core/root-key");
    EXPECT_TRUE(blob.ok()) << blob.status().to_string();
    if (!blob.ok()) return {};
    auto parsed = parse_blob(*blob);
    EXPECT_TRUE(parsed.ok()) << parsed.status().to_string();
    return {*blob, parsed.ok() ? *parsed : SealBlob{}};
  }

  static constexpr std::string_view kSecret = "thirty-two bytes of root key....";
  static inline fs::path dir_;
  std::string token_;
};

TEST_F(Pkcs11SealTest, GeneratesAKeyOnceAndRoundTripsThroughTheToken) {
  auto seal = Pkcs11Seal::open(options());
  ASSERT_TRUE(seal.ok()) << seal.status().to_string();
  Bytes secret = to_bytes(kSecret);
  auto [blob, parsed] = seal_root_key(**seal);
  EXPECT_EQ(parsed.mechanism, uint64_t{CKM_AES_GCM});
  EXPECT_EQ(parsed.key_label, "custos-seal");
  EXPECT_EQ(parsed.iv.size(), 12u);
  EXPECT_EQ(parsed.ciphertext.size(), secret.size() + 16);
  // Two encryptions of one value differ (fresh IVs).
  auto blob2 = (*seal)->encrypt(secret, "core/root-key");
  ASSERT_TRUE(blob2.ok());
  EXPECT_NE(blob, *blob2);
  seal->reset();

  // A new seal without generate_key finds the same key on the token and opens the blob.
  auto again = Pkcs11Seal::open(options(false));
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  auto pt = (*again)->decrypt(blob, "core/root-key");
  ASSERT_TRUE(pt.ok()) << pt.status().to_string();
  EXPECT_EQ(to_string(pt->span()), to_string(secret));

  // The generated key is sensitive and not extractable: pkcs11-tool cannot read its value.
  std::string cmd =
      std::string("pkcs11-tool --module ") + softhsm_lib() + " --token-label '" + token_ +
      "' --login --pin 1234 --read-object --type secrkey --label custos-seal " + ">/dev/null 2>&1";
  EXPECT_NE(run(cmd), 0);
}

TEST_F(Pkcs11SealTest, TheBlobIsBoundToItsPurposeAndRefusedWhenAltered) {
  auto seal = Pkcs11Seal::open(options());
  ASSERT_TRUE(seal.ok()) << seal.status().to_string();
  auto blob = (*seal)->encrypt(to_bytes("recovery key"), "core/recovery-key");
  ASSERT_TRUE(blob.ok());

  auto wrong_aad = (*seal)->decrypt(*blob, "core/root-key");
  ASSERT_FALSE(wrong_aad.ok());
  EXPECT_EQ(wrong_aad.status().code(), Code::kDataLoss) << wrong_aad.status().to_string();
  EXPECT_NE(wrong_aad.status().message().find("altered"), std::string::npos);

  Bytes flipped = *blob;
  flipped.back() ^= 1;
  EXPECT_EQ((*seal)->decrypt(flipped, "core/recovery-key").status().code(), Code::kDataLoss);

  for (size_t n = 0; n < blob->size(); ++n) {
    Bytes cut(blob->begin(), blob->begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_EQ((*seal)->decrypt(cut, "core/recovery-key").status().code(), Code::kDataLoss) << n;
  }
  // The seal still works after the refusals (no operation left active on the session).
  EXPECT_TRUE((*seal)->decrypt(*blob, "core/recovery-key").ok());
}

TEST_F(Pkcs11SealTest, OpenFailsClearlyWithoutLeakingThePin) {
  auto o = options();
  o.pin = SecretString("98765");
  auto bad_pin = Pkcs11Seal::open(std::move(o));
  ASSERT_FALSE(bad_pin.ok());
  EXPECT_NE(bad_pin.status().message().find("CKR_PIN_INCORRECT"), std::string::npos);
  EXPECT_EQ(bad_pin.status().message().find("98765"), std::string::npos);

  auto missing = Pkcs11Seal::open(options(false));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find("no key labelled \"custos-seal\""), std::string::npos);
  EXPECT_NE(missing.status().message().find("generate_key"), std::string::npos);

  o = options();
  o.token_label = "no-such-token";
  auto no_token = Pkcs11Seal::open(std::move(o));
  ASSERT_FALSE(no_token.ok());
  EXPECT_NE(no_token.status().message().find("token label \"no-such-token\""), std::string::npos);
  EXPECT_NE(no_token.status().message().find(token_), std::string::npos);  // lists what is there

  o = options();
  o.lib = "/nonexistent/libpkcs11.so";
  auto no_lib = Pkcs11Seal::open(std::move(o));
  ASSERT_FALSE(no_lib.ok());
  EXPECT_NE(no_lib.status().message().find("cannot load the PKCS#11 library"), std::string::npos);

  o = options();
  o.lib = "libz.so.1";  // loads, but is no PKCS#11 library
  auto not_p11 = Pkcs11Seal::open(std::move(o));
  ASSERT_FALSE(not_p11.ok());
  EXPECT_NE(not_p11.status().message().find("not a PKCS#11 library"), std::string::npos);

  o = options();
  o.mechanism = 0x1085;  // CKM_AES_CBC_PAD: not offered
  EXPECT_EQ(Pkcs11Seal::open(std::move(o)).status().code(), Code::kInvalidArgument);
}

TEST_F(Pkcs11SealTest, ASessionClosedUnderneathIsReopened) {
  auto seal = Pkcs11Seal::open(options());
  ASSERT_TRUE(seal.ok()) << seal.status().to_string();
  auto blob = (*seal)->encrypt(to_bytes("value"), "aad");
  ASSERT_TRUE(blob.ok());

  // Close every session of the token through the same library instance, as an HSM restart
  // would: the seal's next call meets CKR_SESSION_HANDLE_INVALID and must recover.
  void* h = dlopen(softhsm_lib(), RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(h, nullptr);
  auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(h, "C_GetFunctionList"));
  CK_FUNCTION_LIST_PTR f = nullptr;
  ASSERT_EQ(get(&f), CKR_OK);
  CK_SLOT_ID slots[16];
  CK_ULONG n = 16;
  ASSERT_EQ(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
  for (CK_ULONG i = 0; i < n; ++i) f->C_CloseAllSessions(slots[i]);
  dlclose(h);

  auto pt = (*seal)->decrypt(*blob, "aad");
  ASSERT_TRUE(pt.ok()) << pt.status().to_string();
  EXPECT_EQ(to_string(pt->span()), "value");
}

TEST_F(Pkcs11SealTest, RsaOaepWithAKeyPairMadeOnTheToken) {
  std::string cmd =
      std::string("pkcs11-tool --module ") + softhsm_lib() + " --token-label '" + token_ +
      "' --login --pin 1234 --keypairgen --key-type rsa:2048 --label rsa-seal " + ">/dev/null 2>&1";
  ASSERT_EQ(run(cmd), 0);
  auto o = options(false);
  o.key_label = "rsa-seal";
  o.mechanism = CKM_RSA_PKCS_OAEP;
  o.rsa_oaep_hash = "sha1";  // SoftHSM 2.6 offers OAEP with SHA-1 only
  auto seal = Pkcs11Seal::open(std::move(o));
  ASSERT_TRUE(seal.ok()) << seal.status().to_string();
  auto [blob, parsed] = seal_root_key(**seal);
  EXPECT_EQ(parsed.mechanism, uint64_t{CKM_RSA_PKCS_OAEP});
  EXPECT_EQ(parsed.ciphertext.size(), 256u);
  EXPECT_EQ(parsed.iv, Bytes{0});  // the OAEP hash, recorded: 0 is sha1
  auto pt = (*seal)->decrypt(blob, "core/root-key");
  ASSERT_TRUE(pt.ok()) << pt.status().to_string();
  EXPECT_EQ(to_string(pt->span()), kSecret);
  Bytes flipped = blob;
  flipped.back() ^= 1;
  EXPECT_FALSE((*seal)->decrypt(flipped, "core/root-key").ok());
  SealBlob bad_hash = parsed;
  bad_hash.iv = {9};
  EXPECT_EQ((*seal)->decrypt(encode_blob(bad_hash), "core/root-key").status().code(),
            Code::kDataLoss);
  EXPECT_TRUE((*seal)->decrypt(blob, "core/root-key").ok());

  // OAEP with SHA-256 (Vault's default) is refused by SoftHSM: at open, with a hint.
  o = options(false);
  o.key_label = "rsa-seal";
  o.mechanism = CKM_RSA_PKCS_OAEP;
  auto sha256 = Pkcs11Seal::open(std::move(o));
  ASSERT_FALSE(sha256.ok());
  EXPECT_NE(sha256.status().message().find("set rsa_oaep_hash"), std::string::npos)
      << sha256.status().to_string();

  // generate_key makes AES keys only.
  o = options(true);
  o.mechanism = CKM_RSA_PKCS_OAEP;
  EXPECT_EQ(Pkcs11Seal::open(std::move(o)).status().code(), Code::kInvalidArgument);
}

TEST(SealBlob, RoundTripsAndRefusesMalformedInput) {
  SealBlob b;
  b.mechanism = CKM_AES_GCM;
  b.key_label = "k";
  b.iv = Bytes(12, 7);
  b.ciphertext = Bytes(48, 9);
  Bytes enc = encode_blob(b);
  auto p = parse_blob(enc);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->mechanism, b.mechanism);
  EXPECT_EQ(p->key_label, b.key_label);
  EXPECT_EQ(p->iv, b.iv);
  EXPECT_EQ(p->ciphertext, b.ciphertext);

  Bytes bad_magic = enc;
  bad_magic[0] = 'X';
  EXPECT_EQ(parse_blob(bad_magic).status().code(), Code::kDataLoss);
  Bytes bad_version = enc;
  bad_version[2] = 2;
  EXPECT_EQ(parse_blob(bad_version).status().code(), Code::kDataLoss);
  Bytes long_label = enc;
  long_label[7] = 0xff;  // label length high byte: past the end
  EXPECT_FALSE(parse_blob(long_label).ok());
  b.key_label.clear();
  EXPECT_FALSE(parse_blob(encode_blob(b)).ok());
}

TEST(Pkcs11Names, MechanismsAndReturnCodes) {
  EXPECT_EQ(parse_mechanism("0x1087").value(), uint64_t{CKM_AES_GCM});
  EXPECT_EQ(parse_mechanism("4231").value(), uint64_t{CKM_AES_GCM});
  EXPECT_EQ(parse_mechanism("CKM_RSA_PKCS_OAEP").value(), uint64_t{CKM_RSA_PKCS_OAEP});
  EXPECT_FALSE(parse_mechanism("0x").ok());
  EXPECT_FALSE(parse_mechanism("aes").ok());
  EXPECT_EQ(ckr_name(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
  EXPECT_EQ(ckr_name(0x12345), "CKR_0x12345");
}

}  // namespace
}  // namespace custos::hsm
