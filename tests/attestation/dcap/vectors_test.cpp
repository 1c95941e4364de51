// Real SGX/TDX quotes with their collateral (../shared/vectors, see its README.md): each case
// verifies with the stated verdict inside its window and is rejected one second outside it.
// The vectors folder sits beside the repository; if it is missing these tests FAIL (not skip).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <boost/json/parse.hpp>

#include "attestation/dcap/collateral.h"
#include "attestation/dcap/quote.h"
#include "attestation/dcap/verifier.h"
#include "base/encoding.h"
#include "crypto/hash.h"

namespace custos::attestation::dcap {
namespace {

const std::string kVectors = CUSTOS_SOURCE_DIR "/../shared/vectors/";

Bytes read_file(const std::string& rel) {
  std::ifstream in(kVectors + rel, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing vector file " << kVectors + rel;
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Quotes come as binary, hex (optionally 0x-prefixed), base64, or JSON {"tdx":{"quote":b64}}.
Bytes decode_quote(const std::string& rel) {
  Bytes raw = read_file(rel);
  if (raw.size() >= 2 && raw[0] <= 5 && raw[1] == 0) return raw;  // binary: version 3..5 LE
  std::string text = strip_whitespace(as_string_view(raw));
  if (!text.empty() && text[0] == '{') {
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec);
    EXPECT_FALSE(ec);
    text = std::string(v.at("tdx").at("quote").as_string());
    auto b = base64_decode(text);
    EXPECT_TRUE(b.ok());
    return b.ok() ? *b : Bytes{};
  }
  if (text.rfind("0x", 0) == 0) text = text.substr(2);
  if (auto h = hex_decode(text); h.ok()) return *h;
  auto b = base64_decode(text);
  EXPECT_TRUE(b.ok()) << rel;
  return b.ok() ? *b : Bytes{};
}

SysTime t(const char* rfc3339) {
  auto r = parse_rfc3339(rfc3339);
  EXPECT_TRUE(r.ok()) << rfc3339;
  return *r;
}

VerifyOptions at(SysTime when) {
  VerifyOptions o;
  o.at = when;
  return o;
}

Collateral bundle(const std::string& rel) {
  auto c = collateral_from_bundle(read_file(rel));
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? *c : Collateral{};
}

struct Case {
  const char* name;
  std::string quote;
  Collateral collateral;
  SysTime start;
  SysTime end;
};

Case sgx_dcapqvl() {
  return {"sgx-dcapqvl-v3-sample", "sgx-dcapqvl-v3-sample/sgx_quote",
          bundle("sgx-dcapqvl-v3-sample/sgx_quote_collateral.json"), t("2025-06-19T10:56:11Z"),
          t("2025-07-19T10:01:18Z")};
}
Case tdx_dcapqvl() {
  return {"tdx-dcapqvl-v4-sample", "tdx-dcapqvl-v4-sample/tdx_quote",
          bundle("tdx-dcapqvl-v4-sample/tdx_quote_collateral.json"), t("2025-06-19T10:32:27Z"),
          t("2025-07-19T10:00:35Z")};
}
Case tdx_outdated() {
  return {"tdx-dcapqvl-v4-outdated", "tdx-dcapqvl-v4-outdated/tdx_quote_outdated",
          bundle("tdx-dcapqvl-v4-outdated/tdx_quote_outdated_collateral.json"),
          t("2026-02-18T10:58:51Z"), t("2026-03-20T10:41:15Z")};
}
Case tdx_gotdxguest() {
  const std::string d = "tdx-gotdxguest-v4-spr-e4/";
  Collateral c;
  c["tcb_info"] = read_file(d + "sample_tcbInfo_response");
  c["tcb_info_chain"] = read_file(d + "derived/tcb_info_issuer_chain.pem");
  c["qe_identity"] = read_file(d + "sample_qeIdentity_response");
  c["qe_identity_chain"] = read_file(d + "derived/qe_identity_issuer_chain.pem");
  c["pck_crl"] = read_file(d + "pckcrl");
  c["pck_crl_chain"] = read_file(d + "derived/pck_crl_issuer_chain.pem");
  c["root_crl"] = read_file(d + "rootcrl.der");
  return {"tdx-gotdxguest-v4-spr-e4", d + "tdx_prod_quote_SPR_E4.dat", c, t("2023-06-18T08:42:58Z"),
          t("2023-07-08T07:24:59Z")};
}
Case tdx_automata_v4() {
  const std::string d = "tdx-automata-v4-solana-0725/";
  Collateral c;
  c["tcb_info"] = read_file(d + "tcb_info_v3_with_tdx_module.json");
  c["tcb_info_chain"] = read_file(d + "derived/tcb_signing_chain.pem");
  c["qe_identity"] = read_file(d + "qe_identity.json");
  c["qe_identity_chain"] = read_file(d + "derived/tcb_signing_chain.pem");
  c["pck_crl"] = read_file(d + "pck_platform_crl.der");
  c["root_crl"] = read_file(d + "intel_root_ca_crl.der");
  c["root_ca"] = read_file(d + "root.der");
  return {"tdx-automata-v4-solana-0725", d + "quote_tdx.bin", c, t("2025-07-07T09:20:26Z"),
          t("2025-08-06T09:06:43Z")};
}
Case tdx_automata_v5() {
  const std::string d = "tdx-automata-v5-alibaba-0625/";
  Collateral c;
  c["tcb_info"] = read_file(d + "tcbinfov3_90C06F000000.json");
  c["tcb_info_chain"] = read_file(d + "derived/tcb_signing_chain.pem");
  c["qe_identity"] = read_file(d + "qe_td.json");
  c["qe_identity_chain"] = read_file(d + "derived/tcb_signing_chain.pem");
  c["pck_crl"] = read_file(d + "derived/QuoteV5Test.platformCrlDer.der");
  c["root_crl"] = read_file(d + "derived/PCCSSetupBase.rootCrlDer.der");
  return {"tdx-automata-v5-alibaba-0625", d + "alibaba_quote_5.dat", c, t("2025-06-14T16:04:26Z"),
          t("2025-07-04T09:19:31Z")};
}

void expect_window(const Case& c, const DcapVerifier& v, const std::string& reason_inside) {
  Bytes q = decode_quote(c.quote);
  for (SysTime when : {c.start, c.end, c.start + (c.end - c.start) / 2}) {
    VerifyResult r = v.verify_quote(q, c.collateral, at(when));
    if (reason_inside.empty()) {
      EXPECT_TRUE(r.ok()) << c.name << " at " << format_rfc3339(when) << ": "
                          << (r.ok() ? "" : r.rejection().message);
    } else {
      ASSERT_FALSE(r.ok()) << c.name;
      EXPECT_EQ(r.rejection().reason, reason_inside) << r.rejection().message;
    }
  }
  for (SysTime when : {c.start - std::chrono::seconds(1), c.end + std::chrono::seconds(1)}) {
    VerifyResult r = v.verify_quote(q, c.collateral, at(when));
    ASSERT_FALSE(r.ok()) << c.name << " verified at " << format_rfc3339(when);
    const std::string& reason = r.rejection().reason;
    EXPECT_TRUE(reason.ends_with(".expired") || reason.ends_with(".not_yet_valid"))
        << c.name << " at " << format_rfc3339(when) << ": " << reason;
  }
}

TEST(DcapVectors, VectorsFolderIsPresent) {
  ASSERT_TRUE(std::filesystem::is_directory(kVectors))
      << kVectors << " is missing: the shared vectors must sit beside the repository";
}

TEST(DcapVectors, SgxDcapQvlV3IsConfigurationAndSwHardeningNeeded) {
  DcapVerifier v;
  Case c = sgx_dcapqvl();
  expect_window(c, v, "");
  VerifyResult r = v.verify_quote(decode_quote(c.quote), c.collateral, at(t("2025-07-19T10:01:17Z")));
  ASSERT_TRUE(r.ok()) << r.rejection().message;
  const Claims& cl = r.claims();
  EXPECT_EQ(cl.tee, TeeType::kSgx);
  EXPECT_EQ(cl.tcb_status, TcbStatus::kConfigurationAndSwHardeningNeeded);
  EXPECT_EQ(cl.advisory_ids, (std::vector<std::string>{"INTEL-SA-00289", "INTEL-SA-00615"}));
  EXPECT_FALSE(cl.debug);
  EXPECT_EQ(cl.fields.at("mrenclave").as_string(),
            "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb");
  EXPECT_EQ(cl.fields.at("mrsigner").as_string(),
            "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6");
  EXPECT_EQ(cl.fields.at("fmspc").as_string(), "00a067110000");
  EXPECT_EQ(cl.fields.at("pce_svn").as_int64(), 13);
  EXPECT_EQ(cl.fields.at("qe_tcb_status").as_string(), "UpToDate");
  EXPECT_EQ(std::string(as_string_view(ByteSpan(cl.report_data).first(13))), "Hello, world!");
  ASSERT_TRUE(cl.collateral_expiry.has_value());
  EXPECT_EQ(format_rfc3339(*cl.collateral_expiry), "2025-07-19T10:01:18Z");
  auto json = cl.to_json();
  EXPECT_EQ(json.at("tcb_status").as_string(), "ConfigurationAndSWHardeningNeeded");
  EXPECT_EQ(json.at("tee").as_string(), "sgx");
}

TEST(DcapVectors, TdxDcapQvlV4IsUpToDate) {
  DcapVerifier v(VerifierConfig{.tee = TeeType::kTdx});
  Case c = tdx_dcapqvl();
  expect_window(c, v, "");
  Evidence e{TeeType::kTdx, decode_quote(c.quote)};
  VerifyResult r = v.verify(e, c.collateral, at(t("2025-07-19T10:00:34Z")));
  ASSERT_TRUE(r.ok()) << r.rejection().message;
  const Claims& cl = r.claims();
  EXPECT_EQ(cl.tee, TeeType::kTdx);
  EXPECT_EQ(cl.tcb_status, TcbStatus::kUpToDate);
  EXPECT_TRUE(cl.advisory_ids.empty());
  EXPECT_FALSE(cl.debug);
  EXPECT_EQ(cl.fields.at("mrtd").as_string(),
            "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7");
  EXPECT_EQ(cl.fields.at("tee_tcb_svn").as_string(), "06010300000000000000000000000000");
  EXPECT_EQ(cl.fields.at("td_attributes").as_string(), "0000001000000000");
  EXPECT_EQ(cl.fields.at("tdx_module_tcb_status").as_string(), "UpToDate");
  // An SGX-only verifier refuses TDX evidence.
  DcapVerifier sgx_only;
  EXPECT_EQ(sgx_only.verify(e, c.collateral, at(t("2025-07-19T10:00:34Z"))).rejection().reason,
            "dcap.quote.tee_mismatch");
}

TEST(DcapVectors, TdxDcapQvlOutdatedV5HasNoMatchingTcbLevel) {
  DcapVerifier v;
  expect_window(tdx_outdated(), v, "dcap.tcb.no_matching_level");
}

TEST(DcapVectors, TdxGoTdxGuestHasNoMatchingTcbLevel) {
  DcapVerifier v;
  expect_window(tdx_gotdxguest(), v, "dcap.tcb.no_matching_level");
}

TEST(DcapVectors, TdxGoTdxGuestByteTampersAreRejected) {
  DcapVerifier v;
  Case c = tdx_gotdxguest();
  const std::string d = "tdx-gotdxguest-v4-spr-e4/derived/negative/tdx_prod_quote_SPR_E4.";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"version_byte.dat", "dcap.quote.unsupported_tee_type"},
      {"signed_data_size_byte.dat", "dcap.quote.truncated"},
      {"cert_chain_byte.dat", ""},
      {"root_cert_byte.dat", ""},
      {"intermediate_cert_byte.dat", "dcap.pck_chain.signature"},
      {"pck_cert_byte.dat", "dcap.pck_chain.signature"},
      {"header_byte.dat", "dcap.quote.signature"},
      {"td_quote_body_byte.dat", "dcap.quote.signature"},
  };
  for (const auto& [file, reason] : cases) {
    VerifyResult r = v.verify_quote(read_file(d + file), c.collateral, at(c.start));
    ASSERT_FALSE(r.ok()) << file;
    if (!reason.empty()) {
      EXPECT_EQ(r.rejection().reason, reason) << file << ": " << r.rejection().message;
    }
    EXPECT_TRUE(r.rejection().reason.starts_with("dcap.")) << r.rejection().reason;
  }
}

TEST(DcapVectors, TdxAutomataV4IsOutOfDate) {
  DcapVerifier v;
  Case c = tdx_automata_v4();
  expect_window(c, v, "");
  VerifyResult r = v.verify_quote(decode_quote(c.quote), c.collateral, at(c.start));
  ASSERT_TRUE(r.ok()) << r.rejection().message;
  EXPECT_EQ(r.claims().tcb_status, TcbStatus::kOutOfDate);
  EXPECT_EQ(r.claims().advisory_ids,
            (std::vector<std::string>{"INTEL-SA-00960", "INTEL-SA-00982", "INTEL-SA-00986"}));
  EXPECT_EQ(r.claims().fields.at("tcb_date").as_string(), "2023-08-09T00:00:00Z");
}

TEST(DcapVectors, TdxAutomataV5Td15IsUpToDate) {
  DcapVerifier v;
  Case c = tdx_automata_v5();
  expect_window(c, v, "");
  VerifyResult r = v.verify_quote(decode_quote(c.quote), c.collateral, at(c.start));
  ASSERT_TRUE(r.ok()) << r.rejection().message;
  const Claims& cl = r.claims();
  EXPECT_EQ(cl.tcb_status, TcbStatus::kUpToDate);
  EXPECT_EQ(cl.fields.at("quote_version").as_int64(), 5);
  EXPECT_EQ(cl.fields.at("mrservicetd").as_string(),
            "383c87d3bbb047b2d171eaca95312ede99f258088dc788f6ae2ccf8b6dd848fe8d47629e08b3f6cbd4a00dd47a5a033d");
  EXPECT_EQ(cl.fields.at("td_relaunch_advised").as_bool(), false);
  // The PCK certificate's notBefore opens this window: one second earlier the chain is rejected.
  VerifyResult early = v.verify_quote(decode_quote(c.quote), c.collateral, at(c.start - std::chrono::seconds(1)));
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.rejection().reason, "dcap.pck_chain.not_yet_valid");
}

TEST(DcapVectors, ImpostorIntelRootIsRejected) {
  const std::string d = "sgx-intelqvl-sampledata-synthetic/";
  Collateral c;
  Bytes chain = read_file(d + "pckCert.pem");
  Bytes rest = read_file(d + "pckSignChain.pem");
  chain.insert(chain.end(), rest.begin(), rest.end());
  c["pck_chain"] = chain;
  c["tcb_info"] = read_file(d + "tcbInfo.json");
  c["tcb_info_chain"] = read_file(d + "tcbSignChain.pem");
  c["qe_identity"] = read_file(d + "qeIdentity.json");
  c["qe_identity_chain"] = read_file(d + "tcbSignChain.pem");
  c["pck_crl"] = read_file(d + "intermediateCaCrl.der");
  c["root_crl"] = read_file(d + "rootCaCrl.pem");
  Bytes quote = read_file(d + "quote.dat");
  SysTime when = t("2020-01-01T00:00:00Z");

  DcapVerifier production;
  VerifyResult r = production.verify_quote(quote, c, at(when));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.rejection().reason, "dcap.pck_chain.untrusted_root") << r.rejection().message;
  // Offering the impostor as collateral does not make it trusted.
  Collateral with_root = c;
  with_root["root_ca"] = read_file(d + "trustedRootCaCert.pem");
  r = production.verify_quote(quote, with_root, at(when));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.rejection().reason, "dcap.pck_chain.untrusted_root");

  // Trusted explicitly (as tests and the sim TEE may), the rest of the pipeline runs and stops at
  // the sample's QE identity, whose MISCSELECT does not match its own quote.
  auto root = crypto::Certificate::from_any(read_file(d + "trustedRootCaCert.pem"));
  ASSERT_TRUE(root.ok());
  DcapVerifier test_root(VerifierConfig{.trusted_root = *root});
  r = test_root.verify_quote(quote, c, at(when));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.rejection().reason, "dcap.qe_identity.miscselect_mismatch") << r.rejection().message;
}

TEST(DcapVectors, TdxIntelQvlSyntheticIsRejected) {
  const std::string d = "tdx-intelqvl-sampledata-synthetic/";
  Collateral c;
  c["tcb_info"] = read_file(d + "tcbInfo.json");
  c["tcb_info_chain"] = read_file(d + "tcbSignChain.pem");
  c["qe_identity"] = read_file(d + "qeIdentity.json");
  c["qe_identity_chain"] = read_file(d + "tcbSignChain.pem");
  c["pck_crl"] = read_file(d + "intermediateCaCrl.der");
  c["root_crl"] = read_file(d + "rootCaCrl.der");
  DcapVerifier v;
  VerifyResult r = v.verify_quote(read_file(d + "quote.dat"), c, at(t("2023-01-01T00:00:00Z")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.rejection().reason, "dcap.cert_data.malformed") << r.rejection().message;
}

// Quotes without collateral: authenticity only (chain to the pinned root, QE binding, signature).
TEST(DcapVectors, QuotesWithoutCollateralAreAuthentic) {
  const std::vector<std::string> quotes = {
      "dcap-corpus-teekit-nocoll/sgx-chinenyeokafor.dat",
      "dcap-corpus-teekit-nocoll/sgx-occlum.dat",
      "dcap-corpus-teekit-nocoll/sgx-tlsn-quote9.dat",
      "dcap-corpus-teekit-nocoll/sgx-tlsn-quotedev.dat",
      "dcap-corpus-teekit-nocoll/tdx-v4-azure",
      "dcap-corpus-teekit-nocoll/tdx-v4-edgeless.dat",
      "dcap-corpus-teekit-nocoll/tdx-v4-moemahhouk.dat",
      "dcap-corpus-teekit-nocoll/tdx-v4-phala.dat",
      "dcap-corpus-teekit-nocoll/tdx-v4-phala.hex",
      "dcap-corpus-teekit-nocoll/tdx-v4-tappd.hex",
      "dcap-corpus-teekit-nocoll/tdx-v4-trustee.dat",
      "dcap-corpus-teekit-nocoll/tdx-v4-zkdcap.dat",
      "dcap-corpus-teekit-nocoll/tdx-v5-trustee.dat",
      "dcap-corpus-teekit-nocoll/tdx-v4-gcp.json",
      "dcap-corpus-teekit-nocoll/tdx-v4-gcp-no-nonce.json",
      "dcap-corpus-nocoll-misc/openenclave__host_verify__tdx_quote.bin",
      "dcap-corpus-nocoll-misc/openenclave__intel_qve_thread_test__sgx_quote",
      "dcap-corpus-nocoll-misc/trustee__occlum_quote.dat",
      "dcap-corpus-nocoll-misc/trustee__tdx_quote_4.dat",
      "dcap-corpus-nocoll-misc/trustee__tdx_quote_5.dat",
      "tdx-dcapqvl-tappd-nocoll/quote-from-tappd.hex",
      "tdx-dcapqvl-tappd-nocoll/tdx-quote.hex",
      "tdx-automata-v4-solana-0725/quote_sgx.bin",
  };
  DcapVerifier v;
  for (const auto& name : quotes) {
    Bytes q = decode_quote(name);
    VerifyResult r = v.verify_signatures_only(q, {}, t("2025-09-01T00:00:00Z"));
    EXPECT_TRUE(r.ok()) << name << ": " << (r.ok() ? "" : r.rejection().message);
    if (r.ok()) {
      EXPECT_EQ(r.claims().tcb_status, TcbStatus::kNotApplicable);
    }
  }
  // The README's stated MRTD for one of them.
  VerifyResult r = v.verify_signatures_only(decode_quote("dcap-corpus-teekit-nocoll/tdx-v5-trustee.dat"),
                                            {}, t("2025-09-01T00:00:00Z"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.claims().fields.at("mrtd").as_string(),
            "dfba221b48a22af8511542ee796603f37382800840dcd978703909bf8e64d4c8a1e9de86e7c9638bfcba422f3886400a");
}

TEST(DcapVectors, TamperedRealSgxQuoteIsRejected) {
  DcapVerifier v;
  Case c = sgx_dcapqvl();
  const Bytes good = decode_quote(c.quote);
  auto q = parse_quote(good);
  ASSERT_TRUE(q.ok());
  const size_t sig_data = 48 + 384 + 4;  // v3: header, body, signature data length
  // Warm every cache with the genuine quote first: the tampered twins must still be caught.
  ASSERT_TRUE(v.verify_quote(good, c.collateral, at(c.start)).ok());
  auto flip = [&](size_t offset) {
    Bytes b = good;
    b[offset] ^= 0x01;
    VerifyResult r = v.verify_quote(b, c.collateral, at(c.start));
    EXPECT_FALSE(r.ok()) << "offset " << offset;
    return r.ok() ? std::string() : r.rejection().reason;
  };
  EXPECT_EQ(flip(100), "dcap.quote.signature");                       // report body
  EXPECT_EQ(flip(sig_data + 5), "dcap.quote.signature");              // quote signature
  EXPECT_EQ(flip(sig_data + 64 + 3), "dcap.qe_report.attestation_key_binding");  // attestation key
  EXPECT_EQ(flip(sig_data + 128 + 20), "dcap.qe_report.signature");    // QE report
  EXPECT_EQ(flip(sig_data + 128 + 384 + 7), "dcap.qe_report.signature");  // QE report signature
  EXPECT_EQ(flip(sig_data + 128 + 384 + 64 + 2 + 1), "dcap.qe_report.attestation_key_binding");  // auth data
  // Truncation anywhere is a clean rejection.
  for (size_t len : {size_t{0}, size_t{1}, size_t{47}, size_t{48}, size_t{200}, size_t{432}, size_t{436},
                     size_t{500}, size_t{1000}, size_t{1100}, good.size() - 1}) {
    Bytes b(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len));
    VerifyResult r = v.verify_quote(b, c.collateral, at(c.start));
    ASSERT_FALSE(r.ok()) << len;
    EXPECT_EQ(r.rejection().reason, "dcap.quote.truncated") << len << ": " << r.rejection().message;
  }
  // Trailing bytes are tolerated.
  Bytes padded = good;
  padded.resize(good.size() + 100, 0);
  EXPECT_TRUE(v.verify_quote(padded, c.collateral, at(c.start)).ok());
}

TEST(DcapVectors, ParsesEveryQuoteLayout) {
  struct Expect {
    std::string file;
    uint16_t version;
    bool tdx;
    BodyType body;
    size_t trailing;
  };
  const std::vector<Expect> expects = {
      {"sgx-dcapqvl-v3-sample/sgx_quote", 3, false, BodyType::kSgxEnclave, 0},
      {"tdx-dcapqvl-v4-sample/tdx_quote", 4, true, BodyType::kTd10, 70},
      {"tdx-dcapqvl-v4-outdated/tdx_quote_outdated", 5, true, BodyType::kTd15, 0},
      {"tdx-gotdxguest-v4-spr-e4/tdx_prod_quote_SPR_E4.dat", 4, true, BodyType::kTd10, 39},
      {"tdx-automata-v4-solana-0725/quote_tdx.bin", 4, true, BodyType::kTd10, 3065},
      {"tdx-automata-v5-alibaba-0625/alibaba_quote_5.dat", 5, true, BodyType::kTd15, 0},
      {"sgx-intelqvl-sampledata-synthetic/quote.dat", 3, false, BodyType::kSgxEnclave, 0},
  };
  for (const auto& e : expects) {
    Bytes b = decode_quote(e.file);
    auto q = parse_quote(b);
    ASSERT_TRUE(q.ok()) << e.file << ": " << q.status().message();
    EXPECT_EQ(q->version, e.version) << e.file;
    EXPECT_EQ(q->is_tdx(), e.tdx) << e.file;
    EXPECT_EQ(q->body_type, e.body) << e.file;
    EXPECT_EQ(q->trailing_bytes, e.trailing) << e.file;
  }
  auto synthetic = parse_quote(read_file("sgx-intelqvl-sampledata-synthetic/quote.dat"));
  ASSERT_TRUE(synthetic.ok());
  EXPECT_EQ(synthetic->cert_data_type, CertDataType::kPpidCleartext);
}

TEST(DcapVectors, PcsBodySignatureCoversExactSubstring) {
  Bytes body = read_file("tdx-gotdxguest-v4-spr-e4/sample_tcbInfo_response");
  auto s = split_signed_json(as_string_view(body), "tcbInfo");
  ASSERT_TRUE(s.ok()) << s.status().message();
  std::string_view text = as_string_view(body);
  EXPECT_NE(text.find(s->body), std::string_view::npos);
  EXPECT_EQ(s->body.front(), '{');
  EXPECT_EQ(s->body.back(), '}');
  EXPECT_EQ(s->signature.size(), 64u);
  auto info = parse_tcb_info(s->body);
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->id, TcbInfo::Id::kTdx);
  EXPECT_EQ(info->version, 3);
  auto v2 = split_signed_json(as_string_view(read_file("sgx-intelqvl-sampledata-synthetic/tcbInfo.json")),
                              "tcbInfo");
  ASSERT_TRUE(v2.ok());
  auto info2 = parse_tcb_info(v2->body);
  ASSERT_TRUE(info2.ok()) << info2.status().message();
  EXPECT_EQ(info2->version, 2);
  EXPECT_EQ(info2->levels.front().sgx_components[1], 3);
}

// Warm-path cost: verification with cached collateral must stay near the bare cryptographic work
// (two P-256 verifications and the hashing). The bound here is loose because CI machines are
// shared; bench/ holds the precise measurement.
TEST(DcapVectors, WarmPathIsCloseToBareCrypto) {
  DcapVerifier v;
  Case c = sgx_dcapqvl();
  Bytes qb = decode_quote(c.quote);
  ASSERT_TRUE(v.verify_quote(qb, c.collateral, at(c.start)).ok());
  auto q = parse_quote(qb);
  ASSERT_TRUE(q.ok());
  auto pck_chain = crypto::Certificate::chain_from_pem(as_string_view(q->cert_data));
  ASSERT_TRUE(pck_chain.ok());
  crypto::PublicKey pck_key = (*pck_chain)[0].public_key();
  crypto::SignOptions raw;
  raw.ec_format = crypto::SignOptions::EcFormat::kRaw;
  const int n = 200;
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    auto key = crypto::PublicKey::from_ec_xy(crypto::KeyType::kEcP256, q->attestation_key);
    ASSERT_TRUE(key->verify(q->signed_data, q->signature, raw).ok());
    ASSERT_TRUE(pck_key.verify(q->qe_report_raw, q->qe_report_signature, raw).ok());
    (void)crypto::sha256(q->qe_auth_data);
  }
  auto bare = Clock::now() - t0;
  t0 = Clock::now();
  for (int i = 0; i < n; ++i) ASSERT_TRUE(v.verify_quote(qb, c.collateral, at(c.start)).ok());
  auto warm = Clock::now() - t0;
  double ratio = std::chrono::duration<double>(bare).count() / std::chrono::duration<double>(warm).count();
  std::printf("warm SGX verification: %.1f us/quote, bare crypto %.1f us, ratio %.2f\n",
              std::chrono::duration<double, std::micro>(warm).count() / n,
              std::chrono::duration<double, std::micro>(bare).count() / n, ratio);
  EXPECT_GT(ratio, 0.25);
  EXPECT_GT(v.cache_stats().hits, static_cast<uint64_t>(n));
}

}  // namespace
}  // namespace custos::attestation::dcap
