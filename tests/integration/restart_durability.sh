#!/usr/bin/env bash
# Restart survival and durability with SQLite storage:
# 1. secrets (and a wrapped response) written before a clean stop are readable after restart +
#    unseal with 3 of 5 keys;
# 2. the database file does not contain a written secret in plaintext (the barrier encrypts);
# 3. kill -9 during a stream of acknowledged durable writes loses none of them.
source "$(dirname "$0")/lib.sh"
write_config "$WORK/c.hcl" "storage \"sqlite\" { path = \"$WORK/custos.db\" }"
start_server "$WORK/c.hcl"
init_unseal 5 3
expect_status 204 POST sys/mounts/secret '{"type":"kv","options":{"version":"2"}}'
CANARY="plaintext-canary-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
expect_status 200 POST secret/data/app "{\"data\":{\"password\":\"$CANARY\"}}"
expect_status 204 POST sys/mounts/kv1 '{"type":"kv"}'
expect_status 204 POST kv1/cfg "{\"value\":\"$CANARY\"}"
# A wrapped response is stored too (in its wrapping token's cubbyhole, with a lease).
WRAPPED=$(curl -s --max-time 30 -H "X-Vault-Token: $TOKEN" -H "X-Vault-Wrap-TTL: 10m" \
  ${CACERT:+--cacert "$CACERT"} "$ADDR/v1/secret/data/app")
WT=$(json "$WRAPPED" o.wrap_info.token)
[ -n "$WT" ] || fail "wrapped read: $WRAPPED"
stop_server
pass "wrote secrets and a wrapped response, stopped with SIGTERM"

for f in "$WORK"/custos.db*; do
  if grep -a -q "$CANARY" "$f"; then fail "secret found in plaintext in $(basename "$f")"; fi
done
if grep -a -q 'password' "$WORK/custos.db"; then fail "secret field name found in plaintext"; fi
pass "the database file holds no plaintext secret"

start_server "$WORK/c.hcl"
expect_status 503 GET secret/data/app
expect_status 200 GET sys/seal-status
[ "$(json "$LAST" o.sealed)" = true ] || fail "server should start sealed"
for k in "${KEYS[1]}" "${KEYS[3]}" "${KEYS[4]}"; do expect_status 200 PUT sys/unseal "{\"key\":\"$k\"}"; done
[ "$(json "$LAST" o.sealed)" = false ] || fail "unseal with keys 2, 4, 5 failed: $LAST"
expect_status 200 GET secret/data/app
[ "$(json "$LAST" o.data.data.password)" = "$CANARY" ] || fail "secret lost across restart: $LAST"
expect_status 200 GET kv1/cfg
[ "$(json "$LAST" o.data.value)" = "$CANARY" ] || fail "kv v1 secret lost across restart"
expect_status 200 POST sys/wrapping/lookup "{\"token\":\"$WT\"}"
[ "$(json "$LAST" o.data.creation_ttl)" = 600 ] || fail "wrapping lookup after restart: $LAST"
expect_status 200 POST sys/wrapping/unwrap "{\"token\":\"$WT\"}"
[ "$(json "$LAST" o.data.data.password)" = "$CANARY" ] || fail "wrapped response lost across restart: $LAST"
expect_status 400 POST sys/wrapping/unwrap "{\"token\":\"$WT\"}"
pass "restart, unseal with a different 3 of 5 keys, secrets and the wrapped response intact (unwrapped once)"

# Wrong key shares: progress resets, server stays sealed, data safe.
expect_status 204 PUT sys/seal
# Flip every bit of the first byte (overwriting it with a constant would leave the share intact
# whenever that byte already had the constant's value: one run in 256).
BAD=$(printf '%02x%s' "$(( 0x${KEYS[0]:0:2} ^ 0xff ))" "${KEYS[0]:2}")
[ "$BAD" != "${KEYS[0]}" ] || fail "the corrupted share equals the original"
expect_status 200 PUT sys/unseal "{\"key\":\"$BAD\"}"
expect_status 200 PUT sys/unseal "{\"key\":\"${KEYS[1]}\"}"
out=$(api PUT sys/unseal "{\"key\":\"${KEYS[2]}\"}")
[ "${out%% *}" = 400 ] || fail "a corrupted share should fail the unseal with 400, got $out"
expect_status 200 GET sys/seal-status
[ "$(json "$LAST" o.sealed)" = true ] && [ "$(json "$LAST" o.progress)" = 0 ] || fail "after a failed unseal: $LAST"
for k in "${KEYS[0]}" "${KEYS[1]}" "${KEYS[2]}"; do expect_status 200 PUT sys/unseal "{\"key\":\"$k\"}"; done
pass "a corrupted share fails the unseal cleanly; the right shares still work"

# kill -9 during acknowledged durable writes: a writer records each key only after a 2xx.
ACKED="$WORK/acked"
: > "$ACKED"
(
  for i in $(seq 1 2000); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -H "X-Vault-Token: $TOKEN" \
      --data-binary "{\"v\":\"value-$i\"}" "$ADDR/v1/kv1/stream/k$i" || echo 000)
    if [ "$code" = 204 ]; then echo "$i" >> "$ACKED"; else break; fi
  done
) &
WRITER=$!
for _ in $(seq 100); do [ "$(wc -l < "$ACKED")" -ge 50 ] && break; sleep 0.05; done
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
wait "$WRITER" 2>/dev/null || true
N=$(wc -l < "$ACKED")
[ "$N" -ge 1 ] || fail "no write was acknowledged before the kill"
start_server "$WORK/c.hcl"
for k in "${KEYS[0]}" "${KEYS[2]}" "${KEYS[4]}"; do expect_status 200 PUT sys/unseal "{\"key\":\"$k\"}"; done
missing=0
while read -r i; do
  out=$(api GET "kv1/stream/k$i")
  if [ "${out%% *}" != 200 ] || [ "$(json "${out#* }" o.data.v)" != "value-$i" ]; then missing=$((missing + 1)); fi
done < "$ACKED"
[ "$missing" = 0 ] || fail "$missing of $N acknowledged writes lost after kill -9"
pass "kill -9 after $N acknowledged writes: none lost"
finish
