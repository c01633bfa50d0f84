"""Backfills spread across the Celery workers: a job of windows, one task per window.

A job is either the history of coins from an upstream API (a window is one call's range of one
coin, crypto/services/ingest/history.py) or an archive of saved files (a window is one file). Each
window is done as one run by `tasks.backfill_window`, on the workers' `history` queue, so that
live runs, on the default queue, never wait behind thousands of windows. The job's record counts
windows done, failed and left, records, rate and ETA, for the admin, the API and `--wait`.

Started again with the same request, a job resumes: windows done are not asked again, the others
are sent again. A window's task that dies with its worker is redelivered (acks late) and runs the
window again; a window loaded twice changes nothing (bodies are stored once per content hash,
quotes upserted on their natural keys), so nothing is duplicated either way.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from celery import current_app
from celery.utils import uuid
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.transaction import on_commit
from django.utils import timezone

from crypto.models import BackfillJob, BackfillWindow, IngestionRun, LoadedFile
from crypto.services.ingest.lifecycle import TaskCaller
from crypto.services.ingest.run import history_window, ingestion_run, saved_file
from crypto.sources.body import Coin, SourceError
from crypto.sources.files import file_digest
from crypto.sources.history import Window

WINDOW_TASK = "tasks.backfill_window"  # by name: services do not import the tasks that call them
HISTORY_QUEUE = "history"


@dataclass(frozen=True)
class JobProgress:
    total: int
    done: int
    failed: int
    running: int
    records: int
    rows_upserted: int
    first_started: datetime | None
    last_finished: datetime | None

    @property
    def left(self) -> int:
        return self.total - self.done - self.failed

    @property
    def finished(self) -> bool:
        return self.left == 0

    @property
    def elapsed_seconds(self) -> float:
        if self.first_started is None:
            return 0.0
        end = self.last_finished if self.finished and self.last_finished else timezone.now()
        return max((end - self.first_started).total_seconds(), 0.0)

    @property
    def records_per_second(self) -> float:
        elapsed = self.elapsed_seconds
        return self.records / elapsed if elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        ended = self.done + self.failed
        if not ended or self.finished:
            return None if not self.finished else 0.0
        return self.elapsed_seconds / ended * self.left


def history_job_start(
    *, source: str, windows: list[Window], request: str, until: str | None
) -> tuple[BackfillJob, bool]:
    """The job of these windows, created, or found when the same request made it before (then it
    resumes with the windows it planned: a range to "now", or past it, stays the range of its first
    start). `until` is the end as asked (None: now)."""
    if not windows:
        raise SourceError("nothing to fetch: no coin, or an empty range")
    coins = sorted({window.coin.upstream_id for window in windows})
    first = min(w.start for w in windows)
    key = f"history|{source}|{','.join(coins)}|{first.isoformat()}|{until or 'now'}"
    rows = [
        BackfillWindow(
            position=n,
            coin=window.coin.upstream_id,
            coin_symbol=window.coin.symbol[:100],
            coin_name=window.coin.name[:300],
            start=window.start,
            end=window.end,
        )
        for n, window in enumerate(windows, start=1)
    ]
    return _job_start(source=source, kind=BackfillJob.Kind.HISTORY, request=request, key=key, rows=rows)


def archive_job_start(*, source: str, files: list[Path], request: str) -> tuple[BackfillJob, bool]:
    """The job of an archive's files, one window each, created or found again."""
    key = f"archive|{source}|" + "\n".join(str(path.resolve()) for path in files)
    rows = [BackfillWindow(position=n, path=str(path.resolve())[:2000]) for n, path in enumerate(files, start=1)]
    return _job_start(source=source, kind=BackfillJob.Kind.ARCHIVE, request=request, key=key, rows=rows)


def _job_start(
    *, source: str, kind: str, request: str, key: str, rows: list[BackfillWindow]
) -> tuple[BackfillJob, bool]:
    digest = hashlib.sha256(key.encode()).hexdigest()
    with transaction.atomic():
        job, created = BackfillJob.objects.get_or_create(
            key=digest, defaults={"source": source, "kind": kind, "request": request[:2000]}
        )
        if created:
            for row in rows:
                row.job = job
            BackfillWindow.objects.bulk_create(rows, batch_size=1000)
        else:
            BackfillJob.objects.filter(pk=job.pk).update(resumed_at=timezone.now())
    return job, created


def job_enqueue(job: BackfillJob) -> int:
    """Send a task for each window not done nor running (a failed one gets another try, and one
    `running` for longer than a task may run has lost its task), once the caller's transaction
    commits; returns how many. A window sent twice is done once (`window_run` claims it). With no
    broker (embedded mode) each runs here, in turn."""
    current_app.loader.import_default_modules()  # CELERY_INCLUDE: a worker imports it at start, others here
    task = current_app.tasks[WINDOW_TASK]
    status = BackfillWindow.Status
    todo = list(
        job.windows.filter(
            Q(status__in=[status.PENDING, status.FAILED]) | Q(status=status.RUNNING, started_at__lt=_stale_before())
        )
        .order_by("position")
        .values_list("pk", flat=True)
    )
    for window_id in todo:
        send = partial(task.apply_async, args=[window_id], task_id=uuid())  # routed to the history queue
        try:
            on_commit(send)
        except Exception:  # embedded mode runs the window here: its failure is on its record
            if settings.REDIS_URL:
                raise
    return len(todo)


def progress_fields(prefix: str = "") -> dict[str, Any]:
    """The aggregates of a job's progress over its windows: for `job.windows.aggregate()`, or with
    `prefix="windows__"` for annotating jobs (a page of them in one query)."""
    status = BackfillWindow.Status

    def count(state: str) -> Count:
        return Count(f"{prefix}id", filter=Q(**{f"{prefix}status": state}))

    return {
        "progress_total": Count(f"{prefix}id"),
        "progress_done": count(status.DONE),
        "progress_failed": count(status.FAILED),
        "progress_running": count(status.RUNNING),
        "progress_records": Sum(f"{prefix}records"),
        "progress_rows": Sum(f"{prefix}rows_upserted"),
        "progress_first": Min(f"{prefix}started_at"),
        "progress_last": Max(f"{prefix}finished_at"),
    }


def progress_of(values: Any) -> JobProgress:
    """A JobProgress from `progress_fields` values: an aggregate's dict, or an annotated job."""

    def get(name: str) -> Any:
        return values[name] if isinstance(values, dict) else getattr(values, name)

    return JobProgress(
        total=get("progress_total"),
        done=get("progress_done"),
        failed=get("progress_failed"),
        running=get("progress_running"),
        records=get("progress_records") or 0,
        rows_upserted=get("progress_rows") or 0,
        first_started=get("progress_first"),
        last_finished=get("progress_last"),
    )


def job_progress(job: BackfillJob) -> JobProgress:
    """The job's counts, in one aggregate over its windows."""
    return progress_of(job.windows.aggregate(**progress_fields()))


def _stale_before() -> datetime:
    """A window `running` since before this has lost its task (a worker killed past its hard limit,
    a process stopped): it may be claimed and sent again."""
    return timezone.now() - timedelta(seconds=settings.INGEST_TIME_LIMIT + settings.INGEST_RETRY_BACKOFF_CAP + 60)


def _sendable() -> Q:
    """Windows to send a task for: pending, failed, or running past any task's time (lost)."""
    status = BackfillWindow.Status
    return Q(status__in=[status.PENDING, status.FAILED]) | Q(status=status.RUNNING, started_at__lt=_stale_before())


def _claimable(task_id: str) -> Q:
    """What a task may take: a sendable window, or its own (a retry or redelivery keeps its id)."""
    return _sendable() | Q(task_id=task_id) if task_id else _sendable()


def window_run(*, window_id: int, task: TaskCaller | None = None) -> tuple[BackfillWindow, IngestionRun | None]:
    """Do one window as one run and record how it went. The window is claimed first, in one
    statement: a window done, or running under another task (a duplicate sent by a resume), is
    left alone: (window, None). Whatever stops the work midway (an error, the time limit) leaves
    the window failed with the reason, never `running` with no one at it."""
    task_id = task.task_id if task else ""
    windows = BackfillWindow.objects.filter(pk=window_id)
    claimed = windows.filter(_claimable(task_id)).update(
        status=BackfillWindow.Status.RUNNING, attempts=F("attempts") + 1, task_id=task_id, started_at=timezone.now()
    )
    window = BackfillWindow.objects.select_related("job").get(pk=window_id)
    if not claimed:
        return window, None
    mine = windows.filter(status=BackfillWindow.Status.RUNNING, task_id=task_id)  # ends only what it claimed
    try:
        run = _window_work(window=window, task=task)
    except BaseException as exc:
        with contextlib.suppress(Exception):  # the database away too: the window is lost, sent again later
            mine.update(status=BackfillWindow.Status.FAILED, error=f"stopped: {type(exc).__name__}: {exc}"[:2000])
        raise
    if run is None:  # loaded before, by its bytes
        outcome: dict[str, Any] = {"status": BackfillWindow.Status.DONE, "error": ""}
    elif run.status == IngestionRun.Status.SUCCEEDED:
        outcome = {"status": BackfillWindow.Status.DONE, "error": "", "records": run.records_fetched}
    elif run.retry_scheduled:
        outcome = {"status": BackfillWindow.Status.PENDING, "error": f"retrying: {run.error}"}
    else:
        outcome = {"status": BackfillWindow.Status.FAILED, "error": run.error}
    if run is not None:
        outcome.update(rows_upserted=run.rows_upserted, run=run)
    mine.update(**outcome, finished_at=timezone.now())
    window.refresh_from_db()
    return window, run


def _window_work(*, window: BackfillWindow, task: TaskCaller | None) -> IngestionRun | None:
    """The window's run; None for a file an earlier run loaded (known by its bytes, not read again)."""
    job = window.job
    if job.kind == BackfillJob.Kind.ARCHIVE:
        loaded = _loaded_before(source=job.source, path=window.path)
        if loaded is not None:
            BackfillWindow.objects.filter(pk=window.pk).update(run=loaded.run)
            return None
        # A lock of its own file, not the source's: the archive's files load side by side, and a
        # live run never finds its source taken by them.
        origin = replace(saved_file(path=window.path), lock=f"ingest:{job.source}:file:{window.path}")
        return ingestion_run(source=job.source, trigger=IngestionRun.Trigger.FILE, origin=origin, task=task)
    assert window.start is not None and window.end is not None
    coin = Coin(window.coin, window.coin_symbol, window.coin_name)
    span = Window(coin=coin, start=window.start, end=window.end, position=window.position)
    origin = history_window(source=job.source, window=span)
    return ingestion_run(source=job.source, trigger=IngestionRun.Trigger.HISTORY, origin=origin, task=task)


def _loaded_before(*, source: str, path: str) -> LoadedFile | None:
    try:
        digest = file_digest(path)[0]
    except SourceError:
        return None  # unreadable: its run says why
    return LoadedFile.objects.filter(source=source, digest=digest).first()
