// The ledger (docs/ledger.md), against raw OpenSSL in the same process:
//   - an append through Core (in-memory storage, the whole engine path: the leaf and the subtrees
//     it completes written in one transaction, the new root, an inclusion proof and a signed tree
//     head) against one raw ECDSA P-256 signature, the part of an append nothing can avoid;
//   - verifying an inclusion proof in a tree of 2^16 leaves (ledger::verify_inclusion) against the
//     same number of raw SHA-256 compressions of 65-byte inputs.
// Ratios printed after the runs are raw time / ours (1.0: nothing but the unavoidable work).
#include <benchmark/benchmark.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <boost/json.hpp>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/encoding.h"
#include "base/log.h"
#include "core/core.h"
#include "ledger/merkle.h"
#include "storage/backend.h"
#include "summary.h"

namespace {

using namespace custos;

void BM_RawEcdsaP256Sign(benchmark::State& state) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  // About what a signed tree head covers.
  const std::string msg = "custos.ledger.sth.v1\n" + std::string(64, 'a') + "\n1000\n" +
                          std::string(64, 'b') + "\n1800000000\n";
  unsigned char sig[80];
  for (auto _ : state) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t len = sizeof(sig);
    if (EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) != 1 ||
        EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(msg.data()),
                       msg.size()) != 1) {
      state.SkipWithError("sign failed");
    }
    EVP_MD_CTX_free(ctx);
    benchmark::DoNotOptimize(sig);
  }
  EVP_PKEY_free(key);
}
BENCHMARK(BM_RawEcdsaP256Sign);

void BM_LedgerAppend(benchmark::State& state) {
  log::set_level(log::Level::kWarn);
  auto backend = storage::open_inmem();
  core::Core core(*backend, SystemClock::instance(), core::CoreConfig{});
  auto init = core.initialize(1, 1);
  if (!init.ok() || !core.unseal(hex_encode(init->shares[0].span()), false).ok()) {
    state.SkipWithError("init failed");
    return;
  }
  auto call = [&](core::Operation op, const std::string& path, boost::json::object data) {
    core::Request r;
    r.op = op;
    r.http_put_or_post = true;
    r.path = path;
    r.data = std::move(data);
    r.client_token = init->root_token;
    return core.handle(r);
  };
  if (!call(core::Operation::kUpdate, "sys/mounts/supply", {{"type", "ledger"}}).ok()) {
    state.SkipWithError("mount failed");
    return;
  }
  const std::string entry = base64_encode(Bytes(256, 0x42));
  for (auto _ : state) {
    auto r = call(core::Operation::kUpdate, "supply/entries", {{"data", entry}});
    if (!r.ok()) state.SkipWithError("append failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LedgerAppend);

constexpr uint64_t kLeaves = 1 << 16;

// Every perfect subtree of a 2^16-leaf tree, by level.
const std::vector<std::vector<ledger::Hash>>& tree() {
  static const auto levels = [] {
    std::vector<std::vector<ledger::Hash>> l(1);
    for (uint64_t i = 0; i < kLeaves; ++i) {
      std::string d = "leaf " + std::to_string(i);
      l[0].push_back(ledger::leaf_hash(as_bytes(d)));
    }
    while (l.back().size() > 1) {
      std::vector<ledger::Hash> up;
      const auto& below = l.back();
      for (size_t i = 0; i + 1 < below.size(); i += 2)
        up.push_back(ledger::node_hash(below[i], below[i + 1]));
      l.push_back(std::move(up));
    }
    return l;
  }();
  return levels;
}

void BM_VerifyInclusion(benchmark::State& state) {
  const auto& t = tree();
  ledger::NodeReader nodes = [&](int level, uint64_t index) -> Result<ledger::Hash> {
    return t.at(static_cast<size_t>(level)).at(index);
  };
  const uint64_t index = 12345;
  auto proof = ledger::inclusion_proof(nodes, index, kLeaves);
  auto root = ledger::root(nodes, kLeaves);
  if (!proof.ok() || !root.ok()) {
    state.SkipWithError("proof failed");
    return;
  }
  for (auto _ : state) {
    bool ok = ledger::verify_inclusion(t[0][index], index, kLeaves, *proof, *root);
    if (!ok) state.SkipWithError("did not verify");
    benchmark::DoNotOptimize(ok);
  }
}
BENCHMARK(BM_VerifyInclusion);

// The floor: one SHA-256 of 0x01 || left || right per level.
void BM_RawSha256Path(benchmark::State& state) {
  unsigned char in[65] = {1};
  unsigned char out[32];
  for (auto _ : state) {
    for (int level = 0; level < 16; ++level) {
      SHA256(in, sizeof(in), out);
      in[1] = out[0];
    }
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_RawSha256Path);

}  // namespace

int main(int argc, char** argv) {
  return custos::bench::run_with_ratios(argc, argv, [](const custos::bench::RatioSummary& r) {
    r.line("append", "BM_RawEcdsaP256Sign", "BM_LedgerAppend", "one raw ECDSA P-256 sign");
    r.line("verify inclusion", "BM_RawSha256Path", "BM_VerifyInclusion", "16 raw SHA-256");
  });
}
