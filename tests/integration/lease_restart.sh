#!/usr/bin/env bash
# Leases against the real binary (SQLite storage) and a real PostgreSQL: a lease that expires
# while the server is down is revoked after the next unseal; revoking a token revokes the
# credentials obtained with it; unmounting revokes the mount's leases.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pg.sh"
pg_start
write_config "$WORK/c.hcl" "storage \"sqlite\" { path = \"$WORK/custos.db\" }"
start_server "$WORK/c.hcl"
init_unseal 1 1

expect_status 204 POST sys/mounts/database '{"type":"database"}'
expect_status 204 POST database/config/pg "{\"plugin_name\":\"postgresql-database-plugin\",
  \"connection_url\":\"postgresql://{{username}}:{{password}}@127.0.0.1:$PG_PORT/postgres?sslmode=disable\",
  \"username\":\"$PG_USER\",\"password\":\"$PG_PASSWORD\",\"allowed_roles\":\"*\"}"
create='["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '"'"'{{password}}'"'"' VALID UNTIL '"'"'{{expiration}}'"'"';"]'
expect_status 204 POST database/roles/short "{\"db_name\":\"pg\",\"creation_statements\":$create,\"default_ttl\":\"8s\",\"max_ttl\":\"1h\"}"
expect_status 204 POST database/roles/long "{\"db_name\":\"pg\",\"creation_statements\":$create,\"default_ttl\":\"1h\",\"max_ttl\":\"2h\"}"

# 1. Expired while down -> revoked after unseal.
expect_status 200 GET database/creds/short
issued=$(date +%s)
read -r user pass lease dur < <(json "$LAST" '[o.data.username,o.data.password,o.lease_id,o.lease_duration].join(" ")'; echo)
[ "$dur" = "8" ] || fail "lease_duration: $LAST"
pg_login "$user" "$pass" || fail "dynamic user $user cannot log in"
pass "dynamic credentials log in ($lease)"
expect_status 200 PUT sys/leases/lookup "{\"lease_id\":\"$lease\"}"
stop_server
while [ "$(date +%s)" -le $((issued + 9)) ]; do sleep 0.5; done  # bounded: ~9 s
pg_role_exists "$user" || fail "role vanished while the server was down"
start_server "$WORK/c.hcl"
expect_status 200 PUT sys/unseal "{\"key\":\"${KEYS[0]}\"}"
for _ in $(seq 150); do pg_role_exists "$user" || break; sleep 0.2; done
pg_role_exists "$user" && fail "role $user still exists 30s after unseal"
expect_status 400 PUT sys/leases/lookup "{\"lease_id\":\"$lease\"}"
pass "lease expired while down was revoked after unseal"

# 2. Revoking a token revokes the leases obtained with it.
expect_status 200 POST auth/token/create '{"policies":["root"]}'
child=$(json "$LAST" o.auth.client_token)
saved=$TOKEN
TOKEN=$child expect_status 200 GET database/creds/long
cuser=$(json "$LAST" o.data.username)
TOKEN=$saved
pg_role_exists "$cuser" || fail "child credentials were not created"
expect_status 204 POST auth/token/revoke "{\"token\":\"$child\"}"
for _ in $(seq 50); do pg_role_exists "$cuser" || break; sleep 0.2; done
pg_role_exists "$cuser" && fail "token revocation left $cuser"
pass "token revocation revoked its credentials"

# 3. Renew via the legacy path, list, then unmount revokes the rest.
expect_status 200 GET database/creds/long
luser=$(json "$LAST" o.data.username)
llease=$(json "$LAST" o.lease_id)
expect_status 200 PUT "sys/renew/$llease" '{"increment":"30m"}'
[ "$(json "$LAST" o.lease_id)" = "$llease" ] || fail "renew answered: $LAST"
expect_status 200 LIST sys/leases/lookup/database/creds/long/
expect_status 200 GET sys/leases/count
expect_status 204 DELETE sys/mounts/database
pg_role_exists "$luser" && fail "unmount left $luser"
pass "unmount revoked the mount's leases"
finish
