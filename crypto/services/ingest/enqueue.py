"""Handing ingestion to the Celery workers: how the command (`--async`), the API (`POST
/api/runs/`) and the admin's action trigger runs without running them themselves, and how the
command waits for what it handed over."""

from __future__ import annotations

import time
from functools import partial

from celery import current_app
from celery.utils import uuid
from django.conf import settings
from django.db.transaction import on_commit

from crypto.models import IngestionRun

# By name: services do not import the tasks that call them.
INGEST_TASK = "tasks.ingest_source"


def ingestion_enqueue(*, sources: list[str], trigger: str) -> list[dict[str, str]]:
    """One task per source, sent once the caller's transaction commits (at once outside one), so
    a worker never looks for what the caller has not committed yet. Says of each its task id and
    `status`: `queued` for the workers; with no broker (embedded mode) the task runs here, and it
    `succeeded` or `failed` (skipped included: it ingested nothing), with the `error`."""
    current_app.loader.import_default_modules()  # CELERY_INCLUDE: a worker imports it at start, others here
    task = current_app.tasks[INGEST_TASK]
    outcomes = []
    for source in sources:
        task_id = uuid()
        send = partial(task.apply_async, kwargs={"source": source, "trigger": trigger}, task_id=task_id)
        try:
            on_commit(send)
            status = "queued" if settings.REDIS_URL else "succeeded"
            outcomes.append({"source": source, "task_id": task_id, "status": status, "error": ""})
        except Exception as exc:  # embedded mode runs the task right here and raises its failure
            if settings.REDIS_URL:
                raise
            outcomes.append({"source": source, "task_id": "", "status": "failed", "error": str(exc)})
    return outcomes


def task_attempts_final(*, task_ids: list[str]) -> dict[str, list[IngestionRun]]:
    """Each task's runs, one per attempt in order, for the tasks that have reached their end (the
    last attempt not running and no retry coming)."""
    attempts: dict[str, list[IngestionRun]] = {}
    for run in IngestionRun.objects.filter(task_id__in=task_ids).order_by("started_at", "id"):
        attempts.setdefault(run.task_id, []).append(run)
    return {
        task_id: runs
        for task_id, runs in attempts.items()
        if runs[-1].status != IngestionRun.Status.RUNNING and not runs[-1].retry_scheduled
    }


def task_attempts_wait(*, task_ids: list[str], timeout: float, poll: float = 0.5) -> dict[str, list[IngestionRun]]:
    """Poll the run table (the record of every task) until each task has ended or time is up."""
    deadline = time.monotonic() + timeout
    while True:
        done = task_attempts_final(task_ids=task_ids)
        if len(done) == len(task_ids) or time.monotonic() >= deadline:
            return done
        time.sleep(poll)
