#!/bin/sh
# The one entry point of every app container (and of the end-to-end test, run natively):
#   web      migrate, then serve with gunicorn
#   worker   run ingestion tasks
#   beat     dispatch scheduled tasks (run exactly one)
#   flower   watch tasks, behind FLOWER_BASIC_AUTH
#   migrate  apply migrations and exit
# Anything else is run as a command.
set -eu

role="${1:-web}"
[ "$#" -gt 0 ] && shift

# Every process writes its metrics here and /metrics adds them up (shared by the app services).
# Counters of processes that ended stay in their files: totals survive restarts.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/kasparro-metrics}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

case "$role" in
  web)
    # Quiet: its progress is plain text; what changed in the schedule is logged as JSON.
    python manage.py migrate --noinput --verbosity 0
    # gunicorn's own lines in everyone's format: JSON, or with LOG_FORMAT=plain its plain default.
    if [ "${LOG_FORMAT:-json}" = "json" ]; then
      set -- --log-config-json docker/gunicorn-logging.json "$@"
    fi
    exec gunicorn kasparro.wsgi:application \
      --bind "${WEB_BIND:-0.0.0.0:8000}" \
      --workers "${WEB_WORKERS:-3}" \
      --timeout "${WEB_TIMEOUT:-60}" \
      --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}" \
      "$@"
    ;;
  worker)
    # -q: no banner; every line is a JSON log record.
    exec celery -A kasparro -q worker --loglevel "${LOG_LEVEL:-INFO}" --concurrency "${WORKER_CONCURRENCY:-2}" "$@"
    ;;
  beat)
    exec celery -A kasparro -q beat --loglevel "${LOG_LEVEL:-INFO}" "$@"
    ;;
  flower)
    # Flower can start and stop tasks and workers: never without a real login.
    auth="${FLOWER_BASIC_AUTH:-}"
    password="${auth#*:}"
    if [ -z "$auth" ] || [ "$password" = "$auth" ]; then
      echo "FLOWER_BASIC_AUTH is not set as user:password: refusing to serve Flower without a login" >&2
      exit 64
    fi
    if [ "${#password}" -lt 12 ] || [ "$password" = "change-me" ]; then
      echo "FLOWER_BASIC_AUTH needs a password of 12 characters or more (not the example's)" >&2
      exit 64
    fi
    exec celery -A kasparro flower --address="${FLOWER_ADDRESS:-0.0.0.0}" --port="${FLOWER_LISTEN_PORT:-5555}" "$@"
    ;;
  migrate)
    exec python manage.py migrate --noinput
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
