# Shared helpers for integration tests: start the real custos binary on 127.0.0.1 (port 0, the
# address read back from its log), call the API with curl, assert, and clean up on exit.
# Every loop is bounded; every failure prints what was expected and what came back.
set -euo pipefail

CUSTOS=${CUSTOS:?set CUSTOS to the custos binary}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/custos-it.XXXXXX")
SERVER_PID=""
ADDR=""
PASSED=0
ETCD_PIDS=()

cleanup() {
  for p in "${ETCD_PIDS[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  if [ -f "$WORK/server.log" ]; then echo "--- server log (tail)" >&2; tail -20 "$WORK/server.log" >&2; fi
  exit 1
}

pass() {
  PASSED=$((PASSED + 1))
  echo "ok - $*"
}

# start_server CONFIG_FILE [extra args]: starts custos, waits for its listener, sets ADDR.
start_server() {
  local cfg=$1
  shift
  : > "$WORK/server.log"
  "$CUSTOS" server -config "$cfg" "$@" >> "$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    ADDR=$(grep -o 'listening on https\?://[0-9.:]*' "$WORK/server.log" | head -1 | sed 's/listening on //' || true)
    [ -n "$ADDR" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || fail "server exited during start"
    sleep 0.1
  done
  fail "server did not start listening within 10s"
}

# start_dev: `custos server -dev` on a free port with a sim platform in $WORK/sim (the key broker
# trusts it); sets ADDR and TOKEN (root).
start_dev() {
  : > "$WORK/server.log"
  "$CUSTOS" server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:0 \
    -dev-sim-dir="$WORK/sim" >> "$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    ADDR=$(grep -o 'listening on https\?://[0-9.:]*' "$WORK/server.log" | head -1 | sed 's/listening on //' || true)
    [ -n "$ADDR" ] && [ -d "$WORK/sim" ] && { TOKEN=root; return 0; }
    kill -0 "$SERVER_PID" 2>/dev/null || fail "dev server exited during start"
    sleep 0.1
  done
  fail "dev server did not start listening within 10s"
}

# start_etcd NAME [extra etcd flags]: a one-member etcd (Debian's etcd-server) on free ports with its
# data under $WORK/etcd-NAME, stopped on exit; sets ETCD_URL (http://, or https:// when the extra
# flags give --cert-file) and ETCD_PID. Waits until it answers /health.
start_etcd() {
  command -v etcd >/dev/null || fail "etcd is not installed (scripts/install-deps: etcd-server)"
  local name=$1
  shift
  local cp pp scheme=http
  cp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  pp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  [[ " $* " == *" --cert-file "* ]] && scheme=https
  ETCD_URL=$scheme://127.0.0.1:$cp
  etcd --name "$name" --data-dir "$WORK/etcd-$name" --listen-client-urls "$ETCD_URL" \
    --advertise-client-urls "$ETCD_URL" --listen-peer-urls "http://127.0.0.1:$pp" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pp" --initial-cluster "$name=http://127.0.0.1:$pp" \
    --log-level error "$@" > "$WORK/etcd-$name.log" 2>&1 &
  ETCD_PID=$!
  ETCD_PIDS+=("$ETCD_PID")
  local i
  for i in $(seq 100); do
    [ "$scheme" = https ] && return 0  # the caller checks with its client certificate
    curl -sf "$ETCD_URL/health" > /dev/null 2>&1 && return 0
    kill -0 "$ETCD_PID" 2>/dev/null || fail "etcd exited: $(tail -3 "$WORK/etcd-$name.log")"
    sleep 0.1
  done
  fail "etcd did not answer within 10s"
}

stop_server() {
  kill -TERM "$SERVER_PID"
  for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || { SERVER_PID=""; return 0; }; sleep 0.1; done
  fail "server did not stop within 10s of SIGTERM"
}

# api METHOD PATH [BODY]: prints "STATUS BODY" (token from $TOKEN).
api() {
  local method=$1 path=$2 body=${3:-}
  local args=(-s -o "$WORK/resp" -w '%{http_code}' -X "$method" --max-time 30)
  [ -n "${TOKEN:-}" ] && args+=(-H "X-Vault-Token: $TOKEN")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  [ -n "${CACERT:-}" ] && args+=(--cacert "$CACERT")
  local code
  code=$(curl "${args[@]}" "$ADDR/v1/$path" || echo 000)
  echo "$code $(cat "$WORK/resp" 2>/dev/null)"
}

# expect_status WANT METHOD PATH [BODY]
expect_status() {
  local want=$1
  shift
  local out
  out=$(api "$@")
  [ "${out%% *}" = "$want" ] || fail "$1 $2: expected HTTP $want, got: $out"
  LAST="${out#* }"
}

json() { node -e "const o=JSON.parse(process.argv[1]); const v=($2); process.stdout.write(typeof v==='string'?v:JSON.stringify(v))" "$1" 2>/dev/null || true; }

# write_config FILE STORAGE_STANZA [LISTENER_EXTRA]
write_config() {
  cat > "$1" <<CFG
$2
listener "tcp" {
  address = "127.0.0.1:0"
  ${3:-tls_disable = true}
}
disable_mlock = true
CFG
}

# init_unseal SHARES THRESHOLD: initialises, unseals with the first THRESHOLD keys, sets TOKEN
# and KEYS (an array of hex keys).
init_unseal() {
  expect_status 200 PUT sys/init "{\"secret_shares\":$1,\"secret_threshold\":$2}"
  TOKEN=$(json "$LAST" o.root_token)
  mapfile -t KEYS < <(json "$LAST" 'o.keys.join("\n")'; echo)
  local i
  for ((i = 0; i < $2; i++)); do expect_status 200 PUT sys/unseal "{\"key\":\"${KEYS[$i]}\"}"; done
  [ "$(json "$LAST" o.sealed)" = "false" ] || fail "still sealed after $2 keys: $LAST"
}

finish() { echo "$PASSED passed, 0 failed"; }
