#!/usr/bin/env bash
# sys/metrics on the real server with SQLite storage: a vault.conf-style telemetry stanza starts,
# the scrape needs a token that may read sys/metrics, and after durable KV writes the Prometheus
# text is well formed and counts the requests, commits and fsyncs that happened.
source "$(dirname "$0")/lib.sh"

write_config "$WORK/c.hcl" "storage \"sqlite\" { path = \"$WORK/custos.db\" }"
cat >> "$WORK/c.hcl" << 'CFG'
telemetry {
  prometheus_retention_time = "30s"
  disable_hostname = true
}
CFG
start_server "$WORK/c.hcl"
init_unseal 1 1
expect_status 204 POST sys/mounts/secret '{"type":"kv","options":{"version":"2"}}'
for i in $(seq 20); do expect_status 200 POST "secret/data/m$i" "{\"data\":{\"v\":\"$i\"}}"; done
pass "a telemetry stanza is accepted; 20 durable KV v2 writes"

scrape() { curl -s -o "$WORK/metrics" -w '%{http_code} %{content_type}' --max-time 10 "$@" "$ADDR/v1/sys/metrics?format=prometheus"; }
out=$(scrape)
[ "${out%% *}" = 403 ] || fail "a scrape without a token: $out"
out=$(scrape -H "Authorization: Bearer $TOKEN")
[ "${out%% *}" = 200 ] || fail "scrape: $out $(head -c 200 "$WORK/metrics")"
[[ "${out#* }" == text/plain* ]] || fail "content type: $out"
pass "sys/metrics needs a token (403 without); with one: 200 text/plain"

# Every line is a comment (HELP/TYPE) or a sample `name{labels} value`; every sample's family
# was TYPEd before it.
bad=$(awk '
  /^# (HELP|TYPE) / { if ($2 == "TYPE") typed[$3] = 1; next }
  /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+0-9.eE]+(Inf)?$/ {
    name = $1; sub(/\{.*/, "", name); base = name; sub(/_(bucket|sum|count)$/, "", base)
    if (!(name in typed) && !(base in typed)) { print "untyped: " $0; exit }
    next
  }
  { print "malformed: " $0; exit }' "$WORK/metrics")
[ -z "$bad" ] || fail "exposition format: $bad"
value() { awk -v s="$1" '$1 == s { print $2 }' "$WORK/metrics"; }
[ "$(value vault_core_unsealed)" = 1 ] || fail "vault_core_unsealed: $(value vault_core_unsealed)"
posts=$(value 'custos_http_requests_total{code="2xx",method="POST"}')
[ "${posts:-0}" -ge 20 ] || fail "POST 2xx counted $posts, want >= 20"
writes=$(value custos_storage_committed_writes_total)
[ "${writes:-0}" -ge 20 ] || fail "committed writes $writes, want >= 20"
fsyncs=$(value custos_storage_fsync_seconds_count)
[ "${fsyncs:-0}" -ge 1 ] || fail "no fsync counted"
inf=$(value 'custos_storage_fsync_seconds_bucket{le="+Inf"}')
[ "$inf" = "$fsyncs" ] || fail "+Inf bucket $inf differs from the count $fsyncs"
handled=$(value vault_core_handle_request_count)
[ "${handled:-0}" -ge 22 ] || fail "handled $handled requests, want >= 22"
pass "well-formed Prometheus text: $posts POSTs, $writes committed writes, $fsyncs fsyncs, $handled requests timed"

# Vault's token and lease series: 3 service tokens (each with a lease of its own, TTL 1h) and a
# batch token. (The audit failure counters are checked in audit_full_disk.sh.)
before=$(value 'vault_token_creation{auth_method="token",token_type="service"}')
for i in 1 2 3; do expect_status 200 POST auth/token/create '{"ttl":"1h"}'; done
expect_status 200 POST auth/token/create '{"type":"batch","ttl":"1h","policies":["default"]}'
scrape -H "Authorization: Bearer $TOKEN" > /dev/null
after=$(value 'vault_token_creation{auth_method="token",token_type="service"}')
[ $(( ${after:-0} - ${before:-0} )) = 3 ] || fail "service tokens counted $before -> $after"
[ "$(value 'vault_token_creation{auth_method="token",token_type="batch"}')" = 1 ] || fail "batch token not counted"
leases=$(value vault_expire_num_leases)
[ "${leases:-0}" -ge 3 ] || fail "vault_expire_num_leases $leases, want >= 3"
pass "Vault's series: vault_token_creation by type, vault_expire_num_leases $leases"

expect_status 200 GET sys/metrics
[ "$(json "$LAST" 'o.Gauges.find(g => g.Name === "vault_core_unsealed").Value')" = 1 ] ||
  fail "JSON form: $(echo "$LAST" | head -c 300)"
pass "without format: Vault's JSON shape (Gauges, Counters, Samples)"
finish
