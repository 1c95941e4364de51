#!/usr/bin/env bash
# Acceptance: the real node-vault client (npm) against a fresh, uninitialised server with SQLite
# storage. The test initialises, unseals, and drives kv v1/v2, policies, tokens, transit, seal.
source "$(dirname "$0")/lib.sh"
write_config "$WORK/c.hcl" "storage \"sqlite\" { path = \"$WORK/custos.db\" }"
start_server "$WORK/c.hcl"
cd "$(dirname "$0")/../acceptance"
[ -d node_modules/node-vault ] || fail "node-vault is not installed (run scripts/install-deps)"
VAULT_ADDR=$ADDR node --test node-vault-e2e.test.js > "$WORK/node.log" 2>&1 || { cat "$WORK/node.log"; fail "node-vault acceptance test failed"; }
grep -q '^# fail 0' "$WORK/node.log" || { cat "$WORK/node.log"; fail "node-vault reported failures"; }
grep -q '^# pass 10' "$WORK/node.log" || { cat "$WORK/node.log"; fail "expected 10 passing node-vault cases"; }
pass "node-vault acceptance ($(grep '^# pass' "$WORK/node.log"), PostgreSQL case runs in node_vault_pg.sh)"
finish
