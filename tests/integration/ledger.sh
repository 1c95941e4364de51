#!/usr/bin/env bash
# The ledger engine over HTTP, checked by an independent verifier (tests/integration/ledger/verify.js:
# RFC 9162 in JavaScript with Node's crypto): signed tree heads, an inclusion proof, a consistency
# proof across a restart-free append run, and refusals of rewriting.
source "$(dirname "$0")/lib.sh"
start_dev
expect_status 204 POST sys/mounts/supply '{"type":"ledger"}'
for i in $(seq 0 6); do
  expect_status 200 POST supply/entries "{\"data\":\"$(printf 'build %s: sha256:%064d' "$i" "$i" | base64 -w0)\"}"
done
expect_status 200 GET supply/sth
echo "$LAST" > "$WORK/sth-a.json"
[ "$(json "$LAST" o.data.tree_size)" = 7 ] || fail "tree size after 7 appends: $LAST"
for i in $(seq 7 22); do
  expect_status 200 POST supply/entries "{\"data\":\"$(printf 'build %s: sha256:%064d' "$i" "$i" | base64 -w0)\"}"
done
expect_status 200 GET supply/sth
echo "$LAST" > "$WORK/sth-b.json"
expect_status 200 GET supply/public-key
echo "$LAST" > "$WORK/public-key.json"
expect_status 200 GET supply/entries/5
echo "$LAST" > "$WORK/entry.json"
expect_status 200 GET "supply/proof/consistency?first=7&second=23"
echo "$LAST" > "$WORK/consistency.json"
node "$(dirname "$0")/ledger/verify.js" "$WORK" || fail "the independent verifier refused the ledger's proofs"
pass "an independent RFC 9162 verifier (Node) accepts the heads, the inclusion and the consistency proof"

# The CLI's own check: a head saved now, more appends, then the log verified against it.
lc() { VAULT_ADDR=$ADDR VAULT_TOKEN=$TOKEN "$CUSTOS" ledger "$@"; }
lc verify --mount supply --save "$WORK/head.json" > "$WORK/out" || fail "ledger verify: $(cat "$WORK/out")"
grep -q 'signed tree head verified, size 23' "$WORK/out" || fail "verify output: $(cat "$WORK/out")"
printf 'release 1.2.3\n' > "$WORK/stmt"
lc append --mount supply --content-type text/plain "$WORK/stmt" | grep -q '^index 23,' || fail "ledger append"
echo "release 1.2.4" | lc append --mount supply - > /dev/null || fail "ledger append from stdin"
lc verify --mount supply --trusted "$WORK/head.json" > "$WORK/out" ||
  fail "verify against the saved head: $(cat "$WORK/out")"
grep -q 'consistent with the trusted head of size 23' "$WORK/out" || fail "verify output: $(cat "$WORK/out")"
# A saved head whose root was altered is refused (its signature no longer verifies).
node -e 'const fs=require("fs");const h=JSON.parse(fs.readFileSync(process.argv[1]));h.root_hash=h.root_hash.replace(/^./,c=>c==="0"?"1":"0");fs.writeFileSync(process.argv[2],JSON.stringify(h))' \
  "$WORK/head.json" "$WORK/forged.json"
set +e
lc verify --mount supply --trusted "$WORK/forged.json" > "$WORK/out" 2>&1
rc=$?
set -e
[ $rc = 1 ] && grep -q 'signature does not verify' "$WORK/out" || fail "forged head (rc $rc): $(cat "$WORK/out")"
pass "custos ledger append/verify: a saved head, later checked for consistency; a forged head refused"

expect_status 405 PUT supply/entries/5 '{"data":"eA=="}'
expect_status 405 DELETE supply/entries/5
expect_status 400 POST supply/entries '{"data":"not base64!"}'
expect_status 404 GET supply/entries/25
pass "entries cannot be rewritten or deleted; bad input gets 4xx"
finish
