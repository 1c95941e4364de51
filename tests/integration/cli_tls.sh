#!/usr/bin/env bash
# The custos CLI against a TLS listener: the same flows as the node-vault acceptance test
# (init, unseal, kv v1/v2, policies with a child token, tokens, transit, audit, seal) through
# `custos` commands, with CUSTOS_ADDR/CUSTOS_CACERT from the environment.
source "$(dirname "$0")/lib.sh"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
write_config "$WORK/c.hcl" "storage \"sqlite\" { path = \"$WORK/custos.db\" }" \
  "tls_cert_file = \"$WORK/cert.pem\"
  tls_key_file = \"$WORK/key.pem\"
  tls_min_version = \"tls12\""
start_server "$WORK/c.hcl"
[[ "$ADDR" == https://* ]] || fail "listener is not TLS: $ADDR"
export CUSTOS_ADDR=$ADDR CUSTOS_CACERT=$WORK/cert.pem
unset VAULT_ADDR VAULT_TOKEN CUSTOS_TOKEN
c() { "$CUSTOS" "$@"; }

# Plain HTTP to the TLS port must not work.
if curl -s --max-time 5 "http://${ADDR#https://}/v1/sys/health" | grep -q initialized; then fail "plain HTTP answered on TLS port"; fi
pass "listener speaks TLS only"

set +e; c status > "$WORK/out" 2>&1; rc=$?; set -e
[ $rc = 2 ] || fail "status before init should exit 2 (sealed), got $rc"
c operator init -key-shares=5 -key-threshold=3 -format=json > "$WORK/init.json"
export CUSTOS_TOKEN=$(json "$(cat "$WORK/init.json")" o.root_token)
mapfile -t K < <(json "$(cat "$WORK/init.json")" 'o.keys_base64.join("\n")'; echo)
[ ${#K[@]} -ge 5 ] || fail "expected 5 key shares"
c operator unseal "${K[0]}" > /dev/null
c operator unseal "${K[3]}" > /dev/null
c operator unseal "${K[4]}" > "$WORK/out"
grep -q 'Sealed *false' "$WORK/out" || fail "unseal with 3 of 5 keys: $(cat "$WORK/out")"
c status > /dev/null || fail "status should exit 0 when unsealed"
pass "operator init (5/3) and unseal with shares 1, 4, 5 over TLS"

c secrets enable -path=kv1 -version=1 kv > /dev/null
c secrets enable -path=kv2 kv-v2 > /dev/null
c secrets enable transit > /dev/null
c secrets list | grep -q '^kv2/ *kv' || fail "secrets list misses kv2/"
if c secrets enable -path=kv1 kv 2> "$WORK/err"; then fail "mounting kv1 twice should fail"; fi
grep -q 'already in use' "$WORK/err" || fail "duplicate mount error: $(cat "$WORK/err")"
pass "secrets enable/list and duplicate mount refused"

c kv put kv1/app/db username=app password=s3cr3t > /dev/null
[ "$(c kv get -field=password kv1/app/db)" = s3cr3t ] || fail "kv v1 get"
c kv list kv1/app | grep -qx db || fail "kv v1 list"
c kv put kv2/app password=one > /dev/null
c kv put -cas=1 kv2/app password=two > /dev/null
if c kv put -cas=1 kv2/app password=x 2>/dev/null; then fail "cas mismatch accepted"; fi
c kv patch kv2/app extra=yes > /dev/null
[ "$(c kv get -field=password kv2/app)" = two ] || fail "kv v2 latest"
[ "$(c kv get -field=extra kv2/app)" = yes ] || fail "kv v2 patch"
[ "$(c kv get -version=1 -field=password kv2/app)" = one ] || fail "kv v2 version 1"
c kv delete kv2/app > /dev/null
if c kv get kv2/app > /dev/null 2>&1; then fail "soft-deleted version still readable"; fi
c kv undelete -versions=3 kv2/app > /dev/null
[ "$(c kv get -field=extra kv2/app)" = yes ] || fail "undelete"
c kv destroy -versions=1 kv2/app > /dev/null
c kv metadata get -format=json kv2/app > "$WORK/meta.json"
[ "$(json "$(cat "$WORK/meta.json")" 'o.data.versions["1"].destroyed')" = true ] || fail "destroy"
[ "$(json "$(cat "$WORK/meta.json")" o.data.current_version)" = 3 ] || fail "current_version"
pass "kv v1 and v2: put, get, cas, patch, versions, delete, undelete, destroy, metadata"

cat > "$WORK/app.hcl" <<'P'
path "kv1/shared/*" { capabilities = ["read", "list"] }
P
c policy write app-read "$WORK/app.hcl" > /dev/null
c policy list | grep -qx app-read || fail "policy list"
c policy read app-read | grep -q 'kv1/shared' || fail "policy read"
c write kv1/shared/cfg feature=on > /dev/null
c write kv1/private/cfg feature=off > /dev/null
c token create -policy=app-read -ttl=1h -format=json > "$WORK/tok.json"
CHILD=$(json "$(cat "$WORK/tok.json")" o.auth.client_token)
[ -n "$CHILD" ] || fail "token create"
[ "$(CUSTOS_TOKEN=$CHILD c read -field=feature kv1/shared/cfg)" = on ] || fail "child reads allowed path"
if CUSTOS_TOKEN=$CHILD c read kv1/private/cfg > /dev/null 2>&1; then fail "child read a denied path"; fi
if CUSTOS_TOKEN=$CHILD c write kv1/shared/cfg feature=x > /dev/null 2>&1; then fail "child wrote a read-only path"; fi
CUSTOS_TOKEN=$CHILD c token lookup -format=json | grep -q app-read || fail "lookup-self"
c token renew -increment=30m "$CHILD" > /dev/null
c token revoke "$CHILD" > /dev/null
if CUSTOS_TOKEN=$CHILD c read kv1/shared/cfg > /dev/null 2>&1; then fail "revoked token still works"; fi
c write auth/token/roles/reader allowed_policies=app-read orphan=true token_num_uses=3 > /dev/null
c list auth/token/roles | grep -qx reader || fail "token roles list"
c token create -role=reader -format=json > "$WORK/role_tok.json"
ROLE_TOK=$(json "$(cat "$WORK/role_tok.json")" o.auth.client_token)
CUSTOS_TOKEN=$ROLE_TOK c token lookup -format=json > "$WORK/role_look.json"
[ "$(json "$(cat "$WORK/role_look.json")" o.data.path)" = auth/token/create/reader ] || fail "role token path"
[ "$(json "$(cat "$WORK/role_look.json")" o.data.orphan)" = true ] || fail "role token orphan"
[ "$(json "$(cat "$WORK/role_look.json")" o.data.num_uses)" = 2 ] || fail "role token num_uses (3, less the lookup's own use)"
grep -q app-read "$WORK/role_look.json" || fail "role token policies"
if c token create -role=nosuch > /dev/null 2>&1; then fail "unknown role accepted"; fi
c delete auth/token/roles/reader > /dev/null
c policy delete app-read > /dev/null
pass "policies enforced on a child token; token lookup, renew, revoke; token roles"

# Response wrapping: -wrap-ttl on any command, `unwrap` by the wrapping token itself (no token
# of its own) or by another token that names it.
c read -wrap-ttl=2m -format=json kv1/shared/cfg > "$WORK/wrapped.json"
WT=$(json "$(cat "$WORK/wrapped.json")" o.wrap_info.token)
[ "$(json "$(cat "$WORK/wrapped.json")" o.wrap_info.ttl)" = 120 ] || fail "wrap ttl"
grep -q '"feature"' "$WORK/wrapped.json" && fail "a wrapped response showed its data"
[ "$(CUSTOS_TOKEN= c unwrap -field=feature "$WT")" = on ] || fail "unwrap with the wrapping token"
if CUSTOS_TOKEN= c unwrap "$WT" > "$WORK/out" 2>&1; then fail "a wrapping token unwrapped twice"; fi
grep -q "wrapping token is not valid or does not exist" "$WORK/out" || fail "second unwrap: $(cat "$WORK/out")"
c token create -policy=default -wrap-ttl=60 > "$WORK/wrapped_tok.txt"
grep -q '^wrapped_accessor:' "$WORK/wrapped_tok.txt" || fail "wrapped token creation table"
WT=$(awk '$1 == "wrapping_token:" { print $2 }' "$WORK/wrapped_tok.txt")
NEW_TOK=$(json "$(c unwrap -format=json "$WT")" o.auth.client_token)
[ -n "$NEW_TOK" ] || fail "unwrap by another token"
CUSTOS_TOKEN=$NEW_TOK c write cubbyhole/note text=mine > /dev/null
[ "$(CUSTOS_TOKEN=$NEW_TOK c read -field=text cubbyhole/note)" = mine ] || fail "cubbyhole read back"
if c read cubbyhole/note > /dev/null 2>&1; then fail "root read another token's cubbyhole"; fi
pass "response wrapping (-wrap-ttl, unwrap both ways) and the cubbyhole"

c transit create appkey > /dev/null
CT=$(c transit encrypt appkey "root key material")
[[ "$CT" == vault:v1:* ]] || fail "transit ciphertext prefix: $CT"
[ "$(c transit decrypt appkey "$CT")" = "root key material" ] || fail "transit decrypt"
pass "transit create, encrypt, decrypt"

c audit enable file file_path="$WORK/audit.log" > /dev/null
c kv put kv2/audited token=audit-canary-7f3e > /dev/null
c audit list | grep -q '^file/' || fail "audit list"
grep -q '"path":"kv2/data/audited"' "$WORK/audit.log" || fail "audit log misses the request"
if grep -q 'audit-canary-7f3e' "$WORK/audit.log"; then fail "secret value in audit log"; fi
if grep -q "$CUSTOS_TOKEN" "$WORK/audit.log"; then fail "root token in audit log"; fi
HASH=$(c write -field=hash sys/audit-hash/file input=audit-canary-7f3e)
grep -q "$HASH" "$WORK/audit.log" || fail "sys/audit-hash value not found in the log"
if grep -q 'audit-canary-7f3e' "$WORK/server.log"; then fail "secret value in server log"; fi
pass "audit device records requests with HMAC'd values; audit-hash finds them; no secret in logs"

c operator rotate | grep -q 'Key Term *2' || fail "rotate"
[ "$(c kv get -field=password kv2/app)" = two ] || fail "read after rotate"
c operator seal > /dev/null
set +e; c kv get kv2/app > /dev/null 2>&1; rc=$?; set -e
[ $rc != 0 ] || fail "read while sealed"
c operator unseal "${K[1]}" > /dev/null; c operator unseal "${K[2]}" > /dev/null; c operator unseal "${K[0]}" > /dev/null
[ "$(c kv get -field=password kv2/app)" = two ] || fail "read after unseal"
pass "rotate keyring, seal (reads refused), unseal with another 3 shares"
finish
