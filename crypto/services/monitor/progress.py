"""How far a running run has got, said after each body and read by its dashboard page. Kept in the
cache, outside the run's transaction (which nobody else sees until it commits): Redis when
configured, so every process sees it; without Redis only the process running the run does."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from django.core.cache import cache

TTL_SECONDS = 3600


def _key(run_id: int) -> str:
    return f"run-progress:{run_id}"


def progress_note(*, run_id: int, records: int, bodies: int, started: datetime, now: datetime) -> None:
    with contextlib.suppress(Exception):  # a progress note never fails a run
        cache.set(
            _key(run_id),
            {"records": records, "bodies": bodies, "seconds": max((now - started).total_seconds(), 0.0)},
            timeout=TTL_SECONDS,
        )


def run_progress(run_id: int) -> dict[str, Any] | None:
    try:
        progress = cache.get(_key(run_id))
    except Exception:
        return None
    return progress if isinstance(progress, dict) else None
