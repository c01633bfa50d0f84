"""Configuration is read in one place, and a bad value stops startup with the variable named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
