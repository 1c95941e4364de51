// Generated evidence (dcap_builder.h): every TCB status, revocation, FMSPC/PCEID mismatch, expired
// collateral, QE identity mismatches, TDX module rules, tampering, and the caches.
#include <gtest/gtest.h>

#include <chrono>

#include <boost/json/serialize.hpp>

#include "attestation/dcap/collateral.h"
#include "attestation/dcap/dcap_builder.h"
#include "attestation/dcap/der.h"
#include "attestation/dcap/pck.h"
#include "attestation/dcap/quote.h"
#include "attestation/dcap/verifier.h"
#include "base/encoding.h"

namespace custos::attestation::dcap {
namespace {

using custos::testing::dcap::DcapBuilder;
using custos::testing::dcap::default_now;
using custos::testing::dcap::LevelSpec;
using custos::testing::dcap::QuoteSpec;
using custos::testing::dcap::TcbInfoSpec;
using std::chrono::hours;
using std::chrono::seconds;

VerifyOptions at(SysTime t) {
  VerifyOptions o;
  o.at = t;
  return o;
}

class DcapGenerated : public ::testing::Test {
 protected:
  // One PKI for the whole suite: key generation and certificate issuance are the slow part.
  static DcapBuilder& builder() {
    static DcapBuilder* b = new DcapBuilder();
    return *b;
  }
  static VerifierConfig config(bool reject_revoked = true) {
    VerifierConfig c;
    c.trusted_root = builder().root;
    c.reject_revoked_tcb = reject_revoked;
    return c;
  }
  VerifyResult run(const Bytes& quote, const Collateral& c, SysTime t = default_now(),
                   bool reject_revoked = true) {
    DcapVerifier v(config(reject_revoked));
    return v.verify_quote(quote, c, at(t));
  }
  std::string reason(const Bytes& quote, const Collateral& c, SysTime t = default_now()) {
    VerifyResult r = run(quote, c, t);
    return r.ok() ? "accepted" : r.rejection().reason;
  }
  Bytes sgx_quote() { return builder().quote(builder().default_quote()); }
};

TEST_F(DcapGenerated, SgxV3UpToDate) {
  VerifyResult r = run(sgx_quote(), builder().collateral());
  ASSERT_TRUE(r.ok()) << r.rejection().message;
  const Claims& c = r.claims();
  EXPECT_EQ(c.tee, TeeType::kSgx);
  EXPECT_EQ(c.tcb_status, TcbStatus::kUpToDate);
  EXPECT_FALSE(c.debug);
  EXPECT_TRUE(c.advisory_ids.empty());
  EXPECT_EQ(c.fields.at("mrenclave").as_string(), std::string(64, '1'));
  EXPECT_EQ(c.fields.at("mrsigner").as_string(), std::string(64, '2'));
  EXPECT_EQ(c.fields.at("isv_prod_id").as_int64(), 7);
  EXPECT_EQ(c.fields.at("isv_svn").as_int64(), 3);
  EXPECT_EQ(c.fields.at("fmspc").as_string(), "00906ea10000");
  EXPECT_EQ(c.fields.at("pce_svn").as_int64(), 13);
  EXPECT_EQ(c.fields.at("sgx_type").as_int64(), 0);
  EXPECT_EQ(c.fields.at("qe_svn").as_int64(), 8);
  EXPECT_EQ(std::string(as_string_view(ByteSpan(c.report_data).first(9))), "generated");
  ASSERT_TRUE(c.collateral_expiry && c.collateral_issued);
  EXPECT_EQ(*c.collateral_expiry, default_now() + hours(24 * 30));
  EXPECT_EQ(*c.collateral_issued, default_now() - hours(24));
}

TEST_F(DcapGenerated, SgxQuoteV4AndV5Layouts) {
  for (uint16_t version : {uint16_t{4}, uint16_t{5}}) {
    VerifyResult r = run(builder().quote(builder().default_quote(false, version)), builder().collateral());
    ASSERT_TRUE(r.ok()) << version << ": " << r.rejection().message;
    EXPECT_EQ(r.claims().fields.at("quote_version").as_int64(), version);
  }
}

TEST_F(DcapGenerated, DebugEnclaveIsReported) {
  QuoteSpec q = builder().default_quote();
  q.attributes[0] |= 0x02;
  VerifyResult r = run(builder().quote(q), builder().collateral());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.claims().debug);
}

TEST_F(DcapGenerated, EveryTcbStatus) {
  const std::vector<std::pair<std::string, TcbStatus>> statuses = {
      {"UpToDate", TcbStatus::kUpToDate},
      {"SWHardeningNeeded", TcbStatus::kSwHardeningNeeded},
      {"ConfigurationNeeded", TcbStatus::kConfigurationNeeded},
      {"ConfigurationAndSWHardeningNeeded", TcbStatus::kConfigurationAndSwHardeningNeeded},
      {"OutOfDate", TcbStatus::kOutOfDate},
      {"OutOfDateConfigurationNeeded", TcbStatus::kOutOfDateConfigurationNeeded},
      {"Revoked", TcbStatus::kRevoked},
  };
  for (const auto& [name, status] : statuses) {
    TcbInfoSpec tcb = builder().default_tcb_info();
    tcb.levels[0].status = name;
    tcb.levels[0].advisory_ids = {"INTEL-SA-00" + std::to_string(name.size())};
    Collateral c = builder().collateral(tcb, builder().default_qe_identity());
    VerifyResult r = run(sgx_quote(), c, default_now(), /*reject_revoked=*/false);
    ASSERT_TRUE(r.ok()) << name << ": " << r.rejection().message;
    EXPECT_EQ(r.claims().tcb_status, status) << name;
    EXPECT_EQ(r.claims().advisory_ids, tcb.levels[0].advisory_ids);
    if (status == TcbStatus::kRevoked) {
      EXPECT_EQ(reason(sgx_quote(), c), "dcap.tcb.revoked");
    }
  }
}

TEST_F(DcapGenerated, LowerPlatformMatchesLowerLevel) {
  // A PCK whose component 3 is below the first level falls to the second (OutOfDate) level.
  DcapBuilder b;
  auto p = b.platform;
  TcbInfoSpec tcb = b.default_tcb_info();
  p.cpu_svn_components[2] = static_cast<uint8_t>(p.cpu_svn_components[2] - 1);
  b.reissue_pck(p, default_now() - hours(24), default_now() + hours(24 * 365));
  VerifierConfig cfg;
  cfg.trusted_root = b.root;
  DcapVerifier v(cfg);
  VerifyResult r = v.verify_quote(b.quote(b.default_quote()), b.collateral(tcb, b.default_qe_identity()),
                                  at(default_now()));
  ASSERT_TRUE(r.ok()) << r.rejection().message;
  EXPECT_EQ(r.claims().tcb_status, TcbStatus::kOutOfDate);
  EXPECT_EQ(r.claims().advisory_ids, (std::vector<std::string>{"INTEL-SA-00001"}));
  // Below every level: no matching TCB level (QVL: TCB_NOT_SUPPORTED).
  tcb.levels.pop_back();
  r = v.verify_quote(b.quote(b.default_quote()), b.collateral(tcb, b.default_qe_identity()), at(default_now()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.rejection().reason, "dcap.tcb.no_matching_level");
}

TEST_F(DcapGenerated, QeTcbStatusConvergesWithPlatformStatus) {
  QuoteSpec q = builder().default_quote();
  q.qe_isv_svn = 6;  // the QE identity's OutOfDate level
  Bytes quote = builder().quote(q);
  VerifyResult r = run(quote, builder().collateral());
  ASSERT_TRUE(r.ok()) << r.rejection().message;
  EXPECT_EQ(r.claims().tcb_status, TcbStatus::kOutOfDate);
  EXPECT_EQ(r.claims().fields.at("qe_tcb_status").as_string(), "OutOfDate");
  EXPECT_EQ(r.claims().advisory_ids, (std::vector<std::string>{"INTEL-SA-00999"}));

  TcbInfoSpec tcb = builder().default_tcb_info();
  tcb.levels[0].status = "ConfigurationNeeded";
  r = run(quote, builder().collateral(tcb, builder().default_qe_identity()));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.claims().tcb_status, TcbStatus::kOutOfDateConfigurationNeeded);

  auto qe = builder().default_qe_identity();
  qe.levels = {{8, "UpToDate"}, {6, "Revoked"}};
  EXPECT_EQ(reason(quote, builder().collateral(builder().default_tcb_info(), qe)), "dcap.tcb.revoked");

  q.qe_isv_svn = 5;  // below every QE level
  EXPECT_EQ(reason(builder().quote(q), builder().collateral()), "dcap.qe_identity.no_matching_level");
}

TEST_F(DcapGenerated, RevokedPckIsRejected) {
  Collateral c = builder().collateral();
  c["pck_crl"] = builder().pck_crl({Bytes{0x01, 0x02}, builder().pck.serial()}, default_now() - hours(1),
                                   default_now() + hours(24));
  EXPECT_EQ(reason(sgx_quote(), c), "dcap.pck.revoked");
  // Other serials do not matter.
  c["pck_crl"] = builder().pck_crl({Bytes{0x01, 0x02}}, default_now() - hours(1), default_now() + hours(24));
  EXPECT_EQ(reason(sgx_quote(), c), "accepted");
}

TEST_F(DcapGenerated, RevokedCasAreRejected) {
  Collateral c = builder().collateral();
  c["root_crl"] = builder().root_crl({builder().pck_ca.serial()}, default_now() - hours(1),
                                     default_now() + hours(24));
  EXPECT_EQ(reason(sgx_quote(), c), "dcap.pck_ca.revoked");
  c["root_crl"] = builder().root_crl({builder().tcb_signing.serial()}, default_now() - hours(1),
                                     default_now() + hours(24));
  EXPECT_EQ(reason(sgx_quote(), c), "dcap.tcb_info_chain.revoked");
}

TEST_F(DcapGenerated, CrlsMustComeFromTheRightIssuer) {
  Collateral c = builder().collateral();
  std::swap(c["pck_crl"], c["root_crl"]);
  EXPECT_EQ(reason(sgx_quote(), c), "dcap.root_crl.issuer_mismatch");
  c = builder().collateral();
  c["pck_crl"] = builder().root_crl({}, default_now() - hours(1), default_now() + hours(24));
  EXPECT_EQ(reason(sgx_quote(), c), "dcap.pck_crl.issuer_mismatch");
}

TEST_F(DcapGenerated, FmspcAndPceIdMismatch) {
  TcbInfoSpec tcb = builder().default_tcb_info();
  tcb.fmspc_hex = "00906EA10001";
  EXPECT_EQ(reason(sgx_quote(), builder().collateral(tcb, builder().default_qe_identity())),
            "dcap.tcb_info.fmspc_mismatch");
  tcb = builder().default_tcb_info();
  tcb.pce_id_hex = "0100";
  EXPECT_EQ(reason(sgx_quote(), builder().collateral(tcb, builder().default_qe_identity())),
            "dcap.tcb_info.pceid_mismatch");
}

TEST_F(DcapGenerated, ExpiredAndNotYetValidCollateral) {
  Bytes q = sgx_quote();
  Collateral c = builder().collateral();
  EXPECT_EQ(reason(q, c, default_now() + hours(24 * 30)), "accepted");
  EXPECT_EQ(reason(q, c, default_now() + hours(24 * 30) + seconds(1)), "dcap.pck_crl.expired");
  EXPECT_EQ(reason(q, c, default_now() - hours(24) - seconds(1)), "dcap.root_crl.not_yet_valid");

  TcbInfoSpec tcb = builder().default_tcb_info();
  tcb.next_update = default_now() - seconds(1);
  EXPECT_EQ(reason(q, builder().collateral(tcb, builder().default_qe_identity())), "dcap.tcb_info.expired");
  tcb = builder().default_tcb_info();
  tcb.issue_date = default_now() + seconds(1);
  EXPECT_EQ(reason(q, builder().collateral(tcb, builder().default_qe_identity())),
            "dcap.tcb_info.not_yet_valid");
  auto qe = builder().default_qe_identity();
  qe.next_update = default_now() - seconds(1);
  EXPECT_EQ(reason(q, builder().collateral(builder().default_tcb_info(), qe)), "dcap.qe_identity.expired");
  c["root_crl"] = builder().root_crl({}, default_now() - hours(48), default_now() - seconds(1));
  EXPECT_EQ(reason(q, c), "dcap.root_crl.expired");
  // Certificates: far in the future the PCK chain itself has expired.
  EXPECT_EQ(reason(q, builder().collateral(), default_now() + hours(24 * 365 * 6)),
            "dcap.pck_chain.expired");
}

TEST_F(DcapGenerated, TamperedCollateralSignatures) {
  Collateral c = builder().collateral();
  std::string tcb(as_string_view(c["tcb_info"]));
  tcb.replace(tcb.find("\"UpToDate\""), 10, "\"Revoked\" ");
  c["tcb_info"] = to_bytes(tcb);
  EXPECT_EQ(reason(sgx_quote(), c), "dcap.tcb_info.signature");

  c = builder().collateral();
  std::string qe(as_string_view(c["qe_identity"]));
  qe.replace(qe.find("\"isvprodid\":1"), 13, "\"isvprodid\":2");
  c["qe_identity"] = to_bytes(qe);
  EXPECT_EQ(reason(sgx_quote(), c), "dcap.qe_identity.signature");

  // Signed by a key that is not the TCB signing certificate's.
  c = builder().collateral();
  DcapBuilder other;
  c["tcb_info"] = to_bytes(other.sign_body("tcbInfo", builder().tcb_info_json(builder().default_tcb_info())));
  EXPECT_EQ(reason(sgx_quote(), c), "dcap.tcb_info.signature");
  // A signing chain from another root.
  c = builder().collateral();
  c["tcb_info_chain"] = to_bytes(other.signing_chain_pem());
  EXPECT_EQ(reason(sgx_quote(), c), "dcap.tcb_info_chain.untrusted_root");
  // Duplicate top-level keys are refused rather than guessed at.
  c = builder().collateral();
  std::string dup(as_string_view(c["tcb_info"]));
  dup.insert(1, "\"signature\":\"00\",");
  c["tcb_info"] = to_bytes(dup);
  EXPECT_EQ(reason(sgx_quote(), c), "dcap.tcb_info.malformed");
}

TEST_F(DcapGenerated, MissingCollateralItems) {
  for (const char* key : {"tcb_info", "tcb_info_chain", "qe_identity", "qe_identity_chain", "pck_crl", "root_crl"}) {
    Collateral c = builder().collateral();
    c.erase(key);
    std::string r = reason(sgx_quote(), c);
    std::string prefix = std::string("dcap.") + key;
    EXPECT_EQ(r, prefix + ".missing") << key;
  }
}

TEST_F(DcapGenerated, CollateralCannotReplaceTheRoot) {
  Collateral c = builder().collateral();
  DcapBuilder other;
  c["root_ca"] = to_bytes(other.root.pem());
  EXPECT_EQ(reason(sgx_quote(), c), "dcap.root_ca.untrusted");
  c["root_ca"] = to_bytes(builder().root.pem());
  EXPECT_EQ(reason(sgx_quote(), c), "accepted");
  // The production verifier does not trust the test PKI.
  DcapVerifier production;
  VerifyResult r = production.verify_quote(sgx_quote(), builder().collateral(), at(default_now()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.rejection().reason, "dcap.pck_chain.untrusted_root");
}

TEST_F(DcapGenerated, QeIdentityMismatches) {
  Bytes q = sgx_quote();
  auto check = [&](auto mutate, const char* expected) {
    auto qe = builder().default_qe_identity();
    mutate(qe);
    EXPECT_EQ(reason(q, builder().collateral(builder().default_tcb_info(), qe)), expected);
  };
  check([](auto& qe) { qe.mrsigner_hex = std::string(64, 'B'); }, "dcap.qe_identity.mrsigner_mismatch");
  check([](auto& qe) { qe.isv_prod_id = 2; }, "dcap.qe_identity.isvprodid_mismatch");
  check([](auto& qe) { qe.miscselect = "00000001"; }, "dcap.qe_identity.miscselect_mismatch");
  check([](auto& qe) { qe.attributes = "13000000000000000000000000000000"; },
        "dcap.qe_identity.attributes_mismatch");
  check([](auto& qe) { qe.id = "TD_QE"; }, "dcap.qe_identity.tee_mismatch");
  // Masked-out attribute bits do not matter.
  QuoteSpec spec = builder().default_quote();
  spec.qe_attributes[0] = 0x11 | 0x04;  // bit 2 is outside attributesMask FB
  EXPECT_EQ(reason(builder().quote(spec), builder().collateral()), "accepted");
}

TEST_F(DcapGenerated, TamperedQuotes) {
  const Bytes good = sgx_quote();
  Collateral c = builder().collateral();
  DcapVerifier v(config());
  auto flip = [&](size_t offset) {
    Bytes b = good;
    b[offset] ^= 0x80;
    VerifyResult r = v.verify_quote(b, c, at(default_now()));
    return r.ok() ? std::string("accepted") : r.rejection().reason;
  };
  // The genuine quote first, so every cache (PCK chain, collateral, attestation key, the QE
  // report memo) is warm: a tampered twin must still be caught.
  ASSERT_TRUE(v.verify_quote(good, c, at(default_now())).ok());
  const size_t sd = 48 + 384 + 4;
  EXPECT_EQ(flip(48 + 64), "dcap.quote.signature");
  EXPECT_EQ(flip(30), "dcap.quote.signature");  // header user data: signed, not interpreted
  EXPECT_EQ(flip(sd + 10), "dcap.quote.signature");
  EXPECT_EQ(flip(sd + 64 + 10), "dcap.qe_report.attestation_key_binding");
  EXPECT_EQ(flip(sd + 128 + 64), "dcap.qe_report.signature");
  EXPECT_EQ(flip(sd + 128 + 384 + 1), "dcap.qe_report.signature");
  EXPECT_EQ(flip(sd + 128 + 384 + 64 + 2), "dcap.qe_report.attestation_key_binding");
  EXPECT_EQ(flip(0), "dcap.quote.unsupported_version");
  EXPECT_EQ(flip(2), "dcap.quote.unsupported_att_key_type");
  EXPECT_EQ(flip(12), "dcap.quote.unsupported_qe_vendor");
  for (size_t len = 0; len < good.size(); len += 97) {
    VerifyResult r = v.verify_quote(ByteSpan(good).first(len), c, at(default_now()));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.rejection().reason, "dcap.quote.truncated") << len;
  }
  // Bytes after the signature data are tolerated; bytes inside it are not.
  QuoteSpec padded = builder().default_quote();
  padded.trailing_bytes = 33;
  EXPECT_TRUE(v.verify_quote(builder().quote(padded), c, at(default_now())).ok());
  Bytes grown = good;
  grown.push_back(0);
  grown[sd - 4] = static_cast<uint8_t>(grown[sd - 4] + 1);  // signature data length + 1
  VerifyResult r = v.verify_quote(grown, c, at(default_now()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.rejection().reason, "dcap.quote.signature_data_size");
}

TEST_F(DcapGenerated, TdxV4AndV5) {
  Collateral c = builder().collateral(true);
  for (auto [version, td15] : {std::pair{4, false}, std::pair{5, false}, std::pair{5, true}}) {
    QuoteSpec q = builder().default_quote(true, static_cast<uint16_t>(version));
    q.td15 = td15;
    DcapVerifier v([] {
      VerifierConfig cfg = config();
      cfg.tee = TeeType::kTdx;
      return cfg;
    }());
    VerifyResult r = v.verify(Evidence{TeeType::kTdx, builder().quote(q)}, c, at(default_now()));
    ASSERT_TRUE(r.ok()) << version << td15 << ": " << r.rejection().message;
    EXPECT_EQ(r.claims().tee, TeeType::kTdx);
    EXPECT_EQ(r.claims().tcb_status, TcbStatus::kUpToDate);
    EXPECT_EQ(r.claims().fields.at("mrtd").as_string(), std::string(96, '4'));
    EXPECT_EQ(r.claims().fields.contains("mrservicetd"), td15);
  }
  // TDX evidence against SGX collateral and the reverse.
  EXPECT_EQ(reason(builder().quote(builder().default_quote(true, 4)), builder().collateral()),
            "dcap.tcb_info.tee_mismatch");
  EXPECT_EQ(reason(sgx_quote(), c), "dcap.tcb_info.tee_mismatch");
}

TEST_F(DcapGenerated, TdxDebugAndModuleRules) {
  Collateral c = builder().collateral(true);
  QuoteSpec q = builder().default_quote(true, 4);
  q.td_attributes[0] = 0x01;
  VerifyResult r = run(builder().quote(q), c);
  ASSERT_TRUE(r.ok()) << r.rejection().message;
  EXPECT_TRUE(r.claims().debug);

  q = builder().default_quote(true, 4);
  q.mr_signer_seam[0] = 1;
  EXPECT_EQ(reason(builder().quote(q), c), "dcap.tdx_module.mismatch");

  q = builder().default_quote(true, 4);
  q.tee_tcb_svn[1] = 3;  // TDX_03: no such module identity
  EXPECT_EQ(reason(builder().quote(q), c), "dcap.tdx_module.mismatch");

  // Module OutOfDate downgrades an UpToDate platform.
  TcbInfoSpec tcb = builder().default_tcb_info(true);
  tcb.module_identities[0].levels = {{5, "UpToDate"}, {2, "OutOfDate"}};
  q = builder().default_quote(true, 4);
  r = run(builder().quote(q), builder().collateral(tcb, builder().default_qe_identity(true)));
  ASSERT_TRUE(r.ok()) << r.rejection().message;
  EXPECT_EQ(r.claims().tcb_status, TcbStatus::kOutOfDate);
  EXPECT_EQ(r.claims().fields.at("tdx_module_tcb_status").as_string(), "OutOfDate");

  // TD 1.5 whose TEE_TCB_SVN2 shows the newer module: relaunch advised.
  q = builder().default_quote(true, 5);
  q.td15 = true;
  q.tee_tcb_svn2 = {5, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  r = run(builder().quote(q), builder().collateral(tcb, builder().default_qe_identity(true)));
  ASSERT_TRUE(r.ok()) << r.rejection().message;
  EXPECT_EQ(r.claims().tcb_status, TcbStatus::kOutOfDate);
  EXPECT_TRUE(r.claims().fields.at("td_relaunch_advised").as_bool());

  // Module SVN below every module level.
  tcb.module_identities[0].levels = {{5, "UpToDate"}};
  EXPECT_EQ(reason(builder().quote(builder().default_quote(true, 4)),
                   builder().collateral(tcb, builder().default_qe_identity(true))),
            "dcap.tdx_module.no_matching_level");

  // TEE_TCB_SVN below every TDX level.
  q = builder().default_quote(true, 4);
  q.tee_tcb_svn = {3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(reason(builder().quote(q), c), "dcap.tcb.no_matching_level");
}

TEST_F(DcapGenerated, TcbInfoV2) {
  TcbInfoSpec tcb = builder().default_tcb_info();
  tcb.version = 2;
  VerifyResult r = run(sgx_quote(), builder().collateral(tcb, builder().default_qe_identity()));
  ASSERT_TRUE(r.ok()) << r.rejection().message;
  EXPECT_EQ(r.claims().tcb_status, TcbStatus::kUpToDate);
}

TEST_F(DcapGenerated, CachesAreKeyedByContent) {
  DcapVerifier v(config());
  Bytes q = sgx_quote();
  Collateral c = builder().collateral();
  ASSERT_TRUE(v.verify_quote(q, c, at(default_now())).ok());
  CacheStats cold = v.cache_stats();
  ASSERT_TRUE(v.verify_quote(q, c, at(default_now())).ok());
  EXPECT_EQ(v.cache_stats().hits, cold.hits + 2);
  // New collateral (a CRL now revoking the PCK) is parsed afresh, not served from the cache.
  c["pck_crl"] = builder().pck_crl({builder().pck.serial()}, default_now() - hours(1), default_now() + hours(1));
  VerifyResult r = v.verify_quote(q, c, at(default_now()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.rejection().reason, "dcap.pck.revoked");
  // Time is checked on every call, cached or not.
  c = builder().collateral();
  EXPECT_FALSE(v.verify_quote(q, c, at(default_now() + hours(24 * 31))).ok());
  EXPECT_TRUE(v.verify_quote(q, c, at(default_now())).ok());
}

// A chain element that is byte for byte the pinned root is not decoded again (the pinned
// certificate stands in); every other form of the root still goes through the key pin, and the
// TCB Info / QE Identity chains are verified separately whenever their bytes differ.
TEST_F(DcapGenerated, PinnedRootInChainsByBytesOrByKey) {
  Bytes q = sgx_quote();
  const DcapBuilder& b = builder();
  auto with = [&](const char* key, Bytes chain) {
    Collateral c = b.collateral();
    c[key] = std::move(chain);
    return reason(q, c);
  };
  EXPECT_EQ(reason(q, b.collateral()), "accepted");
  // The same root as concatenated DER, with CRLF line ends, after leading text, or left out.
  Bytes der = b.tcb_signing.der();
  Bytes root_der = b.root.der();
  der.insert(der.end(), root_der.begin(), root_der.end());
  EXPECT_EQ(with("tcb_info_chain", der), "accepted");
  std::string crlf;
  for (char ch : b.signing_chain_pem()) {
    if (ch == '\n') crlf += '\r';
    crlf += ch;
  }
  EXPECT_EQ(with("tcb_info_chain", to_bytes(crlf)), "accepted");
  EXPECT_EQ(with("tcb_info_chain", to_bytes("issuer chain follows\n" + b.signing_chain_pem())),
            "accepted");
  EXPECT_EQ(with("qe_identity_chain", to_bytes(b.tcb_signing.pem())), "accepted");
  // The PCK chain travels in the quote (certification data type 5).
  auto with_pck_chain = [&](const std::string& chain) {
    auto quote = sim::encode_quote(b.default_quote(), b.platform,
                                   sim::QuoteSigners{b.pck_key, b.attestation_key, chain});
    if (!quote.ok()) return quote.status().message();
    return reason(*quote, b.collateral());
  };
  EXPECT_EQ(with_pck_chain(b.pck_chain_pem()), "accepted");
  EXPECT_EQ(with_pck_chain(b.pck.pem() + b.pck_ca.pem()), "accepted");
  // A root that is another certificate for the pinned key is accepted by key, as before ...
  crypto::CertificateSpec spec;
  spec.subject_cn = "Intel SGX Root CA";
  spec.subject_extra = {
      {"O", "Intel Corporation"}, {"L", "Santa Clara"}, {"ST", "CA"}, {"C", "US"}};
  spec.not_before = default_now() - hours(24 * 365);
  spec.not_after = default_now() + hours(24 * 365 * 5);
  spec.is_ca = true;
  auto restated = crypto::issue_certificate(spec, b.root_key.public_key(), b.root_key, nullptr);
  ASSERT_TRUE(restated.ok()) << restated.status().message();
  ASSERT_NE(restated->der(), b.root.der());
  EXPECT_EQ(with("tcb_info_chain", to_bytes(b.tcb_signing.pem() + restated->pem())), "accepted");
  // ... and one with the pinned name and another key is not.
  auto impostor_key = crypto::PrivateKey::generate(crypto::KeyType::kEcP256);
  ASSERT_TRUE(impostor_key.ok());
  auto impostor =
      crypto::issue_certificate(spec, impostor_key->public_key(), *impostor_key, nullptr);
  ASSERT_TRUE(impostor.ok());
  EXPECT_EQ(with("tcb_info_chain", to_bytes(b.tcb_signing.pem() + impostor->pem())),
            "dcap.tcb_info_chain.untrusted_root");
  EXPECT_EQ(with_pck_chain(b.pck.pem() + b.pck_ca.pem() + impostor->pem()),
            "dcap.pck_chain.untrusted_root");
  EXPECT_EQ(with_pck_chain(b.pck.pem() + b.pck_ca.pem() + restated->pem()), "accepted");
  // The root alone is no signing chain; bad base64 before the root is malformed.
  EXPECT_EQ(with("qe_identity_chain", to_bytes(b.root.pem())), "dcap.qe_identity_chain.malformed");
  std::string damaged = b.tcb_signing.pem();
  damaged[damaged.find('\n') + 5] = '*';
  EXPECT_EQ(with("tcb_info_chain", to_bytes(damaged + b.root.pem())),
            "dcap.tcb_info_chain.malformed");
  // A block whose END line is damaged runs on into the next block: malformed, not skipped.
  damaged = b.tcb_signing.pem();
  damaged.replace(damaged.find("-----END"), 8, "-----XYZ");
  EXPECT_EQ(with("tcb_info_chain", to_bytes(damaged + b.root.pem())),
            "dcap.tcb_info_chain.malformed");
  // A QE Identity chain that differs from the TCB Info chain is verified on its own.
  DcapBuilder other;
  EXPECT_EQ(with("qe_identity_chain", to_bytes(other.signing_chain_pem())),
            "dcap.qe_identity_chain.untrusted_root");
  EXPECT_EQ(with("qe_identity_chain", to_bytes(b.pck_ca.pem() + b.root.pem())),
            "dcap.qe_identity_chain.unexpected_subject");
}

TEST_F(DcapGenerated, BundleRoundTrip) {
  Collateral c = builder().collateral();
  auto tcb = split_signed_json(as_string_view(c["tcb_info"]), "tcbInfo");
  auto qe = split_signed_json(as_string_view(c["qe_identity"]), "enclaveIdentity");
  ASSERT_TRUE(tcb.ok() && qe.ok());
  boost::json::object b;
  b["tcb_info"] = tcb->body;
  b["tcb_info_signature"] = hex_encode(tcb->signature);
  b["tcb_info_issuer_chain"] = builder().signing_chain_pem();
  b["qe_identity"] = qe->body;
  b["qe_identity_signature"] = hex_encode(qe->signature);
  b["qe_identity_issuer_chain"] = builder().signing_chain_pem();
  b["pck_crl"] = hex_encode(c["pck_crl"]);
  b["root_ca_crl"] = hex_encode(c["root_crl"]);
  b["pck_crl_issuer_chain"] = std::string(as_string_view(c["pck_crl_chain"]));
  std::string text = boost::json::serialize(b);
  auto bundled = collateral_from_bundle(as_bytes(text));
  ASSERT_TRUE(bundled.ok()) << bundled.status().message();
  EXPECT_EQ(reason(sgx_quote(), *bundled), "accepted");
  EXPECT_FALSE(collateral_from_bundle(as_bytes("[1,2]")).ok());
  EXPECT_FALSE(collateral_from_bundle(as_bytes("{\"tcb_info\":\"{}\"}")).ok());
}

TEST_F(DcapGenerated, PckExtensionsParser) {
  custos::testing::dcap::PlatformSpec p;
  p.cpu_svn_components[4] = 255;
  p.pce_svn = 300;
  p.sgx_type = 1;
  Bytes der = custos::testing::dcap::sgx_extensions_der(p);
  auto ext = parse_pck_extensions(der);
  ASSERT_TRUE(ext.ok()) << ext.status().message();
  EXPECT_EQ(ext->cpu_svn_components, p.cpu_svn_components);
  EXPECT_EQ(ext->pce_svn, 300);
  EXPECT_EQ(ext->fmspc, p.fmspc);
  EXPECT_EQ(ext->sgx_type, 1u);
  EXPECT_EQ(ext->smt_enabled, true);
  // Every truncation fails cleanly.
  for (size_t n = 0; n < der.size(); ++n) {
    EXPECT_FALSE(parse_pck_extensions(ByteSpan(der).first(n)).ok()) << n;
  }
}

}  // namespace
}  // namespace custos::attestation::dcap
