"""`tasks.ingest_source(source)`: one ingestion run of one source, on a worker.

The run table is the record: each attempt is a run with this task's id. A transient failure
(throttled, upstream or database away) is retried with capped exponential backoff and jitter,
honouring the upstream's Retry-After; a permanent one fails the task at once. A run skipped because
another run held its source fails the task too (IngestionSkipped): it ingested nothing.
"""

from __future__ import annotations

import random
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError

from crypto.models import IngestionRun
from crypto.services.ingest.lifecycle import TaskCaller
from crypto.services.ingest.run import ingestion_run
from crypto.services.monitor.log_context import log_context
from crypto.services.monitor.metrics import TASK_RETRIES
from crypto.sources import source_names


class IngestionFailed(Exception):
    pass


class IngestionSkipped(IngestionFailed):
    """Another run held the source: this task wrote nothing, so it does not end as a success."""


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
        # Not even the failure could be recorded: the database is away. Try again later.
        if not may_retry:
            raise
        TASK_RETRIES.labels(source).inc()
        raise self.retry(exc=exc, countdown=retry_delay(retries=retries, retry_after=None)) from None

    if run.status == IngestionRun.Status.FAILED:
        error = IngestionFailed(f"{source} run #{run.pk} failed: {run.error}")
        if run.retry_scheduled:
            TASK_RETRIES.labels(source).inc()
            raise self.retry(exc=error, countdown=retry_delay(retries=retries, retry_after=run.retry_after))
        raise error
    if run.status == IngestionRun.Status.SKIPPED:
        raise IngestionSkipped(f"{source} run #{run.pk} skipped: {run.error}")
    return {"run_id": run.pk, "source": source, "status": run.status, "rows_upserted": run.rows_upserted}
