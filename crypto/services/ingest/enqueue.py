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
    a worker never looks for what the caller has not committed yet. Returns each task's id. With
    no broker (embedded mode) each task runs here, and its failure is reported, not raised."""
    current_app.loader.import_default_modules()  # CELERY_INCLUDE: a worker imports it at start, others here
    task = current_app.tasks[INGEST_TASK]
    queued = []
    for source in sources:
        task_id = uuid()
        send = partial(task.apply_async, kwargs={"source": source, "trigger": trigger}, task_id=task_id)
        try:
            on_commit(send)
            queued.append({"source": source, "task_id": task_id, "error": ""})
        except Exception as exc:  # embedded mode runs the task right here and raises its failure
            if settings.REDIS_URL:
                raise
            queued.append({"source": source, "task_id": "", "error": str(exc)})
    return queued


def task_runs_final(*, task_ids: list[str]) -> dict[str, IngestionRun]:
    """The last run of each task that has reached its end (not running, no retry coming)."""
    latest: dict[str, IngestionRun] = {}
    for run in IngestionRun.objects.filter(task_id__in=task_ids).order_by("started_at", "id"):
        latest[run.task_id] = run
    return {
        task_id: run
        for task_id, run in latest.items()
        if run.status != IngestionRun.Status.RUNNING and not run.retry_scheduled
    }


def task_runs_wait(*, task_ids: list[str], timeout: float, poll: float = 0.5) -> dict[str, IngestionRun]:
    """Poll the run table (the record of every task) until each task's run is final or time is up."""
    deadline = time.monotonic() + timeout
    while True:
        done = task_runs_final(task_ids=task_ids)
        if len(done) == len(task_ids) or time.monotonic() >= deadline:
            return done
        time.sleep(poll)
