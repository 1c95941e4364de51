#!/usr/bin/env bash
# High availability on etcd (docs/ha.md): two servers share one etcd prefix, one active, one
# standby, with a real etcd member started here:
# 1. init and unseal: the first unsealed is active, the other a standby (sys/health 429,
#    standbyok, sys/leader naming the active one);
# 2. a standby forwards requests: writes and reads through it land on the active server, and
#    the client's address travels signed (a CIDR-bound token works through the standby; a
#    forged header sent straight to the active server is ignored);
# 3. the active server stopped (SIGTERM): the standby takes over at once, with the data;
# 4. the active server frozen past its lease: the standby takes over; the thawed one becomes a
#    standby, and forwards;
# 5. sys/step-down hands the lock over; sys/seal on a standby seals that standby only, and only
#    with a token allowed to seal.
source "$(dirname "$0")/lib.sh"

start_etcd ha
NODE_PIDS=()
ha_cleanup() {
  for p in "${NODE_PIDS[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${NODE_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  cleanup
}
trap ha_cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT_A=$(free_port)
PORT_B=$(free_port)
A=http://127.0.0.1:$PORT_A
B=http://127.0.0.1:$PORT_B

node_config() {  # NAME PORT
  cat > "$WORK/$1.hcl" <<CFG
storage "etcd" {
  address      = "$ETCD_URL"
  path         = "/custos-ha/"
  lock_timeout = "2s"
  ha_enabled   = "true"
}
listener "tcp" {
  address     = "127.0.0.1:$2"
  tls_disable = true
}
api_addr      = "http://127.0.0.1:$2"
disable_mlock = true
CFG
}

start_node() {  # NAME URL: starts a server, waits until it answers; sets PID_<NAME>
  "$CUSTOS" server -config "$WORK/$1.hcl" >> "$WORK/$1.log" 2>&1 &
  local pid=$!
  NODE_PIDS+=("$pid")
  eval "PID_$1=$pid"
  for _ in $(seq 100); do
    curl -s -o /dev/null "$2/v1/sys/health" && return 0
    kill -0 "$pid" 2>/dev/null || fail "server $1 exited during start: $(tail -5 "$WORK/$1.log")"
    sleep 0.1
  done
  fail "server $1 did not answer within 10s"
}

health() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1/v1/sys/health" || echo 000; }

wait_health() {  # URL CODE: until sys/health answers CODE (200 active, 429 standby), 20 s at most
  for _ in $(seq 200); do
    [ "$(health "$1")" = "$2" ] && return 0
    sleep 0.1
  done
  fail "$1 did not reach health $2 (last: $(health "$1")); logs: $(tail -5 "$WORK/a.log") // $(tail -5 "$WORK/b.log")"
}

unseal() {  # URL
  local k
  for k in 0 1 2; do ADDR=$1 expect_status 200 PUT sys/unseal "{\"key\":\"${KEYS[$k]}\"}"; done
}

node_config a "$PORT_A"
node_config b "$PORT_B"
start_node a "$A"
start_node b "$B"
grep -q "storage: etcd, HA" "$WORK/a.log" || fail "server does not report HA: $(cat "$WORK/a.log")"

# 1. init through a; a is unsealed first and becomes active, b a standby.
ADDR=$A expect_status 200 PUT sys/init '{"secret_shares":5,"secret_threshold":3}'
TOKEN=$(json "$LAST" o.root_token)
mapfile -t KEYS < <(json "$LAST" 'o.keys.join("\n")'; echo)
unseal "$A"
wait_health "$A" 200
unseal "$B"
wait_health "$B" 429
ADDR=$B expect_status 200 GET "sys/health?standbyok=true"
[ "$(json "$LAST" o.standby)" = true ] || fail "standby health: $LAST"
ADDR=$B expect_status 200 GET sys/leader
[ "$(json "$LAST" o.ha_enabled)" = true ] && [ "$(json "$LAST" o.is_self)" = false ] ||
  fail "standby's sys/leader: $LAST"
[ "$(json "$LAST" o.leader_address)" = "$A" ] || fail "standby names another leader: $LAST"
ADDR=$A expect_status 200 GET sys/leader
[ "$(json "$LAST" o.is_self)" = true ] || fail "active's sys/leader: $LAST"
pass "two servers on one etcd prefix: one active (200), one standby (429, standbyok 200, sys/leader names the active)"

# 2. Forwarding: everything but the local endpoints goes to the active server.
ADDR=$B expect_status 204 POST sys/mounts/secret '{"type":"kv","options":{"version":"2"}}'
ADDR=$B expect_status 200 POST secret/data/app '{"data":{"password":"through-the-standby"}}'
ADDR=$A expect_status 200 GET secret/data/app
[ "$(json "$LAST" o.data.data.password)" = through-the-standby ] || fail "active reads: $LAST"
ADDR=$B expect_status 200 GET secret/data/app
[ "$(json "$LAST" o.data.data.password)" = through-the-standby ] || fail "standby reads: $LAST"
out=$(curl -s -w ' %{http_code}' -H 'X-Vault-Token: not-a-token' "$B/v1/secret/data/app")
[ "${out##* }" = 403 ] || fail "a bad token through the standby: $out"
# A request target that is not a path is not forwarded (it could name another host).
out=$(curl -s -w ' %{http_code}' --request-target "@127.0.0.1:$PORT_A/v1/sys/leader" "$B/")
[ "${out##* }" = 400 ] || fail "a target that is not a path was forwarded: $out"
pass "a standby forwards writes and reads to the active server, and its refusals; only paths"

# The client's address: a token bound to 127.0.0.2 works through the standby from 127.0.0.2,
# so the active server saw the client's address, not the standby's (127.0.0.1).
ADDR=$A expect_status 204 PUT sys/policies/acl/app '{"policy":"path \"secret/*\" { capabilities = [\"read\"] }"}'
ADDR=$A expect_status 204 POST auth/token/roles/bound '{"allowed_policies":["app"],"token_bound_cidrs":["127.0.0.2/32"]}'
ADDR=$A expect_status 200 POST auth/token/create/bound '{"policies":["app"]}'
BOUND=$(json "$LAST" o.auth.client_token)
out=$(curl -s -w ' %{http_code}' --interface 127.0.0.2 -H "X-Vault-Token: $BOUND" "$B/v1/secret/data/app")
[ "${out##* }" = 200 ] || fail "a CIDR-bound token through the standby: $out"
out=$(curl -s -w ' %{http_code}' -H "X-Vault-Token: $BOUND" "$B/v1/secret/data/app")
[ "${out##* }" = 403 ] || fail "the bound token from another address: $out"
# Forged forwarding headers sent straight to the active server are not believed.
out=$(curl -s -w ' %{http_code}' -H "X-Vault-Token: $BOUND" -H 'X-Custos-Forwarded-For: 127.0.0.2:1' \
  -H "X-Custos-Forwarded-Time: $(date +%s)" -H 'X-Custos-Forwarded-Signature: 00' "$A/v1/secret/data/app")
[ "${out##* }" = 403 ] || fail "forged forwarding headers were believed: $out"
grep -q "ignored forwarding headers" "$WORK/a.log" || fail "no warning about the forged headers"
pass "the client's address travels signed through the standby (CIDR-bound token); forged headers are ignored"

# 3. SIGTERM the active server: it gives the lock up, the standby takes over with the data.
kill -TERM "$PID_a"
for _ in $(seq 100); do kill -0 "$PID_a" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PID_a" 2>/dev/null && fail "a did not stop"
wait_health "$B" 200
ADDR=$B expect_status 200 GET secret/data/app
[ "$(json "$LAST" o.data.data.password)" = through-the-standby ] || fail "after takeover: $LAST"
start_node a "$A"
unseal "$A"
wait_health "$A" 429
ADDR=$A expect_status 200 GET sys/leader
[ "$(json "$LAST" o.leader_address)" = "$B" ] || fail "restarted a names: $LAST"
pass "the active server stopped: the standby takes over at once; the restarted server is a standby"

# 4. Freeze the active server (b) past its 2 s lease: a takes over and writes; b, thawed, finds
# its lock gone and becomes a standby that forwards.
kill -STOP "$PID_b"
wait_health "$A" 200
ADDR=$A expect_status 200 POST secret/data/app '{"data":{"password":"after-the-freeze"}}'
kill -CONT "$PID_b"
wait_health "$B" 429
kill -0 "$PID_b" 2>/dev/null || fail "b exited instead of becoming a standby"
grep -q "lost the HA lock: standby again" "$WORK/b.log" || fail "b's log: $(tail -5 "$WORK/b.log")"
ADDR=$B expect_status 200 POST secret/data/app '{"data":{"password":"through-b-again"}}'
ADDR=$A expect_status 200 GET secret/data/app
[ "$(json "$LAST" o.data.data.password)" = through-b-again ] || fail "after the freeze: $LAST"
[ "$(json "$LAST" o.data.metadata.version)" = 3 ] || fail "versions after the freeze: $LAST"
pass "a frozen active server loses the lock to the standby and comes back as a standby"

# The CLI shows the HA mode as `vault status` does.
CUSTOS_ADDR=$B "$CUSTOS" status > "$WORK/status" || fail "custos status: $(cat "$WORK/status")"
grep -q "HA Mode.*standby" "$WORK/status" && grep -q "Active Node Address.*$A" "$WORK/status" ||
  fail "custos status on the standby: $(cat "$WORK/status")"
CUSTOS_ADDR=$A "$CUSTOS" status | grep -q "HA Mode.*active" || fail "custos status on the active server"

# 5. Step down (custos operator step-down): a hands the lock to b.
CUSTOS_ADDR=$A CUSTOS_TOKEN=$TOKEN "$CUSTOS" operator step-down > "$WORK/out" 2>&1 ||
  fail "operator step-down: $(cat "$WORK/out")"
wait_health "$B" 200
wait_health "$A" 429
ADDR=$A expect_status 200 GET secret/data/app
[ "$(json "$LAST" o.data.data.password)" = through-b-again ] || fail "after step-down: $LAST"
pass "custos status shows the HA mode; custos operator step-down hands over to the standby"

# sys/seal on the standby (a): refused without sudo on sys/seal, then seals a only.
ADDR=$B expect_status 204 PUT sys/policies/acl/reader '{"policy":"path \"secret/*\" { capabilities = [\"read\"] }"}'
ADDR=$B expect_status 200 POST auth/token/create '{"policies":["reader"]}'
READER=$(json "$LAST" o.auth.client_token)
out=$(curl -s -w ' %{http_code}' -X PUT -H "X-Vault-Token: $READER" "$A/v1/sys/seal")
[ "${out##* }" = 403 ] || fail "a reader sealed the standby: $out"
ADDR=$A expect_status 204 PUT sys/seal
wait_health "$A" 503
[ "$(health "$B")" = 200 ] || fail "sealing the standby touched the active server"
ADDR=$A expect_status 503 GET sys/leader
pass "sys/seal on a standby seals that standby only, and needs a token allowed to seal"

grep -q "$TOKEN" "$WORK/a.log" "$WORK/b.log" && fail "a token reached a server log"
finish
