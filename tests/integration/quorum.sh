#!/usr/bin/env bash
# Operations a quorum of unseal key holders authorises, without a token (docs/quorum.md), on the
# real server with SQLite storage:
# 1. the custos CLI rekeys 5/3 to 4/3 with verification: the old shares stay in force until a
#    threshold of the new ones is given back; after a restart only the new shares unseal;
# 2. the CLI generates a new root token (one-time password, shares, -decode) that works;
# 3. node-vault's generateRootInit/Update/Cancel (the real npm client) do the same over HTTP.
source "$(dirname "$0")/lib.sh"

write_config "$WORK/c.hcl" "storage \"sqlite\" { path = \"$WORK/custos.db\" }"
start_server "$WORK/c.hcl"
init_unseal 5 3
OLD=("${KEYS[@]}")
expect_status 204 POST sys/mounts/secret '{"type":"kv","options":{"version":"2"}}'
expect_status 200 POST secret/data/app '{"data":{"password":"kept-across-rekey"}}'

# No token: these commands must work for holders who have none.
c() { VAULT_ADDR=$ADDR VAULT_TOKEN= "$CUSTOS" "$@"; }

# 1. Rekey with verification.
c operator rekey -init -key-shares=4 -key-threshold=3 -verify -format=json > "$WORK/rk" ||
  fail "rekey -init: $(cat "$WORK/rk")"
[ "$(json "$(cat "$WORK/rk")" o.required)" = 3 ] && [ "$(json "$(cat "$WORK/rk")" o.t)" = 3 ] ||
  fail "rekey init status: $(cat "$WORK/rk")"
c operator rekey "${OLD[4]}" > /dev/null || fail "first rekey share"
c operator rekey "${OLD[1]}" > /dev/null || fail "second rekey share"
c operator rekey -format=json "${OLD[2]}" > "$WORK/done" || fail "third rekey share"
DONE=$(cat "$WORK/done")
mapfile -t NEW < <(json "$DONE" 'o.keys_base64.join("\n")'; echo)
VNONCE=$(json "$DONE" o.verification_nonce)
[ -n "${NEW[3]}" ] && [ -n "$VNONCE" ] || fail "rekey completion: $DONE"
# Not yet in force: the old counts stay until the new shares are verified.
expect_status 200 GET sys/seal-status
[ "$(json "$LAST" o.n)" = 5 ] || fail "before verification the old counts stay: $LAST"
c operator rekey -verify -status -format=json > "$WORK/vs" || fail "rekey -verify -status"
[ "$(json "$(cat "$WORK/vs")" o.nonce)" = "$VNONCE" ] || fail "verification status: $(cat "$WORK/vs")"
c operator rekey -verify "${NEW[0]}" > /dev/null || fail "first verification share"
c operator rekey -verify "${NEW[0]}" 2> "$WORK/err" && fail "a repeated verification share was accepted"
c operator rekey -verify "${NEW[2]}" > /dev/null || fail "second verification share"
c operator rekey -verify "${NEW[3]}" > "$WORK/vdone" || fail "third verification share"
grep -q "verification complete" "$WORK/vdone" || fail "verification output: $(cat "$WORK/vdone")"
expect_status 200 GET sys/seal-status
[ "$(json "$LAST" o.n)" = 4 ] && [ "$(json "$LAST" o.t)" = 3 ] || fail "after rekey: $LAST"
pass "rekey 5/3 -> 4/3 with verification through the CLI, without a token"

stop_server
start_server "$WORK/c.hcl"
# Three old shares, which opened it before the rekey, no longer do.
expect_status 200 PUT sys/unseal "{\"key\":\"${OLD[0]}\"}"
expect_status 200 PUT sys/unseal "{\"key\":\"${OLD[1]}\"}"
expect_status 400 PUT sys/unseal "{\"key\":\"${OLD[2]}\"}"
[[ "$LAST" == *"do not open the root key"* ]] || fail "old shares after rekey: $LAST"
for k in 2 1 0; do expect_status 200 PUT sys/unseal "{\"key\":\"${NEW[$k]}\"}"; done
[ "$(json "$LAST" o.sealed)" = false ] || fail "new shares did not unseal: $LAST"
expect_status 200 GET secret/data/app
[ "$(json "$LAST" o.data.data.password)" = kept-across-rekey ] || fail "data after rekey: $LAST"
pass "after a restart 3 old shares are refused and 3 of the 4 new ones unseal; data intact"

# 2. generate-root with the CLI.
c operator generate-root -init -format=json > "$WORK/gr" || fail "generate-root -init"
OTP=$(json "$(cat "$WORK/gr")" o.otp)
[ ${#OTP} = 28 ] || fail "one-time password: $(cat "$WORK/gr")"
c operator generate-root -status -format=json > "$WORK/gs"
[ "$(json "$(cat "$WORK/gs")" o.otp)" = "" ] || fail "the password must be shown only once"
c operator generate-root "${NEW[3]}" > /dev/null || fail "first generate-root share"
c operator generate-root "${NEW[1]}" > /dev/null || fail "second generate-root share"
c operator generate-root -format=json "${NEW[0]}" > "$WORK/gd" || fail "last generate-root share"
ENC=$(json "$(cat "$WORK/gd")" o.encoded_token)
[ "$(json "$(cat "$WORK/gd")" o.complete)" = true ] && [ -n "$ENC" ] || fail "completion: $(cat "$WORK/gd")"
NEWROOT=$(c operator generate-root -decode="$ENC" -otp="$OTP")
[[ "$NEWROOT" == hvs.* ]] && [ "$NEWROOT" != "$TOKEN" ] || fail "decoded token: $NEWROOT"
c operator generate-root -decode="$ENC" -otp="${OTP:1}" 2> "$WORK/err" && fail "a wrong password decoded"
TOKEN=$NEWROOT expect_status 200 GET auth/token/lookup-self
[ "$(json "$LAST" o.data.policies[0])" = root ] || fail "generated token: $LAST"
for secret in "$NEWROOT" "$OTP" "${NEW[@]}" "${OLD[@]}"; do
  [ -z "$secret" ] || ! grep -qF "$secret" "$WORK/server.log" || fail "a share, the OTP or the token reached the log"
done
pass "generate-root through the CLI: one-time password, 3 shares, -decode gives a working root token; none of it logged"

# 3. node-vault, the real npm client.
cd "$(dirname "$0")/../acceptance"
[ -d node_modules/node-vault ] || fail "node-vault is not installed (run scripts/install-deps)"
cat > "$WORK/gr.js" <<'JS'
const vault = require(process.cwd() + '/node_modules/node-vault')({ endpoint: process.env.ADDR });
const keys = JSON.parse(process.env.KEYS);
(async () => {
  const start = await vault.generateRootInit({});
  if (!start.started || start.otp.length !== start.otp_length) throw new Error('init: ' + JSON.stringify(start));
  await vault.generateRootCancel();
  const again = await vault.generateRootInit({});
  if (again.nonce === start.nonce) throw new Error('a cancelled attempt kept its nonce');
  let r;
  for (const key of keys) r = await vault.generateRootUpdate({ key, nonce: again.nonce });
  if (!r.complete) throw new Error('not complete: ' + JSON.stringify(r));
  const raw = Buffer.from(r.encoded_token, 'base64');
  const token = Buffer.from(raw.map((b, i) => b ^ again.otp.charCodeAt(i))).toString();
  vault.token = token;
  const self = await vault.tokenLookupSelf();
  if (self.data.policies[0] !== 'root') throw new Error('not root: ' + JSON.stringify(self));
  try { await vault.generateRootUpdate({ key: keys[0], nonce: again.nonce }); throw new Error('no attempt left'); }
  catch (e) { if (!/no root generation in progress/.test(e.message)) throw e; }
  console.log('ok');
})().catch((e) => { console.error(e.message); process.exit(1); });
JS
out=$(ADDR=$ADDR KEYS="[\"${NEW[1]}\",\"${NEW[2]}\",\"${NEW[3]}\"]" timeout 60 node "$WORK/gr.js" 2>&1) ||
  fail "node-vault generate-root: $out"
[ "$out" = ok ] || fail "node-vault generate-root: $out"
pass "node-vault generateRootInit/Cancel/Update yield a working root token"
finish
