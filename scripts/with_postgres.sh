#!/usr/bin/env bash
# Run a command with DATABASE_URL pointing at PostgreSQL (never SQLite). Where it comes from:
#   1. DATABASE_URL, if set;
#   2. a server on 127.0.0.1:5432 accepting user postgres;
#   3. a throwaway cluster made with the installed PostgreSQL server binaries, removed afterwards.
# With WITH_POSTGRES_OPTIONAL=1 and none of these, the command runs without DATABASE_URL (SQLite).
# Usage: scripts/with_postgres.sh <database name> <command...>
set -euo pipefail
cd "$(dirname "$0")/.."
DB_NAME="$1"
shift
PY=.venv/bin/python

can_connect() {
  "$PY" - "$1" <<'PYEOF' >/dev/null 2>&1
import sys
import psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PYEOF
}

find_server_bin_dir() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return 0
  fi
  local candidate
  candidate=$(ls -d /usr/lib/postgresql/*/bin /usr/local/pgsql/bin /opt/homebrew/opt/postgresql*/bin 2>/dev/null \
    | sort -V | tail -n 1 || true)
  if [ -n "$candidate" ] && [ -x "$candidate/initdb" ]; then
    echo "$candidate"
    return 0
  fi
  return 1
}

start_throwaway_cluster() {
  local bin_dir="$1"
  TMP_PG=$(mktemp -d "${TMPDIR:-/tmp}/experiments-api-pg.XXXXXX")
  local port
  port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  local run_as=()
  if [ "$(id -u)" = "0" ]; then
    # initdb refuses to run as root: run the cluster as an unprivileged system user.
    local pg_user=postgres
    id "$pg_user" >/dev/null 2>&1 || pg_user=nobody
    chown "$pg_user" "$TMP_PG"
    run_as=(runuser -u "$pg_user" --)
  fi
  "${run_as[@]}" "$bin_dir/initdb" -D "$TMP_PG/data" -U postgres --auth=trust -E UTF8 >"$TMP_PG/initdb.log" 2>&1
  "${run_as[@]}" "$bin_dir/pg_ctl" -D "$TMP_PG/data" -l "$TMP_PG/server.log" -w \
    -o "-p $port -k $TMP_PG -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null
  STOP_CMD=("${run_as[@]}" "$bin_dir/pg_ctl" -D "$TMP_PG/data" -m fast stop)
  trap 'set +e; "${STOP_CMD[@]}" >/dev/null 2>&1; rm -rf "$TMP_PG"' EXIT
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/$DB_NAME"
  echo "Started a throwaway PostgreSQL cluster on 127.0.0.1:$port ($bin_dir)."
}

if [ -n "${DATABASE_URL:-}" ]; then
  case "$DATABASE_URL" in
    postgres://*|postgresql://*|pgsql://*) ;;
    *) echo "DATABASE_URL must point at PostgreSQL (got ${DATABASE_URL%%:*})." >&2; exit 2 ;;
  esac
elif can_connect "host=127.0.0.1 port=5432 user=postgres dbname=postgres"; then
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB_NAME"
elif bin_dir=$(find_server_bin_dir); then
  start_throwaway_cluster "$bin_dir"
elif [ "${WITH_POSTGRES_OPTIONAL:-}" = 1 ]; then
  echo "No PostgreSQL found: running on SQLite." >&2
else
  echo "This needs PostgreSQL: set DATABASE_URL, run a server on 127.0.0.1:5432 for user postgres, or install one (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql)." >&2
  exit 2
fi

"$@"
