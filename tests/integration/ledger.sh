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

expect_status 405 PUT supply/entries/5 '{"data":"eA=="}'
expect_status 405 DELETE supply/entries/5
expect_status 400 POST supply/entries '{"data":"not base64!"}'
expect_status 404 GET supply/entries/23
pass "entries cannot be rewritten or deleted; bad input gets 4xx"
finish
