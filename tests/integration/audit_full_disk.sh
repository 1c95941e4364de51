#!/usr/bin/env bash
# An audit device that cannot write must fail requests (never let them run unaudited), with a clear
# error, and lose nothing: the audit log lives on a 64 KiB tmpfs mounted in a private mount
# namespace (needs root, as CI has), which the test fills until writes fail.
source "$(dirname "$0")/lib.sh"
if [ "${INSIDE_NS:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || fail "this test needs root to mount a small tmpfs in a private mount namespace"
  INSIDE_NS=1 exec unshare -m bash "$0"
fi
mkdir -p "$WORK/tiny"
mount -t tmpfs -o size=64k tmpfs "$WORK/tiny" || fail "cannot mount a tmpfs"
write_config "$WORK/c.hcl" 'storage "inmem" {}'
start_server "$WORK/c.hcl"
init_unseal 1 1
expect_status 204 POST sys/mounts/kv '{"type":"kv"}'
expect_status 204 PUT sys/audit/file "{\"type\":\"file\",\"options\":{\"file_path\":\"$WORK/tiny/audit.log\"}}"
expect_status 204 POST kv/before '{"v":"1"}'
grep -q '"path":"kv/before"' "$WORK/tiny/audit.log" || fail "audit log misses kv/before"
pass "audit device on a 64 KiB filesystem records requests"

# Fill the filesystem with large audited requests. A request whose request entry cannot be written
# must not run; one whose response entry cannot be written already ran and must say so.
PAYLOAD=$(head -c 3000 /dev/zero | tr '\0' 'x')
not_processed=""
processed=()
for i in $(seq 1 200); do
  out=$(api POST "kv/fill$i" "{\"v\":\"$PAYLOAD\"}")
  code=${out%% *}
  [ "$code" = 204 ] && continue
  [ "$code" = 500 ] || fail "expected 500 when the audit device cannot write, got $out"
  if echo "$out" | grep -q 'the request was not processed'; then not_processed=$i; LAST=${out#* }; break; fi
  echo "$out" | grep -q 'the request was processed, but' || fail "unclear audit error: $out"
  processed+=("$i")
done
[ -n "$not_processed" ] || fail "the audit filesystem never filled up"
pass "request $not_processed refused with a clear error once nothing could be audited: $LAST"

out=$(api GET "kv/fill$not_processed")
[ "${out%% *}" = 500 ] || fail "reads must fail too while nothing can be audited, got $out"
: > "$WORK/tiny/audit.log"   # the operator frees space
expect_status 404 GET "kv/fill$not_processed"
for i in "${processed[@]}"; do expect_status 200 GET "kv/fill$i"; done
expect_status 200 GET kv/before
[ "$(json "$LAST" o.data.v)" = 1 ] || fail "earlier data lost"
expect_status 204 POST kv/after '{"v":"2"}'
grep -q '"path":"kv/after"' "$WORK/tiny/audit.log" || fail "audit resumes after space is freed"
pass "refused write absent, ${#processed[@]} processed-but-unaudited-response writes present as reported, earlier data intact, auditing resumes"
# Vault's failure counters saw both kinds.
curl -s -o "$WORK/metrics" -H "X-Vault-Token: $TOKEN" "$ADDR/v1/sys/metrics?format=prometheus"
req_fail=$(awk '$1 == "vault_audit_log_request_failure" { print $2 }' "$WORK/metrics")
resp_fail=$(awk '$1 == "vault_audit_log_response_failure" { print $2 }' "$WORK/metrics")
[ "${req_fail:-0}" -ge 2 ] && [ "${resp_fail:-0}" -ge "${#processed[@]}" ] ||
  fail "audit failure counters: request $req_fail, response $resp_fail (want >= 2 and >= ${#processed[@]})"
pass "vault_audit_log_request_failure $req_fail, vault_audit_log_response_failure $resp_fail"
stop_server
umount "$WORK/tiny" || true
finish
