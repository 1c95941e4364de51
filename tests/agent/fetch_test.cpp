// The workload-side key release client (agent/fetch.h) against an in-process fake broker that
// implements docs/formats/kbs.md independently: it verifies the sim quote with SimVerifier,
// recomputes the report-data binding itself and wraps with its own code. Also the pieces of
// `custos run` that need no exec (secret specs).
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <boost/json.hpp>

#include "agent/fetch.h"
#include "agent/run.h"
#include "attestation/sim/sim.h"
#include "base/encoding.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "net/http.h"
#include "storage/temp_dir.h"

namespace custos::agent {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using storage::testing::TempDir;

const char kSecret[] = "0123456789abcdef0123456789abcdef";

std::string str(const json::object& o, const char* k) {
  const auto* v = o.if_contains(k);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

net::HttpResponse reply(int status, const json::object& body) {
  net::HttpResponse r;
  r.status = status;
  r.body = json::serialize(body);
  return r;
}
net::HttpResponse refuse(int status, const std::string& reason, const std::string& msg) {
  return reply(status, json::object{{"errors", json::array{reason + ": " + msg}}, {"reason", reason}});
}

// RFC 7518 §4.6.2 Concat KDF written out independently of the client's copy.
Bytes kdf(ByteSpan z, std::string_view alg) {
  Bytes in = {0, 0, 0, 1};
  in.insert(in.end(), z.begin(), z.end());
  in.push_back(0), in.push_back(0), in.push_back(0), in.push_back(static_cast<uint8_t>(alg.size()));
  in.insert(in.end(), alg.begin(), alg.end());
  for (int i = 0; i < 8; ++i) in.push_back(0);
  in.push_back(0), in.push_back(0), in.push_back(1), in.push_back(0);
  return crypto::sha256(in);
}

json::object make_jwe(const crypto::PublicKey& to, ByteSpan plaintext) {
  SecretBytes cek = crypto::random_secret(32);
  std::string header;
  std::string encrypted_key;
  if (to.type() == crypto::KeyType::kRsa) {
    header = R"({"alg":"RSA-OAEP-256","enc":"A256GCM"})";
    encrypted_key = base64url_encode(*to.rsa_oaep_encrypt(cek.span()));
  } else {
    auto eph = crypto::PrivateKey::generate(to.type());
    header = R"({"alg":"ECDH-ES","enc":"A256GCM","epk":)" + eph->public_key().to_jwk() + "}";
    cek = SecretBytes(kdf(eph->ecdh(to)->span(), "A256GCM"));
  }
  std::string prot = base64url_encode(as_bytes(header));
  Bytes iv = crypto::random_bytes(12);
  Bytes sealed = *crypto::aead_seal(crypto::AeadAlg::kAes256Gcm, cek.span(), iv, plaintext, as_bytes(prot));
  ByteSpan all(sealed);
  return json::object{{"protected", prot},
                      {"encrypted_key", encrypted_key},
                      {"iv", base64url_encode(iv)},
                      {"ciphertext", base64url_encode(all.first(all.size() - 16))},
                      {"tag", base64url_encode(all.last(16))}};
}

class FakeBroker {
 public:
  FakeBroker(const attestation::sim::SimPlatform& platform, std::string mrenclave)
      : verifier_(platform.root()), mrenclave_(std::move(mrenclave)) {
    server_ = std::move(*net::HttpServer::start(
        net::ServerOptions{.port = 0, .io_threads = 1, .worker_threads = 4},
        [this](net::HttpRequest& r) { return handle(r); }));
  }
  ~FakeBroker() { server_->stop(); }
  std::string addr() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  std::atomic<bool> tamper{false};

 private:
  // Verifies evidence, the mrenclave "policy" and the binding; empty string when all pass.
  std::string check(const json::object& ev, ByteSpan expected_report_data, std::string* why) {
    attestation::Evidence e{attestation::TeeType::kSim, *base64_decode(str(ev, "quote"))};
    attestation::Collateral c;
    if (const auto* col = ev.if_contains("collateral"); col && col->is_object()) {
      for (const auto& [k, v] : col->as_object()) c[k] = *base64_decode(v.as_string());
    }
    auto vr = verifier_.verify(e, c, {std::chrono::system_clock::now()});
    if (!vr.ok()) return *why = vr.rejection().message, "evidence.rejected";
    if (!constant_time_equal(vr.claims().report_data, expected_report_data)) return "binding.mismatch";
    std::string mr(vr.claims().fields.at("mrenclave").as_string());
    if (mr != mrenclave_) return *why = "sgx.mrenclave: expected " + mrenclave_ + ", got " + mr, "policy.denied";
    return "";
  }

  net::HttpResponse handle(net::HttpRequest& r) {
    std::lock_guard<std::mutex> lock(mu_);
    boost::system::error_code ec;
    json::value body = r.body.empty() ? json::value(json::object{}) : json::parse(r.body, ec);
    if (ec || !body.is_object()) return refuse(400, "request.invalid", "bad json");
    const json::object& o = body.as_object();
    if (r.target == "/kbs/v1/keys/k1/transfer") {
      if (!o.contains("quote")) {
        std::string nonce = base64_encode(crypto::random_bytes(32));
        nonces_.insert(nonce);
        return reply(401, json::object{{"nonce", nonce}, {"key_id", "k1"}});
      }
      std::string nonce = str(o, "nonce");
      if (nonces_.erase(nonce) != 1) return refuse(401, "nonce.unknown", "no such nonce");
      Bytes spki = *base64_decode(str(o, "user_data"));
      Bytes input = *base64_decode(nonce);
      input.insert(input.end(), spki.begin(), spki.end());
      Bytes rd = crypto::sha256(input);
      rd.resize(64, 0);
      std::string why;
      if (std::string reason = check(o, rd, &why); !reason.empty()) return refuse(403, reason, why);
      auto pub = *crypto::PublicKey::from_der(spki);
      if (pub.type() != crypto::KeyType::kRsa) return reply(200, make_jwe(pub, as_bytes(kSecret)));
      SecretBytes swk = crypto::random_secret(32);
      Bytes iv = crypto::random_bytes(12);
      Bytes ct = *crypto::aead_seal(crypto::AeadAlg::kAes256Gcm, swk.span(), iv, as_bytes(kSecret), {});
      if (tamper) ct[0] ^= 1;
      iv.insert(iv.end(), ct.begin(), ct.end());
      return reply(200, json::object{{"wrapped_key", base64_encode(iv)},
                                     {"wrapped_swk", base64_encode(*pub.rsa_oaep_encrypt(swk.span()))}});
    }
    if (r.target.rfind("/kbs/v1/keys/", 0) == 0) return refuse(404, "key.unknown", "no such key");
    if (r.target == "/kbs/v0/auth") {
      std::string nonce = base64_encode(crypto::random_bytes(32));
      std::string session = crypto::random_uuid();
      sessions_[session] = {nonce, ""};
      net::HttpResponse resp = reply(200, json::object{{"nonce", nonce}, {"extra-params", ""}});
      resp.headers.push_back({"Set-Cookie", "kbs-session-id=" + session + "; Path=/kbs/v0; HttpOnly"});
      return resp;
    }
    std::string cookie(r.header("Cookie"));
    std::string session = cookie.rfind("kbs-session-id=", 0) == 0 ? cookie.substr(15) : "";
    auto it = sessions_.find(session);
    if (r.target == "/kbs/v0/attest") {
      if (it == sessions_.end()) return refuse(401, "nonce.unknown", "no session");
      std::string runtime = str(o, "runtime-data");
      auto rt = json::parse(runtime).as_object();
      if (str(rt, "nonce") != it->second.first) return refuse(401, "nonce.wrong_target", "nonce");
      Bytes rd = crypto::sha384(as_bytes(runtime));
      rd.resize(64, 0);
      std::string why;
      if (std::string reason = check(o.at("tee-evidence").as_object(), rd, &why); !reason.empty()) {
        return reply(403, json::object{{"type", "https://github.com/confidential-containers/kbs/errors/PolicyDeny"},
                                       {"detail", reason + ": " + why}});
      }
      it->second.second = json::serialize(rt.at("tee-pubkey"));
      return reply(200, json::object{{"token", "ear.jwt.here"}});
    }
    if (r.target == "/kbs/v0/resource/repo/type/tag") {
      if (it == sessions_.end() || it->second.second.empty()) return refuse(401, "nonce.unknown", "no session");
      return reply(200, make_jwe(*crypto::PublicKey::from_jwk(it->second.second), as_bytes(kSecret)));
    }
    return refuse(404, "not.found", r.target);
  }

  attestation::sim::SimVerifier verifier_;
  std::string mrenclave_;
  std::mutex mu_;
  std::set<std::string> nonces_;
  std::map<std::string, std::pair<std::string, std::string>> sessions_;  // session -> nonce, jwk
  std::unique_ptr<net::HttpServer> server_;
};

class FetchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new crypto::PrivateKey(*generate_ephemeral_key(WrapKeyType::kRsa3072));
  }
  static void TearDownTestSuite() { delete rsa_; }

  void SetUp() override {
    auto p = attestation::sim::SimPlatform::create(dir_.file("sim"), std::chrono::system_clock::now());
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    write(dir_.file("app"), "#!/bin/sh\necho the workload\n");
    write(dir_.file("evil"), "#!/bin/sh\necho a modified workload\n");
    std::string mr = hex_encode(*attestation::sim::measure_file(dir_.file("app")));
    broker_ = std::make_unique<FakeBroker>(*p, mr);
  }

  static void write(const fs::path& p, std::string_view s) {
    std::ofstream(p, std::ios::binary) << s;
  }

  std::unique_ptr<EvidenceProducer> producer(const char* program) {
    ProducerConfig c;
    c.tee = attestation::TeeType::kSim;
    c.sim_dir = dir_.file("sim");
    c.program = dir_.file(program);
    auto p = make_producer(c);
    EXPECT_TRUE(p.ok()) << p.status().to_string();
    return std::move(*p);
  }

  FetchOptions options(const EvidenceProducer* p) {
    FetchOptions o;
    o.kbs_addr = broker_->addr();
    o.producer = p;
    o.key_id = "k1";
    o.resource = "repo/type/tag";
    o.ephemeral = rsa_;
    return o;
  }

  static crypto::PrivateKey* rsa_;
  TempDir dir_;
  std::unique_ptr<FakeBroker> broker_;
};
crypto::PrivateKey* FetchTest::rsa_ = nullptr;

TEST_F(FetchTest, ReleasesKeyWrappedToRsaKey) {
  auto p = producer("app");
  auto k = fetch_key(options(p.get()));
  ASSERT_TRUE(k.ok()) << k.status().to_string();
  EXPECT_EQ(k->view(), kSecret);
}

TEST_F(FetchTest, ReleasesKeyAsJweToFreshEcKey) {
  auto p = producer("app");
  FetchOptions o = options(p.get());
  o.ephemeral = nullptr;
  o.key_type = WrapKeyType::kEcP256;
  auto k = fetch_key(o);
  ASSERT_TRUE(k.ok()) << k.status().to_string();
  EXPECT_EQ(k->view(), kSecret);
}

TEST_F(FetchTest, ModifiedProgramIsRefusedWithTheBrokersReason) {
  auto p = producer("evil");
  auto k = fetch_key(options(p.get()));
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), Code::kPermissionDenied);
  EXPECT_NE(k.status().message().find("policy.denied"), std::string::npos) << k.status().message();
  EXPECT_NE(k.status().message().find("sgx.mrenclave"), std::string::npos) << k.status().message();
}

TEST_F(FetchTest, UnknownKeyIsNotFound) {
  auto p = producer("app");
  FetchOptions o = options(p.get());
  o.key_id = "nope";
  EXPECT_EQ(fetch_key(o).status().code(), Code::kNotFound);
  o.key_id = "../sys";
  EXPECT_EQ(fetch_key(o).status().code(), Code::kInvalidArgument);
}

TEST_F(FetchTest, TamperedResponseIsDataLoss) {
  auto p = producer("app");
  broker_->tamper = true;
  EXPECT_EQ(fetch_key(options(p.get())).status().code(), Code::kDataLoss);
}

TEST_F(FetchTest, ResourceThroughKbsV0) {
  auto p = producer("app");
  auto s = fetch_resource(options(p.get()));
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->view(), kSecret);

  auto evil = producer("evil");
  auto refused = fetch_resource(options(evil.get()));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("policy.denied"), std::string::npos);
}

TEST_F(FetchTest, ConcurrentCallsAreIndependent) {
  auto p = producer("app");
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      net::HttpClient http;
      FetchOptions o = options(p.get());
      o.http = &http;
      for (int i = 0; i < 5; ++i) {
        auto k = fetch_key(o);
        if (k.ok() && k->view() == kSecret) ++ok;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 20);
}

TEST(SecretSpec, ParsesSourcesAndTargets) {
  auto a = parse_secret_spec("DB_PASS=key:1234-ab", SecretSpec::Target::kEnv);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->source, SecretSpec::Source::kKey);
  EXPECT_EQ(a->ref, "1234-ab");
  auto b = parse_secret_spec("/run/s/tls.key=kbs:///repo/type/tag", SecretSpec::Target::kFile);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->name, "/run/s/tls.key");
  EXPECT_EQ(b->source, SecretSpec::Source::kResource);
  EXPECT_EQ(b->ref, "repo/type/tag");
  auto c = parse_secret_spec("X=vault:secret/data/app#password", SecretSpec::Target::kEnv);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ref, "secret/data/app");
  EXPECT_EQ(c->field, "password");

  for (const char* bad : {"1X=key:a", "X-Y=key:a", "X=kbs:///a/b", "X=kbs:///a//b", "X=file:a",
                          "X=key:", "=key:a", "X=vault:path", "noequals"}) {
    EXPECT_FALSE(parse_secret_spec(bad, SecretSpec::Target::kEnv).ok()) << bad;
  }
  EXPECT_FALSE(parse_secret_spec("/run/../etc/x=key:a", SecretSpec::Target::kFile).ok());
  EXPECT_FALSE(parse_secret_spec("/run/dir/=key:a", SecretSpec::Target::kFile).ok());
}

}  // namespace
}  // namespace custos::agent
