#!/usr/bin/env bash
# HSM auto-unseal (docs/seal.md) with a real SoftHSM2 token and the custos CLI:
# 1. seal "pkcs11" generates its AES key on the token; init takes recovery shares (and refuses
#    secret_shares as Vault does) and leaves the server unsealed;
# 2. a restarted server unseals itself; the database holds no plaintext secret;
# 3. after a manual seal, 3 of 5 recovery keys unseal it;
# 4. a wrong PIN, a missing seal stanza, and a replaced HSM key each fail clearly and lose nothing.
source "$(dirname "$0")/lib.sh"

LIB=/usr/lib/softhsm/libsofthsm2.so
[ -f "$LIB" ] || fail "softhsm2 is not installed (scripts/install-deps)"
mkdir -p "$WORK/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK/tokens" \
  > "$WORK/softhsm2.conf"
export SOFTHSM2_CONF="$WORK/softhsm2.conf"
softhsm2-util --init-token --free --label custos-it --pin 4321 --so-pin 8765 > /dev/null
PIN=4321

# The PIN stays out of the file: VAULT_HSM_PIN supplies it, as operators do with Vault.
write_config "$WORK/c.hcl" "storage \"sqlite\" { path = \"$WORK/custos.db\" }
seal \"pkcs11\" {
  lib          = \"$LIB\"
  token_label  = \"custos-it\"
  key_label    = \"custos-root\"
  generate_key = true
}"
export VAULT_HSM_PIN=$PIN
start_server "$WORK/c.hcl"
grep -q 'generated AES-256 key "custos-root"' "$WORK/server.log" || fail "no key generated"
expect_status 200 GET sys/seal-status
[ "$(json "$LAST" o.type)" = pkcs11 ] && [ "$(json "$LAST" o.recovery_seal)" = true ] &&
  [ "$(json "$LAST" o.initialized)" = false ] || fail "seal-status before init: $LAST"
expect_status 400 PUT sys/init '{"secret_shares":5,"secret_threshold":3}'
[ "$(json "$LAST" o.errors[0])" = "parameters secret_shares,secret_threshold not applicable to seal type pkcs11" ] ||
  fail "secret_shares with an auto seal: $LAST"
pass "seal pkcs11 generated its key on the token; secret_shares refused with Vault's error"

c() { VAULT_ADDR=$ADDR VAULT_TOKEN=${TOKEN:-} "$CUSTOS" "$@"; }
c operator init -recovery-shares=5 -recovery-threshold=3 -format=json > "$WORK/init.json"
INIT=$(cat "$WORK/init.json")
TOKEN=$(json "$INIT" o.root_token)
mapfile -t RK < <(json "$INIT" 'o.recovery_keys.join("\n")'; echo)
[ "$(json "$INIT" o.keys.length)" = 0 ] && [ "$(json "$INIT" o.recovery_keys_base64.length)" = 5 ] &&
  [ -n "${RK[4]}" ] || fail "init response: $INIT"
expect_status 200 GET sys/seal-status
[ "$(json "$LAST" o.sealed)" = false ] && [ "$(json "$LAST" o.n)" = 5 ] && [ "$(json "$LAST" o.t)" = 3 ] ||
  fail "an auto-sealed server is unsealed after init, with n/t of the recovery shares: $LAST"
c status > "$WORK/status" || fail "status after init should exit 0"
grep -q 'Seal Type *pkcs11' "$WORK/status" && grep -q 'Recovery Seal Type *shamir' "$WORK/status" ||
  fail "custos status: $(cat "$WORK/status")"
CANARY="hsm-canary-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
expect_status 204 POST sys/mounts/secret '{"type":"kv","options":{"version":"2"}}'
expect_status 200 POST secret/data/app "{\"data\":{\"password\":\"$CANARY\"}}"
pass "operator init with 5 recovery shares: unsealed at once, status shows the seal types"

stop_server
for f in "$WORK"/custos.db*; do
  if grep -a -q "$CANARY" "$f"; then fail "secret found in plaintext in $(basename "$f")"; fi
done
start_server "$WORK/c.hcl"
expect_status 200 GET sys/seal-status
[ "$(json "$LAST" o.sealed)" = false ] || fail "restarted server did not unseal itself: $LAST"
expect_status 200 GET secret/data/app
[ "$(json "$LAST" o.data.data.password)" = "$CANARY" ] || fail "secret after auto-unseal: $LAST"
pass "restart: the server unsealed itself through the HSM; no plaintext on disk"

c operator seal > /dev/null
expect_status 503 GET secret/data/app
c operator unseal "${RK[4]}" > /dev/null
c operator unseal "${RK[1]}" > /dev/null
expect_status 200 GET sys/seal-status
[ "$(json "$LAST" o.sealed)" = true ] && [ "$(json "$LAST" o.progress)" = 2 ] || fail "progress: $LAST"
c operator unseal "${RK[2]}" > /dev/null
expect_status 200 GET secret/data/app
[ "$(json "$LAST" o.data.data.password)" = "$CANARY" ] || fail "secret after recovery unseal: $LAST"
pass "after a manual seal, recovery keys 5, 2, 3 unsealed it"
stop_server

# A wrong PIN: the server refuses to start, names the PKCS#11 error, never prints the PIN.
set +e
VAULT_HSM_PIN=wrong-pin-77 "$CUSTOS" server -config "$WORK/c.hcl" > "$WORK/bad.log" 2>&1
rc=$?
set -e
[ $rc != 0 ] && grep -q 'CKR_PIN_INCORRECT' "$WORK/bad.log" || fail "wrong PIN (rc $rc): $(cat "$WORK/bad.log")"
if grep -q 'wrong-pin-77' "$WORK/bad.log"; then fail "the PIN reached the log"; fi
pass "a wrong PIN stops the start with CKR_PIN_INCORRECT, the PIN not printed"

# The same store without the seal stanza: refused, not opened as Shamir.
write_config "$WORK/shamir.hcl" "storage \"sqlite\" { path = \"$WORK/custos.db\" }"
set +e
"$CUSTOS" server -config "$WORK/shamir.hcl" > "$WORK/bad.log" 2>&1
rc=$?
set -e
[ $rc != 0 ] && grep -q 'initialized with the pkcs11 seal' "$WORK/bad.log" ||
  fail "store of another seal type (rc $rc): $(cat "$WORK/bad.log")"
pass "a server without the seal stanza refuses the auto-sealed store"

# The HSM key replaced (deleted, then generated anew under the same label): the stored root key
# no longer opens. The server stays sealed and says why; the recovery keys cannot help (they
# authorise, they do not decrypt); putting nothing at risk.
pkcs11-tool --module "$LIB" --token-label custos-it --login --pin $PIN --delete-object \
  --type secrkey --label custos-root > /dev/null 2>&1 || fail "could not delete the HSM key"
start_server "$WORK/c.hcl"
grep -q 'auto-unseal failed; retrying in the background' "$WORK/server.log" || fail "no auto-unseal error logged"
# The retry after 1 s fails the same way, and says so.
for _ in $(seq 30); do grep -q 'auto-unseal retry 1 failed' "$WORK/server.log" && break; sleep 0.1; done
grep -q 'auto-unseal retry 1 failed' "$WORK/server.log" || fail "no auto-unseal retry logged"
expect_status 200 GET sys/seal-status
[ "$(json "$LAST" o.sealed)" = true ] || fail "sealed expected with a replaced key: $LAST"
for k in "${RK[0]}" "${RK[1]}"; do expect_status 200 PUT sys/unseal "{\"key\":\"$k\"}"; done
out=$(api PUT sys/unseal "{\"key\":\"${RK[2]}\"}")
[ "${out%% *}" = 500 ] || fail "recovery unseal with a replaced key: $out"
grep -q 'the HSM refused the stored value' "$WORK/server.log" || fail "no reason logged for the refusal"
expect_status 503 GET secret/data/app
pass "a replaced HSM key leaves the server sealed with the reason; recovery keys cannot bypass the HSM"
finish
