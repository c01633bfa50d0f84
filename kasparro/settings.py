"""Settings, read from the environment in this one place.

Every variable is listed in `.env.example`. A bad value stops the process at startup with a message
naming the variable, rather than failing later inside a run.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A `.env` file beside manage.py is read when present; real environment variables win.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

T = TypeVar("T")


def _read(
    name: str,
    reader: Callable[..., T],
    default: Any,
    check: Callable[[T], bool] | None = None,
    expected: str = "",
) -> T:
    try:
        value = reader(name, default=default)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{name}={env.str(name, default='')!r} is not valid: {exc}") from exc
    if check is not None and not check(value):
        raise ImproperlyConfigured(f"{name}={value!r} is not valid: expected {expected}")
    return value


def _positive_int(name: str, default: int) -> int:
    return _read(name, env.int, default, lambda v: v > 0, "a whole number above 0")


def _positive_float(name: str, default: float) -> float:
    return _read(name, env.float, default, lambda v: v > 0, "a number above 0")


_BOOLEANS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def _bool(name: str, default: bool) -> bool:
    # environ's own bool() reads any unknown word as False; a typo must not silently turn debug off.
    raw = env.str(name, default="").strip().lower()
    if not raw:
        return default
    if raw not in _BOOLEANS:
        raise ImproperlyConfigured(f"{name}={raw!r} is not valid: expected true or false")
    return _BOOLEANS[raw]


def _http_url(name: str, default: str) -> str:
    def ok(value: str) -> bool:
        parsed = urlparse(value)
        return parsed.scheme in {"http", "https"} and bool(parsed.netloc)

    return _read(name, env.str, default, ok, "an http(s) URL such as https://host/path").rstrip("/")


# --- Django core -----------------------------------------------------------------------------
DEBUG = _bool("DJANGO_DEBUG", False)
# Local runs and tests get a fixed key that says it is insecure; a deployment sets its own.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or "insecure-local-key-set-DJANGO_SECRET_KEY"
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "crypto",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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

# Without DATABASE_URL the project runs on SQLite so that `make run` works on a bare machine;
# the advisory lock that keeps one run per source at a time exists only on PostgreSQL.
DATABASES = {
    "default": _read("DATABASE_URL", env.db_url, f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A dead server must answer /health quickly, not after the OS TCP timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "EXCEPTION_HANDLER": "crypto.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # urllib3 logs full request lines at DEBUG; keep it quiet so nothing sensitive leaks.
        "urllib3": {"level": "WARNING"},
    },
}

# --- Upstreams -------------------------------------------------------------------------------
COINGECKO_BASE_URL = _http_url("COINGECKO_BASE_URL", "https://api.coingecko.com/api/v3")
COINGECKO_API_KEY = env.str("COINGECKO_API_KEY", default="")
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
COINPAPRIKA_API_KEY = env.str("COINPAPRIKA_API_KEY", default="")

CSV_SOURCE_PATH = env.str("CSV_SOURCE_PATH", default="")
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
