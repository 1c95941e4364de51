#!/usr/bin/env bash
# `custos attest verify` and `custos attest collateral` on the shared real vectors
# (../shared/vectors, provenance in its README): exit 0 genuine (and accepted by --policy),
# 1 rejected, 2 usage error; JSON output fields; the local collateral cache with stale refusal.
source "$(dirname "$0")/lib.sh"
V=$(cd "$(dirname "$0")/../../../shared/vectors" && pwd) || fail "shared vectors not found"
SGX=$V/sgx-dcapqvl-v3-sample
SYN=$V/sgx-intelqvl-sampledata-synthetic

# run EXPECTED_RC ARGS...: runs `custos attest verify ARGS`, output in $OUT.
run() {
  local want=$1
  shift
  set +e
  "$CUSTOS" attest verify "$@" > "$WORK/out" 2> "$WORK/err"
  local rc=$?
  set -e
  OUT=$(cat "$WORK/out")
  [ "$rc" = "$want" ] || fail "attest verify $*: expected exit $want, got $rc: $OUT $(cat "$WORK/err")"
}
has() { grep -qF -- "$1" <<< "$OUT" || fail "expected '$1' in: $OUT"; }

run 0 --type sgx --evidence "$SGX/sgx_quote" --collateral "$SGX/sgx_quote_collateral.json" \
  --at 2025-07-19T10:01:17Z -format=json
has '"verified":true'
has '"tee":"sgx"'
has '"tcb_status":"ConfigurationAndSWHardeningNeeded"'
has '"advisory_ids":["INTEL-SA-00289","INTEL-SA-00615"]'
has '"mrenclave":"33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"'
has '"reasons":[]'
pass "sgx-dcapqvl-v3-sample inside its window: genuine, ConfigurationAndSWHardeningNeeded"

run 0 --type sgx --evidence "$SGX/sgx_quote" --collateral "$SGX/sgx_quote_collateral.json" \
  --at 2025-07-19T10:01:18Z
has 'Verified      true'
pass "last second of the window (table output)"

run 1 --type sgx --evidence "$SGX/sgx_quote" --collateral "$SGX/sgx_quote_collateral.json" \
  --at 2025-07-19T10:01:19Z -format=json
has '"verified":false'
has 'expired'
pass "1 s after the window: rejected as expired"

# Hex-encoded evidence decodes the same.
xxd -p "$SGX/sgx_quote" > "$WORK/quote.hex"
run 0 --type sgx --evidence "$WORK/quote.hex" --collateral "$SGX/sgx_quote_collateral.json" \
  --at 2025-07-19T10:01:17Z
pass "hex evidence"

# Policy twins: the right MRENCLAVE passes, a wrong one and an UpToDate-only policy are denied
# with expected vs actual.
echo '{"id":"ok","sgx":{"mrenclave":["33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"]}}' > "$WORK/ok.json"
run 0 --type sgx --evidence "$SGX/sgx_quote" --collateral "$SGX/sgx_quote_collateral.json" \
  --at 2025-07-19T10:01:17Z --policy "$WORK/ok.json"
printf '{"sgx":{"mrenclave":"%064d"},"tcb_status":["UpToDate"]}' 0 > "$WORK/bad.json"
run 1 --type sgx --evidence "$SGX/sgx_quote" --collateral "$SGX/sgx_quote_collateral.json" \
  --at 2025-07-19T10:01:17Z --policy "$WORK/bad.json" -format=json
has 'sgx.mrenclave: expected any of [0000'
has 'got 33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb'
has 'tcb_status: expected any of [UpToDate], got ConfigurationAndSWHardeningNeeded'
echo '{"sgx_enclave_measurement_anyof":["33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"],"sgx_enclave_issuer_product_id_anyof":[0],"tls_client_certificate_san_anyof":["x"]}' > "$WORK/isecl.json"
run 0 --type sgx --evidence "$SGX/sgx_quote" --collateral "$SGX/sgx_quote_collateral.json" \
  --at 2025-07-19T10:01:17Z --policy "$WORK/isecl.json"
pass "policies: native accept, denial with expected/actual, ISecL key transfer policy"

# An impostor "Intel SGX Root CA" (right name, wrong key) is not trusted, even offered as root_ca.
cat "$SYN/pckCert.pem" "$SYN/pckSignChain.pem" > "$WORK/pck_chain.pem"
run 1 --type sgx --evidence "$SYN/quote.dat" --pck-chain "$WORK/pck_chain.pem" \
  --tcb-info "$SYN/tcbInfo.json" --tcb-info-chain "$SYN/tcbSignChain.pem" \
  --qe-identity "$SYN/qeIdentity.json" --qe-identity-chain "$SYN/tcbSignChain.pem" \
  --pck-crl "$SYN/intermediateCaCrl.der" --root-crl "$SYN/rootCaCrl.pem" \
  --root-ca "$SYN/trustedRootCaCert.pem" --at 2020-01-01T00:00:00Z -format=json
has 'untrusted'
pass "impostor root (sgx-intelqvl-sampledata-synthetic): rejected"

# Simulated evidence is refused unless the policy lists sim.
run 1 --type sim --evidence "$SGX/sgx_quote" --collateral "$SGX/sgx_quote_collateral.json" \
  --root-ca "$V/_trust-anchors/intel/Intel_SGX_Root_CA.der" --at 2025-07-19T10:01:17Z -format=json
has 'policy.sim_not_allowed'
pass "sim refused without a policy allowing it"

run 0 --type snp --evidence "$V/snp-trustee-milan-vcek/test-report.bin" \
  --vcek "$V/snp-trustee-milan-vcek/test-vcek.der" \
  --ask-ark "$V/snp-trustee-milan-vcek/milan_ask_ark_asvk.pem" --at 2025-01-01T00:00:00Z -format=json
has '"tee":"snp"'
has '"measurement":"a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c"'
run 1 --type snp --evidence "$V/snp-trustee-milan-vcek/test-report.bin" \
  --vcek "$V/snp-trustee-milan-vcek/test-vcek.der" \
  --ask-ark "$V/snp-trustee-milan-vcek/milan_ask_ark_asvk.pem" --at 2030-01-24T17:58:27Z
pass "snp-trustee-milan-vcek: genuine in date, rejected after the VCEK expires"

K=$V/tpm-keylime-swtpm-files
run 0 --type tpm --evidence "$K/quote.out" --signature "$K/quotesig.out" --ak-pub "$K/akpub.pem" \
  --pcrs "$K/quotepcr.out" --nonce db1db298db6d60e6385b7231743e9c3056a18003 -format=json
has '"tee":"tpm"'
run 1 --type tpm --evidence "$K/quote.out" --signature "$K/quotesig.out" --ak-pub "$K/akpub.pem" \
  --pcrs "$K/quotepcr.out" --nonce db1db298db6d60e6385b7231743e9c3056a18004
pass "tpm-keylime-swtpm-files: genuine with its nonce, rejected with another"

run 2 --type sgx --at 2025-07-19T10:01:17Z
run 2 --type quantum --evidence "$SGX/sgx_quote"
run 2 --type sgx --evidence "$WORK/does-not-exist"
run 2 --type sgx --evidence "$SGX/sgx_quote" --at yesterday
echo '{"sgx":{"mrenclav":[]}}' > "$WORK/typo.json"
run 2 --type sgx --evidence "$SGX/sgx_quote" --policy "$WORK/typo.json"
pass "usage errors exit 2 (missing --evidence, bad type, unreadable file, bad time, bad policy)"

# The collateral cache: import once, verify without collateral flags, stale refused with what
# expired and when.
"$CUSTOS" attest collateral import "$SGX/sgx_quote_collateral.json" --cache-dir "$WORK/cache" > "$WORK/imp" \
  || fail "collateral import: $(cat "$WORK/imp")"
grep -q 'tcb_info sgx:' "$WORK/imp" || fail "import summary: $(cat "$WORK/imp")"
"$CUSTOS" attest collateral list --cache-dir "$WORK/cache" -format=json | grep -q '"kind":"qe_identity"' \
  || fail "collateral list misses the QE identity"
run 0 --type sgx --evidence "$SGX/sgx_quote" --cache-dir "$WORK/cache" --at 2025-07-19T10:01:17Z
run 1 --type sgx --evidence "$SGX/sgx_quote" --cache-dir "$WORK/cache" --at 2025-07-19T10:01:19Z -format=json
has 'collateral.stale'
has 'expired at 2025-07-19T10:01:18Z'
run 1 --type sgx --evidence "$SGX/sgx_quote" --cache-dir "$WORK/empty-cache" --at 2025-07-19T10:01:17Z -format=json
has 'collateral.missing'
pass "collateral cache: import, verify from cache, stale and missing refused"

# The sim TEE end to end, when this binary has the workload commands: refused without a policy
# allowing sim, accepted with one, and never accepted as real SGX.
if "$CUSTOS" attest sim init "$WORK/sim" > /dev/null 2>&1 &&
   "$CUSTOS" agent evidence --tee sim --sim-dir "$WORK/sim" --program "$CUSTOS" --report-data 1234 \
     --raw-out "$WORK/sim.quote" --out "$WORK/sim.json" > /dev/null 2>&1; then
  run 1 --type sim --evidence "$WORK/sim.quote" --sim-dir "$WORK/sim" -format=json
  has 'policy.sim_not_allowed'
  echo '{"tee":["sim"],"report_data":"1234"}' > "$WORK/sim-policy.json"
  run 0 --type sim --evidence "$WORK/sim.quote" --sim-dir "$WORK/sim" --policy "$WORK/sim-policy.json" -format=json
  has '"tee":"sim"'
  run 1 --type sim --evidence "$WORK/sim.quote" --sim-dir "$WORK/sim" --policy "$WORK/sim-policy.json" --nonce 1235
  cat "$WORK/sim/tcb_signing.pem" "$WORK/sim/root.pem" > "$WORK/sim-chain.pem"
  run 1 --type sgx --evidence "$WORK/sim.quote" --tcb-info "$WORK/sim/tcb_info.json" \
    --tcb-info-chain "$WORK/sim-chain.pem" --qe-identity "$WORK/sim/qe_identity.json" \
    --qe-identity-chain "$WORK/sim-chain.pem" --pck-crl "$WORK/sim/pck_crl.der" \
    --root-crl "$WORK/sim/root_crl.der" -format=json
  has 'untrusted'
  pass "sim: refused unless allowed, accepted with a sim policy, never as sgx"
else
  echo "skip - sim (no 'attest sim init' / 'agent evidence' in this binary)"
fi

finish
