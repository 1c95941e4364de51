// End-to-end against a real software TPM: swtpm + tpm2-tools create an AK, extend a PCR, quote
// with a nonce; the verifier must accept the quote and reject a wrong nonce, a wrong PCR value and
// a different AK. swtpm missing is a FAILURE (scripts/install-deps installs it), not a skip.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "attestation/tpm/verifier.h"
#include "tpm_test_util.h"

namespace custos::attestation::tpm {
namespace {

namespace fs = std::filesystem;
using testing::message;
using testing::read_file;
using testing::reason;
using testing::run;

bool have_program(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

// A TCP port that was free a moment ago, with port+1 free too (swtpm's control channel).
int free_port_pair() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof(a);
    int port = -1;
    if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
        ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port = ntohs(a.sin_port);
    }
    ::close(s);
    if (port <= 0 || port >= 65535) continue;
    int s2 = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in b{};
    b.sin_family = AF_INET;
    b.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    b.sin_port = htons(static_cast<uint16_t>(port + 1));
    bool ok = ::bind(s2, reinterpret_cast<sockaddr*>(&b), sizeof(b)) == 0;
    ::close(s2);
    if (ok) return port;
  }
  return -1;
}

bool can_connect(int port) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(s);
  return ok;
}

class SwtpmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* p : {"swtpm", "tpm2_createek", "tpm2_createak", "tpm2_quote",
                          "tpm2_pcrextend", "tpm2_readpublic", "tpm2_flushcontext"}) {
      ASSERT_TRUE(have_program(p)) << p << " is not installed: run scripts/install-deps "
                                      "(Debian packages swtpm, swtpm-tools, tpm2-tools)";
    }
    char tmpl[] = "/tmp/custos-swtpm-XXXXXX";
    char* d = ::mkdtemp(tmpl);
    ASSERT_NE(d, nullptr);
    dir_ = d;
    for (int attempt = 0; attempt < 3 && !started_; ++attempt) {
      port_ = free_port_pair();
      ASSERT_GT(port_, 0) << "no free port pair";
      std::string cmd = "swtpm socket --tpm2 --tpmstate dir=" + dir_ +
                        " --server type=tcp,port=" + std::to_string(port_) +
                        ",bindaddr=127.0.0.1 --ctrl type=tcp,port=" + std::to_string(port_ + 1) +
                        ",bindaddr=127.0.0.1 --flags not-need-init,startup-clear --pid file=" +
                        dir_ + "/swtpm.pid --log file=" + dir_ + "/swtpm.log --daemon";
      if (std::system(cmd.c_str()) != 0) continue;
      // Bounded wait for the server socket.
      for (int i = 0; i < 100 && !started_; ++i) {
        if (can_connect(port_)) started_ = true;
        else std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (!started_) stop();
    }
    ASSERT_TRUE(started_) << "swtpm did not start";
  }

  void TearDown() override {
    stop();
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  void stop() {
    Bytes pid_text = read_pid_file();
    if (pid_text.empty()) return;
    pid_t pid = static_cast<pid_t>(std::atoi(std::string(pid_text.begin(), pid_text.end()).c_str()));
    if (pid <= 1) return;
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 100; ++i) {  // up to 5 s
      if (::kill(pid, 0) != 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (::kill(pid, 0) == 0) ::kill(pid, SIGKILL);
    std::error_code ec;
    fs::remove(dir_ + "/swtpm.pid", ec);
    started_ = false;
  }

  Bytes read_pid_file() {
    std::string path = dir_ + "/swtpm.pid";
    if (!fs::exists(path)) return {};
    return read_file(path);
  }

  // Runs a tpm2-tools command in the temp dir against our swtpm; returns stdout. Fails the test
  // on a non-zero exit. `timeout` bounds every command.
  std::string tpm(const std::string& args) {
    std::string cmd = "cd " + dir_ + " && TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=" +
                      std::to_string(port_) + " timeout 60 " + args + " 2>" + dir_ + "/err.txt";
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) {
      ADD_FAILURE() << "popen failed";
      return out;
    }
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    int rc = ::pclose(p);
    if (rc != 0) {
      Bytes err = read_file(dir_ + "/err.txt");
      ADD_FAILURE() << args << " failed (" << rc << "): " << std::string(err.begin(), err.end());
    }
    flush();
    return out;
  }
  void flush() {
    std::string base = "cd " + dir_ + " && TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=" +
                       std::to_string(port_) + " timeout 20 tpm2_flushcontext ";
    (void)std::system((base + "-t >/dev/null 2>&1").c_str());
    (void)std::system((base + "-s >/dev/null 2>&1").c_str());
  }
  Bytes file(const std::string& name) { return read_file(dir_ + "/" + name); }

  std::string dir_;
  int port_ = -1;
  bool started_ = false;
};

TEST_F(SwtpmTest, QuoteVerifiesAndRejectsWrongNonceWrongPcrOtherAk) {
  const std::string nonce = "c0ffee00112233445566778899aabbccddeeff0123456789abcdef0011223344";
  tpm("tpm2_createek -c ek.ctx -G rsa -u ek.pub");
  tpm("tpm2_createak -C ek.ctx -c ak.ctx -G rsa -g sha256 -s rsassa -u ak.pub -n ak.name");
  tpm("tpm2_readpublic -c ak.ctx -f pem -o ak.pem");
  tpm("tpm2_pcrextend 16:sha256=" + std::string(64, 'a'));
  std::string yaml = tpm("tpm2_quote -c ak.ctx -l sha256:0,16,23 -q " + nonce +
                         " -m quote.msg -s quote.sig -o pcrs.bin -F serialized -g sha256");
  ASSERT_FALSE(HasFailure());

  TpmVerifier v;
  Bytes quote = file("quote.msg");
  Collateral c{{"signature", file("quote.sig")},
               {"ak_pub", file("ak.pub")},
               {"pcrs", file("pcrs.bin")},
               {"nonce", to_bytes(nonce)}};
  auto r = run(v, quote, c);
  ASSERT_TRUE(r.ok()) << reason(r) << ": " << message(r);
  const auto& pcrs = r.claims().fields.at("pcrs").as_object().at("sha256").as_object();
  EXPECT_EQ(pcrs.size(), 3u);
  EXPECT_EQ(std::string(r.claims().fields.at("nonce").as_string()), nonce);
  EXPECT_EQ(std::string(r.claims().fields.at("ak_name").as_string()), hex_encode(file("ak.name")));
  EXPECT_NE(std::string(pcrs.at("16").as_string()), std::string(64, '0'));  // extended

  // The same quote with the PEM AK and with the YAML tpm2_quote printed.
  Collateral pem = c;
  pem["ak_pub"] = file("ak.pem");
  EXPECT_TRUE(run(v, quote, pem).ok()) << message(run(v, quote, pem));
  Collateral from_yaml = c;
  from_yaml["pcrs"] = to_bytes(yaml);
  EXPECT_TRUE(run(v, quote, from_yaml).ok()) << message(run(v, quote, from_yaml));

  // Wrong nonce.
  Collateral wrong_nonce = c;
  wrong_nonce["nonce"] = to_bytes(std::string(nonce.size() - 2, '0') + "01");
  EXPECT_EQ(reason(run(v, quote, wrong_nonce)), "tpm.nonce.mismatch");

  // Wrong PCR value: PCR 16 as if it had never been extended.
  Collateral wrong_pcr = c;
  wrong_pcr["pcrs"] = to_bytes("{\"sha256\": {\"0\": \"" + std::string(pcrs.at("0").as_string()) +
                               "\", \"16\": \"" + std::string(64, '0') + "\", \"23\": \"" +
                               std::string(pcrs.at("23").as_string()) + "\"}}");
  EXPECT_EQ(reason(run(v, quote, wrong_pcr)), "tpm.pcr_digest.mismatch");

  // A different AK on the same TPM.
  tpm("tpm2_createak -C ek.ctx -c ak2.ctx -G rsa -g sha256 -s rsassa -u ak2.pub");
  Collateral other_ak = c;
  other_ak["ak_pub"] = file("ak2.pub");
  EXPECT_EQ(reason(run(v, quote, other_ak)), "tpm.signature.invalid");

  // A later quote with the "values" PCR layout, and after another extend the old values fail.
  tpm("tpm2_pcrextend 16:sha256=" + std::string(64, 'b'));
  tpm("tpm2_quote -c ak.ctx -l sha256:0,16,23 -q " + nonce +
      " -m quote2.msg -s quote2.sig -o pcrs2.bin -F values -g sha256");
  Collateral c2{{"signature", file("quote2.sig")},
                {"ak_pub", file("ak.pub")},
                {"pcrs", file("pcrs2.bin")},
                {"nonce", to_bytes(nonce)}};
  EXPECT_TRUE(run(v, file("quote2.msg"), c2).ok()) << message(run(v, file("quote2.msg"), c2));
  Collateral stale = c2;
  stale["pcrs"] = file("pcrs.bin");
  EXPECT_EQ(reason(run(v, file("quote2.msg"), stale)), "tpm.pcr_digest.mismatch");
}

TEST_F(SwtpmTest, EcdsaAkQuote) {
  const std::string nonce = "0102030405060708";
  tpm("tpm2_createek -c ek.ctx -G rsa -u ek.pub");
  tpm("tpm2_createak -C ek.ctx -c ak.ctx -G ecc -g sha256 -s ecdsa -u ak.pub -n ak.name");
  tpm("tpm2_quote -c ak.ctx -l sha256:0,1,2,3 -q " + nonce +
      " -m quote.msg -s quote.sig -o pcrs.bin -F serialized -g sha256");
  ASSERT_FALSE(HasFailure());
  TpmVerifier v;
  Collateral c{{"signature", file("quote.sig")},
               {"ak_pub", file("ak.pub")},
               {"pcrs", file("pcrs.bin")},
               {"nonce", to_bytes(nonce)}};
  auto r = run(v, file("quote.msg"), c);
  ASSERT_TRUE(r.ok()) << reason(r) << ": " << message(r);
  EXPECT_EQ(std::string(r.claims().fields.at("ak_name").as_string()), hex_encode(file("ak.name")));
  Collateral wrong = c;
  wrong["nonce"] = to_bytes("0102030405060709");
  EXPECT_EQ(reason(run(v, file("quote.msg"), wrong)), "tpm.nonce.mismatch");
}

// RSASSA-PSS with SHA-384 over the SHA-256 bank: pcrDigest uses the signing hash (SHA-384).
TEST_F(SwtpmTest, RsaPssSha384OverSha256Bank) {
  const std::string nonce = "feedface";
  tpm("tpm2_createek -c ek.ctx -G rsa -u ek.pub");
  tpm("tpm2_createak -C ek.ctx -c ak.ctx -G rsa -g sha384 -s rsapss -u ak.pub");
  tpm("tpm2_pcrextend 23:sha256=" + std::string(64, 'c'));
  tpm("tpm2_quote -c ak.ctx -l sha256:7,23 -q " + nonce +
      " -m quote.msg -s quote.sig -o pcrs.bin -F serialized -g sha384 --scheme rsapss");
  ASSERT_FALSE(HasFailure());
  TpmVerifier v;
  Collateral c{{"signature", file("quote.sig")},
               {"ak_pub", file("ak.pub")},
               {"pcrs", file("pcrs.bin")},
               {"nonce", to_bytes(nonce)}};
  auto r = run(v, file("quote.msg"), c);
  ASSERT_TRUE(r.ok()) << reason(r) << ": " << message(r);
  EXPECT_EQ(std::string(r.claims().fields.at("signature_hash").as_string()), "sha384");
  EXPECT_EQ(r.claims().fields.at("pcr_digest").as_string().size(), 96u);
  EXPECT_TRUE(r.claims().fields.at("pcrs").as_object().contains("sha256"));
}

}  // namespace
}  // namespace custos::attestation::tpm
