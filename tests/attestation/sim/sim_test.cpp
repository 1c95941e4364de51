// The sim TEE end to end: a platform made by SimPlatform::create, quotes from it, and the DCAP
// verifier pinned to its root. Every accept has reject twins: another platform's quote or
// collateral, tampered bytes, the wrong evidence tag, an unset root, Intel's root.
#include "attestation/sim/sim.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <string>

#include "attestation/dcap/verifier.h"
#include "base/encoding.h"
#include "crypto/hash.h"
#include "storage/temp_dir.h"

namespace custos::attestation::sim {
namespace {

using storage::testing::TempDir;

SysTime test_now() {
  return from_unix_seconds(1767225600);
}  // 2026-01-01T00:00:00Z

VerifyOptions at(SysTime t) {
  VerifyOptions o;
  o.at = t;
  return o;
}

std::string reason(const VerifyResult& r) {
  return r.ok() ? "accepted" : r.rejection().reason;
}
std::string describe(const VerifyResult& r) {
  return r.ok() ? "accepted" : r.rejection().reason + ": " + r.rejection().message;
}

std::string write_file(const TempDir& d, const std::string& name, const std::string& content) {
  std::string p = d.file(name);
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

template <size_t N>
std::array<uint8_t, N> to_array(ByteSpan b) {
  std::array<uint8_t, N> a{};
  std::copy_n(b.begin(), std::min(N, b.size()), a.begin());
  return a;
}

class SimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = SimPlatform::create(dir_.file("platform"), test_now());
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    platform_.emplace(std::move(*p));
    auto m = measure_file(write_file(dir_, "program", "#!/bin/sh\necho hello\n"));
    ASSERT_TRUE(m.ok());
    input_.mrenclave = to_array<32>(*m);
    const std::string rd = "nonce and public key digest";
    std::copy(rd.begin(), rd.end(), input_.report_data.begin());
    input_.isv_prod_id = 4;
    input_.isv_svn = 2;
  }

  Evidence evidence(const Bytes& quote) const { return Evidence{TeeType::kSim, quote}; }
  Bytes quote(const SimQuoteInput& in) const {
    auto q = platform_->quote(in);
    EXPECT_TRUE(q.ok()) << q.status().to_string();
    return q.ok() ? *q : Bytes{};
  }

  TempDir dir_;
  std::optional<SimPlatform> platform_;
  SimQuoteInput input_;
};

TEST_F(SimTest, QuoteVerifiesWithTeeSimAndTheQuotedValues) {
  SimVerifier v(platform_->root());
  VerifyResult r = v.verify(evidence(quote(input_)), platform_->collateral(), at(test_now()));
  ASSERT_TRUE(r.ok()) << describe(r);
  const Claims& c = r.claims();
  EXPECT_EQ(c.tee, TeeType::kSim);
  EXPECT_FALSE(c.debug);
  EXPECT_EQ(c.tcb_status, TcbStatus::kUpToDate);
  EXPECT_EQ(std::string(c.fields.at("mrenclave").as_string()), hex_encode(input_.mrenclave));
  EXPECT_EQ(std::string(c.fields.at("mrsigner").as_string()), hex_encode(platform_->mrsigner()));
  EXPECT_EQ(c.fields.at("isv_prod_id").to_number<int64_t>(), 4);
  EXPECT_EQ(c.fields.at("isv_svn").to_number<int64_t>(), 2);
  EXPECT_EQ(c.report_data, Bytes(input_.report_data.begin(), input_.report_data.end()));
  EXPECT_TRUE(c.fields.at("simulated").as_bool());
  EXPECT_EQ(std::string(c.fields.at("fmspc").as_string()), "53494d000000");

  // MRSIGNER is SHA-256 of the signer's public key.
  Bytes h = crypto::sha256(platform_->signer_public_key().to_der());
  const std::array<uint8_t, 32> mrsigner = platform_->mrsigner();
  EXPECT_EQ(Bytes(mrsigner.begin(), mrsigner.end()), h);

  // Years later, still within the platform's ten-year validity.
  EXPECT_TRUE(v.verify(evidence(quote(input_)), platform_->collateral(),
                       at(test_now() + std::chrono::hours(24 * 365 * 5)))
                  .ok());
}

TEST_F(SimTest, DebugAndMrsignerOverrideAppearInClaims) {
  SimVerifier v(platform_->root());
  SimQuoteInput in = input_;
  in.debug = true;
  in.mrsigner = std::array<uint8_t, 32>{};
  in.mrsigner->fill(0x5a);
  VerifyResult r = v.verify(evidence(quote(in)), platform_->collateral(), at(test_now()));
  ASSERT_TRUE(r.ok()) << describe(r);
  EXPECT_TRUE(r.claims().debug);
  EXPECT_EQ(std::string(r.claims().fields.at("mrsigner").as_string()), hex_encode(*in.mrsigner));
}

TEST_F(SimTest, LoadedPlatformQuotesVerifyAgainstTheOriginalRoot) {
  auto loaded = SimPlatform::load(platform_->dir());
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  EXPECT_EQ(loaded->root().der(), platform_->root().der());
  EXPECT_EQ(loaded->mrsigner(), platform_->mrsigner());
  auto q = loaded->quote(input_);
  ASSERT_TRUE(q.ok());
  SimVerifier v(platform_->root());
  VerifyResult r = v.verify(evidence(*q), loaded->collateral(), at(test_now()));
  EXPECT_TRUE(r.ok()) << describe(r);
}

TEST_F(SimTest, DirectoryContentsAndPermissions) {
  namespace fs = std::filesystem;
  fs::path d = platform_->dir();
  std::ifstream readme(d / "README.txt");
  std::string text((std::istreambuf_iterator<char>(readme)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("SIMULATION"), std::string::npos);
  EXPECT_NE(text.find("NEVER TRUST"), std::string::npos);
  for (const char* key :
       {"root.key", "pck_ca.key", "pck.key", "tcb_signing.key", "attestation.key", "signer.key"}) {
    struct stat st {};
    ASSERT_EQ(::stat((d / key).c_str(), &st), 0) << key;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << key;
  }
  for (const char* f : {"root.pem", "pck_ca.pem", "pck.pem", "tcb_signing.pem", "signer.pub.pem",
                        "tcb_info.json", "qe_identity.json", "pck_crl.der", "root_crl.der"}) {
    EXPECT_TRUE(fs::exists(d / f)) << f;
  }
  struct stat st {};
  ASSERT_EQ(::stat(d.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  // create() never overwrites a platform.
  auto again = SimPlatform::create(d, test_now());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists);
  // load() of a directory that is not a platform.
  EXPECT_FALSE(SimPlatform::load(dir_.file("nothing-here")).ok());
}

TEST_F(SimTest, AnotherPlatformIsRejected) {
  auto other = SimPlatform::create(dir_.file("other"), test_now());
  ASSERT_TRUE(other.ok());
  auto q = other->quote(input_);
  ASSERT_TRUE(q.ok());
  SimVerifier v(platform_->root());
  // Its quote with its own collateral: the PCK chain leads to another root.
  VerifyResult r = v.verify(evidence(*q), other->collateral(), at(test_now()));
  EXPECT_FALSE(r.ok());
  // Its quote with our collateral: same answer.
  EXPECT_FALSE(v.verify(evidence(*q), platform_->collateral(), at(test_now())).ok());
  // Our quote with its collateral: the TCB Info is signed under another root.
  EXPECT_FALSE(v.verify(evidence(quote(input_)), other->collateral(), at(test_now())).ok());
  // And the other platform's own verifier accepts it (the rejection is about trust, not form).
  SimVerifier ov(other->root());
  EXPECT_TRUE(ov.verify(evidence(*q), other->collateral(), at(test_now())).ok());
}

TEST_F(SimTest, TamperedQuotesAreRejected) {
  SimVerifier v(platform_->root());
  const Bytes good = quote(input_);
  // Offsets: header 48 | body 384 (mrenclave at 48 + 64, report_data at 48 + 320) | sig len 4 |
  // quote signature 64 | attestation key 64 | QE report 384 ...
  for (size_t off : {size_t{48 + 64}, size_t{48 + 320}, size_t{48 + 384 + 4 + 10},
                     size_t{48 + 384 + 4 + 64 + 10}, size_t{48 + 384 + 4 + 128 + 64}}) {
    Bytes bad = good;
    bad[off] ^= 0x01;
    VerifyResult r = v.verify(evidence(bad), platform_->collateral(), at(test_now()));
    EXPECT_FALSE(r.ok()) << "flipped byte " << off;
  }
  Bytes truncated(good.begin(), good.begin() + 500);
  EXPECT_FALSE(v.verify(evidence(truncated), platform_->collateral(), at(test_now())).ok());
}

TEST_F(SimTest, ExpiredCollateralIsRejected) {
  SimVerifier v(platform_->root());
  EXPECT_FALSE(v.verify(evidence(quote(input_)), platform_->collateral(),
                        at(test_now() + std::chrono::hours(24 * 365 * 11)))
                   .ok());
  EXPECT_FALSE(v.verify(evidence(quote(input_)), platform_->collateral(),
                        at(test_now() - std::chrono::hours(2)))
                   .ok());
}

TEST_F(SimTest, TrustIsExplicit) {
  // Evidence tagged as real SGX is not sim evidence.
  SimVerifier v(platform_->root());
  Evidence sgx{TeeType::kSgx, quote(input_)};
  EXPECT_EQ(reason(v.verify(sgx, platform_->collateral(), at(test_now()))),
            "sim.evidence.wrong_tee");
  // No root configured: nothing verifies.
  SimVerifier unset{crypto::Certificate()};
  EXPECT_EQ(reason(unset.verify(evidence(quote(input_)), platform_->collateral(), at(test_now()))),
            "sim.root.unset");
  // The production DCAP verifier (Intel's root) does not accept sim quotes.
  dcap::DcapVerifier intel;
  EXPECT_FALSE(intel.verify_quote(quote(input_), platform_->collateral(), at(test_now())).ok());
  // Collateral cannot smuggle the sim root in as "root_ca".
  Collateral c = platform_->collateral();
  c["root_ca"] = to_bytes(platform_->root().pem());
  EXPECT_FALSE(intel.verify_quote(quote(input_), c, at(test_now())).ok());
}

TEST(SimMeasure, DifferentFilesDifferAndMissingFilesFail) {
  TempDir d;
  auto a = measure_file(write_file(d, "a", "program one"));
  auto b = measure_file(write_file(d, "b", "program two"));
  auto a2 = measure_file(d.file("a"));
  ASSERT_TRUE(a.ok() && b.ok() && a2.ok());
  EXPECT_EQ(a->size(), 32u);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(*a, *a2);
  EXPECT_EQ(*a, crypto::sha256(as_bytes("program one")));
  // Larger than one read buffer.
  std::string big(200000, 'x');
  auto m = measure_file(write_file(d, "big", big));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, crypto::sha256(as_bytes(big)));
  auto missing = measure_file(d.file("missing"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace custos::attestation::sim
