// Real TPM 2.0 quotes from ../shared/vectors (provenance in its README).
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "attestation/tpm/pcrs.h"
#include "attestation/tpm/structures.h"
#include "attestation/tpm/verifier.h"
#include "tpm_test_util.h"

namespace custos::attestation::tpm {
namespace {

using testing::message;
using testing::read_vector;
using testing::reason;
using testing::run;

std::string str(const boost::json::value& v) { return std::string(v.as_string()); }

// --- tpm-keylime-swtpm-files ------------------------------------------------------------------

Collateral keylime() {
  return {{"signature", read_vector("tpm-keylime-swtpm-files/quotesig.out")},
          {"ak_pub", read_vector("tpm-keylime-swtpm-files/ak.pub")},
          {"pcrs", read_vector("tpm-keylime-swtpm-files/quotepcr.out")},
          {"nonce", to_bytes("db1db298db6d60e6385b7231743e9c3056a18003")}};
}

TEST(TpmVectors, KeylimeAccepts) {
  TpmVerifier v;
  Bytes quote = read_vector("tpm-keylime-swtpm-files/quote.out");
  auto r = run(v, quote, keylime());
  ASSERT_TRUE(r.ok()) << reason(r) << ": " << message(r);
  const Claims& c = r.claims();
  EXPECT_EQ(c.tee, TeeType::kTpm);
  EXPECT_EQ(hex_encode(c.report_data), "db1db298db6d60e6385b7231743e9c3056a18003");
  EXPECT_EQ(str(c.fields.at("nonce")), "db1db298db6d60e6385b7231743e9c3056a18003");
  EXPECT_EQ(c.fields.at("clock").to_number<uint64_t>(), 5994u);
  EXPECT_EQ(str(c.fields.at("firmware_version")), "0x2016051100162800");
  const auto& sha256 = c.fields.at("pcrs").as_object().at("sha256").as_object();
  EXPECT_EQ(sha256.size(), 3u);
  EXPECT_EQ(str(sha256.at("16")), "9dbb22387e019c04da95477333546082ce313152c4a7f8a6e1d5f0c77f4fb6f0");
  EXPECT_EQ(str(sha256.at("22")), std::string(64, 'f'));
  // The AK name computed from ak.pub equals tpm2_createak's ak.name.
  EXPECT_EQ(str(c.fields.at("ak_name")), hex_encode(read_vector("tpm-keylime-swtpm-files/ak.name")));
}

TEST(TpmVectors, KeylimeOtherInputForms) {
  TpmVerifier v;
  Bytes quote = read_vector("tpm-keylime-swtpm-files/quote.out");
  Collateral pem = keylime();
  pem["ak_pub"] = read_vector("tpm-keylime-swtpm-files/akpub.pem");
  EXPECT_TRUE(run(v, quote, pem).ok()) << reason(run(v, quote, pem));
  Collateral json = keylime();
  json["pcrs"] = read_vector("tpm-keylime-swtpm-files/derived/pcrs_sha256.json");
  EXPECT_TRUE(run(v, quote, json).ok()) << message(run(v, quote, json));
  Collateral by_bank = keylime();
  by_bank["pcrs"] = to_bytes(
      "{\"sha256\": {\"15\": \"" + std::string(64, '0') +
      "\", \"16\": \"0x9dbb22387e019c04da95477333546082ce313152c4a7f8a6e1d5f0c77f4fb6f0\", "
      "\"22\": \"" + std::string(64, 'f') + "\"}}");
  EXPECT_TRUE(run(v, quote, by_bank).ok()) << message(run(v, quote, by_bank));
  Collateral yaml = keylime();
  yaml["pcrs"] = to_bytes("sha256:\n  15: 0x" + std::string(64, '0') +
                          "\n  16: 0x9DBB22387E019C04DA95477333546082CE313152C4A7F8A6E1D5F0C77F4FB6F0"
                          "\n  22: 0x" + std::string(64, 'F') + "\n");
  EXPECT_TRUE(run(v, quote, yaml).ok()) << message(run(v, quote, yaml));
  Collateral list = keylime();
  list["pcrs"] = to_bytes(std::string(64, '0') +
                          "\n9dbb22387e019c04da95477333546082ce313152c4a7f8a6e1d5f0c77f4fb6f0\n" +
                          std::string(64, 'f') + "\n");
  EXPECT_TRUE(run(v, quote, list).ok()) << message(run(v, quote, list));
  // Hex and base64 forms of the quote and signature.
  Collateral b64 = keylime();
  b64["signature"] = to_bytes(base64_encode(b64["signature"]));
  EXPECT_TRUE(run(v, to_bytes(hex_encode(quote)), b64).ok());
}

TEST(TpmVectors, KeylimeRejections) {
  TpmVerifier v;
  Bytes quote = read_vector("tpm-keylime-swtpm-files/quote.out");
  Collateral c = keylime();
  c["nonce"] = to_bytes("db1db298db6d60e6385b7231743e9c3056a18004");
  EXPECT_EQ(reason(run(v, quote, c)), "tpm.nonce.mismatch");
  c["nonce"] = to_bytes("zz");
  EXPECT_EQ(reason(run(v, quote, c)), "tpm.nonce.format");
  c = keylime();
  c["pcrs"] = to_bytes("{\"sha256\": {\"15\": \"" + std::string(64, '0') + "\", \"16\": \"" +
                       std::string(64, '1') + "\", \"22\": \"" + std::string(64, 'f') + "\"}}");
  EXPECT_EQ(reason(run(v, quote, c)), "tpm.pcr_digest.mismatch");
  c["pcrs"] = to_bytes("{\"sha256\": {\"15\": \"" + std::string(64, '0') + "\"}}");
  EXPECT_EQ(reason(run(v, quote, c)), "tpm.pcrs.incomplete");
  c.erase("pcrs");
  EXPECT_EQ(reason(run(v, quote, c)), "tpm.pcrs.missing");
  // A different key: the EK (a restricted decryption key) and its PEM form.
  c = keylime();
  c["ak_pub"] = read_vector("tpm-keylime-swtpm-files/ek.pub");
  EXPECT_EQ(reason(run(v, quote, c)), "tpm.ak.attributes");
  c["ak_pub"] = read_vector("tpm-keylime-swtpm-files/ekpub.pem");
  EXPECT_EQ(reason(run(v, quote, c)), "tpm.signature.invalid");
  c = keylime();
  c.erase("ak_pub");
  EXPECT_EQ(reason(run(v, quote, c)), "tpm.collateral.missing");
  c = keylime();
  c.erase("signature");
  EXPECT_EQ(reason(run(v, quote, c)), "tpm.collateral.missing");
  // Tampering with any byte of the quote breaks the signature (or the structure).
  for (size_t i = 0; i < quote.size(); ++i) {
    Bytes bad = quote;
    bad[i] ^= 0x01;
    EXPECT_FALSE(run(v, bad, keylime()).ok()) << i;
  }
  for (size_t n = 0; n < quote.size(); n += 9) {
    Bytes t(quote.begin(), quote.begin() + static_cast<std::ptrdiff_t>(n));
    auto r = run(v, t, keylime());
    EXPECT_FALSE(r.ok()) << n;
  }
  Bytes wrong_magic = quote;
  wrong_magic[0] = 0xfe;
  EXPECT_EQ(reason(run(v, wrong_magic, keylime())), "tpm.attest.magic");
  Bytes wrong_type = quote;
  wrong_type[5] = 0x17;  // TPM_ST_ATTEST_CERTIFY
  EXPECT_EQ(reason(run(v, wrong_type, keylime())), "tpm.attest.type");
  Bytes trailing = quote;
  trailing.push_back(0);
  EXPECT_EQ(reason(run(v, trailing, keylime())), "tpm.attest.format");
  Bytes sig = read_vector("tpm-keylime-swtpm-files/quotesig.out");
  sig[sig.size() - 1] ^= 1;
  c = keylime();
  c["signature"] = sig;
  EXPECT_EQ(reason(run(v, quote, c)), "tpm.signature.invalid");
  c["signature"] = Bytes(sig.begin(), sig.begin() + 10);
  EXPECT_EQ(reason(run(v, quote, c)), "tpm.signature.format");
}

TEST(TpmVectors, LegacyPcrFileLayout) {
  auto quote = parse_quote_attest(read_vector("tpm-keylime-swtpm-files/quote.out"));
  ASSERT_TRUE(quote.ok());
  ASSERT_EQ(quote->pcr_select.size(), 1u);
  EXPECT_EQ(quote->pcr_select[0].hash, alg::kSha256);
  EXPECT_EQ(quote->pcr_select[0].indices, (std::vector<uint32_t>{15, 16, 22}));
  auto banks = parse_pcr_values(read_vector("tpm-keylime-swtpm-files/quotepcr.out"),
                                quote->pcr_select);
  ASSERT_TRUE(banks.ok()) << banks.status().message();
  EXPECT_EQ(hex_encode(banks->at(alg::kSha256).at(16)),
            "9dbb22387e019c04da95477333546082ce313152c4a7f8a6e1d5f0c77f4fb6f0");
}

// --- tpm-gotpmtools-gce-cos85-nonce9009 -------------------------------------------------------

constexpr const char* kGce = "tpm-gotpmtools-gce-cos85-nonce9009/";

Collateral gce(const std::string& q) {
  std::string d = std::string(kGce) + "derived/";
  return {{"signature", read_vector(d + q + ".tpmt_signature.bin")},
          {"ak_pub", read_vector(d + "ak_pub.tpmt_public.bin")},
          {"pcrs", read_vector(d + q + ".pcrs.json")},
          {"nonce", to_bytes("9009")}};
}
Bytes gce_quote(const std::string& q) {
  return read_vector(std::string(kGce) + "derived/" + q + ".tpms_attest.bin");
}

TEST(TpmVectors, GceThreeBanksSignedWithSha256) {
  TpmVerifier v;
  for (const char* q : {"quote0_sha1", "quote1_sha256", "quote2_sha384"}) {
    auto r = run(v, gce_quote(q), gce(q));
    ASSERT_TRUE(r.ok()) << q << ": " << reason(r) << ": " << message(r);
    EXPECT_EQ(str(r.claims().fields.at("signature_hash")), "sha256") << q;
    EXPECT_EQ(str(r.claims().fields.at("nonce")), "9009");
    EXPECT_EQ(str(r.claims().fields.at("ak_name")),
              "000bf175bdb57297b2b289973f819863d6c9d09c236725676914f4248c9a2404c2a4");
  }
  auto r = run(v, gce_quote("quote1_sha256"), gce("quote1_sha256"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(str(r.claims().fields.at("pcrs").as_object().at("sha256").as_object().at("0")),
            "0f35c214608d93c7a6e68ae7359b4a8be5a0e99eea9107ece427c4dea4e439cf");
  // PCR values of one bank against another bank's quote.
  Collateral swapped = gce("quote1_sha256");
  swapped["pcrs"] = gce("quote2_sha384")["pcrs"];
  EXPECT_FALSE(run(v, gce_quote("quote1_sha256"), swapped).ok());
  Collateral wrong_nonce = gce("quote0_sha1");
  wrong_nonce["nonce"] = to_bytes("9008");
  EXPECT_EQ(reason(run(v, gce_quote("quote0_sha1"), wrong_nonce)), "tpm.nonce.mismatch");
}

TEST(TpmVectors, GceAkCertificateChain) {
  std::string ca = std::string(kGce) + "ca-certs/";
  auto root = crypto::Certificate::from_any(read_vector(ca + "tpm_ek_root_1.cer"));
  auto inter = crypto::Certificate::from_any(read_vector(ca + "tpm_ek_intermediate_2.crt"));
  ASSERT_TRUE(root.ok());
  ASSERT_TRUE(inter.ok());
  Collateral c = gce("quote1_sha256");
  c.erase("ak_pub");
  c["ak_cert"] = read_vector(std::string(kGce) + "derived/ak_cert.der");
  c["ak_ca"] = to_bytes(inter->pem() + root->pem());
  TpmVerifier v;
  auto r = run(v, gce_quote("quote1_sha256"), c);
  ASSERT_TRUE(r.ok()) << reason(r) << ": " << message(r);
  EXPECT_TRUE(r.claims().collateral_expiry.has_value());
  // Configured root; collateral carries the intermediate only.
  VerifierConfig cfg;
  cfg.ak_roots = {*root};
  TpmVerifier pinned(cfg);
  c["ak_ca"] = to_bytes(inter->pem());
  EXPECT_TRUE(run(pinned, gce_quote("quote1_sha256"), c).ok());
  // ak_pub and ak_cert together must agree.
  c["ak_pub"] = gce("quote1_sha256")["ak_pub"];
  EXPECT_TRUE(run(pinned, gce_quote("quote1_sha256"), c).ok());
  c["ak_pub"] = read_vector("tpm-keylime-swtpm-files/akpub.pem");
  EXPECT_EQ(reason(run(pinned, gce_quote("quote1_sha256"), c)), "tpm.ak.cert_mismatch");
  c.erase("ak_pub");
  // Another CA: Google's newer AK root does not certify this AK.
  auto other = crypto::Certificate::from_any(read_vector(ca + "gcp_ek_ak_ca_root.crt"));
  ASSERT_TRUE(other.ok());
  VerifierConfig wrong;
  wrong.ak_roots = {*other};
  EXPECT_EQ(reason(run(TpmVerifier(wrong), gce_quote("quote1_sha256"), c)), "tpm.ak_cert.chain");
  // No root at all.
  Collateral no_root = c;
  no_root.erase("ak_ca");
  EXPECT_EQ(reason(run(v, gce_quote("quote1_sha256"), no_root)), "tpm.ak_cert.no_root");
}

// --- tpm-goattestation-windows-gcp ------------------------------------------------------------

TEST(TpmVectors, WindowsSha1QuoteForbiddenByDefault) {
  std::string d = "tpm-goattestation-windows-gcp/derived/";
  Collateral c{{"signature", read_vector(d + "quote.tpmt_signature.bin")},
               {"ak_pub", read_vector(d + "ak_public.tpm2b_public.bin")},
               {"pcrs", read_vector(d + "pcrs_sha1.json")},
               {"nonce", to_bytes("")}};
  Bytes quote = read_vector(d + "quote.tpms_attest.bin");
  EXPECT_EQ(reason(run(TpmVerifier(), quote, c)), "tpm.signature.sha1_forbidden");
  VerifierConfig cfg;
  cfg.allow_sha1 = true;
  TpmVerifier lax(cfg);
  auto r = run(lax, quote, c);
  ASSERT_TRUE(r.ok()) << reason(r) << ": " << message(r);
  EXPECT_EQ(str(r.claims().fields.at("pcrs").as_object().at("sha1").as_object().at("0")),
            "51c323de0c0c694f4601cdd02beb58ff13629f74");
  EXPECT_TRUE(r.claims().report_data.empty());
  c["nonce"] = to_bytes("00");
  EXPECT_EQ(reason(run(lax, quote, c)), "tpm.nonce.mismatch");
}

// --- tpm-trustee-evidence ---------------------------------------------------------------------

TEST(TpmVectors, TrusteeJsonEvidence) {
  Bytes json = read_vector("tpm-trustee-evidence/tpm_evidence.json");
  boost::system::error_code ec;
  auto doc = boost::json::parse(as_string_view(json), ec);
  ASSERT_FALSE(ec);
  const auto& o = doc.as_object();
  const auto& q = o.at("tpm_quote").as_object();
  boost::json::array pcrs = q.at("pcrs").as_array();
  Collateral c{{"ak_pub", to_bytes(o.at("ak_public").as_string())},
               {"signature", to_bytes(q.at("signature").as_string())},
               {"pcrs", to_bytes(boost::json::serialize(pcrs))},
               {"nonce", to_bytes("a04182b506878d4f29b91ee606a71a0d3361ccf1b22db20c98adcaa537bea393"
                                  "ef0e41a18b3569ab678f1497fbc5c12000000000000000000000000000000000")}};
  TpmVerifier v;
  Bytes quote = to_bytes(q.at("message").as_string());  // base64 text
  auto r = run(v, quote, c);
  ASSERT_TRUE(r.ok()) << reason(r) << ": " << message(r);
  EXPECT_EQ(r.claims().fields.at("pcrs").as_object().at("sha256").as_object().size(), 24u);
  EXPECT_EQ(str(r.claims().fields.at("firmware_version")), "0x2019102300163636");
  EXPECT_EQ(r.claims().report_data.size(), 64u);
  // One PCR changed.
  pcrs[8] = std::string(64, '1');
  c["pcrs"] = to_bytes(boost::json::serialize(pcrs));
  EXPECT_EQ(reason(run(v, quote, c)), "tpm.pcr_digest.mismatch");
  pcrs.pop_back();
  c["pcrs"] = to_bytes(boost::json::serialize(pcrs));
  EXPECT_EQ(reason(run(v, quote, c)), "tpm.pcrs.format");
}

}  // namespace
}  // namespace custos::attestation::tpm
