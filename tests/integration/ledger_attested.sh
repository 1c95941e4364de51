#!/usr/bin/env bash
# Attested ledger entries (docs/ledger.md) end to end: `custos agent ledger-append` attests a
# (simulated) TEE running a pinned build program, binding a key made for it, signs a provenance
# statement and appends it to an attested-only ledger. An independent verifier in JavaScript
# (Node's crypto) then checks the entry: the statement under the leaf hash, the signature with
# the key it names, the measurement in its claims, and its inclusion under the signed tree head.
# Another program (another measurement) and unsigned appends are refused.
source "$(dirname "$0")/lib.sh"

start_dev
export CUSTOS_ADDR=$ADDR
unset VAULT_ADDR VAULT_TOKEN CUSTOS_TOKEN

printf '#!/bin/sh\n# the pinned build step\necho built\n' > "$WORK/build.sh"
cp "$WORK/build.sh" "$WORK/other.sh"
echo 'echo tampered' >> "$WORK/other.sh"
MR=$(sha256sum "$WORK/build.sh" | cut -d' ' -f1)

expect_status 204 POST sys/mounts/supply '{"type":"ledger","options":{"attested_only":"true"}}'
expect_status 204 PUT sys/policies/acl/builder '{"policy":"path \"supply/*\" { capabilities = [\"create\", \"read\"] }"}'
expect_status 204 POST sys/auth/attest '{"type":"attest"}'
expect_status 204 POST auth/attest/role/builder "{\"token_policies\":[\"builder\"],\"token_ttl\":\"10m\",\"policy\":{\"tee\":[\"sim\"],\"sgx\":{\"mrenclave\":[\"$MR\"]}}}"

printf '{"artifact":"app-1.2.tar","sha256":"%s"}' "$(head -c 100 /dev/urandom | sha256sum | cut -d' ' -f1)" > "$WORK/prov.json"
APPEND=("$CUSTOS" agent ledger-append --kbs "$ADDR" --tee sim --sim-dir "$WORK/sim" --mount supply
        --role builder --content-type application/json)
out=$("${APPEND[@]}" --program "$WORK/build.sh" "$WORK/prov.json") || fail "ledger-append: $out"
[ "$(json "$out" o.attested)" = true ] && [ "$(json "$out" o.index)" = 0 ] || fail "append answer: $out"
pass "custos agent ledger-append: attests, signs with the bound key, appends (index 0, attested)"

expect_status 200 GET supply/entries/0
ENTRY=$LAST
expect_status 200 GET supply/sth
STH=$LAST
expect_status 200 GET supply/public-key
PUB=$LAST
node - "$ENTRY" "$STH" "$PUB" "$WORK/prov.json" "$MR" <<'JS' || fail "the independent verifier refused the entry"
const crypto = require('crypto');
const fs = require('fs');
const [entry, sth, pub, provFile, mr] = process.argv.slice(2);
const e = JSON.parse(entry).data, h = JSON.parse(sth).data, k = JSON.parse(pub).data;
const die = (m) => { console.error(m); process.exit(1); };
const sha = (...b) => crypto.createHash('sha256').update(Buffer.concat(b)).digest();
const leafData = Buffer.from(e.data, 'base64');
if (e.content_type !== 'application/vnd.custos.attested-entry+json') die('content type ' + e.content_type);
// The leaf hash covers the whole statement.
const leaf = sha(Buffer.from([0]), leafData);
if (leaf.toString('hex') !== e.leaf_hash) die('leaf hash');
const st = JSON.parse(leafData.toString());
if (st._type !== 'custos.ledger.attested-entry.v1') die('type ' + st._type);
const data = Buffer.from(st.data, 'base64');
if (!data.equals(fs.readFileSync(provFile))) die('data is not the provenance file');
// Signed by the key the TEE bound at login.
const key = crypto.createPublicKey({key: Buffer.from(st.public_key, 'base64'), format: 'der', type: 'spki'});
const signed = `${st._type}\n${st.log_id}\n${st.attestation.evidence_sha256}\n${st.content_type}\n` +
  `${crypto.createHash('sha256').update(data).digest('hex')}\n`;
if (!crypto.verify('sha256', Buffer.from(signed), key, Buffer.from(st.signature, 'base64'))) die('signature');
if (crypto.verify('sha256', data, key, Buffer.from(st.signature, 'base64'))) die('the bare data verifies');
if (st.log_id !== h.log_id) die('statement names another log');
if (st.attestation.mrenclave !== mr || st.attestation.tee !== 'sim') die('claims ' + JSON.stringify(st.attestation));
// Included under the signed tree head (RFC 9162 2.1.3.2), whose signature checks out.
let fn = e.index, sn = h.tree_size - 1, r = leaf;
const proof = (e.tree_size === h.tree_size ? e.inclusion_proof : null) || die('tree sizes differ');
for (const p of proof.map((x) => Buffer.from(x, 'hex'))) {
  if (sn === 0) die('proof too long');
  if (fn % 2 === 1 || fn === sn) {
    r = sha(Buffer.from([1]), p, r);
    if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn >>= 1; sn >>= 1; }
  } else {
    r = sha(Buffer.from([1]), r, p);
  }
  fn >>= 1; sn >>= 1;
}
if (sn !== 0 || r.toString('hex') !== h.root_hash) die('inclusion');
const msg = `custos.ledger.sth.v1\n${h.log_id}\n${h.tree_size}\n${h.root_hash}\n${h.timestamp}\n`;
if (!crypto.verify('sha256', Buffer.from(msg), crypto.createPublicKey(k.public_key), Buffer.from(h.signature, 'base64'))) die('sth signature');
JS
pass "an independent verifier (Node crypto) checks the statement, its signature, claims and inclusion"

# Another build program: the role's policy refuses its evidence, nothing is appended.
"${APPEND[@]}" --program "$WORK/other.sh" "$WORK/prov.json" > "$WORK/out" 2> "$WORK/err" &&
  fail "a workload with another measurement appended"
grep -q "policy.denied" "$WORK/err" || fail "refusal: $(cat "$WORK/err")"
# Unsigned entries are refused by an attested_only ledger, even from the root token.
CUSTOS_TOKEN=$TOKEN "$CUSTOS" ledger append --mount supply "$WORK/prov.json" > "$WORK/out" 2> "$WORK/err" &&
  fail "an unsigned entry was appended to an attested-only ledger"
grep -q "attested entries only" "$WORK/err" || fail "unsigned refusal: $(cat "$WORK/err")"
expect_status 200 GET supply/sth
[ "$(json "$LAST" o.data.tree_size)" = 1 ] || fail "the log grew: $LAST"
pass "another measurement and unsigned appends are refused; the log holds one entry"
finish
