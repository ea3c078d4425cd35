#!/usr/bin/env bash
# `make run`: migrate, print demo credentials, then serve, with a results worker beside the web
# server when the database is PostgreSQL (the worker's queue lives there). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"

case "${DATABASE_URL:-}" in
  postgres://*|postgresql://*|pgsql://*)
    # A fresh server (or throwaway cluster) has no database of that name yet.
    "$PY" - <<'PYEOF'
import os
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

url = urlsplit(os.environ["DATABASE_URL"])
name = url.path.lstrip("/")
with psycopg.connect(url._replace(path="/postgres").geturl(), autocommit=True) as connection:
    if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
PYEOF
    with_worker=1
    ;;
  *) with_worker=0 ;;
esac

"$PY" manage.py migrate --noinput
"$PY" manage.py collectstatic --noinput --verbosity 0
"$PY" manage.py demo_credentials --base-url "http://$HOST:$PORT"

if [ "$with_worker" = 1 ]; then
  "$PY" manage.py procrastinate worker &
  worker_pid=$!
  # Background jobs of a script ignore Ctrl-C, so the worker is stopped (gracefully) on exit.
  trap 'kill "$worker_pid" 2>/dev/null; wait "$worker_pid" 2>/dev/null || true' EXIT
  echo "Results worker running (pid $worker_pid)."
else
  echo "No PostgreSQL: result recalculations are recorded but not run (the results worker needs PostgreSQL)."
fi
"$PY" manage.py runserver "$HOST:$PORT"
