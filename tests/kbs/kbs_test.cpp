// The release engine end to end in one process: a Core on in-memory storage, the attestation
// Service, a SimPlatform in a temp dir, and the three dialects driven through their handlers
// (no sockets). Every release has reject twins: another measurement, another signer, a debug
// enclave, an unaccepted TCB status, sim evidence under a hardware-only policy, a replayed or
// expired nonce, a nonce for another key, evidence binding another public key, a tampered quote.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <iterator>
#include <sstream>

#include "attestation/service/service.h"
#include "attestation/sim/sim.h"
#include "base/encoding.h"
#include "base/metrics.h"
#include "core/core.h"
#include "core/engines/pki.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "crypto/x509.h"
#include "kbs/broker.h"
#include "kbs/routes.h"
#include "ledger/attested.h"
#include "storage/backend.h"
#include "storage/temp_dir.h"
#include "wrap/wrap.h"

namespace custos::kbs {
namespace {

namespace json = boost::json;
using attestation::sim::SimPlatform;
using attestation::sim::SimQuoteInput;
using storage::testing::TempDir;

constexpr std::array<uint8_t, 32> kMrenclave = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                                                0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01,
                                                0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                                                0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x02};

json::object parse(std::string_view s) {
  boost::system::error_code ec;
  json::value v = json::parse(s, ec);
  EXPECT_FALSE(ec) << s;
  return v.is_object() ? v.as_object() : json::object();
}

struct QuoteOpts {
  std::array<uint8_t, 32> mrenclave = kMrenclave;
  std::optional<std::array<uint8_t, 32>> mrsigner;
  bool debug = false;
};

class KbsTest : public ::testing::Test {
 protected:
  KbsTest()
      : clock_(from_unix_seconds(1'800'000'000)),
        backend_(storage::open_inmem()),
        core_(*backend_, clock_, core::CoreConfig{}) {}

  void SetUp() override {
    auto sim = SimPlatform::create(dir_.file("sim"), clock_.now());
    ASSERT_TRUE(sim.ok()) << sim.status().to_string();
    sim_.emplace(std::move(*sim));
    attestation::ServiceConfig sc;
    sc.clock = &clock_;
    auto svc = attestation::Service::create(std::move(sc));
    ASSERT_TRUE(svc.ok()) << svc.status().to_string();
    service_ = std::move(*svc);
    // Auth method factories must be registered before unseal; make_dev_broker does it, and
    // enables auth/attest once the core is unsealed, so call it after unsealing here.
    auto init = core_.initialize(1, 1);
    ASSERT_TRUE(init.ok());
    root_ = init->root_token;
    share_ = hex_encode(init->shares[0].span());
    ASSERT_TRUE(core_.unseal(share_, false).ok());
    auto b = make_dev_broker(core_, *service_, *sim_);
    ASSERT_TRUE(b.ok()) << b.status().to_string();
    broker_ = std::move(*b);
    mrsigner_hex_ = hex_encode(sim_->mrsigner());
  }

  std::string sim_policy(const std::string& extra = "") const {
    return R"({"tee":["sim"],"sgx":{"mrenclave":[")" + hex_encode(kMrenclave) +
           R"("],"mrsigner":[")" + mrsigner_hex_ + R"("]})" + extra + "}";
  }

  Result<core::Response> vault(core::Operation op, const std::string& path, json::object data,
                               const std::string& token) {
    core::Request r;
    r.op = op;
    r.http_put_or_post = op == core::Operation::kUpdate || op == core::Operation::kCreate;
    r.path = path;
    r.data = std::move(data);
    r.client_token = token;
    return core_.handle(r);
  }

  WireResponse v1(const std::string& method, const std::string& path, const std::string& body,
                  const std::string& token = "") {
    WireRequest r;
    r.method = method;
    r.path = path;
    r.body = body;
    r.remote_addr = "127.0.0.1:1";
    if (!token.empty()) r.headers.emplace_back("X-Vault-Token", token);
    r.headers.emplace_back("Host", "kbs.test:8200");
    return handle_v1(*broker_, r);
  }

  WireResponse v0(const std::string& method, const std::string& path, const std::string& body,
                  const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    WireRequest r;
    r.method = method;
    r.path = path;
    r.body = body;
    r.headers = headers;
    return handle_v0(*broker_, r);
  }

  // Creates a transfer policy and an AES key under it; returns the key id.
  std::string make_key(const std::string& policy_json, const std::string& key_b64) {
    auto p = v1("POST", "/kbs/v1/key-transfer-policies", policy_json, root_);
    EXPECT_EQ(p.status, 201) << p.body;
    std::string pid(parse(p.body).at("id").as_string());
    auto k = v1("POST", "/kbs/v1/keys",
                R"({"key_information":{"algorithm":"AES","key_length":256,"key_string":")" +
                    key_b64 + R"("},"transfer_policy_id":")" + pid + R"(","label":"db"})",
                root_);
    EXPECT_EQ(k.status, 201) << k.body;
    auto ko = parse(k.body);
    return std::string(ko.at("key_information").at("id").as_string());
  }

  std::string challenge(const std::string& key_id) {
    auto r = v1("POST", "/kbs/v1/keys/" + key_id + "/transfer", "");
    EXPECT_EQ(r.status, 401) << r.body;
    bool has_header = false;
    for (const auto& [k, v] : r.headers) has_header |= k == "Nonce";
    EXPECT_TRUE(has_header);
    return std::string(parse(r.body).at("nonce").as_string());
  }

  std::string quote_b64(ByteSpan report_data, const QuoteOpts& o = {}) {
    SimQuoteInput in;
    in.mrenclave = o.mrenclave;
    std::copy(report_data.begin(), report_data.end(), in.report_data.begin());
    in.debug = o.debug;
    in.mrsigner = o.mrsigner;
    auto q = sim_->quote(in);
    EXPECT_TRUE(q.ok()) << q.status().to_string();
    return base64_encode(*q);
  }

  static Bytes bind(const std::string& nonce, ByteSpan spki) {
    Bytes in = *base64_decode(nonce);
    in.insert(in.end(), spki.begin(), spki.end());
    Bytes h = crypto::sha256(in);
    h.resize(64, 0);
    return h;
  }

  // The value of one series in the metrics registry (Prometheus text), or -1 if absent.
  static double metric(const std::string& series) {
    std::istringstream lines(metrics::Registry::global().prometheus());
    for (std::string line; std::getline(lines, line);) {
      if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
          line[series.size()] == ' ') {
        return std::stod(line.substr(series.size() + 1));
      }
    }
    return -1;
  }

  // An auth/attest login of the sim TEE for `role`, binding `spki` (none if empty) into the
  // evidence with a fresh nonce.
  Result<core::Response> attest_login(const std::string& role, const Bytes& spki,
                                      const QuoteOpts& o = {}) {
    auto n = vault(core::Operation::kUpdate, "auth/attest/nonce", {}, "");
    if (!n.ok()) return n.status();
    std::string nonce(n->data->at("nonce").as_string());
    json::object body{{"role", role},
                      {"tee", "sim"},
                      {"nonce", nonce},
                      {"evidence", quote_b64(bind(nonce, spki), o)}};
    if (!spki.empty()) body["public_key"] = base64_encode(spki);
    return vault(core::Operation::kUpdate, "auth/attest/login", std::move(body), "");
  }

  std::string transfer_body(const std::string& nonce, const crypto::PublicKey& tee_key,
                            const QuoteOpts& o = {}, std::optional<Bytes> report_data = {}) {
    Bytes spki = tee_key.to_der();
    Bytes rd = report_data ? *report_data : bind(nonce, spki);
    json::object b{{"nonce", nonce},
                   {"user_data", base64_encode(spki)},
                   {"tee", "sim"},
                   {"quote", quote_b64(rd, o)}};
    return json::serialize(b);
  }

  // One full attempt with fresh nonce; returns the response.
  WireResponse attempt(const std::string& key_id, const QuoteOpts& o = {}) {
    std::string nonce = challenge(key_id);
    return v1("POST", "/kbs/v1/keys/" + key_id + "/transfer", transfer_body(nonce, rsa_.public_key(), o));
  }

  static std::string reason(const WireResponse& r) {
    auto o = parse(r.body);
    return o.contains("reason") ? std::string(o.at("reason").as_string()) : "";
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<storage::Backend> backend_;
  core::Core core_;
  std::optional<SimPlatform> sim_;
  std::unique_ptr<attestation::Service> service_;
  std::unique_ptr<Broker> broker_;
  std::string root_;
  std::string share_;  // the one unseal key share (hex)
  std::string mrsigner_hex_;
  crypto::PrivateKey rsa_ = *crypto::PrivateKey::generate(crypto::KeyType::kRsa, 2048);
  Bytes aes_ = crypto::random_bytes(32);
};

TEST_F(KbsTest, V1ReleaseToRsaKeyUnwrapsToTheRegisteredKey) {
  std::string id = make_key(sim_policy(), base64_encode(aes_));
  WireResponse r = attempt(id);
  ASSERT_EQ(r.status, 200) << r.body;
  auto o = parse(r.body);
  auto key = wrap::unwrap_isecl(rsa_, o.at("wrapped_key").as_string(), o.at("wrapped_swk").as_string());
  ASSERT_TRUE(key.ok()) << key.status().to_string();
  EXPECT_TRUE(constant_time_equal(key->span(), aes_));
}

TEST_F(KbsTest, V1ReleaseToEcKeyIsAJwe) {
  std::string id = make_key(sim_policy(), base64_encode(aes_));
  auto ec = *crypto::PrivateKey::generate(crypto::KeyType::kEcP256);
  std::string nonce = challenge(id);
  WireResponse r = v1("POST", "/kbs/v1/keys/" + id + "/transfer", transfer_body(nonce, ec.public_key()));
  ASSERT_EQ(r.status, 200) << r.body;
  auto key = wrap::jwe_decrypt(ec, parse(r.body));
  ASSERT_TRUE(key.ok()) << key.status().to_string();
  EXPECT_TRUE(constant_time_equal(key->span(), aes_));
}

TEST_F(KbsTest, V1RefusesOtherMeasurementSignerDebugAndTcb) {
  std::string id = make_key(sim_policy(), base64_encode(aes_));
  QuoteOpts other_mr;
  other_mr.mrenclave[0] ^= 1;
  WireResponse r = attempt(id, other_mr);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(reason(r), "policy.denied");
  EXPECT_NE(r.body.find("mrenclave"), std::string::npos) << r.body;

  QuoteOpts other_signer;
  other_signer.mrsigner = std::array<uint8_t, 32>{};
  r = attempt(id, other_signer);
  EXPECT_EQ(reason(r), "policy.denied");
  EXPECT_NE(r.body.find("mrsigner"), std::string::npos) << r.body;

  QuoteOpts debug;
  debug.debug = true;
  r = attempt(id, debug);
  EXPECT_EQ(reason(r), "policy.denied");
  EXPECT_NE(r.body.find("debug"), std::string::npos) << r.body;

  std::string strict = make_key(sim_policy(R"(,"tcb_status":["OutOfDate"])"), base64_encode(aes_));
  r = attempt(strict);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(reason(r), "policy.denied");
  EXPECT_NE(r.body.find("tcb_status"), std::string::npos) << r.body;
}

TEST_F(KbsTest, V1RefusesSimUnlessThePolicyAllowsIt) {
  std::string id = make_key(
      R"({"sgx":{"mrenclave":[")" + hex_encode(kMrenclave) + R"("]}})", base64_encode(aes_));
  WireResponse r = attempt(id);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(reason(r), "policy.denied");
  EXPECT_NE(r.body.find("sim"), std::string::npos) << r.body;
}

TEST_F(KbsTest, V1RefusesReplayedExpiredAndMisboundNonces) {
  std::string id = make_key(sim_policy(), base64_encode(aes_));
  std::string other = make_key(sim_policy(), base64_encode(aes_));
  std::string path = "/kbs/v1/keys/" + id + "/transfer";

  std::string nonce = challenge(id);
  std::string body = transfer_body(nonce, rsa_.public_key());
  ASSERT_EQ(v1("POST", path, body).status, 200);
  WireResponse r = v1("POST", path, body);  // the same evidence again
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(reason(r), "nonce.replayed");

  nonce = challenge(other);  // issued for another key
  r = v1("POST", path, transfer_body(nonce, rsa_.public_key()));
  EXPECT_EQ(reason(r), "nonce.wrong_target");

  nonce = challenge(id);
  clock_.advance(std::chrono::seconds(301));
  r = v1("POST", path, transfer_body(nonce, rsa_.public_key()));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(reason(r), "nonce.expired");

  r = v1("POST", path, transfer_body("", rsa_.public_key()));
  EXPECT_EQ(r.status, 401);  // no nonce: a new challenge
}

TEST_F(KbsTest, V1RefusesEvidenceBindingAnotherKeyAndTamperedQuotes) {
  std::string id = make_key(sim_policy(), base64_encode(aes_));
  std::string path = "/kbs/v1/keys/" + id + "/transfer";
  auto attacker = *crypto::PrivateKey::generate(crypto::KeyType::kRsa, 2048);

  // Genuine evidence binding the workload's key, replayed with the attacker's key in user_data.
  std::string nonce = challenge(id);
  Bytes rd = bind(nonce, rsa_.public_key().to_der());
  WireResponse r = v1("POST", path, transfer_body(nonce, attacker.public_key(), {}, rd));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(reason(r), "binding.mismatch");

  nonce = challenge(id);
  auto body = parse(transfer_body(nonce, rsa_.public_key()));
  Bytes q = *base64_decode(body.at("quote").as_string());
  q[48 + 64] ^= 0x01;  // first byte of MRENCLAVE in the report body
  body["quote"] = base64_encode(q);
  r = v1("POST", path, json::serialize(body));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(reason(r), "evidence.rejected");
}

TEST_F(KbsTest, V1AdminCallsNeedATokenWithTheCapability) {
  EXPECT_EQ(v1("GET", "/kbs/v1/keys", "").status, 403);
  ASSERT_TRUE(vault(core::Operation::kUpdate, "sys/policy/kbs-reader",
                    {{"policy", R"(path "kbs/v1/keys" { capabilities = ["list"] })"}}, root_)
                  .ok());
  auto tok = vault(core::Operation::kUpdate, "auth/token/create",
                   {{"policies", json::array{"kbs-reader"}}}, root_);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  std::string reader = tok->auth->client_token;
  EXPECT_EQ(v1("GET", "/kbs/v1/keys", "", reader).status, 200);
  EXPECT_EQ(v1("POST", "/kbs/v1/keys", R"({"key_information":{"algorithm":"AES"}})", reader).status,
            403);
  // A token bound to other addresses is refused here too (these calls come from 127.0.0.1).
  for (const auto& [cidr, status] : {std::pair{"10.0.0.0/8", 403}, std::pair{"127.0.0.0/8", 200}}) {
    ASSERT_TRUE(vault(core::Operation::kUpdate, "auth/token/roles/bound",
                      {{"allowed_policies", "kbs-reader"}, {"token_bound_cidrs", cidr}}, root_)
                    .ok());
    auto bound = vault(core::Operation::kUpdate, "auth/token/create/bound", {}, root_);
    ASSERT_TRUE(bound.ok()) << bound.status().to_string();
    EXPECT_EQ(v1("GET", "/kbs/v1/keys", "", bound->auth->client_token).status, status) << cidr;
  }

  // Generate modes, filters, the ISecL flat policy, KMIP refusal, delete.
  auto p = v1("POST", "/kbs/v1/key-transfer-policies",
              R"({"attestation_type":"SGX","sgx":{"attributes":{"mrsigner":[")" +
                  mrsigner_hex_ + R"("],"isvprodid":[1],"mrenclave":[")" +
                  hex_encode(kMrenclave) + R"("],"isvsvn":1,"enforce_tcb_upto_date":false}}})",
              root_);
  EXPECT_EQ(p.status, 201) << p.body;
  auto flat = v1("POST", "/kbs/v1/key-transfer-policies",
                 R"({"sgx_enclave_issuer_anyof":[")" + mrsigner_hex_ +
                     R"("],"sgx_enclave_issuer_product_id_anyof":[0],"client_permissions_anyof":["nginx"]})",
                 root_);
  EXPECT_EQ(flat.status, 201) << flat.body;
  for (const char* ki : {R"({"algorithm":"RSA","key_length":2048})",
                         R"({"algorithm":"EC","curve_type":"secp384r1"})",
                         R"({"algorithm":"AES","key_length":128})"}) {
    auto k = v1("POST", "/kbs/v1/keys", std::string(R"({"key_information":)") + ki + "}", root_);
    EXPECT_EQ(k.status, 201) << k.body;
    EXPECT_NE(k.body.find("/transfer"), std::string::npos);
  }
  WireRequest list;
  list.method = "GET";
  list.path = "/kbs/v1/keys";
  list.query = {{"algorithm", "ec"}, {"curveType", "secp384r1"}};
  list.headers = {{"X-Vault-Token", root_}};
  auto l = handle_v1(*broker_, list);
  ASSERT_EQ(l.status, 200);
  EXPECT_EQ(json::parse(l.body).as_array().size(), 1u);
  auto kmip = v1("POST", "/kbs/v1/keys", R"({"key_information":{"algorithm":"AES","kmip_key_id":"7"}})",
                 root_);
  EXPECT_EQ(kmip.status, 400);
  EXPECT_NE(kmip.body.find("no KMIP backend configured"), std::string::npos);
  std::string id = make_key(sim_policy(), base64_encode(aes_));
  EXPECT_EQ(v1("DELETE", "/kbs/v1/keys/" + id, "", root_).status, 204);
  EXPECT_EQ(v1("GET", "/kbs/v1/keys/" + id, "", root_).status, 404);
}

// ---- /kbs/v0

class KbsV0Test : public KbsTest {
 protected:
  std::string nonce_;

  // Returns the attest response for a session, with a runtime-data text bound by SHA-384.
  WireResponse attest(const std::string& session, const std::string& jwk, const QuoteOpts& o = {},
                      bool as_object = false) {
    auto auth_nonce = nonce_;
    std::string runtime = R"({"nonce":")" + auth_nonce + R"(","tee-pubkey":)" + jwk + "}";
    Bytes rd = crypto::sha384(as_bytes(runtime));
    rd.resize(64, 0);
    json::object body;
    if (as_object) {
      body["runtime-data"] = json::parse(runtime);
    } else {
      body["runtime-data"] = runtime;
    }
    body["tee-evidence"] = json::object{{"quote", quote_b64(rd, o)}};
    return v0("POST", "/kbs/v0/attest", json::serialize(body),
              {{"Cookie", "kbs-session-id=" + session}});
  }

  std::string start(const std::string& tee = "sample") {
    auto r = v0("POST", "/kbs/v0/auth", R"({"version":"0.1.0","tee":")" + tee + R"(","extra-params":""})");
    EXPECT_EQ(r.status, 200) << r.body;
    nonce_ = std::string(parse(r.body).at("nonce").as_string());
    for (const auto& [k, v] : r.headers) {
      if (k == "Set-Cookie") return v.substr(15, v.find(';') - 15);
    }
    return "";
  }

  void put_resource(const std::string& path, const std::string& value) {
    auto r = v0("PUT", "/kbs/v0/resource/" + path, value, {{"X-Vault-Token", root_}});
    ASSERT_EQ(r.status, 204) << r.body;
  }
};

TEST_F(KbsV0Test, RcarReleasesAResourceAsAJweToRsaAndEcKeys) {
  put_resource("default/key/db", "s3cret-value");
  auto pol = v0("PUT", "/kbs/v0/resource-policy", sim_policy(), {{"X-Vault-Token", root_}});
  ASSERT_EQ(pol.status, 204) << pol.body;

  std::string session = start();
  WireResponse a = attest(session, rsa_.public_key().to_jwk());
  ASSERT_EQ(a.status, 200) << a.body;
  std::string token(parse(a.body).at("token").as_string());
  EXPECT_TRUE(attestation::verify_token(token, service_->signer().jwks(), clock_.now()).ok());

  auto r = v0("GET", "/kbs/v0/resource/default/key/db", "", {{"Cookie", "kbs-session-id=" + session}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto jwe = parse(r.body);
  auto header = parse(as_string_view(*base64url_decode(jwe.at("protected").as_string())));
  EXPECT_EQ(header.at("alg").as_string(), "RSA-OAEP-256");
  auto plain = wrap::jwe_decrypt(rsa_, jwe);
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  EXPECT_EQ(plain->view(), "s3cret-value");

  // The same with the bearer token instead of the cookie.
  r = v0("GET", "/kbs/v0/resource/default/key/db", "", {{"Authorization", "Bearer " + token}});
  ASSERT_EQ(r.status, 200) << r.body;

  // EC P-256 key, runtime-data sent as an object: ECDH-ES+A256KW.
  auto ec = *crypto::PrivateKey::generate(crypto::KeyType::kEcP256);
  session = start("sim");
  a = attest(session, ec.public_key().to_jwk(), {}, true);
  ASSERT_EQ(a.status, 200) << a.body;
  r = v0("GET", "/kbs/v0/resource/default/key/db", "", {{"Cookie", "kbs-session-id=" + session}});
  ASSERT_EQ(r.status, 200) << r.body;
  jwe = parse(r.body);
  header = parse(as_string_view(*base64url_decode(jwe.at("protected").as_string())));
  EXPECT_EQ(header.at("alg").as_string(), "ECDH-ES+A256KW");
  plain = wrap::jwe_decrypt(ec, jwe);
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  EXPECT_EQ(plain->view(), "s3cret-value");
}

TEST_F(KbsV0Test, RcarRefusals) {
  put_resource("default/key/db", "s3cret-value");
  // A per-resource policy wanting another enclave wins over the dev default (sim allowed).
  std::array<uint8_t, 32> other = kMrenclave;
  other[5] ^= 0xff;
  auto pol = v0("PUT", "/kbs/v0/resource-policy/default/key/db",
                R"({"tee":["sim"],"sgx":{"mrenclave":[")" + hex_encode(other) + R"("]}})",
                {{"X-Vault-Token", root_}});
  ASSERT_EQ(pol.status, 204) << pol.body;
  std::string session = start();
  ASSERT_EQ(attest(session, rsa_.public_key().to_jwk()).status, 200);
  auto r = v0("GET", "/kbs/v0/resource/default/key/db", "", {{"Cookie", "kbs-session-id=" + session}});
  EXPECT_EQ(r.status, 403);
  auto problem = parse(r.body);
  EXPECT_EQ(problem.at("type").as_string(),
            "https://github.com/confidential-containers/kbs/errors/PolicyDeny");

  // No session; a replayed attest; evidence binding other runtime data.
  r = v0("GET", "/kbs/v0/resource/default/key/db", "");
  EXPECT_EQ(r.status, 401);
  r = attest(session, rsa_.public_key().to_jwk());
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_NE(r.body.find("nonce.replayed"), std::string::npos) << r.body;
  session = start();
  std::string runtime = R"({"nonce":")" + nonce_ + R"(","tee-pubkey":)" + rsa_.public_key().to_jwk() + "}";
  Bytes rd(64, 0);  // binds nothing
  json::object body{{"runtime-data", runtime},
                    {"tee-evidence", json::object{{"quote", quote_b64(rd)}}}};
  r = v0("POST", "/kbs/v0/attest", json::serialize(body), {{"Cookie", "kbs-session-id=" + session}});
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("AttestationFailed"), std::string::npos) << r.body;
  // Admin writes need a token.
  EXPECT_EQ(v0("PUT", "/kbs/v0/resource/a/b/c", "x").status, 403);
}

// ---- auth/attest

// The broker's routes use the core's token store: a sealed core answers 503, and never
// reaches a token store that does not exist (a crash before).
TEST_F(KbsTest, ASealedServerRefusesBrokerRoutes) {
  ASSERT_TRUE(core_.seal().ok());
  EXPECT_EQ(v1("GET", "/kbs/v1/keys", "", "any-token").status, 503);
  EXPECT_EQ(v0("POST", "/kbs/v0/auth", R"({"version":"0.1.0","tee":"sample"})").status, 503);
}

// Attested certificates (docs/engines/pki.md, sign-attested): a CSR for the key the TEE bound
// at auth/attest login is signed, with the attestation claims in an extension.
TEST_F(KbsTest, AttestedCertificatesCarryTheClaimsAndOnlyForTheBoundKey) {
  ASSERT_TRUE(vault(core::Operation::kUpdate, "sys/mounts/pki", {{"type", "pki"}}, root_).ok());
  ASSERT_TRUE(vault(core::Operation::kUpdate, "pki/root/generate/internal",
                    {{"common_name", "Enclave CA"}, {"key_type", "ec"}}, root_)
                  .ok());
  ASSERT_TRUE(vault(core::Operation::kUpdate, "pki/roles/enclave",
                    {{"allowed_domains", json::array{"enclaves.test"}},
                     {"allow_subdomains", true},
                     {"key_type", "any"},
                     {"max_ttl", "1h"}},
                    root_)
                  .ok());
  ASSERT_TRUE(vault(core::Operation::kUpdate, "sys/policies/acl/enclave",
                    {{"policy",
                      "path \"pki/sign-attested/enclave\" { capabilities = [\"update\"] }\n"
                      "path \"pki/sign/enclave\" { capabilities = [\"update\"] }"}},
                    root_)
                  .ok());
  ASSERT_TRUE(vault(core::Operation::kUpdate, "auth/attest/role/enclave",
                    {{"token_policies", "enclave"}, {"policy", json::parse(sim_policy())}}, root_)
                  .ok());
  Bytes spki = rsa_.public_key().to_der();
  auto login = attest_login("enclave", spki);
  ASSERT_TRUE(login.ok()) << login.status().to_string();
  const std::string token = login->auth->client_token;

  auto csr = crypto::make_csr(rsa_, "svc.enclaves.test", {"svc.enclaves.test"});
  ASSERT_TRUE(csr.ok());
  auto signed_cert = vault(core::Operation::kUpdate, "pki/sign-attested/enclave",
                           {{"csr", *csr}, {"ttl", "10m"}}, token);
  ASSERT_TRUE(signed_cert.ok()) << signed_cert.status().to_string();
  auto cert = crypto::Certificate::from_pem(signed_cert->data->at("certificate").as_string());
  ASSERT_TRUE(cert.ok());
  auto ext = cert->extension(core::kAttestationClaimsOid);
  ASSERT_TRUE(ext.has_value());
  ASSERT_GT(ext->size(), 2u);
  EXPECT_EQ((*ext)[0], 0x0c);  // UTF8String
  const size_t header = (*ext)[1] < 0x80 ? 2 : 2 + ((*ext)[1] & 0x7f);
  json::object claims =
      json::parse(std::string_view(reinterpret_cast<const char*>(ext->data()) + header,
                                   ext->size() - header))
          .as_object();
  EXPECT_EQ(claims.at("mrenclave").as_string(), hex_encode(kMrenclave));
  EXPECT_EQ(claims.at("tee").as_string(), "sim");
  EXPECT_EQ(claims.at("auth_path").as_string(), "auth/attest/login");
  EXPECT_EQ(cert->public_key().to_der(), spki);

  // The registry: the workload, its claims and its heartbeat (each attested certificate).
  auto rec = vault(core::Operation::kRead, "pki/enclaves/svc.enclaves.test", {}, root_);
  ASSERT_TRUE(rec.ok()) << rec.status().to_string();
  EXPECT_EQ(rec->data->at("status").as_string(), "alive");
  EXPECT_EQ(rec->data->at("heartbeats").as_int64(), 1);
  EXPECT_EQ(rec->data->at("serial_number"), signed_cert->data->at("serial_number"));
  EXPECT_EQ(rec->data->at("claims").at("mrenclave").as_string(), hex_encode(kMrenclave));
  auto again = vault(core::Operation::kUpdate, "pki/sign-attested/enclave",
                     {{"csr", *csr}, {"ttl", "10m"}}, token);
  ASSERT_TRUE(again.ok());
  rec = vault(core::Operation::kRead, "pki/enclaves/svc.enclaves.test", {}, root_);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->data->at("heartbeats").as_int64(), 2);
  EXPECT_EQ(rec->data->at("serial_number"), again->data->at("serial_number"));
  auto listed = vault(core::Operation::kList, "pki/enclaves", {}, root_);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(json::serialize(listed->data->at("keys")), R"(["svc.enclaves.test"])");
  EXPECT_FALSE(claims.at("attested_at").as_string().empty());

  // Another measurement the role also allows cannot take the name while it is alive.
  ASSERT_TRUE(vault(core::Operation::kUpdate, "auth/attest/role/other",
                    {{"token_policies", "enclave"},
                     {"policy", json::parse(R"({"tee":["sim"],"sgx":{"mrenclave":[")" +
                                            std::string(64, 'e') + R"("]}})")}},
                    root_)
                  .ok());
  QuoteOpts other_enclave;
  other_enclave.mrenclave.fill(0xee);
  auto other_login = attest_login("other", spki, other_enclave);
  ASSERT_TRUE(other_login.ok()) << other_login.status().to_string();
  auto takeover = vault(core::Operation::kUpdate, "pki/sign-attested/enclave", {{"csr", *csr}},
                        other_login->auth->client_token);
  EXPECT_EQ(takeover.status().code(), Code::kPermissionDenied);
  EXPECT_NE(takeover.status().message().find("held by another attested workload"),
            std::string::npos)
      << takeover.status().message();
  // Nor by asking for another common_name while the CSR names it, nor as a DNS name: the names
  // the certificate would carry are what count.
  auto by_field =
      vault(core::Operation::kUpdate, "pki/sign-attested/enclave",
            {{"csr", *csr}, {"common_name", "b.enclaves.test"}}, other_login->auth->client_token);
  EXPECT_EQ(by_field.status().code(), Code::kPermissionDenied) << by_field.status().to_string();
  auto san_csr =
      crypto::make_csr(rsa_, "b.enclaves.test", {"b.enclaves.test", "svc.enclaves.test"});
  ASSERT_TRUE(san_csr.ok());
  auto by_san = vault(core::Operation::kUpdate, "pki/sign-attested/enclave", {{"csr", *san_csr}},
                      other_login->auth->client_token);
  EXPECT_EQ(by_san.status().code(), Code::kPermissionDenied) << by_san.status().to_string();
  EXPECT_NE(by_san.status().message().find("svc.enclaves.test"), std::string::npos)
      << by_san.status().message();

  // A token whose creator copied the bound key and claims into its metadata is no attestation.
  auto forged = vault(core::Operation::kUpdate, "auth/token/create",
                      {{"policies", json::array{"enclave"}},
                       {"meta", json::object{{"tee_public_key", base64_encode(spki)},
                                             {"tee", "sim"},
                                             {"mrenclave", hex_encode(kMrenclave)}}}},
                      root_);
  ASSERT_TRUE(forged.ok());
  EXPECT_EQ(vault(core::Operation::kUpdate, "pki/sign-attested/enclave", {{"csr", *csr}},
                  forged->auth->client_token)
                .status()
                .code(),
            Code::kPermissionDenied);

  // No heartbeat past its certificate's end: stale (also in the metric an alert would watch);
  // and the old attestation no longer signs.
  const std::string alive = R"(custos_pki_enclaves{mount_point="pki/",status="alive"})";
  const std::string stale = R"(custos_pki_enclaves{mount_point="pki/",status="stale"})";
  EXPECT_EQ(metric(alive), 1);
  EXPECT_EQ(metric(stale), 0);
  clock_.advance(std::chrono::minutes(11));
  rec = vault(core::Operation::kRead, "pki/enclaves/svc.enclaves.test", {}, root_);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->data->at("status").as_string(), "stale");
  EXPECT_EQ(metric(alive), 0);
  EXPECT_EQ(metric(stale), 1);
  auto old = vault(core::Operation::kUpdate, "pki/sign-attested/enclave", {{"csr", *csr}}, token);
  EXPECT_EQ(old.status().code(), Code::kPermissionDenied);
  EXPECT_NE(old.status().message().find("log in to auth/attest again"), std::string::npos)
      << old.status().message();

  // A CSR for another key, a token not from an attest login, are refused; plain sign adds no
  // claims.
  auto other = crypto::PrivateKey::generate(crypto::KeyType::kEcP256);
  auto other_csr = crypto::make_csr(*other, "svc.enclaves.test", {"svc.enclaves.test"});
  EXPECT_EQ(
      vault(core::Operation::kUpdate, "pki/sign-attested/enclave", {{"csr", *other_csr}}, token)
          .status()
          .code(),
      Code::kPermissionDenied);
  EXPECT_EQ(vault(core::Operation::kUpdate, "pki/sign-attested/enclave", {{"csr", *csr}}, root_)
                .status()
                .code(),
            Code::kPermissionDenied);
  auto plain = vault(core::Operation::kUpdate, "pki/sign/enclave", {{"csr", *other_csr}}, token);
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  auto plain_cert = crypto::Certificate::from_pem(plain->data->at("certificate").as_string());
  ASSERT_TRUE(plain_cert.ok());
  EXPECT_FALSE(plain_cert->extension(core::kAttestationClaimsOid).has_value());
}

// The certificate manager's life cycle (docs/engines/pki.md, "Attested certificates"): with
// revoke_superseded, each heartbeat revokes the workload's previous certificate, so one is valid
// at a time; retiring a workload (DELETE enclaves/:cn) revokes its last one and frees the name.
TEST_F(KbsTest, AttestedCertificatesSupersedeEachOtherAndRetireWithTheWorkload) {
  ASSERT_TRUE(vault(core::Operation::kUpdate, "sys/mounts/pki", {{"type", "pki"}}, root_).ok());
  ASSERT_TRUE(vault(core::Operation::kUpdate, "pki/root/generate/internal",
                    {{"common_name", "Enclave CA"}, {"key_type", "ec"}}, root_)
                  .ok());
  EXPECT_EQ(
      vault(core::Operation::kUpdate, "pki/roles/enclave",
            {{"allow_any_name", true}, {"revoke_superseded", true}, {"no_store", true}}, root_)
          .status()
          .code(),
      Code::kInvalidArgument);  // nothing to revoke without the stored certificates
  ASSERT_TRUE(vault(core::Operation::kUpdate, "pki/roles/enclave",
                    {{"allowed_domains", json::array{"enclaves.test"}},
                     {"allow_subdomains", true},
                     {"key_type", "any"},
                     {"revoke_superseded", true},
                     {"max_ttl", "1h"}},
                    root_)
                  .ok());
  auto role = vault(core::Operation::kRead, "pki/roles/enclave", {}, root_);
  ASSERT_TRUE(role.ok());
  EXPECT_TRUE(role->data->at("revoke_superseded").as_bool());
  ASSERT_TRUE(
      vault(core::Operation::kUpdate, "sys/policies/acl/enclave",
            {{"policy", "path \"pki/sign-attested/enclave\" { capabilities = [\"update\"] }"}},
            root_)
          .ok());
  ASSERT_TRUE(vault(core::Operation::kUpdate, "auth/attest/role/enclave",
                    {{"token_policies", "enclave"}, {"policy", json::parse(sim_policy())}}, root_)
                  .ok());
  auto crl_revokes = [&](const json::value& serial) {
    auto crl = vault(core::Operation::kRead, "pki/crl", {}, root_);
    EXPECT_TRUE(crl.ok()) << crl.status().to_string();
    if (!crl.ok()) return false;
    if (!crl->raw_body) return false;
    auto parsed = crypto::Crl::from_der(as_bytes(*crl->raw_body));
    EXPECT_TRUE(parsed.ok());
    if (!parsed.ok()) return false;
    std::string hex(serial.as_string());
    std::erase(hex, ':');
    auto bytes = hex_decode(hex);
    return bytes.ok() && parsed->is_revoked(*bytes);
  };
  auto login = attest_login("enclave", rsa_.public_key().to_der());
  ASSERT_TRUE(login.ok()) << login.status().to_string();
  const std::string token = login->auth->client_token;
  auto csr = crypto::make_csr(rsa_, "svc.enclaves.test", {"svc.enclaves.test"});
  ASSERT_TRUE(csr.ok());
  auto first = vault(core::Operation::kUpdate, "pki/sign-attested/enclave",
                     {{"csr", *csr}, {"ttl", "10m"}}, token);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_FALSE(first->data->contains("superseded_serial_number"));
  EXPECT_FALSE(crl_revokes(first->data->at("serial_number")));
  // The heartbeat: a new certificate, and the first one is on the CRL.
  auto second = vault(core::Operation::kUpdate, "pki/sign-attested/enclave",
                      {{"csr", *csr}, {"ttl", "10m"}}, token);
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  EXPECT_EQ(second->data->at("superseded_serial_number"), first->data->at("serial_number"));
  EXPECT_TRUE(crl_revokes(first->data->at("serial_number")));
  EXPECT_FALSE(crl_revokes(second->data->at("serial_number")));

  // Retiring the workload revokes its certificate and forgets it; then the name is free, and
  // a workload that signs it again starts over (one heartbeat, nothing superseded).
  EXPECT_EQ(
      vault(core::Operation::kDelete, "pki/enclaves/svc.enclaves.test", {}, token).status().code(),
      Code::kPermissionDenied);  // the workload's own token may not retire it
  const std::string alive = R"(custos_pki_enclaves{mount_point="pki/",status="alive"})";
  EXPECT_EQ(metric(alive), 1);
  // A restarted mount (sealed and unsealed) counts the registry it finds in storage.
  ASSERT_TRUE(core_.seal().ok());
  EXPECT_EQ(metric(alive), -1);  // no mount, no series
  ASSERT_TRUE(core_.unseal(share_, false).ok());
  EXPECT_EQ(metric(alive), 1);
  auto retired = vault(core::Operation::kDelete, "pki/enclaves/svc.enclaves.test", {}, root_);
  ASSERT_TRUE(retired.ok()) << retired.status().to_string();
  EXPECT_EQ(metric(alive), 0);
  EXPECT_EQ(retired->data->at("revoked_serial_number"), second->data->at("serial_number"));
  EXPECT_TRUE(crl_revokes(second->data->at("serial_number")));
  EXPECT_EQ(
      vault(core::Operation::kRead, "pki/enclaves/svc.enclaves.test", {}, root_).status().code(),
      Code::kNotFound);
  EXPECT_EQ(
      vault(core::Operation::kDelete, "pki/enclaves/svc.enclaves.test", {}, root_).status().code(),
      Code::kNotFound);
  auto third = vault(core::Operation::kUpdate, "pki/sign-attested/enclave",
                     {{"csr", *csr}, {"ttl", "10m"}}, token);
  ASSERT_TRUE(third.ok()) << third.status().to_string();
  EXPECT_FALSE(third->data->contains("superseded_serial_number"));
  auto rec = vault(core::Operation::kRead, "pki/enclaves/svc.enclaves.test", {}, root_);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->data->at("heartbeats").as_int64(), 1);
}

// Attested ledger entries (docs/ledger.md): signed by the key the TEE bound into its evidence at
// auth/attest login, and appended as a statement carrying the data, signature, key and claims.
TEST_F(KbsTest, AttestedLedgerEntriesAreSignedByTheKeyTheTeeBound) {
  ASSERT_TRUE(vault(core::Operation::kUpdate, "sys/policies/acl/ledger-writer",
                    {{"policy",
                      "path \"supply/*\" { capabilities = [\"create\", \"read\"] }\n"
                      "path \"strict/*\" { capabilities = [\"create\", \"read\"] }"}},
                    root_)
                  .ok());
  ASSERT_TRUE(vault(core::Operation::kUpdate, "auth/attest/role/builder",
                    {{"token_policies", "ledger-writer"}, {"policy", json::parse(sim_policy())}},
                    root_)
                  .ok());
  ASSERT_TRUE(
      vault(core::Operation::kUpdate, "sys/mounts/supply", {{"type", "ledger"}}, root_).ok());
  ASSERT_TRUE(vault(core::Operation::kUpdate, "sys/mounts/strict",
                    {{"type", "ledger"}, {"options", json::object{{"attested_only", "true"}}}},
                    root_)
                  .ok());
  std::string evidence;  // the last login's evidence_sha256
  auto login = [&](bool with_key) -> std::string {
    auto r = attest_login("builder", with_key ? rsa_.public_key().to_der() : Bytes());
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok()) return "";
    evidence = std::string(r->auth->metadata.at("evidence_sha256").as_string());
    return r->auth->client_token;
  };
  auto log_id = [&](const std::string& mount) {
    auto k = vault(core::Operation::kRead, mount + "/public-key", {}, root_);
    return k.ok() ? std::string(k->data->at("log_id").as_string()) : std::string();
  };
  const std::string token = login(true);
  ASSERT_FALSE(token.empty());
  const std::string first_evidence = evidence;
  const std::string provenance = R"({"artifact":"app.tar","sha256":"ab12"})";
  const std::string message = ledger::attested_entry_message(
      log_id("supply"), evidence, "application/json", as_bytes(provenance));
  Bytes sig = rsa_.sign(as_bytes(message)).value();
  json::object entry{{"data", base64_encode(as_bytes(provenance))},
                     {"content_type", "application/json"},
                     {"signature", base64_encode(sig)}};
  auto appended = vault(core::Operation::kUpdate, "supply/entries", entry, token);
  ASSERT_TRUE(appended.ok()) << appended.status().to_string();
  EXPECT_TRUE(appended->data->at("attested").as_bool());

  // What the log holds, under the leaf hash: the statement, not the bare data.
  auto got = vault(core::Operation::kRead, "supply/entries/0", {}, token);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->data->at("content_type").as_string(),
            "application/vnd.custos.attested-entry+json");
  Bytes leaf_data = base64_decode(got->data->at("data").as_string()).value();
  Bytes prefixed{0x00};
  prefixed.insert(prefixed.end(), leaf_data.begin(), leaf_data.end());
  EXPECT_EQ(hex_encode(crypto::sha256(prefixed)), got->data->at("leaf_hash").as_string());
  json::object st = json::parse(as_string_view(leaf_data)).as_object();
  EXPECT_EQ(st.at("_type").as_string(), "custos.ledger.attested-entry.v1");
  EXPECT_EQ(st.at("data").as_string(), base64_encode(as_bytes(provenance)));
  EXPECT_EQ(st.at("content_type").as_string(), "application/json");
  EXPECT_EQ(st.at("public_key").as_string(), base64_encode(rsa_.public_key().to_der()));
  EXPECT_EQ(st.at("attestation").at("mrenclave").as_string(), hex_encode(kMrenclave));
  EXPECT_EQ(st.at("attestation").at("tee").as_string(), "sim");
  // Anyone can check the signature with the key the statement names.
  auto pub = crypto::PublicKey::from_der(base64_decode(st.at("public_key").as_string()).value());
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(st.at("log_id").as_string(), log_id("supply"));
  EXPECT_EQ(st.at("attestation").at("evidence_sha256").as_string(), first_evidence);
  EXPECT_EQ(st.at("attestation").at("auth_path").as_string(), "auth/attest/login");
  EXPECT_TRUE(pub->verify(as_bytes(ledger::attested_entry_message(
                              st.at("log_id").as_string(),
                              st.at("attestation").at("evidence_sha256").as_string(),
                              st.at("content_type").as_string(), as_bytes(provenance))),
                          base64_decode(st.at("signature").as_string()).value())
                  .ok());
  // The bare data's signature is not enough: the log, login and type are signed with it.
  json::object bare = entry;
  bare["signature"] = base64_encode(rsa_.sign(as_bytes(provenance)).value());
  EXPECT_EQ(vault(core::Operation::kUpdate, "supply/entries", bare, token).status().code(),
            Code::kInvalidArgument);
  // Replays: the same signature with another content type, into another log, or under another
  // login that bound the same public key, does not verify.
  json::object retyped = entry;
  retyped["content_type"] = "text/plain";
  EXPECT_EQ(vault(core::Operation::kUpdate, "supply/entries", retyped, token).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(vault(core::Operation::kUpdate, "strict/entries", entry, token).status().code(),
            Code::kInvalidArgument);
  const std::string second = login(true);
  ASSERT_NE(evidence, first_evidence);
  EXPECT_EQ(vault(core::Operation::kUpdate, "supply/entries", entry, second).status().code(),
            Code::kInvalidArgument);

  // A signature over other data is refused.
  json::object forged = entry;
  forged["data"] = base64_encode(as_bytes(std::string("something else")));
  EXPECT_EQ(vault(core::Operation::kUpdate, "supply/entries", forged, token).status().code(),
            Code::kInvalidArgument);
  // Tokens that did not come from an attest login cannot make attested entries, whatever meta
  // their creator gave them.
  EXPECT_EQ(vault(core::Operation::kUpdate, "supply/entries", entry, root_).status().code(),
            Code::kPermissionDenied);
  auto made =
      vault(core::Operation::kUpdate, "auth/token/create",
            {{"policies", json::array{"ledger-writer"}},
             {"meta", json::object{{"tee_public_key", base64_encode(rsa_.public_key().to_der())},
                                   {"tee", "sim"}}}},
            root_);
  ASSERT_TRUE(made.ok()) << made.status().to_string();
  EXPECT_EQ(vault(core::Operation::kUpdate, "supply/entries", entry, made->auth->client_token)
                .status()
                .code(),
            Code::kPermissionDenied);
  // Nor can an attest login that bound no key.
  const std::string keyless = login(false);
  EXPECT_EQ(vault(core::Operation::kUpdate, "supply/entries", entry, keyless).status().code(),
            Code::kPermissionDenied);

  // attested_only: plain entries are refused, attested ones accepted.
  json::object plain{{"data", base64_encode(as_bytes(provenance))}};
  EXPECT_EQ(vault(core::Operation::kUpdate, "strict/entries", plain, token).status().code(),
            Code::kPermissionDenied);
  EXPECT_TRUE(vault(core::Operation::kUpdate, "supply/entries", plain, token).ok());
  json::object strict = entry;
  strict["signature"] = base64_encode(
      rsa_.sign(as_bytes(ledger::attested_entry_message(log_id("strict"), first_evidence,
                                                        "application/json", as_bytes(provenance))))
          .value());
  EXPECT_TRUE(vault(core::Operation::kUpdate, "strict/entries", strict, token).ok());
}

TEST_F(KbsTest, VaultLoginByAttestationMintsATokenWithTheRolePolicies) {
  auto role = vault(core::Operation::kUpdate, "auth/attest/role/db",
                    {{"token_policies", "db-read"}, {"token_ttl", "1h"},
                     {"policy", json::parse(sim_policy())}},
                    root_);
  ASSERT_TRUE(role.ok()) << role.status().to_string();
  auto n = vault(core::Operation::kUpdate, "auth/attest/nonce", {}, "");
  ASSERT_TRUE(n.ok()) << n.status().to_string();
  std::string nonce(n->data->at("nonce").as_string());
  Bytes spki = rsa_.public_key().to_der();
  json::object login{{"role", "db"},
                     {"tee", "sim"},
                     {"nonce", nonce},
                     {"public_key", base64_encode(spki)},
                     {"evidence", quote_b64(bind(nonce, spki))}};
  auto resp = vault(core::Operation::kUpdate, "auth/attest/login", login, "");
  ASSERT_TRUE(resp.ok()) << resp.status().to_string();
  ASSERT_TRUE(resp->auth);
  EXPECT_FALSE(resp->auth->client_token.empty());
  EXPECT_NE(std::find(resp->auth->policies.begin(), resp->auth->policies.end(), "db-read"),
            resp->auth->policies.end());
  EXPECT_EQ(resp->auth->lease_duration, 3600);
  EXPECT_EQ(resp->auth->metadata.at("mrenclave").as_string(), hex_encode(kMrenclave));

  // Replay, and a debug enclave with a fresh nonce.
  auto again = vault(core::Operation::kUpdate, "auth/attest/login", login, "");
  EXPECT_EQ(again.status().code(), Code::kUnauthenticated);
  n = vault(core::Operation::kUpdate, "auth/attest/nonce", {}, "");
  nonce = std::string(n->data->at("nonce").as_string());
  QuoteOpts debug;
  debug.debug = true;
  login["nonce"] = nonce;
  login["evidence"] = quote_b64(bind(nonce, spki), debug);
  auto denied = vault(core::Operation::kUpdate, "auth/attest/login", login, "");
  EXPECT_EQ(denied.status().code(), Code::kPermissionDenied);
  EXPECT_NE(denied.status().message().find("policy.denied"), std::string::npos);
}

// ---- audit

TEST_F(KbsTest, AuditLinesRecordDecisionsWithoutSecrets) {
  std::string log = dir_.file("audit.log");
  auto en = vault(core::Operation::kUpdate, "sys/audit/file",
                  {{"type", "file"}, {"options", json::object{{"file_path", log}}}}, root_);
  ASSERT_TRUE(en.ok()) << en.status().to_string();
  std::string id = make_key(sim_policy(), base64_encode(aes_));
  std::string nonce = challenge(id);
  std::string body = transfer_body(nonce, rsa_.public_key());
  WireResponse ok = v1("POST", "/kbs/v1/keys/" + id + "/transfer", body);
  ASSERT_EQ(ok.status, 200);
  WireResponse replay = v1("POST", "/kbs/v1/keys/" + id + "/transfer", body);
  ASSERT_EQ(replay.status, 401);

  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find(R"("path":"kbs/v1/keys/)" + id + R"(/transfer")"), std::string::npos);
  EXPECT_NE(text.find(R"("released":true)"), std::string::npos);
  EXPECT_NE(text.find(R"("reason_code":4)"), std::string::npos);  // nonce.replayed
  EXPECT_NE(text.find("nonce.replayed"), std::string::npos);
  auto o = parse(ok.body);
  for (const std::string& secret :
       {base64_encode(aes_), hex_encode(aes_), nonce, std::string(o.at("wrapped_key").as_string()),
        std::string(o.at("wrapped_swk").as_string())}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << "audit log leaks a secret";
  }
}

}  // namespace
}  // namespace custos::kbs
