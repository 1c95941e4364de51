#!/usr/bin/env bash
# `custos operator migrate` (docs/configuration.md, "Migrating storage"): a SQLite store with a
# secret, a token and a policy, copied to a real etcd, then served from etcd and unsealed with the
# same keys. A running server's store is refused (its lock), as is a destination that is not empty.
source "$(dirname "$0")/lib.sh"

start_etcd mig

write_config "$WORK/sqlite.hcl" "storage \"sqlite\" { path = \"$WORK/custos.db\" }"
start_server "$WORK/sqlite.hcl"
init_unseal 3 2
expect_status 204 POST sys/mounts/secret '{"type":"kv","options":{"version":"2"}}'
expect_status 200 POST secret/data/app '{"data":{"password":"moved-to-etcd"}}'
expect_status 200 POST secret/data/app '{"data":{"password":"moved-to-etcd-v2"}}'
expect_status 204 PUT sys/policies/acl/reader '{"policy":"path \"secret/data/*\" { capabilities = [\"read\"] }"}'
expect_status 200 POST auth/token/create '{"policies":["reader"]}'
READER=$(json "$LAST" o.auth.client_token)

cat > "$WORK/migrate.hcl" <<CFG
storage_source "sqlite" {
  path = "$WORK/custos.db"
}
storage_destination "etcd" {
  address = "$ETCD_URL"
  path    = "/migrated/"
}
CFG
# A mistyped source path: refused, and no empty database made.
sed "s|$WORK/custos.db|$WORK/typo.db|" "$WORK/migrate.hcl" > "$WORK/typo.hcl"
"$CUSTOS" operator migrate -config "$WORK/typo.hcl" > "$WORK/m0" 2>&1 && fail "migrated from a missing file"
grep -q "typo.db does not exist" "$WORK/m0" && [ ! -e "$WORK/typo.db" ] || fail "missing source: $(cat "$WORK/m0")"
# The server still holds its store: refused, nothing copied.
"$CUSTOS" operator migrate -config "$WORK/migrate.hcl" > "$WORK/m1" 2>&1 && fail "migrated a store in use"
grep -q "opening storage_source" "$WORK/m1" || fail "no clear error: $(cat "$WORK/m1")"
stop_server
"$CUSTOS" operator migrate -config "$WORK/migrate.hcl" > "$WORK/m2" 2> "$WORK/m2.err" ||
  fail "migrate: $(cat "$WORK/m2" "$WORK/m2.err")"
grep -q "Success! Migrated [0-9]* keys .* from sqlite to etcd, each read back and compared" "$WORK/m2" ||
  fail "migrate output: $(cat "$WORK/m2")"
pass "operator migrate copied the stopped SQLite store to etcd ($(grep -o 'Migrated [0-9]* keys' "$WORK/m2"))"

# Again: the destination is not empty now.
"$CUSTOS" operator migrate -config "$WORK/migrate.hcl" > "$WORK/m3" 2>&1 && fail "migrated into a non-empty store"
grep -q "not empty" "$WORK/m3" || fail "no clear error: $(cat "$WORK/m3")"
pass "a second migration into the same prefix is refused"

write_config "$WORK/etcd.hcl" "storage \"etcd\" {
  address = \"$ETCD_URL\"
  path    = \"/migrated/\"
}"
start_server "$WORK/etcd.hcl"
expect_status 200 GET sys/seal-status
[ "$(json "$LAST" o.initialized)" = true ] && [ "$(json "$LAST" o.sealed)" = true ] ||
  fail "the copy should be initialised and sealed: $LAST"
for k in 1 2; do expect_status 200 PUT sys/unseal "{\"key\":\"${KEYS[$k]}\"}"; done
expect_status 200 GET secret/data/app
[ "$(json "$LAST" o.data.data.password)" = moved-to-etcd-v2 ] && [ "$(json "$LAST" o.data.metadata.version)" = 2 ] ||
  fail "secret after migration: $LAST"
TOKEN=$READER expect_status 200 GET secret/data/app
TOKEN=$READER expect_status 403 GET sys/mounts
pass "served from etcd: unsealed with the same keys; secret versions, the policy and a token came along"
finish
