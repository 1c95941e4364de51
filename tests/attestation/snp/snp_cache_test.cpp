// The SnpVerifier's VEK chain cache: keyed by the exact certificate bytes (and the report's key
// kind), holding only time-free results; validity at the verification time is checked on every
// call, other bytes are never served from it, it is bounded, and it is shared between threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

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

class SnpCache : public ::testing::Test {
 protected:
  void SetUp() override {
    make_pki(pki_);
    report_ = make_report(pki_, ReportSpec{});
  }
  std::unique_ptr<SnpVerifier> verifier(size_t capacity = 256) const {
    VerifierConfig cfg;
    cfg.anchors = std::vector<ProductAnchor>{testing::anchor_for(pki_)};
    cfg.cache_capacity = capacity;
    return std::make_unique<SnpVerifier>(cfg);
  }
  static SysTime now() { return from_unix_seconds(1800000000); }  // 2027-01-15
  // The ASK re-issued (same name and key, so it still verifies the VCEK) with another validity.
  crypto::Certificate ask_valid_until(SysTime not_after) const {
    crypto::CertificateSpec spec;
    spec.subject_cn = "SEV-" + pki_.product;
    spec.subject_extra = {{"O", "Advanced Micro Devices"}};
    spec.not_before = pki_.not_before;
    spec.not_after = not_after;
    spec.is_ca = true;
    spec.path_len = 0;
    auto c = crypto::issue_certificate(spec, pki_.ask_key.public_key(), pki_.ark_key, &pki_.ark);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return c.ok() ? *c : crypto::Certificate();
  }

  TestPki pki_;
  Bytes report_;
};

TEST_F(SnpCache, RepeatedChainIsServedFromCache) {
  auto v = verifier();
  auto first = run(*v, report_, collateral_for(pki_), now());
  ASSERT_TRUE(first.ok()) << reason(first);
  CacheStats s = v->cache_stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 0u);
  EXPECT_EQ(s.entries, 1u);
  auto second = run(*v, report_, collateral_for(pki_), now());
  ASSERT_TRUE(second.ok()) << reason(second);
  EXPECT_EQ(v->cache_stats().hits, 1u);
  EXPECT_EQ(v->cache_stats().entries, 1u);
  EXPECT_EQ(second.claims().fields, first.claims().fields);
  EXPECT_EQ(second.claims().collateral_expiry, first.claims().collateral_expiry);
}

// A cached chain used at a time outside a certificate's validity is rejected, as a fresh one is.
TEST_F(SnpCache, CachedChainIsStillCheckedAgainstTheTime) {
  auto v = verifier();
  ASSERT_TRUE(run(*v, report_, collateral_for(pki_), now()).ok());
  EXPECT_EQ(reason(run(*v, report_, collateral_for(pki_), pki_.not_after + Seconds(1))),
            "snp.vek.expired");
  EXPECT_EQ(reason(run(*v, report_, collateral_for(pki_), pki_.not_before - Seconds(1))),
            "snp.vek.not_yet_valid");
  EXPECT_EQ(v->cache_stats().hits, 2u);  // both rejections came from the cached chain
  EXPECT_TRUE(run(*v, report_, collateral_for(pki_), pki_.not_after).ok());

  // The intermediate: an ASK that expires before the VCEK.
  const SysTime ask_end = now() + std::chrono::hours(24);
  Collateral short_ask{{"vcek", pki_.vcek.der()},
                       {"ask_ark", to_bytes(ask_valid_until(ask_end).pem() + pki_.ark.pem())}};
  ASSERT_TRUE(run(*v, report_, short_ask, now()).ok());
  const uint64_t hits = v->cache_stats().hits;
  EXPECT_TRUE(run(*v, report_, short_ask, ask_end).ok());
  EXPECT_EQ(reason(run(*v, report_, short_ask, ask_end + Seconds(1))), "snp.ask.expired");
  EXPECT_EQ(v->cache_stats().hits, hits + 2);
}

// Bytes that differ from a cached entry in any way are verified afresh; failures are not cached.
TEST_F(SnpCache, OtherCertificateBytesAreNotServedFromCache) {
  auto v = verifier();
  ASSERT_TRUE(run(*v, report_, collateral_for(pki_), now()).ok());

  // The VCEK's signature damaged (its last byte).
  Collateral c = collateral_for(pki_);
  c["vcek"].back() ^= 0x01;
  EXPECT_EQ(reason(run(*v, report_, c, now())), "snp.vek.signature");
  // A signed field changed: one byte of the hwID extension (the report still carries the old
  // chip ID, so only the certificate signature can catch it).
  c = collateral_for(pki_);
  Bytes hw(pki_.hw_id.begin(), pki_.hw_id.end());
  auto pos = std::search(c["vcek"].begin(), c["vcek"].end(), hw.begin(), hw.end());
  ASSERT_NE(pos, c["vcek"].end());
  pos[10] ^= 0x01;
  EXPECT_EQ(reason(run(*v, report_, c, now())), "snp.vek.signature");
  // Another chip's VCEK with the same names, from another hierarchy.
  TestPki other;
  make_pki(other);
  c = collateral_for(pki_);
  c["vcek"] = other.vcek.der();
  EXPECT_EQ(reason(run(*v, report_, c, now())), "snp.vek.signature");
  // The right VCEK with an impostor ASK (same name, other key) in ask_ark.
  c = collateral_for(pki_);
  c["ask_ark"] = to_bytes(other.ask.pem() + pki_.ark.pem());
  EXPECT_EQ(reason(run(*v, report_, c, now())), "snp.vek.signature");
  // The same VCEK bytes for a report that says it was signed by a VLEK.
  ReportSpec vlek;
  vlek.signing_key = 1;
  Collateral as_vlek{{"vlek", pki_.vcek.der()},
                     {"ask_ark", to_bytes(pki_.ask.pem() + pki_.ark.pem())}};
  EXPECT_EQ(reason(run(*v, make_report(pki_, vlek), as_vlek, now())), "snp.vek.type_mismatch");

  CacheStats s = v->cache_stats();
  EXPECT_EQ(s.hits, 0u);
  EXPECT_EQ(s.misses, 6u);
  EXPECT_EQ(s.entries, 1u);  // only the verified chain
  EXPECT_TRUE(run(*v, report_, collateral_for(pki_), now()).ok());
  EXPECT_EQ(v->cache_stats().hits, 1u);
}

TEST_F(SnpCache, BoundedLeastRecentlyUsedOut) {
  auto v = verifier(2);
  // Three byte-distinct collateral sets for the same chain.
  const Collateral a = collateral_for(pki_);
  const Collateral b = collateral_for(pki_, /*with_chain=*/false);
  const Collateral c{{"vcek", to_bytes(pki_.vcek.pem())},
                     {"ask_ark", to_bytes(pki_.ask.pem() + pki_.ark.pem())}};
  for (const Collateral* x : {&a, &b, &a, &c}) ASSERT_TRUE(run(*v, report_, *x, now()).ok());
  CacheStats s = v->cache_stats();
  EXPECT_EQ(s.entries, 2u);
  EXPECT_EQ(s.misses, 3u);
  EXPECT_EQ(s.hits, 1u);
  ASSERT_TRUE(run(*v, report_, a, now()).ok());  // used recently: kept
  EXPECT_EQ(v->cache_stats().hits, 2u);
  ASSERT_TRUE(run(*v, report_, b, now()).ok());  // least recently used: evicted
  EXPECT_EQ(v->cache_stats().misses, 4u);
  EXPECT_EQ(v->cache_stats().entries, 2u);
}

// Many threads on one verifier, with a one-entry cache so that lookups, inserts and evictions
// interleave; every result is the one a fresh verifier gives.
TEST_F(SnpCache, ConcurrentUse) {
  auto v = verifier(1);
  Collateral good = collateral_for(pki_);
  Collateral pem = good;
  pem["vcek"] = to_bytes(pki_.vcek.pem());
  Collateral tampered = good;
  tampered["vcek"].back() ^= 0x01;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 30; ++i) {
        std::string got;
        std::string want = "accepted";
        switch ((t + i) % 4) {
          case 0:
            got = reason(run(*v, report_, good, now()));
            break;
          case 1:
            got = reason(run(*v, report_, pem, now()));
            break;
          case 2:
            got = reason(run(*v, report_, tampered, now()));
            want = "snp.vek.signature";
            break;
          default:
            got = reason(run(*v, report_, good, pki_.not_after + Seconds(1)));
            want = "snp.vek.expired";
        }
        if (got != want) wrong++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  CacheStats s = v->cache_stats();
  EXPECT_EQ(s.hits + s.misses, 120u);
  EXPECT_LE(s.entries, 1u);
}

}  // namespace
}  // namespace custos::attestation::snp
