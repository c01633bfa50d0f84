"""Settings, read from the environment in this one place.

Every variable is listed in `.env.example`. A bad value stops the process at startup with a message
naming the variable, rather than failing later inside a run.
"""

import os
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from kasparro.envreader import (
    BASE_DIR,
    _bool,
    _http_url,
    _positive_float,
    _positive_int,
    _rate,
    _read,
    _secret,
    env,
)
from kasparro.openapi_settings import OPENAPI_SETTINGS

# --- Django core -----------------------------------------------------------------------------
DEBUG = _bool("DJANGO_DEBUG", False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set and DJANGO_DEBUG is off. Set it to a long random value, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))' (make run writes one into .env)."
        )
    SECRET_KEY = "insecure-debug-only-key"  # noqa: S105 (debug mode only, never served as production)
# Loopback stays allowed whatever the setting: the container healthcheck calls
# http://127.0.0.1:8000/health from inside.
ALLOWED_HOSTS = [
    *env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "testserver"]),
    "127.0.0.1",
    "localhost",
]
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS hardening, off by default so plain-HTTP local runs work; a deployment behind TLS turns it on.
SECURE_SSL_REDIRECT = _bool("DJANGO_SECURE_SSL_REDIRECT", False)
# The healthcheck speaks plain HTTP to gunicorn inside the container: never redirect it.
SECURE_REDIRECT_EXEMPT = [r"^health/?$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _bool("DJANGO_SECURE_COOKIES", False)
SECURE_HSTS_SECONDS = _read("DJANGO_SECURE_HSTS_SECONDS", env.int, 0, lambda v: v >= 0, "0 or more seconds")
SECURE_HSTS_INCLUDE_SUBDOMAINS = _bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = _bool("DJANGO_SECURE_HSTS_PRELOAD", False)
if _bool("DJANGO_BEHIND_TLS_PROXY", False):
    # The proxy terminates TLS and says so in this header; trust it only behind such a proxy.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "crypto",
]

MIDDLEWARE = [
    "crypto.services.monitor.log_context.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, API docs) from the app itself, behind gunicorn too.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "kasparro.urls"
WSGI_APPLICATION = "kasparro.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL in every mode. Without DATABASE_URL the database is the embedded server of
# kasparro/embedded_db.py (`make run` starts it; `manage.py dbserver` starts and stops it by hand).
EMBEDDED_DB_DIR = (BASE_DIR / env.str("EMBEDDED_DB_DIR", default="var/pgdata")).resolve()
EMBEDDED_DB_PORT = _read("EMBEDDED_DB_PORT", env.int, 54329, lambda v: 0 < v < 65536, "a TCP port, 1-65535")
EMBEDDED_DATABASE = not env.str("DATABASE_URL", default="")
DATABASES = {
    "default": _read(
        "DATABASE_URL",
        lambda name, default: env.db_url_config(env.str(name, default="") or default),
        f"postgres://postgres@127.0.0.1:{EMBEDDED_DB_PORT}/kasparro",
        lambda config: config.get("ENGINE") == "django.db.backends.postgresql" and bool(config.get("NAME")),
        "a PostgreSQL URL such as postgres://user@host:5432/kasparro (the only engine this project runs on)",
    ),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A dead server must answer /health quickly, not after the OS TCP timeout.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from the apps' static folders when `collectstatic` has not been run (make run).
WHITENOISE_USE_FINDERS = True

# The most bytes of upstream data one API answer carries (crypto/api/selectors.py).
API_MAX_BODY_BYTES = _positive_int("API_MAX_BODY_BYTES", 8 * 1024 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PARSER_CLASSES": [
        "crypto.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "crypto.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    # Tokens for scripts (`manage.py drf_create_token USER`), the session for the browsable API.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Reading is anonymous but throttled; counts live in the shared cache (Redis), so the limit
    # holds across every gunicorn worker and host.
    # If Redis is down they let requests through rather than fail them (crypto/api/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": [
        "crypto.api.throttling.AnonRateThrottle",
        "crypto.api.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": _rate("API_THROTTLE_ANON", "120/min"),
        "user": _rate("API_THROTTLE_USER", "1200/min"),
        "trigger": _rate("API_THROTTLE_TRIGGER", "6/min"),
    },
    # Clients are told apart by address; behind a proxy, set how many proxies add X-Forwarded-For.
    "NUM_PROXIES": _read("API_NUM_PROXIES", env.int, 0, lambda v: v >= 0, "0 or more"),
    "DEFAULT_SCHEMA_CLASS": "crypto.api.openapi.KasparroAutoSchema",
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": True,
}

# The OpenAPI schema's own description: fixed, nothing read from the environment.
SPECTACULAR_SETTINGS = OPENAPI_SETTINGS

# Every process (gunicorn and runserver, Celery workers, `manage.py ingest`) writes its metrics
# here and /metrics adds them up: set for all of them before any metric exists. Like ./var/pgdata
# by default; docker/entrypoint.sh names its own. Without a writable folder, one process's metrics.
PROMETHEUS_MULTIPROC_DIR = str((BASE_DIR / env.str("PROMETHEUS_MULTIPROC_DIR", default="var/metrics")).resolve())
try:
    os.makedirs(PROMETHEUS_MULTIPROC_DIR, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
except OSError:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

LOG_FORMAT = _read("LOG_FORMAT", env.str, "json", lambda v: v in {"json", "plain"}, "json or plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "crypto.services.monitor.log_context.ContextFilter"},
        "redact": {"()": "crypto.services.monitor.log_context.RedactFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "plain": {
            "()": "crypto.services.monitor.log_context.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context", "redact"]},
    },
    "root": {
        "handlers": ["console"],
        "level": _read(
            "LOG_LEVEL",
            env.str,
            "INFO",
            lambda v: v in {"DEBUG", "INFO", "WARNING", "ERROR"},
            "DEBUG, INFO, WARNING or ERROR",
        ),
    },
    "loggers": {
        # urllib3 logs full request lines at DEBUG; keep it quiet so nothing sensitive leaks.
        "urllib3": {"level": "WARNING"},
        # One line per request comes from RequestIdMiddleware; these would repeat it.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}

# --- Upstreams -------------------------------------------------------------------------------
# The sources, each one object in one module that owns its facts (crypto/sources/base.py Source).
INGEST_SOURCES = [
    "crypto.sources.coingecko.source",
    "crypto.sources.coinpaprika.source",
    "crypto.sources.csvfile.source",
]
COINGECKO_BASE_URL = _http_url("COINGECKO_BASE_URL", "https://api.coingecko.com/api/v3")
COINGECKO_API_KEY = _secret("COINGECKO_API_KEY")
# /coins/markets pages fetched per run (250 records each at most).
COINGECKO_PAGES = _positive_int("COINGECKO_PAGES", 2)
COINGECKO_PER_PAGE = _read(
    "COINGECKO_PER_PAGE",
    env.int,
    250,
    lambda v: 1 <= v <= 250,
    "a whole number from 1 to 250 (the API's maximum)",
)

COINPAPRIKA_BASE_URL = _http_url("COINPAPRIKA_BASE_URL", "https://api.coinpaprika.com/v1")
COINPAPRIKA_API_KEY = _secret("COINPAPRIKA_API_KEY")


def _coinpaprika_intervals() -> list[str]:
    from crypto.sources.coinpaprika import HISTORY_INTERVALS  # the source owns its facts

    return list(HISTORY_INTERVALS)


# The interval of history points asked from CoinPaprika (`manage.py backfill`): the free plan gives
# daily points a year back and hourly ones a day back; paid plans go finer.
COINPAPRIKA_HISTORY_INTERVAL = _read(
    "COINPAPRIKA_HISTORY_INTERVAL",
    env.str,
    "1d",
    lambda v: v in _coinpaprika_intervals(),
    f"one of CoinPaprika's history intervals: {', '.join(_coinpaprika_intervals())}",
)

CSV_SOURCE_PATH = env.str("CSV_SOURCE_PATH", default="")
# When set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>` (Prometheus's bearer_token).
METRICS_TOKEN = _secret("METRICS_TOKEN")
# Where people open Flower (the front page links to it when set), e.g. http://127.0.0.1:5555/.
FLOWER_URL = _read(
    "FLOWER_URL", env.str, "", lambda v: v == "" or urlparse(v).scheme in {"http", "https"}, "an http(s) URL"
)
# Rows per stored raw body when a CSV file is loaded (one raw row per chunk).
CSV_CHUNK_ROWS = _positive_int("CSV_CHUNK_ROWS", 5000)

# --- Outbound HTTP (one client for every upstream) -------------------------------------------
HTTP_CONNECT_TIMEOUT = _positive_float("HTTP_CONNECT_TIMEOUT", 5.0)
HTTP_READ_TIMEOUT = _positive_float("HTTP_READ_TIMEOUT", 30.0)
HTTP_MAX_ATTEMPTS = _positive_int("HTTP_MAX_ATTEMPTS", 5)
HTTP_BACKOFF_BASE = _positive_float("HTTP_BACKOFF_BASE", 1.0)
HTTP_BACKOFF_CAP = _positive_float("HTTP_BACKOFF_CAP", 30.0)
# Longest Retry-After the client will sleep through; a longer one fails the request as transient.
HTTP_RETRY_AFTER_CAP = _positive_float("HTTP_RETRY_AFTER_CAP", 60.0)
# An upstream answer larger than this once decompressed is refused as it is read (64 MiB).
HTTP_MAX_BODY_BYTES = _positive_int("HTTP_MAX_BODY_BYTES", 64 * 1024 * 1024)

# Calls per minute each upstream may receive from all workers together (shared through Redis).
COINGECKO_CALLS_PER_MINUTE = _positive_int("COINGECKO_CALLS_PER_MINUTE", 20)
COINPAPRIKA_CALLS_PER_MINUTE = _positive_int("COINPAPRIKA_CALLS_PER_MINUTE", 10)
# The share of each budget that history backfills may use (manage.py backfill); the rest is kept
# for the scheduled live runs, which therefore always find calls left however many windows wait.
HISTORY_BUDGET_SHARE = _read(
    "HISTORY_BUDGET_SHARE", env.float, 0.8, lambda v: 0 < v < 1, "a fraction between 0 and 1 (exclusive)"
)
# The limit's window; 60 makes the two settings above per minute. Tests shrink it.
RATE_LIMIT_WINDOW_SECONDS = _positive_int("RATE_LIMIT_WINDOW_SECONDS", 60)

# --- Scheduling and workers --------------------------------------------------------------------
# Without REDIS_URL there is no broker: tasks run in the calling process (embedded mode), the
# cache and the rate limiter live in process memory.
REDIS_URL = _read(
    "REDIS_URL",
    env.str,
    "",
    lambda v: v == "" or urlparse(v).scheme in {"redis", "rediss"},
    "a redis:// or rediss:// URL",
)

# Seconds between scheduled runs of each source, applied to the beat schedule on `migrate`.
# CoinGecko's free tier allows ~30 calls/min; CoinPaprika's ~20,000 calls/month (one per 130 s).
# Each source names its own (crypto/sources/*.py, `interval_setting`).
INGEST_INTERVAL_COINGECKO = _positive_int("INGEST_INTERVAL_COINGECKO", 300)
INGEST_INTERVAL_COINPAPRIKA = _positive_int("INGEST_INTERVAL_COINPAPRIKA", 600)
INGEST_INTERVAL_CSV = _positive_int("INGEST_INTERVAL_CSV", 900)
# A source is stale when its last success is older than this many intervals.
STALE_AFTER_INTERVALS = _positive_float("STALE_AFTER_INTERVALS", 2.0)

INGEST_SOFT_TIME_LIMIT = _positive_int("INGEST_SOFT_TIME_LIMIT", 300)
INGEST_TIME_LIMIT = _positive_int("INGEST_TIME_LIMIT", 330)
INGEST_MAX_RETRIES = _read("INGEST_MAX_RETRIES", env.int, 5, lambda v: v >= 0, "a whole number, 0 or more")
INGEST_RETRY_BACKOFF_BASE = _positive_float("INGEST_RETRY_BACKOFF_BASE", 10.0)
INGEST_RETRY_BACKOFF_CAP = _positive_int("INGEST_RETRY_BACKOFF_CAP", 300)
# Data checks (crypto/services/monitor/anomalies.py). A body whose share of invalid records exceeds
# QUARANTINE_MAX_FRACTION fails its run; below it, invalid records go to quarantine.
QUARANTINE_MAX_FRACTION = _read(
    "QUARANTINE_MAX_FRACTION", env.float, 0.5, lambda v: 0 <= v <= 1, "a number from 0 to 1"
)
DRIFT_NULL_RATE_JUMP = _read(
    "DRIFT_NULL_RATE_JUMP", env.float, 0.3, lambda v: 0 < v <= 1, "a number above 0, at most 1"
)
# Flag a run whose record count fell by more than this percent against the previous run, and
# prices that moved more than this percent since the asset's previous quote.
RUN_RECORD_DROP_PCT = _positive_float("RUN_RECORD_DROP_PCT", 50.0)
PRICE_MOVE_PCT = _positive_float("PRICE_MOVE_PCT", 50.0)
# Flag a linked asset whose two sources' prices, within this many seconds, differ by more than this percent.
PRICE_DISAGREEMENT_PCT = _positive_float("PRICE_DISAGREEMENT_PCT", 5.0)
PRICE_DISAGREEMENT_WINDOW_SECONDS = _positive_int("PRICE_DISAGREEMENT_WINDOW_SECONDS", 900)
# Redis hands an unacknowledged task to another worker after this long. It must outlast the
# longest task plus the longest retry delay, or a slow task would run twice at once.
CELERY_VISIBILITY_TIMEOUT = _positive_int(
    "CELERY_VISIBILITY_TIMEOUT", INGEST_TIME_LIMIT + INGEST_RETRY_BACKOFF_CAP + 60
)
if INGEST_SOFT_TIME_LIMIT >= INGEST_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"INGEST_SOFT_TIME_LIMIT={INGEST_SOFT_TIME_LIMIT} must be below INGEST_TIME_LIMIT={INGEST_TIME_LIMIT}"
    )
if CELERY_VISIBILITY_TIMEOUT <= INGEST_TIME_LIMIT + INGEST_RETRY_BACKOFF_CAP:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT={CELERY_VISIBILITY_TIMEOUT} must exceed INGEST_TIME_LIMIT + "
        f"INGEST_RETRY_BACKOFF_CAP = {INGEST_TIME_LIMIT + INGEST_RETRY_BACKOFF_CAP}"
    )

CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"  # a host named: kombu warns of none
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_INCLUDE = ["tasks.ingest", "tasks.backfill"]
# Backfill windows have a queue of their own, so a live run never waits behind thousands of them;
# a worker started without -Q serves both queues (`-Q celery` keeps one for live runs only).
CELERY_TASK_QUEUES = (Queue("celery"), Queue("history"))
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {"tasks.backfill_window": {"queue": "history"}}
# At-least-once: a task is acknowledged after it finished, and given back when its worker dies.
# Redelivery is safe because a run is idempotent and holds the source's advisory lock.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_SOFT_TIME_LIMIT = INGEST_SOFT_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = INGEST_TIME_LIMIT
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# The ingestion_run table is the record of every run; no result backend is needed.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_SEND_TASK_EVENTS = True  # Flower shows tasks as they run
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # keep reconnecting while Redis is away
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "socket_keepalive": True,
    "socket_timeout": 30,
    "socket_connect_timeout": 5,
    "health_check_interval": 10,
    "retry_on_timeout": True,
    # How often a worker looks for tasks whose worker died (unacknowledged past the visibility
    # timeout) and puts them back in the queue: every interval, one cheap sorted-set scan.
    "unacked_restore_interval": _positive_int("CELERY_UNACKED_RESTORE_INTERVAL", 10),
    "unacked_restore_throttle": 1,
}
# Workers and beat log through Django's LOGGING (JSON lines), not Celery's own handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_BEAT_SCHEDULER = "kasparro.beat:SingleBeatScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = _positive_int("CELERY_BEAT_MAX_LOOP_INTERVAL", 5)
# Only one beat may dispatch: the others stand by until its lock lapses (kasparro/beat.py).
BEAT_LOCK_TTL_SECONDS = _positive_int("BEAT_LOCK_TTL_SECONDS", 30)
DJANGO_CELERY_BEAT_TZ_AWARE = True
if BEAT_LOCK_TTL_SECONDS <= 2 * CELERY_BEAT_MAX_LOOP_INTERVAL:
    raise ImproperlyConfigured(
        f"BEAT_LOCK_TTL_SECONDS={BEAT_LOCK_TTL_SECONDS} must exceed twice CELERY_BEAT_MAX_LOOP_INTERVAL="
        f"{CELERY_BEAT_MAX_LOOP_INTERVAL}: the leading beat renews its lease once a loop"
    )

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # An unreachable Redis costs a request seconds at most, never a hung worker.
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
