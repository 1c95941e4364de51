// Real SEV-SNP reports and certificates from ../shared/vectors (see its README for provenance,
// windows and the verdicts the source projects assert).
#include <gtest/gtest.h>

#include "attestation/snp/report.h"
#include "attestation/snp/vek.h"
#include "attestation/snp/verifier.h"
#include "snp_test_util.h"

namespace custos::attestation::snp {
namespace {

using testing::at;
using testing::read_vector;
using testing::reason;
using testing::run;

std::string str(const boost::json::value& v) { return std::string(v.as_string()); }

class SnpVectors : public ::testing::Test {
 protected:
  SnpVerifier verifier_;
};

// --- snp-trustee-milan-vcek -------------------------------------------------------------------

Collateral trustee_vcek(const std::string& vcek = "snp-trustee-milan-vcek/test-vcek.der") {
  return {{"vcek", read_vector(vcek)},
          {"ask_ark", read_vector("snp-trustee-milan-vcek/milan_ask_ark_asvk.pem")}};
}

TEST_F(SnpVectors, TrusteeMilanVcekAccepts) {
  Bytes report = read_vector("snp-trustee-milan-vcek/test-report.bin");
  auto r = run(verifier_, report, trustee_vcek(), at("2025-01-01T00:00:00Z"));
  ASSERT_TRUE(r.ok()) << reason(r) << ": " << r.rejection().message;
  const Claims& c = r.claims();
  EXPECT_EQ(c.tee, TeeType::kSnp);
  EXPECT_FALSE(c.debug);
  EXPECT_EQ(c.tcb_status, TcbStatus::kNotApplicable);
  EXPECT_EQ(str(c.fields.at("measurement")),
            "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be91"
            "7f9050d3d38c");
  EXPECT_EQ(hex_encode(c.report_data),
            "ec6c52d7533cc2c4f45be7849cf112ab82b2009fe7bd43e71ed08c14400ad7e2000000000000000000000"
            "0000000000000000000000000000000000000000000");
  EXPECT_EQ(c.fields.at("policy").to_number<uint64_t>(), 0x3001fu);
  EXPECT_EQ(c.fields.at("vmpl").to_number<int>(), 0);
  EXPECT_EQ(c.fields.at("version").to_number<int>(), 2);
  EXPECT_EQ(c.fields.at("guest_svn").to_number<int>(), 4);
  const auto& tcb = c.fields.at("reported_tcb").as_object();
  EXPECT_EQ(tcb.at("bootloader").to_number<int>(), 3);
  EXPECT_EQ(tcb.at("tee").to_number<int>(), 0);
  EXPECT_EQ(tcb.at("snp").to_number<int>(), 8);
  EXPECT_EQ(tcb.at("microcode").to_number<int>(), 115);
  EXPECT_EQ(str(c.fields.at("chip_id")).substr(0, 32), "c38427a30d4c7af9d96f7a15b9726982");
  EXPECT_EQ(str(c.fields.at("current_firmware")), "1.52.4");
  EXPECT_EQ(str(c.fields.at("product")), "Milan");
  EXPECT_EQ(str(c.fields.at("signing_key")), "vcek");
  EXPECT_TRUE(c.fields.at("policy_flags").as_object().at("smt").as_bool());
  ASSERT_TRUE(c.collateral_expiry.has_value());
  EXPECT_EQ(*c.collateral_expiry, at("2030-01-24T17:58:26Z"));
}

TEST_F(SnpVectors, TrusteeMilanVcekWindow) {
  Bytes report = read_vector("snp-trustee-milan-vcek/test-report.bin");
  EXPECT_TRUE(run(verifier_, report, trustee_vcek(), at("2023-01-24T17:58:26Z")).ok());
  EXPECT_TRUE(run(verifier_, report, trustee_vcek(), at("2030-01-24T17:58:26Z")).ok());
  EXPECT_EQ(reason(run(verifier_, report, trustee_vcek(), at("2030-01-24T17:58:27Z"))),
            "snp.vek.expired");
  EXPECT_EQ(reason(run(verifier_, report, trustee_vcek(), at("2023-01-24T17:58:25Z"))),
            "snp.vek.not_yet_valid");
}

TEST_F(SnpVectors, TrusteeMilanVcekNegatives) {
  SysTime t = at("2025-01-01T00:00:00Z");
  auto r42 = run(verifier_, read_vector("snp-trustee-milan-vcek/derived/negative/test-report.byte42_plus1.bin"),
                 trustee_vcek(), t);
  EXPECT_EQ(reason(r42), "snp.signature.invalid");
  // byte[384] is REPORTED_TCB: the signature covers it, so the signature check fails first.
  auto r384 = run(verifier_, read_vector("snp-trustee-milan-vcek/derived/negative/test-report.byte384_plus1.bin"),
                  trustee_vcek(), t);
  EXPECT_FALSE(r384.ok());
  EXPECT_TRUE(reason(r384) == "snp.signature.invalid" || reason(r384) == "snp.tcb.mismatch");
  Bytes report = read_vector("snp-trustee-milan-vcek/test-report.bin");
  auto bad_vcek = run(verifier_, report,
                      trustee_vcek("snp-trustee-milan-vcek/derived/negative/test-vcek.byte42_plus1.der"), t);
  EXPECT_FALSE(bad_vcek.ok());
  // The invalid-legacy/new VCEKs parse (raw and nested hwID) but are not signed by the ASK.
  for (const char* f : {"snp-trustee-milan-vcek/test-vcek-invalid-legacy.der",
                        "snp-trustee-milan-vcek/test-vcek-invalid-new.der"}) {
    auto cert = crypto::Certificate::from_any(read_vector(f));
    ASSERT_TRUE(cert.ok()) << f;
    auto ext = parse_vek_extensions(*cert);
    ASSERT_TRUE(ext.ok()) << f << ": " << ext.status().message();
    ASSERT_TRUE(ext->hw_id.has_value());
    ASSERT_EQ(ext->hw_id->size(), 64u);
    EXPECT_EQ((*ext->hw_id)[0], 0x00);
    EXPECT_EQ((*ext->hw_id)[63], 0x3f);
    EXPECT_EQ(ext->product_name, "Milan-B0");
    EXPECT_EQ(reason(run(verifier_, report, trustee_vcek(f), t)), "snp.vek.signature") << f;
  }
}

TEST_F(SnpVectors, VcekWithAsvkInsteadOfAskRejected) {
  // Milan ARK + ASVK only: the VCEK's issuer (SEV-Milan) is not supplied.
  auto all = crypto::Certificate::chain_from_pem(
      as_string_view(read_vector("snp-trustee-milan-vcek/milan_ask_ark_asvk.pem")));
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  Collateral c{{"vcek", read_vector("snp-trustee-milan-vcek/test-vcek.der")},
               {"ask_ark", to_bytes((*all)[1].pem() + (*all)[2].pem())}};
  auto r = run(verifier_, read_vector("snp-trustee-milan-vcek/test-report.bin"), c,
               at("2025-01-01T00:00:00Z"));
  EXPECT_EQ(reason(r), "snp.chain.no_issuer");
}

TEST_F(SnpVectors, BuiltinChainUsedWithoutAskArk) {
  Collateral c{{"vcek", read_vector("snp-trustee-milan-vcek/test-vcek.der")}};
  auto r = run(verifier_, read_vector("snp-trustee-milan-vcek/test-report.bin"), c,
               at("2025-01-01T00:00:00Z"));
  EXPECT_TRUE(r.ok()) << reason(r);
  VerifierConfig strict;
  strict.use_builtin_intermediates = false;
  SnpVerifier no_builtin(strict);
  EXPECT_EQ(reason(run(no_builtin, read_vector("snp-trustee-milan-vcek/test-report.bin"), c,
                       at("2025-01-01T00:00:00Z"))),
            "snp.chain.no_issuer");
}

TEST_F(SnpVectors, WrongProductArkRejected) {
  SysTime t = at("2025-01-01T00:00:00Z");
  Bytes report = read_vector("snp-trustee-milan-vcek/test-report.bin");
  // Genoa's ASK/ARK for a Milan VCEK.
  Collateral genoa{{"vcek", read_vector("snp-trustee-milan-vcek/test-vcek.der")},
                   {"ask_ark", read_vector("_trust-anchors/amd/trustee/genoa_ask_ark_asvk.pem")}};
  EXPECT_EQ(reason(run(verifier_, report, genoa, t)), "snp.chain.no_issuer");
  // A verifier that pins only Genoa refuses the Milan ARK.
  auto amd = amd_product_anchors();
  ASSERT_TRUE(amd.ok());
  VerifierConfig cfg;
  cfg.anchors = std::vector<ProductAnchor>{};
  for (auto& a : *amd) {
    if (a.product == "Genoa") cfg.anchors->push_back(a);
  }
  SnpVerifier genoa_only(cfg);
  EXPECT_EQ(reason(run(genoa_only, report, trustee_vcek(), t)), "snp.ark.untrusted");
  Collateral no_chain{{"vcek", read_vector("snp-trustee-milan-vcek/test-vcek.der")}};
  EXPECT_FALSE(run(genoa_only, report, no_chain, t).ok());
}

// --- snp-trustee-milan-vlek -------------------------------------------------------------------

TEST_F(SnpVectors, TrusteeMilanVlek) {
  Bytes report = read_vector("snp-trustee-milan-vlek/test-vlek-report.bin");
  Collateral c{{"vlek", read_vector("snp-trustee-milan-vlek/test-vlek.der")},
               {"ask_ark", read_vector("snp-trustee-milan-vlek/milan_ask_ark_asvk.pem")}};
  auto r = run(verifier_, report, c, at("2025-06-01T00:00:00Z"));
  ASSERT_TRUE(r.ok()) << reason(r) << ": " << r.rejection().message;
  const Claims& cl = r.claims();
  EXPECT_EQ(str(cl.fields.at("signing_key")), "vlek");
  EXPECT_EQ(cl.fields.at("vmpl").to_number<int>(), 1);
  EXPECT_EQ(cl.fields.at("version").to_number<int>(), 3);
  EXPECT_EQ(cl.fields.at("cpuid_fam_id").to_number<int>(), 0x19);
  EXPECT_EQ(str(cl.fields.at("csp_id")), "CN=cc-us-east-2.amazonaws.com");
  EXPECT_EQ(str(cl.fields.at("measurement")),
            "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493"
            "df2a570d7bf0");
  const auto& tcb = cl.fields.at("reported_tcb").as_object();
  EXPECT_EQ(tcb.at("microcode").to_number<int>(), 217);
  EXPECT_EQ(tcb.at("snp").to_number<int>(), 24);
  // The VLEK lives one year.
  EXPECT_TRUE(run(verifier_, report, c, at("2025-12-10T22:14:21Z")).ok());
  EXPECT_EQ(reason(run(verifier_, report, c, at("2025-12-10T22:14:22Z"))), "snp.vek.expired");
  EXPECT_EQ(reason(run(verifier_, report, c, at("2024-12-10T22:14:20Z"))), "snp.vek.not_yet_valid");
  // Under the "vcek" key it is still recognised as a VLEK by the report.
  Collateral as_vcek{{"vcek", c["vlek"]}, {"ask_ark", c["ask_ark"]}};
  EXPECT_TRUE(run(verifier_, report, as_vcek, at("2025-06-01T00:00:00Z")).ok());
  // Tampered copies (the source's recipes).
  for (size_t pos : {size_t{42}, size_t{384}}) {
    Bytes bad = report;
    bad[pos] = static_cast<uint8_t>(bad[pos] + 1);
    EXPECT_FALSE(run(verifier_, bad, c, at("2025-06-01T00:00:00Z")).ok()) << pos;
  }
  // A VCEK-signed report cannot be verified with this VLEK.
  Collateral vlek_for_vcek{{"vcek", c["vlek"]}, {"ask_ark", c["ask_ark"]}};
  EXPECT_EQ(reason(run(verifier_, read_vector("snp-trustee-milan-vcek/test-report.bin"),
                       vlek_for_vcek, at("2025-06-01T00:00:00Z"))),
            "snp.vek.type_mismatch");
}

// --- snp-virtee-milan -------------------------------------------------------------------------

Collateral virtee(const std::string& vcek = "snp-virtee-milan/vcek_milan.der") {
  return {{"vcek", read_vector(vcek)}, {"ask_ark", read_vector("snp-virtee-milan/cert_chain_milan")}};
}

TEST_F(SnpVectors, VirteeMilanHexAndBinary) {
  SysTime t = at("2025-01-01T00:00:00Z");
  auto hex_r = run(verifier_, read_vector("snp-virtee-milan/report_milan.hex"), virtee(), t);
  ASSERT_TRUE(hex_r.ok()) << reason(hex_r) << ": " << hex_r.rejection().message;
  EXPECT_EQ(str(hex_r.claims().fields.at("measurement")),
            "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9"
            "c480cd81841f");
  auto bin_r = run(verifier_, read_vector("snp-virtee-milan/derived/report_milan.bin"), virtee(), t);
  EXPECT_TRUE(bin_r.ok()) << reason(bin_r);
  // Base64 of the same bytes.
  Bytes b64 = to_bytes(base64_encode(read_vector("snp-virtee-milan/derived/report_milan.bin")));
  EXPECT_TRUE(run(verifier_, b64, virtee(), t).ok());
  EXPECT_TRUE(run(verifier_, read_vector("snp-virtee-milan/report_milan.hex"), virtee(),
                  at("2030-04-03T19:23:43Z")).ok());
  EXPECT_EQ(reason(run(verifier_, read_vector("snp-virtee-milan/report_milan.hex"), virtee(),
                       at("2030-04-03T19:23:44Z"))),
            "snp.vek.expired");
}

TEST_F(SnpVectors, VirteeMilanNegatives) {
  SysTime t = at("2025-01-01T00:00:00Z");
  EXPECT_EQ(reason(run(verifier_,
                       read_vector("snp-virtee-milan/derived/negative/report_milan.byte21_xor80.bin"),
                       virtee(), t)),
            "snp.signature.invalid");
  EXPECT_FALSE(run(verifier_, read_vector("snp-virtee-milan/derived/report_milan.bin"),
                   virtee("snp-virtee-milan/derived/negative/vcek_milan.byte40_xorff.der"), t)
                   .ok());
  // The VCEK of another chip: chain fine, report signature not.
  EXPECT_EQ(reason(run(verifier_, read_vector("snp-virtee-milan/derived/report_milan.bin"),
                       trustee_vcek(), t)),
            "snp.signature.invalid");
}

// --- snp-gosevguest-milan ---------------------------------------------------------------------

TEST_F(SnpVectors, GoSevGuestMilanDebugAndSerialZero) {
  Collateral c{{"vcek", read_vector("snp-gosevguest-milan/vcek.testcer")},
               {"ask_ark", read_vector("snp-gosevguest-milan/ask_ark_milan.pem")}};
  Bytes report = read_vector("snp-gosevguest-milan/attestation.bin");
  auto r = run(verifier_, report, c, at("2022-09-24T01:00:00Z"));
  ASSERT_TRUE(r.ok()) << reason(r) << ": " << r.rejection().message;
  // POLICY 0xb0000: DEBUG (bit 19) set; verify() reports it, appraisal rejects it.
  EXPECT_TRUE(r.claims().debug);
  EXPECT_EQ(r.claims().fields.at("policy").to_number<uint64_t>(), 0xb0000u);
  EXPECT_EQ(hex_encode(r.claims().report_data).substr(0, 12), "010203040500");
  EXPECT_EQ(reason(run(verifier_, report, c, at("2022-09-24T00:55:27Z"))), "snp.vek.not_yet_valid");
  EXPECT_EQ(reason(run(verifier_, report, c, at("2029-09-24T00:55:29Z"))), "snp.vek.expired");
  // milan.testcer is the same ASK+ARK bundle.
  Collateral c2{{"vcek", c["vcek"]}, {"ask_ark", read_vector("snp-gosevguest-milan/milan.testcer")}};
  EXPECT_TRUE(run(verifier_, report, c2, at("2022-09-24T01:00:00Z")).ok());
}

// --- snp-teekit-gcp (v5 reports) --------------------------------------------------------------

TEST_F(SnpVectors, TeekitGcpV5) {
  SysTime t = at("2026-01-01T00:00:00Z");
  Collateral c{{"vcek", read_vector("snp-teekit-gcp/sev-gcp-vcek.pem")},
               {"ask_ark", read_vector("snp-teekit-gcp/sev-gcp-cert-chain.pem")}};
  for (const char* f : {"snp-teekit-gcp/sev-gcp.bin", "snp-teekit-gcp/sev-gcp.hex",
                        "snp-teekit-gcp/sev-gcp-reportdata.bin"}) {
    auto r = run(verifier_, read_vector(f), c, t);
    ASSERT_TRUE(r.ok()) << f << ": " << reason(r) << ": " << r.rejection().message;
    EXPECT_EQ(r.claims().fields.at("version").to_number<int>(), 5);
    EXPECT_TRUE(r.claims().fields.contains("launch_mit_vector"));
    EXPECT_EQ(str(r.claims().fields.at("measurement")),
              "b747d55452e0b9e9079770a49e397c5e6d9573581e246da7baac4f28b5cdc5b1b6d19251b8ee600fd1"
              "6a3708f58406f3");
  }
  auto rd = run(verifier_, read_vector("snp-teekit-gcp/sev-gcp-reportdata.bin"), c, t);
  ASSERT_TRUE(rd.ok());
  EXPECT_EQ(hex_encode(rd.claims().report_data).substr(0, 16), "32fc4f6c1971cbf9");
  EXPECT_EQ(rd.claims().fields.at("vmpl").to_number<int>(), 1);
  Collateral cx{{"vcek", read_vector("snp-teekit-gcp/sev-gcp-x25519-vcek.pem")},
                {"ask_ark", read_vector("snp-teekit-gcp/sev-gcp-x25519-cert-chain.pem")}};
  auto rx = run(verifier_, read_vector("snp-teekit-gcp/sev-gcp-x25519-bound.bin"), cx, t);
  ASSERT_TRUE(rx.ok()) << reason(rx);
  EXPECT_EQ(hex_encode(rx.claims().report_data).substr(0, 16), "3a6753fd4b194de5");
  EXPECT_EQ(reason(run(verifier_, read_vector("snp-teekit-gcp/sev-gcp.bin"), c,
                       at("2032-12-05T06:04:28Z"))),
            "snp.vek.expired");
  // Truncated report (teekit's negative).
  Bytes trunc = read_vector("snp-teekit-gcp/sev-gcp.bin");
  trunc.resize(1000);
  EXPECT_EQ(reason(run(verifier_, trunc, c, t)), "snp.report.format");
}

// --- snp-virtee-turin-certonly ----------------------------------------------------------------

TEST_F(SnpVectors, TurinVcekExtensionsAndChain) {
  auto vcek = crypto::Certificate::from_any(read_vector("snp-virtee-turin-certonly/vcek_turin.der"));
  ASSERT_TRUE(vcek.ok());
  auto ext = parse_vek_extensions(*vcek);
  ASSERT_TRUE(ext.ok()) << ext.status().message();
  EXPECT_EQ(ext->product_name, "Turin");
  EXPECT_EQ(ext->tcb.bootloader, 0);
  EXPECT_EQ(ext->tcb.microcode, 9);
  ASSERT_TRUE(ext->tcb.fmc.has_value());
  EXPECT_EQ(*ext->tcb.fmc, 0);
  ASSERT_TRUE(ext->hw_id.has_value());
  EXPECT_EQ(ext->hw_id->size(), 8u);
  auto chain = crypto::Certificate::chain_from_pem(
      as_string_view(read_vector("snp-virtee-turin-certonly/cert_chain_turin")));
  ASSERT_TRUE(chain.ok());
  ASSERT_EQ(chain->size(), 2u);
  auto amd = amd_product_anchors();
  ASSERT_TRUE(amd.ok());
  const ProductAnchor& turin = (*amd)[2];
  ASSERT_EQ(turin.product, "Turin");
  EXPECT_TRUE(vcek->verify_signature((*chain)[0].public_key()).ok());
  EXPECT_TRUE((*chain)[0].verify_signature(turin.ark.public_key()).ok());
  EXPECT_EQ((*chain)[1].public_key().to_der(), turin.ark.public_key().to_der());
  EXPECT_FALSE((*chain)[0].verify_signature((*amd)[0].ark.public_key()).ok());
}

// --- pinned roots -----------------------------------------------------------------------------

TEST(SnpAnchors, PinnedArkFingerprints) {
  auto amd = amd_product_anchors();
  ASSERT_TRUE(amd.ok()) << amd.status().message();
  ASSERT_EQ(amd->size(), 3u);
  EXPECT_EQ(hex_encode((*amd)[0].ark.fingerprint_sha256()),
            "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd");
  EXPECT_EQ(hex_encode((*amd)[1].ark.fingerprint_sha256()),
            "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1");
  EXPECT_EQ(hex_encode((*amd)[2].ark.fingerprint_sha256()),
            "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a");
  EXPECT_EQ(hex_encode((*amd)[0].intermediates[0].fingerprint_sha256()),
            "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b");
  EXPECT_EQ(hex_encode((*amd)[0].intermediates[1].fingerprint_sha256()),
            "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5");
  EXPECT_EQ(hex_encode((*amd)[1].intermediates[0].fingerprint_sha256()),
            "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521");
  EXPECT_EQ(hex_encode((*amd)[2].intermediates[0].fingerprint_sha256()),
            "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185");
}

}  // namespace
}  // namespace custos::attestation::snp
