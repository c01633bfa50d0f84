"""Reading settings from the environment: each reader names the variable in its error, so a bad
value stops startup with a message an operator can act on. Used by kasparro/settings.py only."""

from __future__ import annotations

import re
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
        shown = _without_credentials(env.str(name, default=""))
        raise ImproperlyConfigured(f"{name}={shown!r} is not valid: {_without_credentials(str(exc))}") from exc
    if check is not None and not check(value):
        shown = _without_credentials(env.str(name, default="") or str(value))  # as written, not as parsed
        raise ImproperlyConfigured(f"{name}={shown!r} is not valid: expected {expected}")
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


def _without_credentials(text: str) -> str:
    """URLs in error messages lose their user:password part."""
    return re.sub(r"(//)[^/@\s]*@", r"\1***@", text)


def _secret(name: str) -> str:
    # A key copied from a file often ends in a newline, which would end up inside a header.
    value = env.str(name, default="").strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ImproperlyConfigured(f"{name} contains control characters; set it to the key alone")
    return value


def _bool(name: str, default: bool) -> bool:
    # environ's own bool() reads any unknown word as False; a typo must not silently turn debug off.
    raw = env.str(name, default="").strip().lower()
    if not raw:
        return default
    if raw not in _BOOLEANS:
        raise ImproperlyConfigured(f"{name}={raw!r} is not valid: expected true or false")
    return _BOOLEANS[raw]


def _rate(name: str, default: str) -> str:
    return _read(
        name,
        env.str,
        default,
        lambda v: bool(re.fullmatch(r"\d+/(s|sec|m|min|h|hour|d|day)", v)),
        "a rate like 120/min (per s, min, hour or day)",
    )


def _http_url(name: str, default: str) -> str:
    def ok(value: str) -> bool:
        parsed = urlparse(value)
        return parsed.scheme in {"http", "https"} and bool(parsed.netloc)

    return _read(name, env.str, default, ok, "an http(s) URL such as https://host/path").rstrip("/")
