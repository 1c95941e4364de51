// The TPM producer against a real software TPM (swtpm + tpm2-tools): the evidence it returns
// must verify with TpmVerifier, carry SHA-256(report_data) as the nonce, and fail cleanly with a
// wrong AK or an unreachable TPM.
#include <gtest/gtest.h>

#include "agent/producer.h"
#include "attestation/tpm/verifier.h"
#include "base/encoding.h"
#include "crypto/hash.h"
#include "swtpm.h"

namespace custos::agent {
namespace {

using attestation::TeeType;

class TpmProducerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* p : {"swtpm", "tpm2_createek", "tpm2_createak", "tpm2_quote",
                          "tpm2_readpublic", "tpm2_flushcontext", "tpm2_pcrextend"}) {
      ASSERT_TRUE(custos::testing::Swtpm::have_program(p))
          << p << " is not installed: run scripts/install-deps (swtpm, swtpm-tools, tpm2-tools)";
    }
    ASSERT_TRUE(tpm_.start());
    tpm_.tpm("tpm2_createek -c ek.ctx -G rsa -u ek.pub");
    tpm_.tpm("tpm2_createak -C ek.ctx -c ak.ctx -G ecc -g sha256 -s ecdsa -u ak.pub -n ak.name");
    tpm_.tpm("tpm2_pcrextend 16:sha256=" + std::string(64, 'a'));
    ASSERT_FALSE(HasFailure());
  }

  ProducerConfig config() const {
    ProducerConfig c;
    c.tee = TeeType::kTpm;
    c.tcti = tpm_.tcti();
    c.ak_context = tpm_.path("ak.ctx");
    c.pcr_selection = "sha256:0,7,16";
    c.tpm_timeout_seconds = 60;
    return c;
  }

  attestation::VerifyResult verify(const ProducedEvidence& e) const {
    attestation::tpm::TpmVerifier v;
    attestation::VerifyOptions o;
    o.at = std::chrono::system_clock::now();
    return v.verify(e.evidence, e.collateral, o);
  }

  custos::testing::Swtpm tpm_;
};

TEST_F(TpmProducerTest, QuoteVerifiesWithHashedReportData) {
  auto p = make_producer(config());
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ((*p)->tee(), TeeType::kTpm);
  Bytes rd(kReportDataSize);
  for (size_t i = 0; i < rd.size(); ++i) rd[i] = static_cast<uint8_t>(i * 3);
  auto e = (*p)->produce(rd);
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  tpm_.flush();
  EXPECT_EQ(e->evidence.tee, TeeType::kTpm);
  for (const char* k : {"signature", "pcrs", "ak_pub", "nonce"})
    EXPECT_TRUE(e->collateral.count(k)) << k;
  const std::string nonce = hex_encode(crypto::sha256(rd));
  EXPECT_EQ(to_string(e->collateral.at("nonce")), nonce);

  auto r = verify(*e);
  ASSERT_TRUE(r.ok()) << r.rejection().reason << ": " << r.rejection().message;
  EXPECT_EQ(std::string(r.claims().fields.at("nonce").as_string()), nonce);
  const auto& pcrs = r.claims().fields.at("pcrs").as_object().at("sha256").as_object();
  EXPECT_EQ(pcrs.size(), 3u);
  EXPECT_NE(std::string(pcrs.at("16").as_string()), std::string(64, '0'));
  EXPECT_EQ(std::string(r.claims().fields.at("ak_name").as_string()),
            hex_encode(to_bytes(custos::testing::Swtpm::slurp(tpm_.path("ak.name")))));

  // The nonce binds the report data: claiming other report data fails verification.
  ProducedEvidence other = *e;
  Bytes rd2 = rd;
  rd2[0] ^= 1;
  other.collateral["nonce"] = to_bytes(hex_encode(crypto::sha256(rd2)));
  EXPECT_FALSE(verify(other).ok());

  // A second quote from the same producer (fresh temp files) also verifies.
  auto e2 = (*p)->produce(rd2);
  ASSERT_TRUE(e2.ok()) << e2.status().to_string();
  tpm_.flush();
  EXPECT_TRUE(verify(*e2).ok());
  EXPECT_NE(e2->evidence.data, e->evidence.data);
}

TEST_F(TpmProducerTest, Failures) {
  ProducerConfig c = config();
  c.ak_context = tpm_.path("no-such-ak.ctx");
  auto p = make_producer(c);
  ASSERT_TRUE(p.ok());
  auto e = (*p)->produce(Bytes(kReportDataSize));
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), Code::kUnavailable);
  EXPECT_NE(e.status().message().find("tpm2_quote"), std::string::npos) << e.status().message();
  tpm_.flush();

  // Nothing listens on the port after stop().
  c = config();
  tpm_.stop();
  c.tpm_timeout_seconds = 20;
  auto down = make_producer(c);
  ASSERT_TRUE(down.ok());
  EXPECT_FALSE((*down)->produce(Bytes(kReportDataSize)).ok());

  ProducerConfig bad = config();
  bad.ak_context.clear();
  EXPECT_EQ(make_producer(bad).status().code(), Code::kInvalidArgument);
  bad = config();
  bad.pcr_selection = "--evil";
  EXPECT_EQ(make_producer(bad).status().code(), Code::kInvalidArgument);
  EXPECT_EQ((*down)->produce(Bytes(3)).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace custos::agent
