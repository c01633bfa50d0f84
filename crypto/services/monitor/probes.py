"""Probes of what /health reports beside the data: whether the broker answers and which workers
it reaches."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.core.cache import cache

BROKER_CACHE_SECONDS = 5


def broker_status() -> dict[str, Any]:
    """Whether the broker answers, and which workers answered a ping (cached a few seconds: a
    ping waits for replies, and /health is polled often)."""
    if not settings.REDIS_URL:
        return {"status": "not_configured", "detail": "no REDIS_URL: tasks run in the calling process"}
    cache_usable = _cache_usable()
    cached = cache.get("health:broker") if cache_usable else None
    if cached is not None:
        return cast(dict[str, Any], cached)
    from kasparro.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        replies = app.control.ping(timeout=0.5) or []
        workers = sorted(name for reply in replies for name in reply)
        status = {"status": "ok", "workers": workers}
    except Exception as exc:  # any failure to reach the broker is "down", said with its reason
        status = {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300], "workers": []}
    if status["status"] == "ok" and cache_usable:
        cache.set("health:broker", status, BROKER_CACHE_SECONDS)
    return status


def _cache_usable() -> bool:
    try:
        cache.get("health:probe")
    except Exception:
        return False
    return True
