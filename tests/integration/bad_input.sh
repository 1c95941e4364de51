#!/usr/bin/env bash
# Bad input: malformed JSON, wrong types, oversized bodies, unknown methods, traversal and NUL in
# paths, oversized headers, a truncated TLS handshake. Each gets a clear 4xx in Vault's
# {"errors": [...]} shape (or a closed connection for TLS garbage) and the server keeps answering.
source "$(dirname "$0")/lib.sh"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
write_config "$WORK/c.hcl" 'storage "inmem" {}' "tls_cert_file = \"$WORK/cert.pem\"
  tls_key_file = \"$WORK/key.pem\"
  max_request_size = 65536"
start_server "$WORK/c.hcl"
export CACERT=$WORK/cert.pem
init_unseal 1 1
expect_status 204 POST sys/mounts/kv '{"type":"kv"}'

alive() { expect_status 200 GET sys/health; }
has_errors() { echo "$LAST" | grep -q '"errors"' || fail "$1: body is not Vault's error shape: $LAST"; }

expect_status 400 POST kv/a '{"x": '; has_errors "truncated JSON"; alive
expect_status 400 POST kv/a '[1,2,3]'; has_errors "JSON array body"; alive
expect_status 400 POST kv/a 'not json at all'; has_errors "not JSON"; alive
expect_status 400 POST sys/mounts/x '{"type": 42}'; has_errors "wrong type for type"; alive
expect_status 400 POST sys/mounts/x '{"type":"kv","options":"nope"}'; has_errors "wrong type for options"; alive
expect_status 400 POST auth/token/create '{"num_uses":"many"}'; has_errors "wrong type for num_uses"; alive
expect_status 400 POST auth/token/create '{"ttl":"forever"}'; has_errors "bad duration"; alive
deep=$(printf '%.0s[' $(seq 200)); expect_status 400 POST kv/a "{\"a\":$deep"; has_errors "deep nesting"; alive
expect_status 400 GET "kv/caf%C3"; has_errors "a path that is not UTF-8"; alive
expect_status 400 GET "kv/a?x=%FF"; has_errors "a parameter that is not UTF-8"; alive
expect_status 473 GET "sys/health?activecode=473"; alive
expect_status 400 GET "sys/health?activecode=149"; has_errors "1xx health code"; alive
expect_status 400 GET "sys/health?sealedcode=1000"; has_errors "health code over 599"; alive
expect_status 400 GET "sys/health?uninitcode=abc"; has_errors "non-numeric health code"; alive
expect_status 400 GET sys/wrapping/lookup; has_errors "wrapping lookup without a token"; alive
expect_status 400 POST sys/wrapping/unwrap '{"token":"hvs.not-a-wrapping-token"}'; has_errors "unwrap of an unknown token"; alive
pass "malformed JSON and wrong types: 400 with errors, server alive"

head -c 200000 /dev/zero | tr '\0' 'a' | sed 's/^/{"a":"/; s/$/"}/' > "$WORK/big.json"
code=$(curl -s -o "$WORK/resp" -w '%{http_code}' --cacert "$CACERT" -H "X-Vault-Token: $TOKEN" \
  --data-binary @"$WORK/big.json" "$ADDR/v1/kv/big" || true)
[ "$code" = 413 ] || fail "oversized body: expected 413, got $code"
alive
pass "oversized body: 413, server alive"

code=$(curl -s -o "$WORK/resp" -w '%{http_code}' --cacert "$CACERT" -X BREW "$ADDR/v1/sys/health")
[ "$code" = 405 ] || fail "unknown method: expected 405, got $code"
grep -q errors "$WORK/resp" || fail "unknown method body: $(cat "$WORK/resp")"
alive
pass "unknown method: 405"

for p in 'kv/../sys/seal' 'kv/%2e%2e/sys/seal' 'kv/a/./b' 'kv/a%00b' 'kv/%zz'; do
  code=$(curl -s --path-as-is -o "$WORK/resp" -w '%{http_code}' --cacert "$CACERT" -H "X-Vault-Token: $TOKEN" \
    -X POST --data '{"a":"b"}' "$ADDR/v1/$p")
  [ "$code" = 400 ] || fail "path $p: expected 400, got $code $(cat "$WORK/resp")"
done
expect_status 200 GET sys/seal-status
[ "$(json "$LAST" o.sealed)" = false ] || fail "a traversal reached sys/seal"
alive
pass "paths with .., ., NUL and bad escapes: 400, nothing sealed"

code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CACERT" -H "X-Big: $(head -c 40000 /dev/zero | tr '\0' b)" "$ADDR/v1/sys/health")
[ "$code" = 431 ] || [ "$code" = 400 ] || fail "oversized header: expected 431, got $code"
alive
pass "oversized header: $code"

hostport=${ADDR#https://}
for n in 1 5 11 60; do
  head -c "$n" /dev/urandom > "$WORK/garbage"
  printf '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' | head -c "$n" > "$WORK/partial"
  timeout 5 bash -c "cat '$WORK/partial' > /dev/tcp/${hostport%:*}/${hostport#*:}" 2>/dev/null || true
  timeout 5 bash -c "cat '$WORK/garbage' > /dev/tcp/${hostport%:*}/${hostport#*:}" 2>/dev/null || true
done
alive
pass "truncated and garbage TLS handshakes: server alive"

TOKEN= expect_status 403 GET kv/a
TOKEN=not-a-token expect_status 403 GET kv/a
pass "missing and unknown tokens: 403"
finish
