"""Configuration is read in one place, and a bad value stops startup with the variable named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import database_url

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = "kasparro.settings"


def check(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("COINGECKO_BASE_URL", "api.coingecko.com", "an http(s) URL"),
        ("COINGECKO_PAGES", "zero", "COINGECKO_PAGES='zero' is not valid"),
        ("COINGECKO_PER_PAGE", "500", "from 1 to 250"),
        ("HTTP_READ_TIMEOUT", "-1", "a number above 0"),
        ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG='maybe' is not valid"),
    ],
)
def test_a_bad_setting_fails_at_startup_naming_the_variable(name: str, value: str, words: str) -> None:
    result = check(**{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and words in result.stderr


def test_defaults_start_cleanly() -> None:
    result = check()
    assert result.returncode == 0, result.stderr


def test_without_a_secret_key_debug_off_refuses_to_start_and_says_how_to_make_one() -> None:
    result = check(DJANGO_SECRET_KEY="", DJANGO_DEBUG="false")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set and DJANGO_DEBUG is off" in result.stderr
    assert check(DJANGO_SECRET_KEY="", DJANGO_DEBUG="true").returncode == 0


def test_deploy_checks_pass_with_production_values() -> None:
    production = {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "k" * 20 + "-production-grade-secret-0123456789-abcdefghij",
        "DJANGO_ALLOWED_HOSTS": "crypto.example.com",
        "DJANGO_SECURE_SSL_REDIRECT": "true",
        "DJANGO_SECURE_COOKIES": "true",
        "DJANGO_SECURE_HSTS_SECONDS": "31536000",
        "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "DJANGO_SECURE_HSTS_PRELOAD": "true",
        "DJANGO_BEHIND_TLS_PROXY": "true",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **production},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_an_empty_database_url_means_the_embedded_server_and_a_bad_one_hides_its_password() -> None:
    script = "import django; django.setup(); from django.db import connection; print(connection.settings_dict['PORT'])"
    embedded = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DATABASE_URL": "", "EMBEDDED_DB_PORT": "54444", "DJANGO_SETTINGS_MODULE": SETTINGS},
    )
    assert embedded.stdout.strip() == "54444", embedded.stderr
    bad = check(DATABASE_URL="postgres://user:S3cretPass@host:99999/db")
    assert bad.returncode != 0 and "S3cretPass" not in bad.stderr and "***@host" in bad.stderr


@pytest.mark.parametrize("url", ["sqlite:///db.sqlite3", "sqlite:///:memory:", "mysql://127.0.0.1/kasparro"])
def test_a_database_url_of_another_engine_is_refused_at_startup(url: str) -> None:
    result = check(DATABASE_URL=url)
    assert result.returncode != 0
    assert f"DATABASE_URL={url!r} is not valid: expected a PostgreSQL URL" in result.stderr


def test_api_keys_are_stripped_and_control_characters_refused() -> None:
    result = check(COINGECKO_API_KEY="abc\x01def")
    assert result.returncode != 0 and "COINGECKO_API_KEY contains control characters" in result.stderr


def test_the_container_healthcheck_passes_with_production_hosts_and_https_redirect() -> None:
    script = (
        "import django; django.setup(); from django.test import Client;"
        "r = Client(HTTP_HOST='127.0.0.1:8000').get('/health', HTTP_ACCEPT='application/json');"
        "print(r.status_code)"
    )
    env = {
        **os.environ,
        "DJANGO_ALLOWED_HOSTS": "crypto.example.com",
        "DJANGO_SECURE_SSL_REDIRECT": "true",
        "DJANGO_SETTINGS_MODULE": "kasparro.settings",
        # A database that does not exist: the check must get past the host and HTTPS rules to see that.
        "DATABASE_URL": database_url({**connection.settings_dict, "NAME": "kasparro_missing"}),
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    # 503 here only because the database is missing: not 400 (host) nor 301 (redirect).
    assert result.stdout.strip() in {"200", "503"}, result.stderr[-1500:]
