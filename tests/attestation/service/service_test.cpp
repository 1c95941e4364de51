// The service end to end on real vectors (../shared/vectors): registry, evidence decoding,
// the collateral cache (import, lookup by FMSPC/CA, stale refusal), appraisal and tokens.
#include "attestation/service/service.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "attestation/sim/sim.h"
#include "base/encoding.h"

namespace custos::attestation {
namespace {

const std::string kVectors = CUSTOS_SOURCE_DIR "/../shared/vectors/";
constexpr const char* kSgxQuote = "sgx-dcapqvl-v3-sample/sgx_quote";
constexpr const char* kSgxBundle = "sgx-dcapqvl-v3-sample/sgx_quote_collateral.json";

Bytes read_vector(const std::string& rel) {
  std::ifstream in(kVectors + rel, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing vector " << rel;
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

SysTime at(const char* s) {
  return *parse_rfc3339(s);
}
const SysTime kInWindow = at("2025-07-19T10:01:17Z");
const SysTime kAfterWindow = at("2025-07-19T10:01:19Z");

std::unique_ptr<Service> make_service() {
  auto s = Service::create(ServiceConfig{});
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return std::move(*s);
}

VerifyRequest sgx_request(bool with_collateral) {
  VerifyRequest r;
  r.evidence = Evidence{TeeType::kSgx, read_vector(kSgxQuote)};
  if (with_collateral) {
    auto items = load_collateral_files({{"collateral", kVectors + kSgxBundle}});
    EXPECT_TRUE(items.ok()) << items.status().to_string();
    r.collateral = *items;
  }
  r.at = kInWindow;
  return r;
}

TEST(Service, SgxSampleWithBundleVerifiesAndSignsToken) {
  auto svc = make_service();
  VerifyOutcome out = svc->verify(sgx_request(true));
  ASSERT_TRUE(out.verified) << out.rejection->reason << ": " << out.rejection->message;
  EXPECT_TRUE(out.passed());
  EXPECT_EQ(out.claims->tcb_status, TcbStatus::kConfigurationAndSwHardeningNeeded);
  EXPECT_EQ(out.claims->advisory_ids,
            (std::vector<std::string>{"INTEL-SA-00289", "INTEL-SA-00615"}));
  auto json = out.to_json();
  EXPECT_TRUE(json.at("verified").as_bool());
  EXPECT_EQ(json.at("tee").as_string(), "sgx");
  EXPECT_EQ(json.at("claims").at("mrenclave").as_string(),
            "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb");
  ASSERT_FALSE(out.token.empty());
  auto tok = verify_token(out.token, svc->signer().jwks(), svc->now());
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  EXPECT_EQ(tok->payload.at("submods").at("sgx").at("ear.status").as_string(), "warning");
}

TEST(Service, PolicyDenialExplainsItselfAndIssuesNoToken) {
  auto svc = make_service();
  VerifyRequest r = sgx_request(true);
  r.policy = *parse_policy(R"({"id":"strict","sgx":{"mrenclave":")" + std::string(64, '0') +
                           R"("},"tcb_status":["UpToDate"]})");
  VerifyOutcome out = svc->verify(r);
  EXPECT_TRUE(out.verified);
  EXPECT_FALSE(out.passed());
  EXPECT_TRUE(out.token.empty());
  ASSERT_EQ(out.appraisal->denials.size(), 2u);
  EXPECT_EQ(out.appraisal->denials[0].claim, "tcb_status");
  EXPECT_EQ(out.appraisal->denials[0].actual, "ConfigurationAndSWHardeningNeeded");
  EXPECT_EQ(out.appraisal->denials[1].claim, "sgx.mrenclave");
  EXPECT_EQ(out.reasons().size(), 2u);
  EXPECT_FALSE(out.to_json().at("verified").as_bool());
}

TEST(Service, RejectsOutsideTheWindow) {
  auto svc = make_service();
  VerifyRequest r = sgx_request(true);
  r.at = kAfterWindow;
  VerifyOutcome out = svc->verify(r);
  EXPECT_FALSE(out.verified);
  ASSERT_TRUE(out.rejection);
  EXPECT_NE(out.rejection->reason.find("expired"), std::string::npos) << out.rejection->reason;
}

TEST(Service, CollateralFromTheCacheAndStaleRefusal) {
  auto svc = make_service();
  VerifyOutcome missing = svc->verify(sgx_request(false));
  ASSERT_FALSE(missing.verified);
  EXPECT_EQ(missing.rejection->reason, "collateral.missing");

  auto imported = svc->cache().import_path(kVectors + kSgxBundle);
  ASSERT_TRUE(imported.ok()) << imported.status().to_string();
  EXPECT_EQ(imported->imported.size(), 4u);
  VerifyOutcome ok = svc->verify(sgx_request(false));
  ASSERT_TRUE(ok.verified) << ok.rejection->message;
  EXPECT_EQ(ok.claims->tcb_status, TcbStatus::kConfigurationAndSwHardeningNeeded);

  VerifyRequest late = sgx_request(false);
  late.at = kAfterWindow;
  VerifyOutcome stale = svc->verify(late);
  ASSERT_FALSE(stale.verified);
  EXPECT_EQ(stale.rejection->reason, "collateral.stale");
  EXPECT_NE(stale.rejection->message.find("qe_identity QE expired at 2025-07-19T10:01:18Z"),
            std::string::npos)
      << stale.rejection->message;
  EXPECT_NE(stale.rejection->message.find("verification time 2025-07-19T10:01:19Z"),
            std::string::npos);

  // PCCS lookups by FMSPC and CA.
  std::string fmspc = ok.claims->fields.at("fmspc").as_string().c_str();
  auto tcb = svc->cache().tcb_info(TeeType::kSgx, fmspc);
  ASSERT_TRUE(tcb.has_value());
  EXPECT_NE(as_string_view(tcb->body).find("\"tcbInfo\""), std::string_view::npos);
  EXPECT_FALSE(tcb->issuer_chain.empty());
  EXPECT_FALSE(svc->cache().tcb_info(TeeType::kTdx, fmspc).has_value());
  EXPECT_TRUE(svc->cache().qe_identity("QE").has_value());
  EXPECT_TRUE(svc->cache().pck_crl("processor").has_value());
  EXPECT_FALSE(svc->cache().pck_crl("platform").has_value());
  EXPECT_TRUE(svc->cache().root_crl().has_value());
}

TEST(Service, CacheKeepsNewerCollateral) {
  CollateralCache cache;
  ASSERT_TRUE(cache.import_path(kVectors + kSgxBundle).ok());
  auto before = cache.list();
  ASSERT_TRUE(cache.import_path(kVectors + kSgxBundle).ok());
  EXPECT_EQ(cache.list().size(), before.size());
  EXPECT_FALSE(cache.import_path(kVectors + "does-not-exist.json").ok());
  EXPECT_FALSE(cache.import_bundle(as_bytes("{}")).ok());
}

TEST(Service, SimRefusedUnlessPolicyAllows) {
  auto svc = make_service();
  VerifyRequest r = sgx_request(true);
  r.evidence.tee = TeeType::kSim;
  VerifyOutcome out = svc->verify(r);
  EXPECT_FALSE(out.verified);
  EXPECT_EQ(out.rejection->reason, "policy.sim_not_allowed");
  // Allowed by policy, but the service has no sim root: still not genuine.
  r.policy = *parse_policy(R"({"tee":["sim"]})");
  out = svc->verify(r);
  EXPECT_FALSE(out.verified);
  EXPECT_NE(out.rejection->reason, "policy.sim_not_allowed");
}

TEST(Service, SnpAndTpmVectors) {
  auto svc = make_service();
  VerifyRequest snp;
  snp.evidence = Evidence{TeeType::kSnp, read_vector("snp-trustee-milan-vcek/test-report.bin")};
  snp.collateral = *load_collateral_files(
      {{"vcek", kVectors + "snp-trustee-milan-vcek/test-vcek.der"},
       {"ask_ark", kVectors + "snp-trustee-milan-vcek/milan_ask_ark_asvk.pem"}});
  snp.at = at("2025-01-01T00:00:00Z");
  VerifyOutcome s = svc->verify(snp);
  ASSERT_TRUE(s.verified) << s.rejection->reason;
  EXPECT_TRUE(s.passed()) << s.reasons().at(0);
  EXPECT_EQ(s.claims->tee, TeeType::kSnp);

  VerifyRequest tpm;
  const std::string d = "tpm-keylime-swtpm-files/";
  tpm.evidence = Evidence{TeeType::kTpm, read_vector(d + "quote.out")};
  tpm.collateral = *load_collateral_files({{"signature", kVectors + d + "quotesig.out"},
                                           {"ak_pub", kVectors + d + "akpub.pem"},
                                           {"pcrs", kVectors + d + "quotepcr.out"}});
  tpm.collateral["nonce"] = to_bytes("db1db298db6d60e6385b7231743e9c3056a18003");
  VerifyOutcome t = svc->verify(tpm);
  ASSERT_TRUE(t.verified) << t.rejection->reason << ": " << t.rejection->message;
  EXPECT_TRUE(t.passed());
}

TEST(Service, DecodeBinaryDetectsEncodings) {
  Bytes bin = {0x03, 0x00, 0x02, 0x00, 0xff, 0x10};
  EXPECT_EQ(*decode_binary(bin), bin);
  EXPECT_EQ(*decode_binary(as_bytes(hex_encode(bin) + "\n")), bin);
  EXPECT_EQ(*decode_binary(as_bytes("0x" + hex_encode(bin))), bin);
  EXPECT_EQ(*decode_binary(as_bytes(base64_encode(bin))), bin);
  std::string pem = "-----BEGIN QUOTE-----\n" + base64_encode(bin) + "\n-----END QUOTE-----\n";
  EXPECT_EQ(*decode_binary(as_bytes(pem)), bin);
  EXPECT_FALSE(decode_binary(as_bytes("not ~ anything")).ok());
  EXPECT_FALSE(decode_binary(Bytes{}).ok());
  EXPECT_EQ(collateral_item_name("--tcb-info-chain"), "tcb_info_chain");
}

}  // namespace
}  // namespace custos::attestation

namespace custos::attestation {
namespace {

TEST(Service, SimPlatformEndToEnd) {
  auto dir =
      std::filesystem::temp_directory_path() / ("custos-attsvc-sim-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  SysTime now = SystemClock::instance().now();
  auto platform = sim::SimPlatform::create(dir, now);
  ASSERT_TRUE(platform.ok()) << platform.status().to_string();
  sim::SimQuoteInput in;
  in.mrenclave.fill(0x11);
  in.report_data[0] = 0x12;
  auto quote = platform->quote(in);
  ASSERT_TRUE(quote.ok());

  ServiceConfig config;
  config.sim_root = platform->root();
  auto svc = Service::create(config);
  ASSERT_TRUE(svc.ok());
  VerifyRequest r;
  r.evidence = Evidence{TeeType::kSim, *quote};
  r.collateral = platform->collateral();
  EXPECT_EQ((*svc)->verify(r).rejection->reason, "policy.sim_not_allowed");

  r.policy = *parse_policy(R"({"tee":["sim"],"report_data":"12","sgx":{"mrenclave":")" +
                           std::string(64, '1') + R"("}})");
  VerifyOutcome ok = (*svc)->verify(r);
  ASSERT_TRUE(ok.verified) << ok.rejection->reason << ": " << ok.rejection->message;
  EXPECT_TRUE(ok.passed()) << ok.reasons().at(0);
  EXPECT_EQ(ok.claims->tee, TeeType::kSim);
  EXPECT_FALSE(ok.token.empty());

  // Debug sim enclaves are refused like any other.
  in.debug = true;
  r.evidence.data = *platform->quote(in);
  VerifyOutcome dbg = (*svc)->verify(r);
  ASSERT_TRUE(dbg.verified);
  EXPECT_EQ(dbg.appraisal->denials.at(0).claim, "debug");

  // The same quote presented as real SGX chains to the sim root, not Intel's.
  r.evidence.tee = TeeType::kSgx;
  r.policy.reset();
  VerifyOutcome as_sgx = (*svc)->verify(r);
  EXPECT_FALSE(as_sgx.verified);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace custos::attestation
