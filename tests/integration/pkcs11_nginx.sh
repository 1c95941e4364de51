#!/usr/bin/env bash
# The PKCS#11 module (libcustos-pkcs11.so) with real consumers: OpenSC's pkcs11-tool lists the
# token and signs with brokered RSA and EC keys (signatures verified by openssl against the keys
# registered in the broker), and an unmodified nginx serves TLS 1.2 and 1.3 with a key that the
# broker released only to nginx's own binary (sim TEE, MRENCLAVE = SHA-256 of /proc/self/exe),
# through OpenSSL's pkcs11 engine (libp11). A policy pinned to another program refuses: the module
# fails C_Initialize with the broker's reason and nginx refuses to start.
source "$(dirname "$0")/lib.sh"

MODULE=${CUSTOS_PKCS11_MODULE:?set CUSTOS_PKCS11_MODULE to libcustos-pkcs11.so}
PKCS11_TOOL=$(command -v pkcs11-tool) || fail "pkcs11-tool is not installed (scripts/install-deps installs opensc)"
NGINX=$(command -v nginx) || fail "nginx is not installed (scripts/install-deps installs nginx-light)"
ENGINE=$(ls /usr/lib/*/engines-3/pkcs11.so 2>/dev/null | head -1)
[ -n "$ENGINE" ] || fail "OpenSSL's pkcs11 engine is missing (scripts/install-deps installs libengine-pkcs11-openssl)"
NGX="$WORK/nginx"
mkdir -p "$NGX"
stop_nginx() {
  if [ -f "$NGX/nginx.pid" ]; then
    kill "$(cat "$NGX/nginx.pid")" 2> /dev/null || true
    for _ in $(seq 50); do [ -f "$NGX/nginx.pid" ] || break; sleep 0.1; done
  fi
}
trap 'stop_nginx; cleanup' EXIT

start_dev  # a dev server with a sim platform in $WORK/sim

# kbs_post PATH BODY: POSTs with the root token; prints the response body, fails on non-2xx.
kbs_post() {
  local code
  code=$(curl -s -o "$WORK/kresp" -w '%{http_code}' --max-time 30 -H "X-Vault-Token: root" \
    -H 'Content-Type: application/json' --data-binary "$2" "$ADDR/$1" || echo 000)
  [[ "$code" == 2* ]] || fail "POST $1: HTTP $code: $(cat "$WORK/kresp")"
  cat "$WORK/kresp"
}
pem_json() { node -e 'process.stdout.write(JSON.stringify(require("fs").readFileSync(process.argv[1], "utf8")))' "$1"; }
# register_key ALGORITHM PEM POLICY: prints the new key's id.
register_key() {
  local extra='"key_length":2048'
  [ "$1" = EC ] && extra="\"curve_type\":\"${4:-secp256r1}\""
  json "$(kbs_post kbs/v1/keys "{\"key_information\":{\"algorithm\":\"$1\",$extra,\"key_string\":$(pem_json "$2")},\"transfer_policy_id\":\"$3\"}")" o.key_information.id
}
pin_policy() { # pin_policy ID PROGRAM
  kbs_post kbs/v1/key-transfer-policies \
    "{\"id\":\"$1\",\"tee\":[\"sim\"],\"sgx\":{\"mrenclave\":[\"$(sha256sum "$2" | cut -d' ' -f1)\"]}}" > /dev/null
}
# module_config FILE [extra lines] (key blocks and the like)
module_config() {
  local f=$1
  shift
  printf 'kbs_addr = "%s"\ntee = "sim"\nsim_dir = "%s"\n' "$ADDR" "$WORK/sim" > "$f"
  printf '%s\n' "$@" >> "$f"
}
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/rsa.pem" 2> /dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/ec.pem" 2> /dev/null
openssl pkey -in "$WORK/rsa.pem" -pubout -out "$WORK/rsa.pub"
openssl pkey -in "$WORK/ec.pem" -pubout -out "$WORK/ec.pub"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out "$WORK/p521.pem" 2> /dev/null
openssl pkey -in "$WORK/p521.pem" -pubout -out "$WORK/p521.pub"

# --- pkcs11-tool: keys pinned to pkcs11-tool's own binary.
pin_policy pin-tool "$PKCS11_TOOL"
RSA_ID=$(register_key RSA "$WORK/rsa.pem" pin-tool)
EC_ID=$(register_key EC "$WORK/ec.pem" pin-tool)
P521_ID=$(register_key EC "$WORK/p521.pem" pin-tool secp521r1)
[ -n "$RSA_ID" ] && [ -n "$EC_ID" ] && [ -n "$P521_ID" ] || fail "key registration returned no id"
module_config "$WORK/tool.hcl" "key \"web-rsa\" { id = \"$RSA_ID\" }" "key \"web-ec\" { id = \"$EC_ID\" }" \
  "key \"p521\" { id = \"$P521_ID\" }"
export CUSTOS_PKCS11_CONFIG="$WORK/tool.hcl"
P11=("$PKCS11_TOOL" --module "$MODULE")

"${P11[@]}" -L > "$WORK/slots" 2>&1 || fail "pkcs11-tool -L: $(cat "$WORK/slots")"
grep -q 'token label *: custos' "$WORK/slots" || fail "no custos token: $(cat "$WORK/slots")"
"${P11[@]}" -O > "$WORK/objects" 2>&1 || fail "pkcs11-tool -O: $(cat "$WORK/objects")"
[ "$(grep -c '^Private Key Object' "$WORK/objects")" = 3 ] || fail "expected 3 private keys: $(cat "$WORK/objects")"
[ "$(grep -c '^Public Key Object' "$WORK/objects")" = 3 ] || fail "expected 3 public keys: $(cat "$WORK/objects")"
grep -q 'never extractable' "$WORK/objects" || fail "private keys are not marked never extractable"
pass "pkcs11-tool sees the custos token with the three released keys (private ones sensitive, never extractable)"

echo "a message signed inside the attested process" > "$WORK/msg"
sign() { # sign MECHANISM KEY_ID OUT [pkcs11-tool args]
  local mech=$1 id=$2 out=$3
  shift 3
  "${P11[@]}" --sign --mechanism "$mech" --id "$(hex "$id")" -i "$WORK/msg" -o "$out" "$@" \
    > "$WORK/sign.log" 2>&1 || fail "sign with $mech: $(cat "$WORK/sign.log")"
}
sign SHA256-RSA-PKCS "$RSA_ID" "$WORK/sig1"
openssl dgst -sha256 -verify "$WORK/rsa.pub" -signature "$WORK/sig1" "$WORK/msg" > /dev/null ||
  fail "the SHA256-RSA-PKCS signature does not verify with the registered key"
sign SHA256-RSA-PKCS-PSS "$RSA_ID" "$WORK/sig2"
openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -verify "$WORK/rsa.pub" \
  -signature "$WORK/sig2" "$WORK/msg" > /dev/null || fail "the RSA-PSS signature does not verify"
sign ECDSA-SHA256 "$EC_ID" "$WORK/sig3" --signature-format openssl
openssl dgst -sha256 -verify "$WORK/ec.pub" -signature "$WORK/sig3" "$WORK/msg" > /dev/null ||
  fail "the ECDSA signature does not verify with the registered key"
sign ECDSA-SHA512 "$P521_ID" "$WORK/sig5" --signature-format openssl
openssl dgst -sha512 -verify "$WORK/p521.pub" -signature "$WORK/sig5" "$WORK/msg" > /dev/null ||
  fail "the P-521 ECDSA signature does not verify with the registered key"
pass "pkcs11-tool signs with SHA256-RSA-PKCS, RSA-PSS, ECDSA-SHA256 (P-256) and ECDSA-SHA512 (P-521); openssl verifies each with the registered public key"

if "${P11[@]}" --read-object --type privkey --id "$(hex "$RSA_ID")" -o "$WORK/leak" > "$WORK/read.log" 2>&1 &&
  [ -s "$WORK/leak" ]; then
  fail "the private key could be read out of the token"
fi
pass "the private key cannot be read out of the token"

# A PIN in the configuration: private keys appear only after C_Login with it.
module_config "$WORK/pin.hcl" 'pin = "4321"' "key \"web-rsa\" { id = \"$RSA_ID\" }"
export CUSTOS_PKCS11_CONFIG="$WORK/pin.hcl"
"${P11[@]}" -O > "$WORK/objects" 2>&1 || fail "pkcs11-tool -O: $(cat "$WORK/objects")"
! grep -q '^Private Key Object' "$WORK/objects" || fail "a private key is visible without login"
if "${P11[@]}" --login --pin 9999 -O > "$WORK/badpin" 2>&1; then fail "a wrong PIN logged in"; fi
grep -q CKR_PIN_INCORRECT "$WORK/badpin" || fail "wrong PIN: $(cat "$WORK/badpin")"
sign SHA256-RSA-PKCS "$RSA_ID" "$WORK/sig4" --login --pin 4321
openssl dgst -sha256 -verify "$WORK/rsa.pub" -signature "$WORK/sig4" "$WORK/msg" > /dev/null ||
  fail "the signature after login does not verify"
pass "with a PIN: private keys hidden before login, a wrong PIN is refused (CKR_PIN_INCORRECT), the right one signs"

# A key pinned to another program is refused: the module does not initialise.
pin_policy pin-other /bin/true
OTHER_ID=$(register_key RSA "$WORK/rsa.pem" pin-other)
module_config "$WORK/other.hcl" "key \"other\" { id = \"$OTHER_ID\" }"
export CUSTOS_PKCS11_CONFIG="$WORK/other.hcl"
if "${P11[@]}" -L > "$WORK/refused" 2>&1; then fail "the module initialised with a key pinned to another program"; fi
grep -q 'custos-pkcs11: the key broker released nothing' "$WORK/refused" &&
  grep -q 'policy.denied' "$WORK/refused" || fail "refusal: $(cat "$WORK/refused")"
pass "a key pinned to another program: C_Initialize fails with the broker's reason ($(grep -o 'policy.denied[^;]*' "$WORK/refused" | head -c 80))"

# --- nginx: the key pinned to nginx's binary, loaded through OpenSSL's pkcs11 engine.
pin_policy pin-nginx "$NGINX"
NGX_ID=$(register_key RSA "$WORK/rsa.pem" pin-nginx)
module_config "$NGX/p11.hcl" "key \"web\" { id = \"$NGX_ID\" }"
openssl req -x509 -key "$WORK/rsa.pem" -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1" \
  -days 1 -out "$NGX/cert.pem" 2> /dev/null
cat > "$NGX/openssl.cnf" << CNF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = $ENGINE
MODULE_PATH = $MODULE
init = 1
CNF
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$NGX/nginx.conf" << CONF
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/error.log info;
events { worker_connections 64; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$PORT ssl;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate $NGX/cert.pem;
    ssl_certificate_key "engine:pkcs11:pkcs11:object=web;type=private";
    location / { return 200 "served with a brokered key\n"; }
  }
}
CONF
export OPENSSL_CONF="$NGX/openssl.cnf" CUSTOS_PKCS11_CONFIG="$NGX/p11.hcl"
NGINX_ARGS=(-p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/error.log")
"$NGINX" "${NGINX_ARGS[@]}" -g 'daemon off;' > "$NGX/stdout.log" 2>&1 &
NGINX_PID=$!
up=""
for _ in $(seq 100); do
  kill -0 "$NGINX_PID" 2> /dev/null || fail "nginx exited during start: $(tail -5 "$NGX/stdout.log" "$NGX/error.log")"
  if curl -s --max-time 5 --cacert "$NGX/cert.pem" "https://127.0.0.1:$PORT/" > "$NGX/body" 2> /dev/null; then
    up=1
    break
  fi
  sleep 0.1
done
[ -n "$up" ] || fail "nginx did not answer over TLS within 10s: $(tail -5 "$NGX/error.log")"
grep -q 'served with a brokered key' "$NGX/body" || fail "nginx body: $(cat "$NGX/body")"
for v in 1.2 1.3; do
  curl -sv --max-time 5 --cacert "$NGX/cert.pem" "--tlsv$v" --tls-max "$v" "https://127.0.0.1:$PORT/" \
    > "$NGX/body" 2> "$NGX/curl.log" || fail "TLS $v handshake: $(grep -i 'ssl\|tls' "$NGX/curl.log" | tail -3)"
  grep -q "SSL connection using TLSv$v" "$NGX/curl.log" || fail "TLS $v not negotiated: $(grep 'SSL connection' "$NGX/curl.log")"
done
# The certificate nginx presents carries the registered key: the handshake signature verified
# against it, so the brokered private key signed.
echo | openssl s_client -connect "127.0.0.1:$PORT" -servername localhost 2> /dev/null |
  openssl x509 -noout -pubkey > "$NGX/served.pub"
cmp -s "$NGX/served.pub" "$WORK/rsa.pub" || fail "nginx presents another key"
pass "nginx serves TLS 1.2 and 1.3 with the brokered key, released only to nginx's binary"
stop_nginx
wait "$NGINX_PID" 2> /dev/null || true

# The same nginx, with the key pinned to another program: it refuses to start, saying why.
module_config "$NGX/p11.hcl" "key \"web\" { id = \"$OTHER_ID\" }"
if "$NGINX" "${NGINX_ARGS[@]}" -t > "$NGX/t.log" 2>&1; then fail "nginx accepted a key the broker refused"; fi
grep -q 'policy.denied' "$NGX/t.log" || fail "nginx -t output: $(cat "$NGX/t.log")"
pass "nginx refuses to start when the broker refuses the key (the reason is in its output)"

finish
