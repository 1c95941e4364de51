# A throwaway PostgreSQL 15 cluster for integration tests (source after lib.sh). Bash twin of
# tests/support/postgres.h: 127.0.0.1 on a free port, unix socket in the cluster dir, the admin
# trusted on the socket and password-authenticated (scram) over TCP, run as `nobody` because
# initdb refuses root. Every wait is bounded; pg_stop runs on exit.
#   pg_start            sets PG_DIR PG_PORT PG_USER PG_PASSWORD PG_HOST
#   pg_sql "SQL"        runs SQL as the admin over the socket, prints the result (-At)
#   pg_login USER PASS  succeeds if USER can log in over TCP with PASS
#   pg_role_exists NAME
#   pg_stop
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR=""
PG_HOST=127.0.0.1
PG_USER=custos_admin
PG_PORT=""
PG_PASSWORD=""

pg_free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

pg_start() {
  [ -x "$PG_BIN/initdb" ] || fail "PostgreSQL 15 is not installed ($PG_BIN)"
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/custos-pg.XXXXXX")
  PG_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
  echo "$PG_PASSWORD" > "$PG_DIR/pwfile"
  chown -R nobody "$PG_DIR"
  runuser -u nobody -- "$PG_BIN/initdb" -D "$PG_DIR/data" -U "$PG_USER" --pwfile="$PG_DIR/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -N -E UTF8 --locale=C > "$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; fail "initdb failed"; }
  rm -f "$PG_DIR/pwfile"
  local attempt
  for attempt in 1 2 3; do
    PG_PORT=$(pg_free_port)
    if runuser -u nobody -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c synchronous_commit=off" \
        start > /dev/null 2>&1; then
      return 0
    fi
  done
  tail -20 "$PG_DIR/server.log" >&2 || true
  fail "pg_ctl start failed"
}

pg_stop() {
  [ -n "$PG_DIR" ] && [ -d "$PG_DIR/data" ] || return 0
  if [ -f "$PG_DIR/data/postmaster.pid" ]; then
    runuser -u nobody -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 15 stop > /dev/null 2>&1 || {
      local pid
      pid=$(head -1 "$PG_DIR/data/postmaster.pid" 2>/dev/null || true)
      [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
      sleep 1
    }
  fi
  rm -rf "$PG_DIR"
  PG_DIR=""
}

pg_sql() { psql -h "$PG_DIR" -p "$PG_PORT" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1 -Atc "$1"; }

pg_login() {
  PGPASSWORD=$2 PGCONNECT_TIMEOUT=5 psql -h "$PG_HOST" -p "$PG_PORT" -U "$1" -d postgres -Atc 'select 1' > /dev/null 2>&1
}

pg_role_exists() {
  # The name goes in as a psql variable, quoted by psql (:'name'), never spliced into SQL.
  local n
  n=$(psql -h "$PG_DIR" -p "$PG_PORT" -U "$PG_USER" -d postgres -At -v name="$1" 2>/dev/null \
    <<< "select count(*) from pg_roles where rolname = :'name';" || echo error)
  [ "$n" != "0" ]
}

# Chain onto lib.sh's EXIT trap: stop the cluster first, then the server and $WORK.
trap 'pg_stop; cleanup' EXIT
