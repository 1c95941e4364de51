// SEV-SNP evidence generated with test keys: a test ARK/ASK/VCEK and a report signed by the test
// VCEK, trusted through a VerifierConfig anchor override. Covers what the real vectors cannot:
// policy bits, TCB and chip ID mismatches, impostor roots, parser edge cases.
#include <gtest/gtest.h>

#include "attestation/snp/report.h"
#include "attestation/snp/verifier.h"
#include "snp_test_util.h"

namespace custos::attestation::snp {
namespace {

using testing::collateral_for;
using testing::make_pki;
using testing::make_report;
using testing::reason;
using testing::ReportSpec;
using testing::run;
using testing::TestPki;

class SnpGenerated : public ::testing::Test {
 protected:
  void SetUp() override {
    make_pki(pki_);
    VerifierConfig cfg;
    cfg.anchors = std::vector<ProductAnchor>{testing::anchor_for(pki_)};
    verifier_ = std::make_unique<SnpVerifier>(cfg);
  }
  SysTime now() const { return from_unix_seconds(1800000000); }  // 2027-01-15
  TestPki pki_;
  std::unique_ptr<SnpVerifier> verifier_;
};

TEST_F(SnpGenerated, Accepts) {
  ReportSpec s;
  s.measurement.fill(0x42);
  s.report_data.fill(0x07);
  auto r = run(*verifier_, make_report(pki_, s), collateral_for(pki_), now());
  ASSERT_TRUE(r.ok()) << reason(r) << ": " << r.rejection().message;
  EXPECT_FALSE(r.claims().debug);
  EXPECT_EQ(r.claims().report_data, Bytes(64, 0x07));
  EXPECT_EQ(std::string(r.claims().fields.at("measurement").as_string()), hex_encode(Bytes(48, 0x42)));
  // The collateral may omit ask_ark: the anchor's intermediates are used.
  EXPECT_TRUE(run(*verifier_, make_report(pki_, s), collateral_for(pki_, false), now()).ok());
}

TEST_F(SnpGenerated, PolicyBits) {
  ReportSpec s;
  s.policy = 0x30000 | policy_bit::kDebug | policy_bit::kMigrateMa;
  auto r = run(*verifier_, make_report(pki_, s), collateral_for(pki_), now());
  ASSERT_TRUE(r.ok()) << reason(r);
  EXPECT_TRUE(r.claims().debug);
  const auto& flags = r.claims().fields.at("policy_flags").as_object();
  EXPECT_TRUE(flags.at("debug").as_bool());
  EXPECT_TRUE(flags.at("migrate_ma").as_bool());
  EXPECT_TRUE(flags.at("smt").as_bool());
  s.policy = 0x20000;  // SMT not allowed
  auto r2 = run(*verifier_, make_report(pki_, s), collateral_for(pki_), now());
  ASSERT_TRUE(r2.ok());
  EXPECT_FALSE(r2.claims().fields.at("policy_flags").as_object().at("smt").as_bool());
  EXPECT_FALSE(r2.claims().debug);
  s.policy = 0x10000;  // reserved bit 17 clear
  EXPECT_EQ(reason(run(*verifier_, make_report(pki_, s), collateral_for(pki_), now())),
            "snp.report.policy_reserved");
}

TEST_F(SnpGenerated, TcbMismatch) {
  for (int field = 0; field < 4; ++field) {
    ReportSpec s;
    TcbVersion t = pki_.tcb;
    if (field == 0) t.bootloader++;
    if (field == 1) t.tee++;
    if (field == 2) t.snp--;
    if (field == 3) t.microcode++;
    s.reported_tcb = t;
    EXPECT_EQ(reason(run(*verifier_, make_report(pki_, s), collateral_for(pki_), now())),
              "snp.tcb.mismatch")
        << field;
  }
}

TEST_F(SnpGenerated, ChipIdMismatchAndMask) {
  ReportSpec s;
  std::array<uint8_t, 64> other = pki_.hw_id;
  other[63] ^= 1;
  s.chip_id = other;
  EXPECT_EQ(reason(run(*verifier_, make_report(pki_, s), collateral_for(pki_), now())),
            "snp.chip_id.mismatch");
  ReportSpec masked;
  masked.mask_chip_id = true;
  auto r = run(*verifier_, make_report(pki_, masked), collateral_for(pki_), now());
  ASSERT_TRUE(r.ok()) << reason(r);
  EXPECT_TRUE(r.claims().fields.at("mask_chip_id").as_bool());
}

TEST_F(SnpGenerated, WrongSignerAndTampering) {
  auto other = crypto::PrivateKey::generate(crypto::KeyType::kEcP384);
  ASSERT_TRUE(other.ok());
  ReportSpec s;
  EXPECT_EQ(reason(run(*verifier_, make_report(pki_, s, &*other), collateral_for(pki_), now())),
            "snp.signature.invalid");
  Bytes good = make_report(pki_, s);
  // Every 7th byte of the signed area, and bytes of r and s.
  for (size_t pos = 0; pos < kSignedSize; pos += 7) {
    Bytes bad = good;
    bad[pos] ^= 0x01;
    auto r = run(*verifier_, bad, collateral_for(pki_), now());
    EXPECT_FALSE(r.ok()) << "flip at " << pos;
  }
  for (size_t pos : {off::kSignatureR, off::kSignatureR + 47, off::kSignatureS + 3,
                     off::kSignatureR + 60, off::kSignatureS + 71}) {
    Bytes bad = good;
    bad[pos] ^= 0x01;
    EXPECT_EQ(reason(run(*verifier_, bad, collateral_for(pki_), now())), "snp.signature.invalid")
        << pos;
  }
  // Bytes of the reserved area after the signature are not signed and not meaningful.
  Bytes tail = good;
  tail[kReportSize - 1] ^= 0xff;
  EXPECT_TRUE(run(*verifier_, tail, collateral_for(pki_), now()).ok());
}

TEST_F(SnpGenerated, ValidityOfEachCertificate) {
  ReportSpec s;
  Bytes rep = make_report(pki_, s);
  EXPECT_TRUE(run(*verifier_, rep, collateral_for(pki_), pki_.not_after).ok());
  EXPECT_EQ(reason(run(*verifier_, rep, collateral_for(pki_), pki_.not_after + Seconds(1))),
            "snp.vek.expired");
  EXPECT_EQ(reason(run(*verifier_, rep, collateral_for(pki_), pki_.not_before - Seconds(1))),
            "snp.vek.not_yet_valid");
}

TEST_F(SnpGenerated, ImpostorRootsRejected) {
  ReportSpec s;
  Bytes rep = make_report(pki_, s);
  // The production verifier pins AMD's ARK-Milan: a test ARK with that name is an impostor.
  SnpVerifier production;
  EXPECT_EQ(reason(run(production, rep, collateral_for(pki_), now())), "snp.ark.untrusted");
  // Without the fake root in the collateral, the test ASK names no pinned issuer.
  Collateral no_root{{"vcek", pki_.vcek.der()}, {"ask_ark", to_bytes(pki_.ask.pem())}};
  EXPECT_EQ(reason(run(production, rep, no_root, now())), "snp.ark.untrusted");
  // An ASK carrying the right key and the pinned ARK's name as issuer, signed by an impostor ARK
  // of the same name: the pinned key, not the name, decides.
  TestPki impostor;
  make_pki(impostor);
  crypto::CertificateSpec spec;
  spec.subject_cn = "SEV-Milan";
  spec.subject_extra = {{"O", "Advanced Micro Devices"}};
  spec.not_before = pki_.not_before;
  spec.not_after = pki_.not_after;
  spec.is_ca = true;
  auto forged = crypto::issue_certificate(spec, pki_.ask_key.public_key(), impostor.ark_key,
                                          &impostor.ark);
  ASSERT_TRUE(forged.ok()) << forged.status().message();
  ASSERT_EQ(forged->issuer(), pki_.ark.subject());
  Collateral forged_ask{{"vcek", pki_.vcek.der()}, {"ask_ark", to_bytes(forged->pem())}};
  EXPECT_EQ(reason(run(*verifier_, rep, forged_ask, now())), "snp.ask.signature");
  forged_ask["ask_ark"] = to_bytes(forged->pem() + impostor.ark.pem());
  EXPECT_EQ(reason(run(*verifier_, rep, forged_ask, now())), "snp.ark.untrusted");
  // A second test hierarchy with the same names but other keys.
  TestPki other;
  make_pki(other);
  Collateral mixed{{"vcek", pki_.vcek.der()}, {"ask_ark", to_bytes(other.ask.pem() + other.ark.pem())}};
  EXPECT_FALSE(run(*verifier_, rep, mixed, now()).ok());
}

TEST_F(SnpGenerated, VersionsAndCpuid) {
  for (uint32_t v : {2u, 3u, 4u, 5u}) {
    ReportSpec s;
    s.version = v;
    auto r = run(*verifier_, make_report(pki_, s), collateral_for(pki_), now());
    EXPECT_TRUE(r.ok()) << v << ": " << reason(r);
  }
  for (uint32_t v : {0u, 1u, 6u, 0xffffffffu}) {
    ReportSpec s;
    s.version = v;
    EXPECT_EQ(reason(run(*verifier_, make_report(pki_, s), collateral_for(pki_), now())),
              "snp.report.version")
        << v;
  }
  ReportSpec turin_cpu;
  turin_cpu.version = 3;
  turin_cpu.cpuid_family = 0x1A;
  EXPECT_EQ(reason(run(*verifier_, make_report(pki_, turin_cpu), collateral_for(pki_), now())),
            "snp.report.cpuid_mismatch");
  ReportSpec vmpl;
  vmpl.vmpl = 4;
  EXPECT_EQ(reason(run(*verifier_, make_report(pki_, vmpl), collateral_for(pki_), now())),
            "snp.report.vmpl");
  ReportSpec unsigned_report;
  unsigned_report.signing_key = 7;
  EXPECT_EQ(reason(run(*verifier_, make_report(pki_, unsigned_report), collateral_for(pki_), now())),
            "snp.report.signing_key");
}

TEST_F(SnpGenerated, MissingAndMalformedCollateral) {
  Bytes rep = make_report(pki_, ReportSpec{});
  EXPECT_EQ(reason(run(*verifier_, rep, {}, now())), "snp.collateral.missing");
  EXPECT_EQ(reason(run(*verifier_, rep, {{"vcek", to_bytes("not a cert")}}, now())),
            "snp.vek.parse");
  Collateral bad_chain = collateral_for(pki_);
  bad_chain["ask_ark"] = to_bytes("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  EXPECT_EQ(reason(run(*verifier_, rep, bad_chain, now())), "snp.chain.parse");
  Evidence wrong_tee;
  wrong_tee.tee = TeeType::kTpm;
  wrong_tee.data = rep;
  EXPECT_EQ(reason(verifier_->verify(wrong_tee, collateral_for(pki_), {now()})), "snp.evidence.type");
}

TEST_F(SnpGenerated, Truncations) {
  Bytes rep = make_report(pki_, ReportSpec{});
  for (size_t n : {size_t{0}, size_t{1}, size_t{4}, size_t{0x50}, kSignedSize, kReportSize - 1}) {
    Bytes t(rep.begin(), rep.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_EQ(reason(run(*verifier_, t, collateral_for(pki_), now())), "snp.report.format") << n;
    EXPECT_FALSE(parse_report(t).ok());
  }
  Bytes longer = rep;
  longer.push_back(0);
  EXPECT_EQ(reason(run(*verifier_, longer, collateral_for(pki_), now())), "snp.report.format");
}

TEST(SnpGeneratedTurin, TurinLayoutWithFmc) {
  TestPki p;
  testing::PkiOptions o;
  o.product = "Turin";
  o.tcb = TcbVersion{2, 1, 5, 9, uint8_t{3}};
  make_pki(p, o);
  VerifierConfig cfg;
  cfg.anchors = std::vector<ProductAnchor>{testing::anchor_for(p)};
  SnpVerifier v(cfg);
  ReportSpec s;
  s.version = 3;
  s.cpuid_family = 0x1A;
  SysTime t = from_unix_seconds(1800000000);
  auto r = run(v, make_report(p, s), collateral_for(p), t);
  ASSERT_TRUE(r.ok()) << reason(r) << ": " << r.rejection().message;
  const auto& tcb = r.claims().fields.at("reported_tcb").as_object();
  EXPECT_EQ(tcb.at("fmc").to_number<int>(), 3);
  EXPECT_EQ(tcb.at("bootloader").to_number<int>(), 2);
  EXPECT_EQ(tcb.at("microcode").to_number<int>(), 9);
  ReportSpec wrong_fmc = s;
  wrong_fmc.reported_tcb = TcbVersion{2, 1, 5, 9, uint8_t{4}};
  EXPECT_EQ(reason(run(v, make_report(p, wrong_fmc), collateral_for(p), t)), "snp.tcb.mismatch");
}

TEST(SnpGeneratedVlek, VlekChainAndRole) {
  TestPki p;
  testing::PkiOptions o;
  o.vlek = true;
  make_pki(p, o);
  VerifierConfig cfg;
  cfg.anchors = std::vector<ProductAnchor>{testing::anchor_for(p)};
  SnpVerifier v(cfg);
  ReportSpec s;
  s.signing_key = 1;
  s.chip_id = std::array<uint8_t, 64>{};
  SysTime t = from_unix_seconds(1800000000);
  auto r = run(v, make_report(p, s), collateral_for(p, true, true), t);
  ASSERT_TRUE(r.ok()) << reason(r) << ": " << r.rejection().message;
  EXPECT_EQ(std::string(r.claims().fields.at("signing_key").as_string()), "vlek");
  // The same key presented by a report that claims a VCEK signed it.
  ReportSpec as_vcek;
  EXPECT_EQ(reason(run(v, make_report(p, as_vcek), collateral_for(p, true, true), t)),
            "snp.vek.type_mismatch");
}

TEST(SnpReport, DecodeTcbLayouts) {
  TcbVersion m = decode_tcb(0x7308000000000003ull, TcbLayout::kMilanGenoa);
  EXPECT_EQ(m.bootloader, 3);
  EXPECT_EQ(m.snp, 8);
  EXPECT_EQ(m.microcode, 0x73);
  EXPECT_FALSE(m.fmc.has_value());
  TcbVersion t = decode_tcb(0x0900000005010203ull, TcbLayout::kTurin);
  EXPECT_EQ(*t.fmc, 3);
  EXPECT_EQ(t.bootloader, 2);
  EXPECT_EQ(t.tee, 1);
  EXPECT_EQ(t.snp, 5);
  EXPECT_EQ(t.microcode, 9);
}

}  // namespace
}  // namespace custos::attestation::snp
