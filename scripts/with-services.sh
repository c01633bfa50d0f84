#!/usr/bin/env bash
# Run a command with the services the tests need, then clean up what this script started.
#
# PostgreSQL: $DATABASE_URL when set; else the local server on 127.0.0.1:5432 when it answers;
# else a throwaway cluster started from the installed binaries (installed with apt if missing).
# Redis: the distributed tests start private redis-server (and PostgreSQL) instances on free
# ports, since they stop and restart them; this script makes sure the binaries are installed.
# It never carries on without them: the tests that need them must run, not skip.
set -euo pipefail

started=()
cleanup() {
  for dir in "${started[@]:-}"; do
    [ -n "$dir" ] || continue
    run_as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
  done
}
trap cleanup EXIT

run_as_pg() {
  # initdb refuses to run as root; the throwaway cluster belongs to the postgres user then.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

find_pg_bin() {
  local bin
  for bin in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
    [ -x "$bin/initdb" ] && { echo "$bin"; return 0; }
  done
  return 1
}

apt_install() {
  echo "with-services: installing $* with apt-get" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq "$@" >/dev/null; fi
}

command -v redis-server >/dev/null || apt_install redis-server
command -v redis-server >/dev/null || { echo "with-services: redis-server could not be installed" >&2; exit 1; }
find_pg_bin >/dev/null || apt_install postgresql
PG_BIN=$(find_pg_bin) || { echo "with-services: PostgreSQL could not be installed" >&2; exit 1; }
export PG_BIN
# The test process itself runs in embedded mode; tests that need a broker start their own.
unset REDIS_URL
# Debug stays off in tests, as in production, so the app needs a key: a throwaway one.
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-test-only-$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')}"

if [ -z "${DATABASE_URL:-}" ]; then
  if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/kasparro"
  else
    dir=$(mktemp -d /tmp/kasparro-pg.XXXXXX)
    started+=("$dir")
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port=$(free_port)
    run_as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
    run_as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    echo "with-services: started a throwaway PostgreSQL on 127.0.0.1:$port" >&2
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/kasparro"
  fi
fi

"$@"
