#!/usr/bin/env bash
# Secure key release end to end with the real binary: `custos server -dev` with a sim TEE
# platform, keys and resources pinned to a program's measurement (sim MRENCLAVE = SHA-256 of
# the program file), and the workload side (`custos agent fetch`, `custos run`) releasing them
# through /kbs/v1 (ISecL), /kbs/v0 (Trustee) and auth/attest login + a KV read.
source "$(dirname "$0")/lib.sh"

# kbs METHOD PATH [BODY]: calls $ADDR/PATH (not under /v1) with the root token; sets CODE, BODY.
kbs() {
  local args=(-s -o "$WORK/kresp" -w '%{http_code}' -X "$1" --max-time 30 -H "X-Vault-Token: $TOKEN")
  [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  CODE=$(curl "${args[@]}" "$ADDR/$2" || echo 000)
  BODY=$(cat "$WORK/kresp" 2>/dev/null || true)
}
kbs_ok() { kbs "$@"; [[ "$CODE" == 2* ]] || fail "$1 $2: HTTP $CODE: $BODY"; }

start_dev
export CUSTOS_ADDR=$ADDR
unset VAULT_ADDR VAULT_TOKEN CUSTOS_TOKEN

printf '#!/bin/sh\n# the pinned workload\necho "workload ran"\n' > "$WORK/app.sh"
chmod +x "$WORK/app.sh"
cp "$WORK/app.sh" "$WORK/evil.sh"
echo 'cat /etc/hostname # one added line' >> "$WORK/evil.sh"
MR=$(sha256sum "$WORK/app.sh" | cut -d' ' -f1)
FETCH=("$CUSTOS" agent fetch --kbs "$ADDR" --tee sim --sim-dir "$WORK/sim")

# --- /kbs/v1 (ISecL): policy pinned to the program, a registered AES key.
kbs_ok POST kbs/v1/key-transfer-policies "{\"id\":\"pin-app\",\"tee\":[\"sim\"],\"sgx\":{\"mrenclave\":[\"$MR\"]}}"
head -c 32 /dev/urandom > "$WORK/key.bin"
KEY_B64=$(base64 -w0 "$WORK/key.bin")
kbs_ok POST kbs/v1/keys "{\"key_information\":{\"algorithm\":\"AES\",\"key_length\":256,\"key_string\":\"$KEY_B64\"},\"transfer_policy_id\":\"pin-app\"}"
KID=$(json "$BODY" o.key_information.id)
[ -n "$KID" ] || fail "key create: $BODY"

"${FETCH[@]}" --key "$KID" --program "$WORK/app.sh" --out "$WORK/got.bin" 2> "$WORK/err" ||
  fail "release for the pinned program: $(cat "$WORK/err")"
cmp -s "$WORK/key.bin" "$WORK/got.bin" || fail "released key differs from key_string"
[ "$(stat -c %a "$WORK/got.bin")" = 600 ] || fail "--out file mode is $(stat -c %a "$WORK/got.bin")"
pass "/kbs/v1: pinned program gets the registered key (RSA-3072 wrap), written 0600"

"${FETCH[@]}" --key "$KID" --program "$WORK/app.sh" --key-type ec > "$WORK/got-ec.bin" 2> "$WORK/err" ||
  fail "release to an EC key: $(cat "$WORK/err")"
cmp -s "$WORK/key.bin" "$WORK/got-ec.bin" || fail "EC-wrapped release differs"
pass "/kbs/v1: the same key through an EC P-256 ephemeral key (JWE ECDH-ES) to stdout"

if "${FETCH[@]}" --key "$KID" --program "$WORK/evil.sh" > "$WORK/out" 2> "$WORK/err"; then
  fail "a modified program got the key"
fi
[ ! -s "$WORK/out" ] || fail "refusal printed something on stdout"
grep -q 'policy.denied' "$WORK/err" || fail "refusal reason: $(cat "$WORK/err")"
grep -qi 'mrenclave' "$WORK/err" || fail "refusal does not name the measurement: $(cat "$WORK/err")"
pass "/kbs/v1: modified program refused: $(head -c 160 "$WORK/err")"

kbs_ok POST kbs/v1/key-transfer-policies "{\"id\":\"hw-only\",\"sgx\":{\"mrenclave\":[\"$MR\"]}}"
kbs_ok POST kbs/v1/keys "{\"key_information\":{\"algorithm\":\"AES\",\"key_length\":256},\"transfer_policy_id\":\"hw-only\"}"
KID2=$(json "$BODY" o.key_information.id)
if "${FETCH[@]}" --key "$KID2" --program "$WORK/app.sh" > /dev/null 2> "$WORK/err"; then
  fail "a policy without sim released to sim evidence"
fi
grep -q 'policy.denied' "$WORK/err" && grep -qi 'tee' "$WORK/err" || fail "no-sim refusal: $(cat "$WORK/err")"
pass "/kbs/v1: a policy that does not allow sim refuses sim evidence"

# --- /kbs/v0 (Trustee): resource + per-resource policy.
printf 'trustee-resource-%s' "$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$WORK/res.txt"
curl -s -f -o /dev/null -X PUT -H "X-Vault-Token: $TOKEN" --data-binary "@$WORK/res.txt" \
  "$ADDR/kbs/v0/resource/myrepo/cfg/db" || fail "resource upload"
kbs_ok PUT kbs/v0/resource-policy/myrepo/cfg/db "{\"tee\":[\"sim\"],\"sgx\":{\"mrenclave\":[\"$MR\"]}}"
"${FETCH[@]}" --resource myrepo/cfg/db --program "$WORK/app.sh" > "$WORK/got-res" 2> "$WORK/err" ||
  fail "/kbs/v0 resource: $(cat "$WORK/err")"
cmp -s "$WORK/res.txt" "$WORK/got-res" || fail "/kbs/v0 resource differs"
if "${FETCH[@]}" --resource myrepo/cfg/db --program "$WORK/evil.sh" > /dev/null 2> "$WORK/err"; then
  fail "/kbs/v0 released to a modified program"
fi
grep -q 'policy.denied' "$WORK/err" || fail "/kbs/v0 refusal reason: $(cat "$WORK/err")"
"${FETCH[@]}" --resource myrepo/cfg/db --program "$WORK/app.sh" --key-type ec > "$WORK/got-res-ec" 2> "$WORK/err" ||
  fail "/kbs/v0 resource to an EC key: $(cat "$WORK/err")"
cmp -s "$WORK/res.txt" "$WORK/got-res-ec" || fail "/kbs/v0 resource (EC key, ECDH-ES+A256KW) differs"
pass "/kbs/v0: resource released as a JWE (RSA-OAEP-256 and ECDH-ES+A256KW) to the pinned program, modified one refused"

# --- auth/attest: evidence -> token (policies from the role) -> KV read, through `custos run`.
api POST sys/mounts/secret '{"type":"kv","options":{"version":"2"}}' > /dev/null || true
expect_status 200 PUT secret/data/app '{"data":{"password":"kv-pass-5d1c"}}'
expect_status 204 PUT sys/policies/acl/app-read '{"policy":"path \"secret/data/app\" { capabilities = [\"read\"] }"}'
expect_status 204 POST sys/auth/attest '{"type":"attest"}'
expect_status 204 POST auth/attest/role/app "{\"token_policies\":[\"app-read\"],\"token_ttl\":\"10m\",\"policy\":{\"tee\":[\"sim\"],\"sgx\":{\"mrenclave\":[\"$MR\"]}}}"
cat > "$WORK/show.sh" <<'S'
#!/bin/sh
printf '%s' "$DB_PASSWORD" > "$1"
S
chmod +x "$WORK/show.sh"
MR_SHOW=$(sha256sum "$WORK/show.sh" | cut -d' ' -f1)
expect_status 204 POST auth/attest/role/show "{\"token_policies\":[\"app-read\"],\"token_ttl\":\"10m\",\"policy\":{\"tee\":[\"sim\"],\"sgx\":{\"mrenclave\":[\"$MR_SHOW\"]}}}"
"$CUSTOS" run --tee sim --kbs "$ADDR" --sim-dir "$WORK/sim" --role show \
  --secret DB_PASSWORD=vault:secret/data/app#password -- "$WORK/show.sh" "$WORK/kv.out" 2> "$WORK/err" ||
  fail "custos run with auth/attest: $(cat "$WORK/err")"
[ "$(cat "$WORK/kv.out")" = kv-pass-5d1c ] || fail "KV value through auth/attest: $(cat "$WORK/kv.out")"
if "$CUSTOS" run --tee sim --kbs "$ADDR" --sim-dir "$WORK/sim" --role app \
  --secret DB_PASSWORD=vault:secret/data/app#password -- "$WORK/show.sh" "$WORK/kv2.out" 2> "$WORK/err"; then
  fail "auth/attest login succeeded for a program the role does not pin"
fi
[ ! -e "$WORK/kv2.out" ] || fail "refused run still executed the program"
grep -q 'policy.denied' "$WORK/err" || fail "login refusal reason: $(cat "$WORK/err")"
pass "auth/attest: login with sim evidence -> token -> KV read; another measurement refused before exec"

if grep -q "kv-pass-5d1c\|trustee-resource\|$KEY_B64" "$WORK/server.log"; then fail "secret in server log"; fi
pass "no key, resource or KV value in the server log"
finish
