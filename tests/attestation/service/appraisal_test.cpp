// appraise() against each policy field, every accept with its reject twin, and the policy parser
// in our form and Intel SecL's (flat v3/v4 with both permission spellings, nested v5).
#include "attestation/service/appraisal.h"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include "base/encoding.h"

namespace custos::attestation {
namespace {

const std::string kMrenclave(64, 'a');
const std::string kMrsigner(64, 'b');
const std::string kMrtd(96, 'c');

SysTime at(const char* s) {
  return *parse_rfc3339(s);
}

Claims sgx_claims() {
  Claims c;
  c.tee = TeeType::kSgx;
  c.tcb_status = TcbStatus::kUpToDate;
  c.report_data = Bytes(64, 0);
  c.report_data[0] = 0x12;
  c.report_data[1] = 0x34;
  c.collateral_issued = at("2025-06-19T00:00:00Z");
  c.collateral_expiry = at("2025-07-19T00:00:00Z");
  c.fields["mrenclave"] = kMrenclave;
  c.fields["mrsigner"] = kMrsigner;
  c.fields["isv_prod_id"] = 1;
  c.fields["isv_svn"] = 3;
  return c;
}

Policy parse(const std::string& json) {
  auto p = parse_policy(json);
  EXPECT_TRUE(p.ok()) << p.status().to_string() << " in " << json;
  return p.ok() ? *p : Policy{};
}

const SysTime kNow = at("2025-07-01T00:00:00Z");

std::string only_claim(const Appraisal& a) {
  if (a.denials.size() != 1) return "denials=" + std::to_string(a.denials.size());
  return a.denials[0].claim;
}

TEST(Appraisal, EmptyPolicyAcceptsGenuineHardwareEvidence) {
  EXPECT_TRUE(appraise(sgx_claims(), Policy{}, kNow).pass);
}

TEST(Appraisal, Mrenclave) {
  Policy p = parse(R"({"sgx":{"mrenclave":[")" + std::string(64, '0') + R"(", ")" + kMrenclave +
                   R"("]}})");
  EXPECT_TRUE(appraise(sgx_claims(), p, kNow).pass);
  Policy wrong = parse(R"({"sgx":{"mrenclave":")" + std::string(64, 'f') + R"("}})");
  Appraisal a = appraise(sgx_claims(), wrong, kNow);
  ASSERT_FALSE(a.pass);
  EXPECT_EQ(only_claim(a), "sgx.mrenclave");
  EXPECT_EQ(a.denials[0].actual, kMrenclave);
  EXPECT_EQ(a.denials[0].expected, "any of [" + std::string(64, 'f') + "]");
  EXPECT_NE(a.reasons()[0].find("expected any of"), std::string::npos);
}

TEST(Appraisal, MrsignerProductAndSvn) {
  Policy p =
      parse(R"({"sgx":{"mrsigner":")" + kMrsigner + R"(","isv_prod_id":[1,2],"min_isv_svn":3}})");
  EXPECT_TRUE(appraise(sgx_claims(), p, kNow).pass);
  Claims low = sgx_claims();
  low.fields["isv_svn"] = 2;
  Appraisal a = appraise(low, p, kNow);
  EXPECT_EQ(only_claim(a), "sgx.isv_svn");
  EXPECT_EQ(a.denials[0].expected, ">= 3");
  EXPECT_EQ(a.denials[0].actual, "2");
  Claims other_product = sgx_claims();
  other_product.fields["isv_prod_id"] = 7;
  EXPECT_EQ(only_claim(appraise(other_product, p, kNow)), "sgx.isv_prod_id");
  Claims other_signer = sgx_claims();
  other_signer.fields["mrsigner"] = std::string(64, 'e');
  EXPECT_EQ(only_claim(appraise(other_signer, p, kNow)), "sgx.mrsigner");
}

TEST(Appraisal, DebugForbiddenByDefault) {
  Claims c = sgx_claims();
  c.debug = true;
  Appraisal a = appraise(c, Policy{}, kNow);
  EXPECT_EQ(only_claim(a), "debug");
  EXPECT_TRUE(appraise(c, parse(R"({"allow_debug":true})"), kNow).pass);
}

TEST(Appraisal, TcbStatus) {
  Claims c = sgx_claims();
  c.tcb_status = TcbStatus::kOutOfDate;
  EXPECT_EQ(only_claim(appraise(c, Policy{}, kNow)), "tcb_status");
  c.tcb_status = TcbStatus::kSwHardeningNeeded;
  EXPECT_TRUE(appraise(c, Policy{}, kNow).pass);
  Policy strict = parse(R"({"tcb_status":["UpToDate"]})");
  Appraisal a = appraise(c, strict, kNow);
  EXPECT_EQ(only_claim(a), "tcb_status");
  EXPECT_EQ(a.denials[0].actual, "SWHardeningNeeded");
  EXPECT_FALSE(parse_policy(R"({"tcb_status":["Fine"]})").ok());
}

TEST(Appraisal, AdvisoryIds) {
  Claims c = sgx_claims();
  c.advisory_ids = {"INTEL-SA-00289", "INTEL-SA-00615"};
  EXPECT_TRUE(
      appraise(c, parse(R"({"accepted_advisory_ids":["INTEL-SA-00289","INTEL-SA-00615"]})"), kNow)
          .pass);
  Appraisal a = appraise(c, parse(R"({"accepted_advisory_ids":["INTEL-SA-00289"]})"), kNow);
  EXPECT_EQ(only_claim(a), "advisory_ids");
  EXPECT_EQ(a.denials[0].actual, "INTEL-SA-00615");
  EXPECT_EQ(only_claim(appraise(c, parse(R"({"rejected_advisory_ids":["INTEL-SA-00289"]})"), kNow)),
            "advisory_ids");
}

TEST(Appraisal, SimRefusedUnlessAllowed) {
  Claims c = sgx_claims();
  c.tee = TeeType::kSim;
  Appraisal a = appraise(c, Policy{}, kNow);
  EXPECT_EQ(only_claim(a), "tee");
  EXPECT_NE(a.denials[0].actual.find("sim"), std::string::npos);
  EXPECT_EQ(only_claim(appraise(c, parse(R"({"tee":["sgx"]})"), kNow)), "tee");
  EXPECT_TRUE(appraise(c, parse(R"({"tee":["sim"]})"), kNow).pass);
  // SGX measurement rules apply to sim evidence too.
  Policy p = parse(R"({"tee":"sim","sgx":{"mrenclave":")" + std::string(64, '0') + R"("}})");
  EXPECT_EQ(only_claim(appraise(c, p, kNow)), "sim.mrenclave");
}

TEST(Appraisal, TeeNotAllowed) {
  EXPECT_EQ(only_claim(appraise(sgx_claims(), parse(R"({"tee":["snp","tdx"]})"), kNow)), "tee");
}

TEST(Appraisal, ReportData) {
  EXPECT_TRUE(appraise(sgx_claims(), parse(R"({"report_data":"1234"})"), kNow).pass);
  std::string full = "1234" + std::string(124, '0');
  EXPECT_TRUE(appraise(sgx_claims(), parse(R"({"report_data":")" + full + "\"}"), kNow).pass);
  Appraisal a = appraise(sgx_claims(), parse(R"({"report_data":"1235"})"), kNow);
  EXPECT_EQ(only_claim(a), "report_data");
  EXPECT_EQ(a.denials[0].actual.substr(0, 4), "1234");
}

TEST(Appraisal, StaleAndOldCollateral) {
  // Verified "as of" a time inside the window but appraised later: expired collateral is refused.
  Appraisal a = appraise(sgx_claims(), Policy{}, at("2025-07-19T00:00:01Z"));
  EXPECT_EQ(only_claim(a), "collateral_expiry");
  EXPECT_NE(a.denials[0].actual.find("expired at 2025-07-19T00:00:00Z"), std::string::npos);
  Policy young = parse(R"({"max_collateral_age":"7d"})");
  a = appraise(sgx_claims(), young, kNow);
  EXPECT_EQ(only_claim(a), "collateral_issued");
  EXPECT_TRUE(appraise(sgx_claims(), parse(R"({"max_collateral_age":"30d"})"), kNow).pass);
  Claims no_collateral = sgx_claims();
  no_collateral.collateral_issued.reset();
  EXPECT_EQ(only_claim(appraise(no_collateral, young, kNow)), "collateral_issued");
}

TEST(Appraisal, ReportsEveryFailure) {
  Claims c = sgx_claims();
  c.debug = true;
  c.tcb_status = TcbStatus::kRevoked;
  Policy p = parse(R"({"sgx":{"min_isv_svn":9}})");
  EXPECT_EQ(appraise(c, p, kNow).denials.size(), 3u);
}

TEST(Appraisal, Tdx) {
  Claims c;
  c.tee = TeeType::kTdx;
  c.tcb_status = TcbStatus::kUpToDate;
  c.fields["mrtd"] = kMrtd;
  c.fields["rtmr0"] = std::string(96, '1');
  c.fields["mrseam"] = std::string(96, '2');
  c.fields["tee_tcb_svn"] = "03000500000000000000000000000000";
  Policy p = parse(R"({"tdx":{"mrtd":")" + kMrtd + R"(","rtmr0":")" + std::string(96, '1') +
                   R"(","mrseam":")" + std::string(96, '2') + R"(","min_seam_svn":3}})");
  EXPECT_TRUE(appraise(c, p, kNow).pass);
  Claims bad_rtmr = c;
  bad_rtmr.fields["rtmr0"] = std::string(96, '9');
  EXPECT_EQ(only_claim(appraise(bad_rtmr, p, kNow)), "tdx.rtmr0");
  Claims old_seam = c;
  old_seam.fields["tee_tcb_svn"] = "02000500000000000000000000000000";
  EXPECT_EQ(only_claim(appraise(old_seam, p, kNow)), "tdx.seam_svn");
  // Lengths are checked at parse time.
  EXPECT_FALSE(parse_policy(R"({"tdx":{"mrtd":"abcd"}})").ok());
}

TEST(Appraisal, Snp) {
  Claims c;
  c.tee = TeeType::kSnp;
  c.fields["measurement"] = std::string(96, 'a');
  c.fields["host_data"] = std::string(64, '0');
  c.fields["vmpl"] = 0;
  c.fields["guest_svn"] = 4;
  c.fields["reported_tcb"] =
      boost::json::object{{"bootloader", 3}, {"tee", 0}, {"snp", 8}, {"microcode", 115}};
  Policy p = parse(
      R"({"tee":"snp","snp":{"measurement":[")" + std::string(96, 'a') + R"("],"host_data":")" +
      std::string(64, '0') +
      R"(","min_tcb":{"bootloader":3,"snp":8,"microcode":115},"min_guest_svn":4,"max_vmpl":0}})");
  EXPECT_TRUE(appraise(c, p, kNow).pass);
  Claims low = c;
  low.fields["reported_tcb"].as_object()["microcode"] = 114;
  Appraisal a = appraise(low, p, kNow);
  EXPECT_EQ(only_claim(a), "snp.reported_tcb.microcode");
  EXPECT_EQ(a.denials[0].actual, "114");
  Claims other = c;
  other.fields["measurement"] = std::string(96, 'b');
  EXPECT_EQ(only_claim(appraise(other, p, kNow)), "snp.measurement");
  Claims hd = c;
  hd.fields["host_data"] = std::string(64, '1');
  EXPECT_EQ(only_claim(appraise(hd, p, kNow)), "snp.host_data");
}

TEST(Appraisal, TpmPcrs) {
  Claims c;
  c.tee = TeeType::kTpm;
  c.fields["pcrs"] =
      boost::json::object{{"sha256", boost::json::object{{"16", std::string(64, 'd')}}}};
  Policy p = parse(R"({"tpm":{"pcrs":{"sha256":{"16":[")" + std::string(64, 'd') + R"("]}}}})");
  EXPECT_TRUE(appraise(c, p, kNow).pass);
  Policy wrong = parse(R"({"tpm":{"pcrs":{"sha256":{"16":")" + std::string(64, 'e') + R"("}}}})");
  EXPECT_EQ(only_claim(appraise(c, wrong, kNow)), "tpm.pcrs.sha256.16");
  Policy missing = parse(R"({"tpm":{"pcrs":{"sha256":{"0":")" + std::string(64, 'e') + R"("}}}})");
  EXPECT_EQ(appraise(c, missing, kNow).denials.at(0).actual, "absent");
}

TEST(PolicyParse, RejectsUnknownKeysAndBadTypes) {
  for (const char* bad :
       {R"({"mrenclave":"aa"})", R"({"sgx":{"mrenclav":[]}})", R"([1])", "{",
        R"({"allow_debug":"yes"})", R"({"sgx":{"min_isv_svn":-1}})",
        R"({"sgx":{"min_isv_svn":70000}})", R"({"tee":["sgx","quantum"]})",
        R"({"max_collateral_age":"forever"})", R"({"tpm":{"pcrs":{"sha256":{"24":"00"}}}})"}) {
    auto p = parse_policy(bad);
    EXPECT_FALSE(p.ok()) << bad;
    if (!p.ok()) {
      EXPECT_EQ(p.status().code(), Code::kInvalidArgument);
    }
  }
  auto p = parse_policy(R"({"sgx":{"min_isv_svn":"3"}})");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("sgx.min_isv_svn"), std::string::npos);
}

TEST(PolicyParse, IseclFlatV4) {
  Policy p = parse(R"({
    "id": "ee37c360-7eae-4250-a677-6ee12adce8e2",
    "sgx_enclave_issuer_anyof": [")" +
                   kMrsigner + R"("],
    "sgx_enclave_issuer_product_id_anyof": [1],
    "sgx_enclave_measurement_anyof": [")" +
                   kMrenclave + R"("],
    "sgx_enclave_svn_minimum": 3,
    "tls_client_certificate_issuer_cn_anyof": ["CMSCA", "CMS TLS Client CA"],
    "client_permissions_anyof": ["nginx", "USA"],
    "sgx_enforce_tcb_up_to_date": false
  })");
  EXPECT_EQ(p.source, Policy::Source::kIsecl);
  EXPECT_EQ(p.id, "ee37c360-7eae-4250-a677-6ee12adce8e2");
  EXPECT_EQ(p.client_permissions_any_of.size(), 2u);
  EXPECT_TRUE(appraise(sgx_claims(), p, kNow).pass);
  Claims other = sgx_claims();
  other.fields["mrenclave"] = std::string(64, '0');
  EXPECT_EQ(only_claim(appraise(other, p, kNow)), "sgx.mrenclave");
  Claims low = sgx_claims();
  low.fields["isv_svn"] = 1;
  EXPECT_EQ(only_claim(appraise(low, p, kNow)), "sgx.isv_svn");
}

TEST(PolicyParse, IseclFlatV3TlsSpellingAndEnforce) {
  Policy p = parse(R"({
    "sgx_enclave_issuer_anyof": [")" +
                   kMrsigner + R"("],
    "sgx_enclave_issuer_product_id": 1,
    "tls_client_certificate_san_anyof": ["nginx"],
    "tls_client_certificate_san_allof": ["a", "b"],
    "attestation_type_anyof": ["SGX"],
    "sgx_enforce_tcb_up_to_date": true
  })");
  EXPECT_EQ(p.client_permissions_any_of, std::vector<std::string>{"nginx"});
  EXPECT_EQ(p.client_permissions_all_of.size(), 2u);
  EXPECT_TRUE(appraise(sgx_claims(), p, kNow).pass);
  Claims c = sgx_claims();
  c.tcb_status = TcbStatus::kSwHardeningNeeded;
  EXPECT_EQ(only_claim(appraise(c, p, kNow)), "tcb_status");
  Claims other_product = sgx_claims();
  other_product.fields["isv_prod_id"] = 2;
  EXPECT_EQ(only_claim(appraise(other_product, p, kNow)), "sgx.isv_prod_id");
  EXPECT_FALSE(parse_policy(R"({"sgx_enclave_issuer_anyof":["zz"]})").ok());
  EXPECT_FALSE(parse_policy(R"({"sgx_enclave_issuer_anyof":[],"sgx_enclave_typo":1})").ok());
}

TEST(PolicyParse, IseclNestedV5) {
  Policy sgx = parse(R"({
    "id": "3b9d565a-6ff5-4e5a-a0a8-64f3183d1722",
    "attestation_type": "SGX",
    "sgx": {"attributes": {"mrsigner": [")" +
                     kMrsigner + R"("], "isvprodid": [1],
            "mrenclave": [")" +
                     kMrenclave + R"("], "isvsvn": 1, "enforce_tcb_upto_date": true,
            "client_permissions": ["nginx"]}}
  })");
  EXPECT_EQ(sgx.source, Policy::Source::kIseclV5);
  EXPECT_TRUE(appraise(sgx_claims(), sgx, kNow).pass);
  Claims wrong = sgx_claims();
  wrong.fields["mrenclave"] = std::string(64, '1');
  EXPECT_EQ(only_claim(appraise(wrong, sgx, kNow)), "sgx.mrenclave");
  Claims outdated = sgx_claims();
  outdated.tcb_status = TcbStatus::kOutOfDate;
  EXPECT_EQ(only_claim(appraise(outdated, sgx, kNow)), "tcb_status");

  Policy tdx =
      parse(R"({
    "attestation_type": "TDX",
    "tdx": {"attributes": {"mrsignerseam": [")" +
            std::string(96, '0') + R"("],
            "mrseam": [")" +
            std::string(96, '2') + R"("], "seamsvn": 3, "mrtd": [")" + kMrtd + R"("], "rtmr0": ")" +
            std::string(96, '1') + R"(", "enforce_tcb_upto_date": true}}
  })");
  Claims t;
  t.tee = TeeType::kTdx;
  t.tcb_status = TcbStatus::kUpToDate;
  t.fields["mrtd"] = kMrtd;
  t.fields["rtmr0"] = std::string(96, '1');
  t.fields["mrseam"] = std::string(96, '2');
  t.fields["mrsignerseam"] = std::string(96, '0');
  t.fields["tee_tcb_svn"] = "03000500000000000000000000000000";
  EXPECT_TRUE(appraise(t, tdx, kNow).pass);
  t.fields["tee_tcb_svn"] = "04000500000000000000000000000000";  // ISecL compares seamsvn equal
  EXPECT_EQ(only_claim(appraise(t, tdx, kNow)), "tdx.seam_svn");
  // SGX evidence against a TDX-only policy.
  EXPECT_EQ(only_claim(appraise(sgx_claims(), tdx, kNow)), "tee");
  // Trust Authority policy IDs cannot be evaluated: refused rather than ignored.
  EXPECT_FALSE(
      parse_policy(R"({"attestation_type":"SGX","sgx":{"attributes":{},"policy_ids":["x"]}})")
          .ok());
  EXPECT_FALSE(
      parse_policy(R"({"attestation_type":"SGX","sgx":{"attributes":{"mrenclav":[]}}})").ok());
}

TEST(PolicyParse, RoundTripsThroughNativeJson) {
  Policy p = parse(
      R"({"id":"p1","tee":["sgx","sim"],"sgx":{"mrenclave":")" + kMrenclave +
      R"(","isv_prod_id":1,"min_isv_svn":2},"max_collateral_age":"1h","report_data":"00ff"})");
  Policy q = parse(boost::json::serialize(p.to_json()));
  EXPECT_EQ(boost::json::serialize(p.to_json()), boost::json::serialize(q.to_json()));
  EXPECT_EQ(q.max_collateral_age->count(), 3600);
}

}  // namespace
}  // namespace custos::attestation
