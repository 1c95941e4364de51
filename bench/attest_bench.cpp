// Attestation verification cost against the bare OpenSSL work it cannot avoid, on real vectors
// (../shared/vectors, see its README):
//   SGX baseline   two P-256 ECDSA verifications (QE report, quote) + SHA-256 of the quote
//   SGX warm       DcapVerifier with collateral parsed and cached     goal: >= 0.5x baseline
//   SGX cold       new verifier, bundle parsed, nothing cached          goal: < 1.5 ms
//   SNP baseline   one P-384 ECDSA verification of a report-sized message
//   SNP            SnpVerifier on a real Milan report, VEK chain cached  goal: >= 0.6x baseline
//   SNP uncached   the same with the chain verified afresh (for comparison; no goal)
// A summary with the ratios (baseline time / verification time: 1.0 means "as fast as the bare
// crypto") is printed after the runs.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "attestation/dcap/collateral.h"
#include "attestation/dcap/quote.h"
#include "attestation/dcap/verifier.h"
#include "attestation/service/service.h"
#include "attestation/snp/verifier.h"
#include "crypto/hash.h"
#include "crypto/pkey.h"

namespace {

using namespace custos;
using namespace custos::attestation;

const std::string kVectors = CUSTOS_SOURCE_DIR "/../shared/vectors/";

Bytes read_vector(const std::string& rel) {
  std::ifstream in(kVectors + rel, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "missing vector %s\n", (kVectors + rel).c_str());
    std::abort();
  }
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

SysTime at(const char* s) {
  return *parse_rfc3339(s);
}

struct SgxFixture {
  Bytes quote = read_vector("sgx-dcapqvl-v3-sample/sgx_quote");
  Bytes bundle = read_vector("sgx-dcapqvl-v3-sample/sgx_quote_collateral.json");
  Collateral collateral = *dcap::collateral_from_bundle(bundle);
  VerifyOptions options{at("2025-07-19T10:01:17Z")};
};

const SgxFixture& sgx() {
  static const SgxFixture f;
  return f;
}

crypto::SignOptions raw_es256() {
  crypto::SignOptions o;
  o.ec_format = crypto::SignOptions::EcFormat::kRaw;
  return o;
}

void BM_SgxBaseline(benchmark::State& state) {
  const Bytes& quote = sgx().quote;
  auto parsed = dcap::parse_quote(quote);
  auto key = crypto::PrivateKey::generate(crypto::KeyType::kEcP256);
  if (!parsed.ok() || !key.ok()) {
    state.SkipWithError("setup");
    return;
  }
  crypto::PublicKey pub = key->public_key();
  Bytes qe_report(parsed->qe_report_raw.begin(), parsed->qe_report_raw.end());
  Bytes signed_data(parsed->signed_data.begin(), parsed->signed_data.end());
  Bytes sig1 = *key->sign(qe_report, raw_es256());
  Bytes sig2 = *key->sign(signed_data, raw_es256());
  for (auto _ : state) {
    bool ok = pub.verify(qe_report, sig1, raw_es256()).ok();
    ok &= pub.verify(signed_data, sig2, raw_es256()).ok();
    Bytes h = crypto::sha256(quote);
    benchmark::DoNotOptimize(h);
    if (!ok) state.SkipWithError("baseline verify failed");
  }
}
BENCHMARK(BM_SgxBaseline);

void BM_SgxWarm(benchmark::State& state) {
  dcap::DcapVerifier verifier;
  const auto& f = sgx();
  if (!verifier.verify_quote(f.quote, f.collateral, f.options).ok()) {
    state.SkipWithError("vector does not verify");
    return;
  }
  for (auto _ : state) {
    VerifyResult r = verifier.verify_quote(f.quote, f.collateral, f.options);
    if (!r.ok()) state.SkipWithError("verify failed");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_SgxWarm);

// Through the service: cache lookup by FMSPC, verification, appraisal, token signing.
void BM_SgxServiceWarmWithToken(benchmark::State& state) {
  auto svc = Service::create(ServiceConfig{});
  const auto& f = sgx();
  if (!svc.ok() || !(*svc)->cache().import_bundle(f.bundle).ok()) {
    state.SkipWithError("setup");
    return;
  }
  VerifyRequest req;
  req.evidence = Evidence{TeeType::kSgx, f.quote};
  req.at = f.options.at;
  for (auto _ : state) {
    VerifyOutcome out = (*svc)->verify(req);
    if (!out.passed()) state.SkipWithError("verify failed");
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_SgxServiceWarmWithToken);

void BM_SgxCold(benchmark::State& state) {
  const auto& f = sgx();
  for (auto _ : state) {
    dcap::DcapVerifier verifier;
    auto collateral = dcap::collateral_from_bundle(f.bundle);
    VerifyResult r = verifier.verify_quote(f.quote, *collateral, f.options);
    if (!r.ok()) state.SkipWithError("verify failed");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_SgxCold)->Unit(benchmark::kMicrosecond);

// Parts of the cold path, to see where it goes.
void BM_SgxColdVerifierConstruction(benchmark::State& state) {
  for (auto _ : state) {
    dcap::DcapVerifier verifier;
    benchmark::DoNotOptimize(verifier);
  }
}
BENCHMARK(BM_SgxColdVerifierConstruction)->Unit(benchmark::kMicrosecond);

void BM_SgxColdBundleParse(benchmark::State& state) {
  for (auto _ : state) {
    auto collateral = dcap::collateral_from_bundle(sgx().bundle);
    benchmark::DoNotOptimize(collateral);
  }
}
BENCHMARK(BM_SgxColdBundleParse)->Unit(benchmark::kMicrosecond);

struct SnpFixture {
  Bytes report = read_vector("snp-trustee-milan-vcek/test-report.bin");
  Collateral collateral = {
      {"vcek", read_vector("snp-trustee-milan-vcek/test-vcek.der")},
      {"ask_ark", read_vector("snp-trustee-milan-vcek/milan_ask_ark_asvk.pem")}};
  VerifyOptions options{at("2025-01-01T00:00:00Z")};
};

const SnpFixture& snp_fixture() {
  static const SnpFixture f;
  return f;
}

void BM_SnpBaseline(benchmark::State& state) {
  auto key = crypto::PrivateKey::generate(crypto::KeyType::kEcP384);
  if (!key.ok()) {
    state.SkipWithError("setup");
    return;
  }
  crypto::PublicKey pub = key->public_key();
  Bytes signed_part(snp_fixture().report.begin(), snp_fixture().report.begin() + 0x2a0);
  crypto::SignOptions o;
  o.hash = crypto::HashAlg::kSha384;
  Bytes sig = *key->sign(signed_part, o);
  for (auto _ : state) {
    if (!pub.verify(signed_part, sig, o).ok()) state.SkipWithError("baseline verify failed");
  }
}
BENCHMARK(BM_SnpBaseline);

void BM_Snp(benchmark::State& state) {
  snp::SnpVerifier verifier;
  const auto& f = snp_fixture();
  Evidence ev{TeeType::kSnp, f.report};
  if (!verifier.verify(ev, f.collateral, f.options).ok()) {
    state.SkipWithError("vector does not verify");
    return;
  }
  for (auto _ : state) {
    VerifyResult r = verifier.verify(ev, f.collateral, f.options);
    if (!r.ok()) state.SkipWithError("verify failed");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Snp);

// A new verifier per call (constructed outside the timed region): VCEK and ASK/ARK parsing and the
// RSA-PSS chain signatures are paid on every call, as they were before the chain cache.
void BM_SnpUncachedChain(benchmark::State& state) {
  const auto& f = snp_fixture();
  Evidence ev{TeeType::kSnp, f.report};
  for (auto _ : state) {
    state.PauseTiming();
    auto verifier = std::make_unique<snp::SnpVerifier>();
    state.ResumeTiming();
    VerifyResult r = verifier->verify(ev, f.collateral, f.options);
    if (!r.ok()) state.SkipWithError("verify failed");
    benchmark::DoNotOptimize(r);
    state.PauseTiming();
    verifier.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_SnpUncachedChain)->Unit(benchmark::kMicrosecond);

// Records each benchmark's CPU time per iteration (ns) for the summary: CPU time, because the
// machines these run on are shared and wall time there measures the neighbours. With
// --benchmark_repetitions=N the median of the repetitions is used (steadier on such machines).
class Recorder : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      if (r.error_occurred) continue;
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      const std::string& name = r.run_name.function_name;
      if (median || (r.run_type == Run::RT_Iteration && !has_median_.count(name))) {
        ns_[name] = r.GetAdjustedCPUTime() * (r.time_unit == benchmark::kMicrosecond ? 1e3 : 1.0);
        if (median) has_median_.insert(name);
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
  double ns(const std::string& name) const {
    auto it = ns_.find(name);
    return it == ns_.end() ? 0 : it->second;
  }

 private:
  std::map<std::string, double> ns_;
  std::set<std::string> has_median_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  Recorder rec;
  benchmark::RunSpecifiedBenchmarks(&rec);
  double base = rec.ns("BM_SgxBaseline");
  double warm = rec.ns("BM_SgxWarm");
  double cold = rec.ns("BM_SgxCold");
  double snp_base = rec.ns("BM_SnpBaseline");
  double snp = rec.ns("BM_Snp");
  double snp_uncached = rec.ns("BM_SnpUncachedChain");
  // Ratios are baseline time / verification time (1.0x: as fast as the bare crypto); CPU time.
  std::printf("\nsummary (CPU time per verification):\n");
  if (base > 0 && warm > 0) {
    std::printf(
        "  sgx warm verify    %8.1f us   floor (2x P-256 verify + SHA-256) %8.1f us   "
        "ratio %.2fx (goal >= 0.5x)\n",
        warm / 1e3, base / 1e3, base / warm);
  }
  if (cold > 0) {
    std::printf(
        "  sgx cold verify    %8.3f ms   nothing cached, bundle parsed       "
        "(goal < 1.5 ms)\n",
        cold / 1e6);
  }
  if (snp_base > 0 && snp > 0) {
    std::printf(
        "  snp verify         %8.1f us   one P-384 verify %8.1f us            "
        "ratio %.2fx (goal >= 0.6x)\n",
        snp / 1e3, snp_base / 1e3, snp_base / snp);
  }
  if (snp_base > 0 && snp_uncached > 0) {
    std::printf("  snp verify, chain not cached %8.1f us                          ratio %.2fx\n",
                snp_uncached / 1e3, snp_base / snp_uncached);
  }
  benchmark::Shutdown();
  return 0;
}
