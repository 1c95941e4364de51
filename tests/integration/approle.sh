#!/usr/bin/env bash
# Machine and human login against the real server: AppRole (role ID + secret ID) and userpass
# (username + password), each over HTTP with curl and through the custos CLI. The tokens they
# mint carry the role's/user's policies: a KV read inside the policy works, one outside is 403.
source "$(dirname "$0")/lib.sh"
write_config "$WORK/c.hcl" "storage \"sqlite\" { path = \"$WORK/custos.db\" }"
start_server "$WORK/c.hcl"
init_unseal 1 1
ROOT=$TOKEN

expect_status 204 POST sys/mounts/secret '{"type":"kv","options":{"version":"2"}}'
expect_status 200 POST secret/data/app/config '{"data":{"db_password":"app-s3cret"}}'
expect_status 200 POST secret/data/other/config '{"data":{"x":"not-for-app"}}'
# The second rule lets `custos kv get` find the mount: core checks sys/internal/ui/mounts against
# the ACL, where Vault lets any token that can reach something below the mount see it.
expect_status 204 PUT sys/policies/acl/app-read \
  '{"policy":"path \"secret/data/app/*\" { capabilities = [\"read\"] }\npath \"sys/internal/ui/mounts/secret/*\" { capabilities = [\"read\"] }"}'
pass "kv v2 with two secrets and a policy reading only secret/data/app/*"

# --- AppRole over HTTP -------------------------------------------------------------------------
expect_status 204 POST sys/auth/approle '{"type":"approle"}'
expect_status 204 POST auth/approle/role/app \
  '{"token_policies":"app-read","token_ttl":"20m","token_max_ttl":"1h","secret_id_num_uses":10,"secret_id_ttl":"1h"}'
expect_status 200 GET auth/approle/role/app
[ "$(json "$LAST" 'o.data.token_policies.join(",")')" = app-read ] || fail "role read: $LAST"
expect_status 200 LIST auth/approle/role
[ "$(json "$LAST" 'o.data.keys.join(",")')" = app ] || fail "role list: $LAST"
expect_status 200 GET auth/approle/role/app/role-id
ROLE_ID=$(json "$LAST" o.data.role_id)
expect_status 200 POST auth/approle/role/app/secret-id '{"metadata":"{\"host\":\"ci-runner\"}"}'
SECRET_ID=$(json "$LAST" o.data.secret_id)
ACCESSOR=$(json "$LAST" o.data.secret_id_accessor)
[ -n "$ROLE_ID" ] && [ -n "$SECRET_ID" ] && [ -n "$ACCESSOR" ] || fail "role-id/secret-id: $LAST"
[ "$(json "$LAST" o.data.secret_id_num_uses)" = 10 ] || fail "secret-id num_uses: $LAST"
expect_status 200 LIST auth/approle/role/app/secret-id
[ "$(json "$LAST" 'o.data.keys.join(",")')" = "$ACCESSOR" ] || fail "secret-id list: $LAST"
pass "approle enabled; role written, read, listed; role-id and secret-id fetched"

TOKEN= expect_status 200 POST auth/approle/login "{\"role_id\":\"$ROLE_ID\",\"secret_id\":\"$SECRET_ID\"}"
APP_TOKEN=$(json "$LAST" o.auth.client_token)
[ -n "$APP_TOKEN" ] || fail "login gave no token: $LAST"
json "$LAST" 'o.auth.policies.join(",")' | grep -q app-read || fail "login policies: $LAST"
[ "$(json "$LAST" o.auth.lease_duration)" = 1200 ] || fail "token_ttl not applied: $LAST"
[ "$(json "$LAST" o.auth.metadata.role_name)" = app ] || fail "login metadata: $LAST"
[ "$(json "$LAST" o.auth.metadata.host)" = ci-runner ] || fail "secret-id metadata: $LAST"
TOKEN=$APP_TOKEN expect_status 200 GET secret/data/app/config
[ "$(json "$LAST" o.data.data.db_password)" = app-s3cret ] || fail "app read: $LAST"
TOKEN=$APP_TOKEN expect_status 403 GET secret/data/other/config
TOKEN=$APP_TOKEN expect_status 403 POST secret/data/app/config '{"data":{"x":"y"}}'
TOKEN=$APP_TOKEN expect_status 200 GET auth/token/lookup-self
[ "$(json "$LAST" o.data.meta.role_name)" = app ] || fail "token meta: $LAST"
pass "approle login over HTTP: token reads inside its policy, 403 outside it"

TOKEN= expect_status 400 POST auth/approle/login "{\"role_id\":\"$ROLE_ID\",\"secret_id\":\"wrong\"}"
grep -q 'invalid role or secret ID' <<< "$LAST" || fail "wrong secret id message: $LAST"
TOKEN= expect_status 400 POST auth/approle/login "{\"role_id\":\"nope\",\"secret_id\":\"$SECRET_ID\"}"
grep -q 'invalid role or secret ID' <<< "$LAST" || fail "wrong role id message: $LAST"
TOKEN= expect_status 400 POST auth/approle/login '{"secret_id":"x"}'
grep -q 'missing role_id' <<< "$LAST" || fail "missing role_id message: $LAST"
TOKEN= expect_status 403 POST auth/approle/role/app/secret-id '{}'
TOKEN=$APP_TOKEN expect_status 403 POST auth/approle/role/app/secret-id '{}'
expect_status 400 POST auth/approle/role/bad '{"bind_secret_id":false}'
# Only 127.0.0.1 may use this role: a secret ID bound elsewhere is refused from here.
expect_status 204 POST auth/approle/role/remote '{"secret_id_bound_cidrs":"10.0.0.0/8","token_policies":"app-read"}'
expect_status 200 GET auth/approle/role/remote/role-id
REMOTE_RID=$(json "$LAST" o.data.role_id)
expect_status 200 POST auth/approle/role/remote/secret-id '{}'
REMOTE_SID=$(json "$LAST" o.data.secret_id)
TOKEN= expect_status 400 POST auth/approle/login "{\"role_id\":\"$REMOTE_RID\",\"secret_id\":\"$REMOTE_SID\"}"
# Single-use secret IDs: the second login is refused.
expect_status 200 POST auth/approle/role/app/secret-id '{"num_uses":1}'
ONCE=$(json "$LAST" o.data.secret_id)
TOKEN= expect_status 200 POST auth/approle/login "{\"role_id\":\"$ROLE_ID\",\"secret_id\":\"$ONCE\"}"
TOKEN= expect_status 400 POST auth/approle/login "{\"role_id\":\"$ROLE_ID\",\"secret_id\":\"$ONCE\"}"
pass "wrong secret/role IDs, CIDR-bound and used-up secret IDs refused alike; admin paths need a token"

expect_status 200 POST auth/approle/role/app/secret-id-accessor/lookup "{\"secret_id_accessor\":\"$ACCESSOR\"}"
[ "$(json "$LAST" o.data.secret_id_num_uses)" = 9 ] || fail "uses not counted: $LAST"
expect_status 200 POST auth/approle/role/app/secret-id/lookup "{\"secret_id\":\"$SECRET_ID\"}"
[ "$(json "$LAST" o.data.secret_id_accessor)" = "$ACCESSOR" ] || fail "secret-id lookup: $LAST"
expect_status 202 POST auth/approle/tidy/secret-id '{}'
if grep -qa "$SECRET_ID" "$WORK/custos.db"*; then fail "secret ID on disk in plaintext"; fi
pass "secret-id lookup by value and accessor count uses; tidy; no secret ID on disk"

# --- AppRole through the CLI -------------------------------------------------------------------
export CUSTOS_ADDR=$ADDR
unset VAULT_ADDR VAULT_TOKEN CUSTOS_TOKEN
c() { "$CUSTOS" "$@"; }
RID=$(CUSTOS_TOKEN=$ROOT c read -field=role_id auth/approle/role/app/role-id)
[ "$RID" = "$ROLE_ID" ] || fail "cli read role-id: $RID"
SID=$(CUSTOS_TOKEN=$ROOT c write -field=secret_id auth/approle/role/app/secret-id)
[ -n "$SID" ] || fail "cli secret-id"
c write auth/approle/login role_id="$RID" secret_id="$SID" > "$WORK/login.txt" || fail "cli login: $(cat "$WORK/login.txt")"
CLI_TOKEN=$(awk '$1 == "token" { print $2 }' "$WORK/login.txt")
[ -n "$CLI_TOKEN" ] || fail "cli login printed no token: $(cat "$WORK/login.txt")"
grep -q 'app-read' "$WORK/login.txt" || fail "cli login policies: $(cat "$WORK/login.txt")"
[ "$(CUSTOS_TOKEN=$CLI_TOKEN c kv get -field=db_password secret/app/config)" = app-s3cret ] ||
  fail "cli kv get with the approle token"
if CUSTOS_TOKEN=$CLI_TOKEN c kv get secret/other/config > "$WORK/err" 2>&1; then
  fail "approle token read outside its policy"
fi
grep -qi 'permission denied' "$WORK/err" || fail "cli denial message: $(cat "$WORK/err")"
if c write auth/approle/login role_id="$RID" secret_id=wrong > "$WORK/err" 2>&1; then
  fail "cli login with a wrong secret id"
fi
grep -q 'invalid role or secret ID' "$WORK/err" || fail "cli wrong secret message: $(cat "$WORK/err")"
pass "cli: write auth/approle/login -> token; kv get inside the policy, denied outside"

# --- userpass ----------------------------------------------------------------------------------
expect_status 204 POST sys/auth/userpass '{"type":"userpass"}'
expect_status 204 POST auth/userpass/users/alice '{"password":"correct horse battery","token_policies":"app-read","token_ttl":"15m"}'
expect_status 200 LIST auth/userpass/users
[ "$(json "$LAST" 'o.data.keys.join(",")')" = alice ] || fail "users list: $LAST"
TOKEN= expect_status 200 POST auth/userpass/login/alice '{"password":"correct horse battery"}'
UP_TOKEN=$(json "$LAST" o.auth.client_token)
[ "$(json "$LAST" o.auth.metadata.username)" = alice ] || fail "userpass metadata: $LAST"
[ "$(json "$LAST" o.auth.lease_duration)" = 900 ] || fail "userpass ttl: $LAST"
TOKEN=$UP_TOKEN expect_status 200 GET secret/data/app/config
TOKEN=$UP_TOKEN expect_status 403 GET secret/data/other/config
TOKEN= expect_status 400 POST auth/userpass/login/alice '{"password":"wrong"}'
grep -q 'invalid username or password' <<< "$LAST" || fail "wrong password message: $LAST"
WRONG=$LAST
TOKEN= expect_status 400 POST auth/userpass/login/mallory '{"password":"wrong"}'
[ "$LAST" = "$WRONG" ] || fail "unknown user answered differently: $LAST vs $WRONG"
expect_status 204 POST auth/userpass/users/alice/password '{"password":"new password"}'
TOKEN= expect_status 400 POST auth/userpass/login/alice '{"password":"correct horse battery"}'
pass "userpass over HTTP: login, policy enforced, wrong password and unknown user look the same"

c write auth/userpass/login/alice password="new password" > "$WORK/up.txt" || fail "cli userpass login: $(cat "$WORK/up.txt")"
UP_CLI=$(awk '$1 == "token" { print $2 }' "$WORK/up.txt")
[ "$(CUSTOS_TOKEN=$UP_CLI c kv get -field=db_password secret/app/config)" = app-s3cret ] ||
  fail "cli kv get with the userpass token"
if CUSTOS_TOKEN=$UP_CLI c kv get secret/other/config > /dev/null 2>&1; then
  fail "userpass token read outside its policy"
fi
if c write auth/userpass/login/alice password=nope > /dev/null 2>&1; then fail "cli wrong password"; fi
pass "cli: write auth/userpass/login/alice -> token; kv get inside the policy, denied outside"

# --- survives a restart (HMAC key and hashes come back from storage) ---------------------------
stop_server
start_server "$WORK/c.hcl"
TOKEN= expect_status 200 PUT sys/unseal "{\"key\":\"${KEYS[0]}\"}"
TOKEN= expect_status 200 POST auth/approle/login "{\"role_id\":\"$ROLE_ID\",\"secret_id\":\"$SECRET_ID\"}"
TOKEN= expect_status 200 POST auth/userpass/login/alice '{"password":"new password"}'
pass "approle and userpass logins work after a restart and unseal"
UP_AFTER=$(json "$LAST" o.auth.client_token)

# --- tokens expire on schedule (their own leases), and go with their auth method --------------
# A parent with a 5 s TTL and a child renewed past it: nobody presents the parent again, yet its
# lease revokes it on time with its tree, so the child stops working although its own TTL runs.
expect_status 204 PUT sys/policies/acl/creator \
  '{"policy":"path \"auth/token/create\" { capabilities = [\"update\"] }"}'
expect_status 200 POST auth/token/create '{"policies":["creator"],"ttl":"5s"}'
PARENT=$(json "$LAST" o.auth.client_token)
TOKEN=$PARENT expect_status 200 POST auth/token/create '{"policies":["default"],"ttl":"3s"}'
CHILD=$(json "$LAST" o.auth.client_token)
TOKEN=$CHILD expect_status 200 POST auth/token/renew-self '{"increment":"60s"}'
[ "$(json "$LAST" o.auth.lease_duration)" = 60 ] || fail "child renewal: $LAST"
for _ in $(seq 150); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Vault-Token: $CHILD" "$ADDR/v1/auth/token/lookup-self")
  [ "$code" = 403 ] && break
  sleep 0.1
done
[ "$code" = 403 ] || fail "the child of an expired parent still works ($code)"
pass "an unpresented parent's lease revoked it on time, with a child renewed past it"

TOKEN=$UP_AFTER expect_status 200 GET auth/token/lookup-self
expect_status 204 DELETE sys/auth/userpass
TOKEN=$UP_AFTER expect_status 403 GET auth/token/lookup-self
expect_status 200 GET auth/token/lookup-self
pass "disabling userpass revoked the tokens it issued (and only those)"
finish
