"""`tasks.backfill_window(window_id)`: one window of a backfill job (a coin's history range, or a
saved file), done as one run, on the workers' `history` queue (crypto/services/ingest/jobs.py).

The window's record says how it went. A transient failure (throttled, the upstream or the database
away) is retried with capped exponential backoff and jitter, honouring the upstream's Retry-After;
a permanent one (a range the plan does not allow, a coin the upstream does not know) fails the
window at once, with the upstream's reason, and the job's other windows go on.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError

from crypto.models import BackfillWindow
from crypto.services.ingest.jobs import window_run
from crypto.services.ingest.lifecycle import TaskCaller
from crypto.services.monitor.log_context import log_context
from tasks.ingest import retry_delay


class WindowFailed(Exception):
    pass


@shared_task(bind=True, name="tasks.backfill_window", max_retries=None, throws=(WindowFailed,))
def backfill_window(self: Task, window_id: int) -> dict[str, Any]:
    retries = self.request.retries
    # In process (no broker) a retry would run at once, ignoring its delay: fail and say so instead.
    may_retry = retries < settings.INGEST_MAX_RETRIES and not self.request.is_eager
    caller = TaskCaller(
        task_id=self.request.id or "", retry_allowed=may_retry, time_limit_errors=(SoftTimeLimitExceeded,)
    )
    with log_context(task_id=self.request.id or "", window_id=window_id):
        try:
            window, run = window_run(window_id=window_id, task=caller)
        except DatabaseError as exc:  # not even the run could be recorded: the database is away
            if may_retry:
                raise self.retry(exc=exc, countdown=retry_delay(retries=retries, retry_after=None)) from None
            raise
    if window.status == BackfillWindow.Status.PENDING and run is not None:
        raise self.retry(
            exc=WindowFailed(f"window #{window_id}: {run.error}"),
            countdown=retry_delay(retries=retries, retry_after=run.retry_after),
        )
    if window.status == BackfillWindow.Status.FAILED:
        raise WindowFailed(f"{window}: {window.error}")
    return {"window_id": window_id, "status": window.status, "records": window.records, "run_id": window.run_id}
