"""`tasks.ingest_source(source)`: one ingestion run of one source, on a worker.

The run table is the record: each attempt is a run with this task's id. A transient failure
(throttled, upstream or database away) is retried with capped exponential backoff and jitter,
honouring the upstream's Retry-After; a permanent one fails the task at once. A run skipped because
another run held its source fails the task too (IngestionSkipped): it ingested nothing.
"""

from __future__ import annotations

import contextlib
import logging
import random
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError

from crypto.models import IngestionRun
from crypto.services.ingest.lifecycle import TaskCaller
from crypto.services.ingest.run import ingestion_run
from crypto.services.monitor.log_context import log_context
from crypto.services.monitor.metrics import TASK_RETRIES
from crypto.sources import source_names

logger = logging.getLogger(__name__)


class IngestionFailed(Exception):
    pass


class IngestionSkipped(IngestionFailed):
    """Another run held the source: this task wrote nothing, so it does not end as a success."""


def _database_waiter(*, source: str, task_id: str) -> bool:
    """Whether this task is the one of its source that waits for the database (claimed in the
    shared cache, and kept while it keeps retrying)."""
    key, ttl = f"ingest:database-waiter:{source}", settings.INGEST_RETRY_BACKOFF_CAP * 3
    try:
        if cache.add(key, task_id, ttl) or cache.get(key) == task_id:
            cache.set(key, task_id, ttl)
            return True
    except Exception:  # the cache is Redis, the broker: without it no retry can be sent anyway
        logger.exception("could not claim the wait for the database")
    return False


def _database_waiter_release(*, source: str, task_id: str) -> None:
    key = f"ingest:database-waiter:{source}"
    with contextlib.suppress(Exception):  # it lapses by itself
        if cache.get(key) == task_id:
            cache.delete(key)


def retry_delay(*, retries: int, retry_after: float | None) -> float:
    """Full-jitter backoff, at least what the upstream asked for, never past the cap (which the
    settings keep below the broker's visibility timeout, so a waiting retry is not redelivered)."""
    backoff = random.uniform(0, settings.INGEST_RETRY_BACKOFF_BASE * 2**retries)
    return min(float(settings.INGEST_RETRY_BACKOFF_CAP), max(backoff, retry_after or 0.0))


# A skip is expected, not a crash: the worker logs it without a traceback.
@shared_task(bind=True, name="tasks.ingest_source", max_retries=None, throws=(IngestionSkipped,))
def ingest_source(self: Task, source: str, trigger: str = IngestionRun.Trigger.TASK) -> dict[str, Any]:
    if source not in source_names():
        raise IngestionFailed(f"unknown source {source!r}; expected one of {', '.join(source_names())}")
    if trigger not in IngestionRun.Trigger.values:
        raise IngestionFailed(f"unknown trigger {trigger!r}")
    retries = self.request.retries
    with log_context(task_id=self.request.id or ""):
        return _ingest(self, source=source, trigger=trigger, retries=retries)


def _ingest(self: Task, *, source: str, trigger: str, retries: int) -> dict[str, Any]:
    # In process (no broker) a retry would run at once, ignoring its delay: fail and say so instead.
    may_retry = retries < settings.INGEST_MAX_RETRIES and not self.request.is_eager
    try:
        caller = TaskCaller(
            task_id=self.request.id or "", retry_allowed=may_retry, time_limit_errors=(SoftTimeLimitExceeded,)
        )
        run = ingestion_run(source=source, trigger=trigger, task=caller)
    except DatabaseError as exc:
        # Not even the failure could be recorded: the database is away. Try again later; past the
        # retries, one task per source keeps waiting for it, so the source is ingested (and its
        # run recorded) once the database is back, and the others end saying so.
        if may_retry:
            TASK_RETRIES.labels(source).inc()
            raise self.retry(exc=exc, countdown=retry_delay(retries=retries, retry_after=None)) from None
        if self.request.is_eager or not _database_waiter(source=source, task_id=self.request.id or ""):
            raise
        logger.warning("the database is away past the task's retries; waiting for it", extra={"source": source})
        TASK_RETRIES.labels(source).inc()
        delay = float(settings.INGEST_RETRY_BACKOFF_CAP)
        raise self.retry(exc=exc, countdown=delay, max_retries=None) from None

    if retries >= settings.INGEST_MAX_RETRIES:
        _database_waiter_release(source=source, task_id=self.request.id or "")
    if run.status == IngestionRun.Status.FAILED:
        error = IngestionFailed(f"{source} run #{run.pk} failed: {run.error}")
        if run.retry_scheduled:
            TASK_RETRIES.labels(source).inc()
            raise self.retry(exc=error, countdown=retry_delay(retries=retries, retry_after=run.retry_after))
        raise error
    if run.status == IngestionRun.Status.SKIPPED:
        raise IngestionSkipped(f"{source} run #{run.pk} skipped: {run.error}")
    return {"run_id": run.pk, "source": source, "status": run.status, "rows_upserted": run.rows_upserted}
