"""What /health answers: the database's round trip, the broker and its workers, and each
source's freshness against its schedule, folded into one verdict."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.utils import timezone

from crypto.models import IngestionRun
from crypto.services.ingest.schedules import schedule_of
from crypto.sources import source_names


def database_ping() -> float:
    """Round-trip time of `SELECT 1` in milliseconds; raises DatabaseError when unreachable."""
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return round((time.perf_counter() - start) * 1000, 2)


def health_report() -> dict[str, Any]:
    """What /health answers. `error` when the database is unreachable; `degraded` when the broker
    is down, a source's latest run failed, or a scheduled source is stale; otherwise `ok`. Where
    a broker runs the schedule, a source whose schedule is disabled (by an operator, or csv with no
    CSV_SOURCE_PATH) is neither failing nor stale: its last run still shows in `sources`."""
    now = timezone.now()
    try:
        latency_ms = database_ping()
        freshness = sources_freshness()
    except DatabaseError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {"status": "error", "time": now, "database": {"status": "down", "error": reason}}
    broker = broker_status()
    scheduled = broker["status"] != "not_configured"
    failing = sorted(
        name
        for name, info in freshness.items()
        if info["last_run_status"] == IngestionRun.Status.FAILED and (info["scheduled"] or not scheduled)
    )
    stale = sorted(name for name, info in freshness.items() if info["stale"]) if scheduled else []
    return {
        "status": "degraded" if failing or stale or broker["status"] == "down" else "ok",
        "time": now,
        "database": {"status": "ok", "latency_ms": latency_ms},
        "broker": broker,
        "failing_sources": failing,
        "stale_sources": stale,
        "sources": freshness,
    }


def run_latest(source: str, *statuses: str) -> IngestionRun | None:
    runs = IngestionRun.objects.filter(source=source)
    if statuses:
        runs = runs.filter(status__in=statuses)
    return runs.order_by("-started_at", "-id").first()


def sources_freshness() -> dict[str, dict[str, Any]]:
    """Per source: the last run, the last success, and whether that success is older than the
    schedule allows (STALE_AFTER_INTERVALS intervals; `stale` is None when unscheduled)."""
    now = timezone.now()
    result = {}
    for source in source_names():
        last = run_latest(source, IngestionRun.Status.SUCCEEDED, IngestionRun.Status.FAILED)
        success = (
            last
            if last and last.status == IngestionRun.Status.SUCCEEDED
            else run_latest(source, IngestionRun.Status.SUCCEEDED)
        )
        scheduled, every = schedule_of(source=source)
        last_success_at = success.finished_at if success else None
        stale = None
        if every is not None:
            allowed = timedelta(seconds=every * settings.STALE_AFTER_INTERVALS)
            stale = last_success_at is None or now - last_success_at > allowed
        result[source] = {
            "last_success_at": last_success_at,
            "last_run_status": last.status if last else None,
            "last_error": last.error if last and last.status == IngestionRun.Status.FAILED else None,
            "scheduled": scheduled,
            "schedule_seconds": every,
            "stale": stale,
        }
    return result


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
