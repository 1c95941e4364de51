// The key-release crypto kernels against raw OpenSSL 3 used the plain way (keys made by curve
// name), in the same process:
//   import      a P-256 public key from its point (the quote's attestation key, a TEE's SPKI)
//   keygen      a fresh P-256 key (the ECDH-ES ephemeral key)
//   ecdh-es     the broker's JWE wrap to a P-256 TEE key (import + keygen + ECDH + KDF + GCM)
//               against the raw import + keygen + ECDH it cannot avoid
// Ratios printed after the runs are raw time / ours (above 1.0: faster than raw OpenSSL).
#include <benchmark/benchmark.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <array>
#include <cstdio>
#include <map>
#include <string>

#include "crypto/pkey.h"
#include "summary.h"
#include "wrap/wrap.h"

namespace {

using namespace custos;

const crypto::PrivateKey& tee_key() {
  static const crypto::PrivateKey k = *crypto::PrivateKey::generate(crypto::KeyType::kEcP256);
  return k;
}
const Bytes& tee_xy() {
  static const Bytes xy = *tee_key().public_ec_xy();
  return xy;
}

EVP_PKEY* raw_import(const Bytes& xy) {
  Bytes point = {0x04};
  point.insert(point.end(), xy.begin(), xy.end());
  std::array<OSSL_PARAM, 3> params = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>("prime256v1"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
      OSSL_PARAM_construct_end()};
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* pkey = nullptr;
  EVP_PKEY_fromdata_init(ctx);
  EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params.data());
  EVP_PKEY_CTX_free(ctx);
  return pkey;
}

EVP_PKEY* raw_keygen() {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY_keygen_init(ctx);
  EVP_PKEY_CTX_set_group_name(ctx, "prime256v1");
  EVP_PKEY* pkey = nullptr;
  EVP_PKEY_generate(ctx, &pkey);
  EVP_PKEY_CTX_free(ctx);
  return pkey;
}

void BM_RawImport(benchmark::State& state) {
  for (auto _ : state) EVP_PKEY_free(raw_import(tee_xy()));
}
BENCHMARK(BM_RawImport);

void BM_Import(benchmark::State& state) {
  for (auto _ : state) {
    auto k = crypto::PublicKey::from_ec_xy(crypto::KeyType::kEcP256, tee_xy());
    if (!k.ok()) state.SkipWithError("import failed");
    benchmark::DoNotOptimize(k);
  }
}
BENCHMARK(BM_Import);

void BM_RawKeygen(benchmark::State& state) {
  for (auto _ : state) EVP_PKEY_free(raw_keygen());
}
BENCHMARK(BM_RawKeygen);

void BM_Keygen(benchmark::State& state) {
  for (auto _ : state) {
    auto k = crypto::PrivateKey::generate(crypto::KeyType::kEcP256);
    if (!k.ok()) state.SkipWithError("keygen failed");
    benchmark::DoNotOptimize(k);
  }
}
BENCHMARK(BM_Keygen);

// The floor of an ECDH-ES wrap done the plain way: import the TEE key, make the ephemeral key,
// derive the shared secret.
void BM_RawEcdhEs(benchmark::State& state) {
  for (auto _ : state) {
    EVP_PKEY* peer = raw_import(tee_xy());
    EVP_PKEY* eph = raw_keygen();
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, eph, nullptr);
    std::array<unsigned char, 32> z{};
    size_t len = z.size();
    EVP_PKEY_derive_init(ctx);
    EVP_PKEY_derive_set_peer(ctx, peer);
    if (EVP_PKEY_derive(ctx, z.data(), &len) != 1) state.SkipWithError("derive failed");
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(eph);
    EVP_PKEY_free(peer);
  }
}
BENCHMARK(BM_RawEcdhEs);

void BM_JweEcdhEs(benchmark::State& state) {
  const Bytes secret(32, 0x5a);
  for (auto _ : state) {
    auto to = crypto::PublicKey::from_ec_xy(crypto::KeyType::kEcP256, tee_xy());
    auto jwe = wrap::jwe_encrypt(*to, wrap::JweAlg::kEcdhEs, secret);
    if (!jwe.ok()) state.SkipWithError("wrap failed");
    benchmark::DoNotOptimize(jwe);
  }
}
BENCHMARK(BM_JweEcdhEs);

}  // namespace

int main(int argc, char** argv) {
  return custos::bench::run_with_ratios(argc, argv, [](const custos::bench::RatioSummary& r) {
    r.line("import", "BM_RawImport", "BM_Import", "raw OpenSSL");
    r.line("keygen", "BM_RawKeygen", "BM_Keygen", "raw OpenSSL");
    r.line("ecdh-es", "BM_RawEcdhEs", "BM_JweEcdhEs", "raw OpenSSL");
  });
}
