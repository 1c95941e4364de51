#!/usr/bin/env bash
# Acceptance: the node-vault client against the real server (SQLite storage) and a real
# PostgreSQL 15 started here, so the database-secrets + lease case runs too: all 10 cases pass.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pg.sh"
pg_start
write_config "$WORK/c.hcl" "storage \"sqlite\" { path = \"$WORK/custos.db\" }"
start_server "$WORK/c.hcl"
cd "$(dirname "$0")/../acceptance"
[ -d node_modules/node-vault ] || fail "node-vault is not installed (run scripts/install-deps)"
VAULT_ADDR=$ADDR VAULT_TEST_PG="127.0.0.1:$PG_PORT:$PG_USER:$PG_PASSWORD" \
  timeout 300 node --test node-vault-e2e.test.js > "$WORK/node.log" 2>&1 \
  || { cat "$WORK/node.log"; fail "node-vault acceptance test failed"; }
grep -q '^# fail 0' "$WORK/node.log" || { cat "$WORK/node.log"; fail "node-vault reported failures"; }
grep -q '^# skipped 0' "$WORK/node.log" || { cat "$WORK/node.log"; fail "node-vault skipped a case"; }
grep -q '^# pass 11' "$WORK/node.log" || { cat "$WORK/node.log"; fail "expected 11 passing node-vault cases"; }
pass "node-vault acceptance with PostgreSQL ($(grep '^# pass' "$WORK/node.log"))"
# No dynamic role outlived the test: the test revoked its lease and unmounted the engine.
left=$(pg_sql "select count(*) from pg_roles where rolname like 'v-%'")
[ "$left" = "0" ] || fail "$left dynamic roles are left in PostgreSQL"
pass "no dynamic roles left behind"
finish
