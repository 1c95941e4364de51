#!/usr/bin/env bash
# The PKI engine end to end with a real TLS server: custos issues a server certificate
# (CN localhost, IP SAN 127.0.0.1) and a client certificate; nginx serves TLS with them and
# requires client certificates checked against the CA and custos' CRL. After the client
# certificate is revoked and the CRL re-fetched and reloaded, nginx refuses it.
source "$(dirname "$0")/lib.sh"
command -v nginx > /dev/null || fail "nginx is not installed (scripts/install-deps installs nginx-light)"

NGX="$WORK/nginx"
NGINX_PID=""
stop_nginx() {
  if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2> /dev/null; then
    kill -TERM "$NGINX_PID" 2> /dev/null || true
    for _ in $(seq 50); do kill -0 "$NGINX_PID" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$NGINX_PID" 2> /dev/null || true
  fi
  NGINX_PID=""
}
trap 'stop_nginx; cleanup' EXIT

write_config "$WORK/c.hcl" 'storage "inmem" {}'
start_server "$WORK/c.hcl"
init_unseal 1 1
expect_status 204 POST sys/mounts/pki '{"type":"pki"}'

# getraw PATH FILE: a non-JSON endpoint into FILE; prints "STATUS CONTENT_TYPE".
getraw() {
  curl -s --max-time 30 -H "X-Vault-Token: $TOKEN" -o "$2" -w '%{http_code} %{content_type}' "$ADDR/v1/$1" || echo 000
}

# --- CA, roles, certificates -------------------------------------------------------------------
expect_status 200 POST pki/root/generate/internal \
  '{"common_name":"Custos Test Root","key_type":"ec","ttl":"24h"}'
json "$LAST" o.data.certificate > "$WORK/root.pem"
out=$(getraw pki/ca/pem "$WORK/ca.pem")
[ "${out%% *}" = 200 ] || fail "ca/pem: $out"
[[ "$out" == *application/pem-certificate-chain* ]] || fail "ca/pem content type: $out"
cmp -s <(openssl x509 -in "$WORK/root.pem" -outform DER) <(openssl x509 -in "$WORK/ca.pem" -outform DER) \
  || fail "ca/pem differs from the generated root"
out=$(getraw pki/ca "$WORK/ca.der")
[[ "$out" == "200 application/pkix-cert"* ]] || fail "ca (DER): $out"
openssl x509 -inform DER -in "$WORK/ca.der" -noout -subject | grep -q 'Custos Test Root' || fail "ca DER does not parse"
pass "root CA generated; ca/pem and ca (DER) serve it"

expect_status 200 POST pki/roles/server \
  '{"allowed_domains":["localhost"],"allow_bare_domains":true,"allow_ip_sans":true,"server_flag":true,"client_flag":false,"key_type":"ec","max_ttl":"2h"}'
expect_status 200 POST pki/roles/client \
  '{"allowed_domains":["clients.test"],"allow_subdomains":true,"allow_localhost":false,"allow_ip_sans":false,"server_flag":false,"client_flag":true,"key_type":"ec","max_ttl":"2h"}'
expect_status 200 LIST pki/roles
[ "$(json "$LAST" 'o.data.keys.join(",")')" = "client,server" ] || fail "roles list: $LAST"
expect_status 400 POST pki/issue/client '{"common_name":"app.evil.test"}'
[[ "$LAST" == *"not allowed by this role"* ]] || fail "disallowed name message: $LAST"
expect_status 400 POST pki/issue/client '{"common_name":"app.clients.test","ip_sans":"127.0.0.1"}'
pass "roles written and listed; names outside a role refused with 400"

mkdir -p "$NGX/tmp"
issue() { # issue ROLE BODY NAME: writes NAME.pem (cert + issuing CA), NAME.key, sets SERIAL
  expect_status 200 POST "pki/issue/$1" "$2"
  json "$LAST" o.data.certificate > "$NGX/$3.pem"
  echo >> "$NGX/$3.pem"
  json "$LAST" o.data.issuing_ca >> "$NGX/$3.pem"
  echo >> "$NGX/$3.pem"
  json "$LAST" o.data.private_key > "$NGX/$3.key"
  SERIAL=$(json "$LAST" o.data.serial_number)
  [[ "$SERIAL" =~ ^[0-9a-f]{2}(:[0-9a-f]{2})+$ ]] || fail "serial_number format: $SERIAL"
}
issue server '{"common_name":"localhost","ip_sans":"127.0.0.1","ttl":"1h"}' server
openssl verify -purpose sslserver -CAfile "$WORK/root.pem" "$NGX/server.pem" > /dev/null || fail "server cert does not verify"
issue client '{"common_name":"app.clients.test","ttl":"1h"}' client
CLIENT_SERIAL=$SERIAL
issue client '{"common_name":"other.clients.test","ttl":"1h"}' other
openssl verify -purpose sslclient -CAfile "$WORK/root.pem" "$NGX/client.pem" > /dev/null || fail "client cert does not verify"
expect_status 200 LIST pki/certs
[[ "$LAST" == *"$CLIENT_SERIAL"* ]] || fail "certs list misses the client certificate: $LAST"
pass "server and client certificates issued; openssl verifies them"

fetch_crl() {
  local out
  out=$(getraw pki/crl/pem "$NGX/crl.pem")
  [ "${out%% *}" = 200 ] || fail "crl/pem: $out"
  openssl crl -in "$NGX/crl.pem" -noout 2> /dev/null || fail "crl/pem is not a PEM CRL"
}
fetch_crl
out=$(getraw pki/crl "$WORK/crl.der")
[[ "$out" == "200 application/pkix-crl"* ]] || fail "crl (DER): $out"
openssl crl -inform DER -in "$WORK/crl.der" -noout -CAfile "$WORK/root.pem" 2>&1 | grep -q 'verify OK' \
  || fail "DER CRL does not verify with the root"
pass "CRL served as PEM and DER, signed by the root"

# --- nginx with client-certificate authentication ----------------------------------------------
PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
[ -n "$PORT" ] || fail "no free port"
cat > "$NGX/nginx.conf" << CONF
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/error.log info;
events { worker_connections 64; }
http {
  access_log $NGX/access.log;
  client_body_temp_path $NGX/tmp/body;
  proxy_temp_path $NGX/tmp/proxy;
  fastcgi_temp_path $NGX/tmp/fastcgi;
  uwsgi_temp_path $NGX/tmp/uwsgi;
  scgi_temp_path $NGX/tmp/scgi;
  server {
    listen 127.0.0.1:$PORT ssl;
    ssl_certificate $NGX/server.pem;
    ssl_certificate_key $NGX/server.key;
    ssl_client_certificate $WORK/ca.pem;
    ssl_verify_client on;
    ssl_crl $NGX/crl.pem;
    location / { default_type text/plain; return 200 "hello \$ssl_client_s_dn\n"; }
  }
}
CONF
NGINX_ARGS=(-p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/error.log")
nginx "${NGINX_ARGS[@]}" -t > "$NGX/t.log" 2>&1 || { cat "$NGX/t.log" >&2; fail "nginx -t rejected the config"; }
nginx "${NGINX_ARGS[@]}" -g 'daemon off;' > "$NGX/stdout.log" 2>&1 &
NGINX_PID=$!

# call_nginx [curl args]: prints the HTTP status (000 on a TLS failure).
call_nginx() {
  curl -s --max-time 10 -o "$NGX/body" -w '%{http_code}' --cacert "$WORK/root.pem" "$@" "https://127.0.0.1:$PORT/" || true
}
up=""
for _ in $(seq 100); do
  kill -0 "$NGINX_PID" 2> /dev/null || { tail -20 "$NGX/error.log" >&2; fail "nginx exited during start"; }
  code=$(call_nginx --cert "$NGX/client.pem" --key "$NGX/client.key")
  [ "$code" = 200 ] && { up=1; break; }
  sleep 0.1
done
[ -n "$up" ] || { tail -20 "$NGX/error.log" >&2; fail "nginx did not answer 200 with the client certificate within 10s (last: $code)"; }
grep -q 'CN=app.clients.test' "$NGX/body" || fail "nginx did not see the client DN: $(cat "$NGX/body")"
pass "nginx serves TLS with the issued server certificate (verified by curl) and accepts the client certificate"

code=$(call_nginx)
[ "$code" = 400 ] || fail "without a client certificate nginx should answer 400, got $code"
pass "without a client certificate nginx answers 400"

# --- revoke, re-fetch the CRL, reload ----------------------------------------------------------
expect_status 200 POST pki/revoke "{\"serial_number\":\"$CLIENT_SERIAL\"}"
[ "$(json "$LAST" o.data.state)" = revoked ] || fail "revoke: $LAST"
[ "$(json "$LAST" 'o.data.revocation_time > 0')" = true ] || fail "revocation_time: $LAST"
expect_status 200 GET "pki/cert/$CLIENT_SERIAL"
[ "$(json "$LAST" 'o.data.revocation_time > 0')" = true ] || fail "cert/:serial after revoke: $LAST"
fetch_crl
want=$(echo "$CLIENT_SERIAL" | tr -d : | tr a-f A-F)
openssl crl -in "$NGX/crl.pem" -noout -text | grep -q "Serial Number: $want" || fail "revoked serial $want not in the CRL"
pass "revoked the client certificate; its serial is in the new CRL"

nginx "${NGINX_ARGS[@]}" -s reload 2> "$NGX/reload.log" || { cat "$NGX/reload.log" >&2; fail "nginx -s reload"; }
refused=""
for _ in $(seq 100); do
  code=$(call_nginx --cert "$NGX/client.pem" --key "$NGX/client.key")
  [ "$code" = 400 ] && { refused=1; break; }
  sleep 0.1
done
[ -n "$refused" ] || fail "after the CRL reload nginx still answers $code for the revoked certificate"
grep -qi 'revoked' "$NGX/error.log" || fail "nginx's log does not name the revocation"
code=$(call_nginx --cert "$NGX/other.pem" --key "$NGX/other.key")
[ "$code" = 200 ] || fail "a certificate that was not revoked should still work, got $code"
pass "after the reload nginx refuses the revoked certificate (400) and still accepts another one"

pid=$NGINX_PID
stop_nginx
kill -0 "$pid" 2> /dev/null && fail "nginx (pid $pid) still running"
[ "$(call_nginx --cert "$NGX/other.pem" --key "$NGX/other.key")" = 000 ] || fail "nginx still answers after stop"
pass "nginx stopped"

# --- tidy and URLs through the HTTP API --------------------------------------------------------
expect_status 204 POST pki/config/urls "{\"issuing_certificates\":\"$ADDR/v1/pki/ca\",\"crl_distribution_points\":\"$ADDR/v1/pki/crl\"}"
expect_status 200 GET pki/config/urls
[ "$(json "$LAST" 'o.data.crl_distribution_points[0]')" = "$ADDR/v1/pki/crl" ] || fail "config/urls: $LAST"
expect_status 202 POST pki/tidy '{"tidy_cert_store":true,"tidy_revoked_certs":true}'
expect_status 200 GET pki/tidy-status
[ "$(json "$LAST" o.data.state)" = Finished ] || fail "tidy-status: $LAST"
pass "config/urls and tidy"
finish
