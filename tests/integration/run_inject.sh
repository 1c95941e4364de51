#!/usr/bin/env bash
# `custos run` injects released secrets into programs that know nothing about Custos: an
# unmodified shell script and a small C program (compiled here with cc), through environment
# variables and through files (private tmpfs in a mount namespace, and sealed memfds). The
# program's own flags pass through untouched, its exit status is custos run's, a modified program
# is refused before it runs, and no secret reaches the server log or the audit log.
source "$(dirname "$0")/lib.sh"
command -v cc > /dev/null || { echo "skip: no C compiler"; exit 0; }

start_dev
unset VAULT_ADDR VAULT_TOKEN CUSTOS_TOKEN CUSTOS_ADDR
expect_status 204 PUT sys/audit/file "{\"type\":\"file\",\"options\":{\"file_path\":\"$WORK/audit.log\"}}"

kbs() {
  local args=(-s -o "$WORK/kresp" -w '%{http_code}' -X "$1" --max-time 30 -H "X-Vault-Token: $TOKEN")
  [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  CODE=$(curl "${args[@]}" "$ADDR/$2" || echo 000)
  BODY=$(cat "$WORK/kresp" 2>/dev/null || true)
  [[ "$CODE" == 2* ]] || fail "$1 $2: HTTP $CODE: $BODY"
}

# The workloads. Neither knows Custos: they read environment variables and files.
mkdir -p "$WORK/bin"
cat > "$WORK/bin/app.sh" <<'S'
#!/bin/sh
out=$1; shift
{
  printf 'APP_KEY=%s\n' "$APP_KEY"
  printf 'DB_CFG=%s\n' "$DB_CFG"
  for f in "$@"; do printf 'file=%s\n' "$(cat "$f")"; done
} > "$out"
exit 7
S
chmod +x "$WORK/bin/app.sh"
cat > "$WORK/app.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char** argv) {
  FILE* out = fopen(argv[1], "w");
  if (!out) return 1;
  const char* k = getenv("APP_KEY");
  fprintf(out, "APP_KEY=%s\n", k ? k : "");
  for (int i = 2; i < argc; ++i) {
    if (argv[i][0] == '-') { fprintf(out, "arg=%s\n", argv[i]); continue; }
    char buf[256] = {0};
    FILE* f = fopen(argv[i], "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f) fclose(f);
    fprintf(out, "file=%.*s\n", (int)n, buf);
  }
  return fclose(out) == 0 ? 0 : 1;
}
C
cc -O1 -o "$WORK/bin/app" "$WORK/app.c" || fail "cc"
MR_SH=$(sha256sum "$WORK/bin/app.sh" | cut -d' ' -f1)
MR_C=$(sha256sum "$WORK/bin/app" | cut -d' ' -f1)
POLICY="{\"tee\":[\"sim\"],\"sgx\":{\"mrenclave\":[\"$MR_SH\",\"$MR_C\"]}}"

# A key whose bytes are printable (so it can travel in an environment variable) and a resource.
APP_KEY=inject-key-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')-0123456789
APP_KEY=${APP_KEY:0:32}
kbs POST kbs/v1/key-transfer-policies "$(echo "$POLICY" | sed 's/^{/{"id":"inject",/')"
kbs POST kbs/v1/keys "{\"key_information\":{\"algorithm\":\"AES\",\"key_length\":256,\"key_string\":\"$(printf %s "$APP_KEY" | base64 -w0)\"},\"transfer_policy_id\":\"inject\"}"
KID=$(json "$BODY" o.key_information.id)
DB_CFG="postgres://app:res-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')@db/app"
curl -s -f -o /dev/null -X PUT -H "X-Vault-Token: $TOKEN" --data-binary "$DB_CFG" \
  "$ADDR/kbs/v0/resource/apps/db/url" || fail "resource upload"
kbs PUT kbs/v0/resource-policy/apps/db/url "$POLICY"

SEC="$WORK/secrets"
RUN=("$CUSTOS" run --tee sim --kbs "$ADDR" --sim-dir "$WORK/sim"
  --secret APP_KEY=key:"$KID" --secret DB_CFG=kbs:///apps/db/url
  --secret-file "$SEC/app.key=key:$KID" --secret-file "$SEC/db.url=kbs:///apps/db/url")

expected() {
  printf 'APP_KEY=%s\n' "$APP_KEY"
  [ "$1" = sh ] && printf 'DB_CFG=%s\n' "$DB_CFG"
  if [ "$1" = c ]; then
    printf 'arg=-single\nfile=%s\narg=--double\nfile=%s\n' "$APP_KEY" "$DB_CFG"
  else
    printf 'file=%s\nfile=%s\n' "$APP_KEY" "$DB_CFG"
  fi
}

for mode in namespace memfd; do
  set +e
  "${RUN[@]}" --file-mode $mode -- "$WORK/bin/app.sh" "$WORK/sh-$mode.out" "$SEC/app.key" "$SEC/db.url" 2> "$WORK/err"
  rc=$?
  set -e
  [ $rc = 7 ] || fail "$mode: shell workload exit status $rc (want 7): $(cat "$WORK/err")"
  diff <(expected sh) "$WORK/sh-$mode.out" > /dev/null || fail "$mode: shell workload saw: $(cat "$WORK/sh-$mode.out")"
  grep -q 'env \[APP_KEY, DB_CFG\]' "$WORK/err" || fail "$mode: injected-names line: $(cat "$WORK/err")"
  if grep -q "$APP_KEY\|$DB_CFG" "$WORK/err"; then fail "$mode: secret value on stderr"; fi

  "${RUN[@]}" --file-mode $mode -- "$WORK/bin/app" "$WORK/c-$mode.out" -single "$SEC/app.key" --double "$SEC/db.url" 2> "$WORK/err" ||
    fail "$mode: C workload: $(cat "$WORK/err")"
  diff <(expected c) "$WORK/c-$mode.out" > /dev/null || fail "$mode: C workload saw: $(cat "$WORK/c-$mode.out")"

  # From outside the program the secret paths hold nothing readable.
  for f in "$SEC/app.key" "$SEC/db.url"; do
    if [ -e "$f" ] && cat "$f" 2>/dev/null | grep -q "$APP_KEY\|$DB_CFG"; then fail "$mode: $f readable outside the program"; fi
  done
  pass "$mode: env + files reach an unmodified shell script (exit 7 passed through) and a C program (-single/--double untouched); nothing readable outside"
done

# Unprivileged: the namespace mode goes through a user namespace that maps the caller's own uid.
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null && unshare -Urm true 2> /dev/null; then
  chmod 711 "$WORK"
  mkdir -p "$WORK/u" && cp -r "$WORK/sim" "$WORK/u/sim" && chown -R 65534:65534 "$WORK/u"
  setpriv --reuid=65534 --regid=65534 --clear-groups "$CUSTOS" run --tee sim --kbs "$ADDR" \
    --sim-dir "$WORK/u/sim" --file-mode namespace --secret-file "$WORK/u/s/app.key=key:$KID" \
    -- "$WORK/bin/app" "$WORK/u/out" "$WORK/u/s/app.key" 2> "$WORK/err" || fail "unprivileged run: $(cat "$WORK/err")"
  [ "$(cat "$WORK/u/out")" = "$(printf 'APP_KEY=\nfile=%s' "$APP_KEY")" ] || fail "unprivileged run saw: $(cat "$WORK/u/out")"
  [ -z "$(ls -A "$WORK/u/s")" ] || fail "unprivileged: secret visible on the host"
  pass "unprivileged (uid 65534): private tmpfs through a user namespace, program keeps its uid"
fi

cp "$WORK/bin/app.sh" "$WORK/bin/app2.sh"
echo '# modified' >> "$WORK/bin/app2.sh"
if "${RUN[@]}" -- "$WORK/bin/app2.sh" "$WORK/evil.out" 2> "$WORK/err"; then fail "modified program was run with secrets"; fi
[ ! -e "$WORK/evil.out" ] || fail "modified program ran"
grep -q 'policy.denied' "$WORK/err" || fail "refusal reason: $(cat "$WORK/err")"
pass "modified program refused before exec: $(head -c 120 "$WORK/err")"

[ -s "$WORK/audit.log" ] || fail "audit log is empty"
grep -q 'kbs/v1/keys/' "$WORK/audit.log" || fail "audit log misses the transfers"
for s in "$APP_KEY" "$DB_CFG" "$(printf %s "$APP_KEY" | base64 -w0)"; do
  if grep -qF "$s" "$WORK/audit.log"; then fail "secret in audit log"; fi
  if grep -qF "$s" "$WORK/server.log"; then fail "secret in server log"; fi
done
pass "no secret in the server log or the audit log (transfers are audited)"
finish
