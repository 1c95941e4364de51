#!/usr/bin/env bash
# storage "etcd" (docs/storage-etcd.md) with a real etcd member started here:
# 1. init, unseal, write; etcd holds only ciphertext (read back with etcdctl);
# 2. a second server on the same prefix is refused, naming the holder;
# 3. a restart (the lock released at shutdown) unseals and reads everything back;
# 4. takeover: the holder frozen past its lease, a successor takes the lock and writes; the old
#    holder, thawed, stops instead of answering (fail-stop), and the successor's data stands;
# 5. TLS with client certificates (and a start refused without one).
source "$(dirname "$0")/lib.sh"

start_etcd it
etcdctl() { ETCDCTL_API=3 command etcdctl --endpoints="$ETCD_URL" "$@"; }

write_config "$WORK/c.hcl" "storage \"etcd\" {
  address      = \"$ETCD_URL\"
  path         = \"/custos-it/\"
  lock_timeout = \"2s\"
}"
start_server "$WORK/c.hcl"
grep -q "storage: etcd" "$WORK/server.log" || fail "server does not report etcd storage"
init_unseal 3 2
CANARY="etcd-canary-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
expect_status 204 POST sys/mounts/secret '{"type":"kv","options":{"version":"2"}}'
expect_status 200 POST secret/data/app "{\"data\":{\"password\":\"$CANARY\"}}"
etcdctl get --prefix /custos-it/ > "$WORK/dump"
grep -q "logical/" "$WORK/dump" || fail "no KV keys under the prefix in etcd"
! grep -qa "$CANARY" "$WORK/dump" || fail "the secret is stored in plaintext in etcd"
[ "$(etcdctl get /custos-it.lock --print-value-only | grep -c ' pid ')" = 1 ] || fail "no lock key"
pass "init, unseal and a KV write on etcd; etcd holds ciphertext only, and the lock key"

FIRST_PID=$SERVER_PID
FIRST_ADDR=$ADDR
write_config "$WORK/c2.hcl" "storage \"etcd\" {
  address      = \"$ETCD_URL\"
  path         = \"/custos-it/\"
  lock_timeout = \"2s\"
}"
"$CUSTOS" server -config "$WORK/c2.hcl" > "$WORK/second.log" 2>&1 && fail "a second server started on the same prefix"
grep -q "is in use by .* pid $FIRST_PID" "$WORK/second.log" || fail "second server's error: $(cat "$WORK/second.log")"
pass "a second server on the same prefix is refused, naming the holder"

stop_server
start_server "$WORK/c.hcl"
for k in 0 1; do expect_status 200 PUT sys/unseal "{\"key\":\"${KEYS[$k]}\"}"; done
expect_status 200 GET secret/data/app
[ "$(json "$LAST" o.data.data.password)" = "$CANARY" ] || fail "after restart: $LAST"
pass "a restarted server takes the released lock at once, unseals and reads the secret back"

# 4. Takeover. Freeze the holder past its 2 s lease.
OLD_PID=$SERVER_PID
OLD_ADDR=$ADDR
kill -STOP "$OLD_PID"
sleep 4
: > "$WORK/server.log"
"$CUSTOS" server -config "$WORK/c2.hcl" >> "$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
  ADDR=$(grep -o 'listening on https\?://[0-9.:]*' "$WORK/server.log" | head -1 | sed 's/listening on //' || true)
  [ -n "$ADDR" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { kill -CONT "$OLD_PID"; fail "successor did not start: $(cat "$WORK/server.log")"; }
  sleep 0.1
done
for k in 1 2; do expect_status 200 PUT sys/unseal "{\"key\":\"${KEYS[$k]}\"}"; done
expect_status 200 POST secret/data/app '{"data":{"password":"successor-value"}}'
kill -CONT "$OLD_PID"
# The thawed holder finds its lease gone within a third of the TTL, or its next write fenced
# off, and shuts down; nothing it sends lands in etcd.
curl -s -o /dev/null -X POST -H "X-Vault-Token: $TOKEN" -d '{"data":{"password":"stale"}}' \
  "$OLD_ADDR/v1/secret/data/app" --max-time 5 || true
for _ in $(seq 100); do kill -0 "$OLD_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$OLD_PID" 2>/dev/null && { kill -KILL "$OLD_PID"; fail "the old holder kept running after losing the lock"; }
rc=0; wait "$OLD_PID" || rc=$?
[ "$rc" = 1 ] || fail "the old holder exited $rc, not 1 (a supervisor must see a failure)"
expect_status 200 GET secret/data/app
[ "$(json "$LAST" o.data.data.password)" = successor-value ] || fail "successor's data: $LAST"
[ "$(json "$LAST" o.data.metadata.version)" = 2 ] || fail "a stale write landed: $LAST"
pass "takeover after a lapsed lease: the old holder stops with exit 1 (fail-stop), the successor's write stands"
stop_server

# 5. TLS with client certificates: a second member that requires them.
cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=it-ca \
  -keyout ca.key -out ca.pem 2> /dev/null
for who in server client; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$who" \
    -keyout "$who.key" -out "$who.csr" 2> /dev/null
  openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile <(printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n') \
    -out "$who.pem" 2> /dev/null
done
cd - > /dev/null
HTTP_ETCD_URL=$ETCD_URL
start_etcd tls --cert-file "$WORK/server.pem" --key-file "$WORK/server.key" \
  --trusted-ca-file "$WORK/ca.pem" --client-cert-auth
TLS_URL=$ETCD_URL
ETCD_URL=$HTTP_ETCD_URL
for _ in $(seq 100); do
  curl -sf --cacert "$WORK/ca.pem" --cert "$WORK/client.pem" --key "$WORK/client.key" "$TLS_URL/health" > /dev/null 2>&1 && break
  sleep 0.1
done
write_config "$WORK/tls.hcl" "storage \"etcd\" {
  address       = \"$TLS_URL\"
  tls_ca_file   = \"$WORK/ca.pem\"
  tls_cert_file = \"$WORK/client.pem\"
  tls_key_file  = \"$WORK/client.key\"
}"
start_server "$WORK/tls.hcl"
init_unseal 1 1
expect_status 204 POST sys/mounts/secret '{"type":"kv","options":{"version":"2"}}'
expect_status 200 POST secret/data/over-tls '{"data":{"v":"1"}}'
stop_server
write_config "$WORK/notls.hcl" "storage \"etcd\" {
  address     = \"$TLS_URL\"
  tls_ca_file = \"$WORK/ca.pem\"
}"
"$CUSTOS" server -config "$WORK/notls.hcl" > "$WORK/notls.log" 2>&1 && fail "started without a client certificate"
grep -q "error opening storage: etcd" "$WORK/notls.log" || fail "no clear error: $(cat "$WORK/notls.log")"
pass "TLS to etcd with a client certificate; without one the start fails with the reason"
finish
