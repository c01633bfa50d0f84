"""The life of one ingestion run, in one place, around the work its caller does with the bodies.

A run is one transaction holding its source's advisory lock: everything the work writes commits
together or not at all. Before that, the run's row is committed with its
alive mark (so it is never seen `running` without one); after it, the run is recorded as
succeeded, skipped (another run held the lock) or failed with its reason and whether that reason
is transient; then metrics, and after a success the checks and cross-source links.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from crypto.models import IngestionRun
from crypto.services.ingest.locks import (
    advisory_xact_lock_try,
    advisory_xact_lock_wait,
    run_alive,
    run_alive_mark,
    run_alive_release,
)
from crypto.services.link.refresh import links_refresh
from crypto.services.monitor.anomalies import run_checks
from crypto.services.monitor.log_context import log_context
from crypto.services.monitor.metrics import LAST_SUCCESS, RECORDS_FETCHED, ROWS_UPSERTED, RUN_SECONDS, RUNS
from crypto.sources import source_get
from crypto.sources.body import SourceError
from crypto.sources.deadline import run_deadline
from crypto.sources.http import UpstreamError

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


class AlreadyRunning(Exception):
    pass


@dataclass(frozen=True, kw_only=True)
class TaskCaller:
    """The worker task a run is made for, and what its runtime does around the run."""

    task_id: str
    # The task retries a transient failure (it has retries left): said on the run in the same
    # write as the failure, so nobody reading the run takes the failure as final.
    retry_allowed: bool = False
    # What the runtime raises inside the run when the run's time is up (a worker's soft time
    # limit): the run fails as transient, with INGEST_SOFT_TIME_LIMIT as its reason.
    time_limit_errors: tuple[type[BaseException], ...] = ()


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """What a run is asked to do, and on whose behalf."""

    source: str
    trigger: str
    task: TaskCaller | None = None
    # Wait for a run of the source ahead instead of skipping (a saved file must be loaded).
    wait_for_lock: bool = False
    # The lock the run holds; the source's by default (one run of a source at a time).
    lock: str = ""

    @property
    def lock_name(self) -> str:
        return self.lock or f"ingest:{self.source}"

    def timed_out(self, exc: BaseException) -> bool:
        return self.task is not None and isinstance(exc, self.task.time_limit_errors)


def run_lifecycle(*, request: RunRequest, work: Callable[[IngestionRun], None], say: Progress) -> IngestionRun:
    """Run `work` inside the run's transaction, holding its source's lock, and return the run.
    Whatever `work` raises fails the run (recorded, not raised); a run that finds the lock held
    is skipped and `work` never runs. Only a failure that cannot even be recorded raises, as a
    database error the caller can retry on."""
    with transaction.atomic():
        run = IngestionRun.objects.create(
            source=request.source, trigger=request.trigger, task_id=request.task.task_id if request.task else ""
        )
        run_alive_mark(run_id=run.pk)  # before anyone can see it running (see _abandoned_runs_close)
    try:
        with log_context(run_id=run.pk, source=run.source, trigger=run.trigger):
            logger.info("ingestion run started")
            try:
                with run_deadline(seconds=settings.INGEST_SOFT_TIME_LIMIT), transaction.atomic():
                    _statements_bounded(seconds=settings.INGEST_SOFT_TIME_LIMIT)
                    _lock(request)
                    _abandoned_runs_close(source=run.source, current=run)
                    work(run)
                    run.status = IngestionRun.Status.SUCCEEDED
                    _finish(run)
            except AlreadyRunning as exc:
                run.status, run.error = IngestionRun.Status.SKIPPED, str(exc)
                _finish(run)
                say(f"{run.source}: {exc}")
            except Exception as exc:  # every failure becomes a failed run record, with the reason
                _failed(run, exc, request=request)
                say(f"{run.source}: failed: {run.error}")
            _metrics_record(run)
            if run.status == IngestionRun.Status.SUCCEEDED:
                _after_success(run)
            logger.info(
                "ingestion run finished",
                extra={"status": run.status, "error": run.error, "rows_upserted": run.rows_upserted},
            )
    finally:
        run_alive_release(run_id=run.pk)
    return run


def _statements_bounded(*, seconds: float) -> None:
    """No statement of the run, the wait for its source's lock included, outlasts its time limit.
    Foreign keys are checked by each statement as it writes, not all at the commit (Django makes
    them deferrable): the run writes every row after the rows it points to, and checks made while
    the rows are at hand cost less than thousands queued for the commit."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, true); SET CONSTRAINTS ALL IMMEDIATE",
            [f"{int(seconds * 1000)}ms"],
        )


def _lock(request: RunRequest) -> None:
    name = request.lock_name
    if request.wait_for_lock:
        advisory_xact_lock_wait(name=name)
    elif not advisory_xact_lock_try(name=name):
        raise AlreadyRunning(f"{request.source} is already being ingested by another run; this one wrote nothing")


def _failed(run: IngestionRun, exc: Exception, *, request: RunRequest) -> None:
    timed_out = request.timed_out(exc)
    run.status, run.error = IngestionRun.Status.FAILED, _reason(exc, timed_out=timed_out)
    run.error_kind = "transient" if timed_out or _is_transient(exc) else "permanent"
    run.retry_after = getattr(exc, "retry_after", None)
    run.retry_scheduled = bool(request.task and request.task.retry_allowed) and run.error_kind == "transient"
    # What was counted was rolled back with the transaction.
    run.raw_stored = run.raw_duplicates = run.rows_upserted = 0
    run.data_fetched_at = None
    if not isinstance(exc, (SourceError, DatabaseError)) and not timed_out:
        logger.exception("ingestion run crashed")
    _record_despite_outage(run, exc)


# How long a failed run keeps trying to write its failure while the database is away (a restart):
# after that it stays `running` until the next run of its source closes it as abandoned.
RECORD_ATTEMPTS, RECORD_PAUSE_SECONDS = 8, 1.5


class RunNotRecorded(OperationalError):
    """A run failed and its failure could not be written: the database is away."""


def _record_despite_outage(run: IngestionRun, exc: Exception) -> None:
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            if not connection.in_atomic_block and (attempt > 1 or isinstance(exc, OperationalError | InterfaceError)):
                connection.close()  # the server went away mid-run: a fresh connection
            _finish(run)
            return
        except DatabaseError as unrecorded:
            if attempt == RECORD_ATTEMPTS or connection.in_atomic_block:
                logger.error("could not record the failed run", extra={"reason": run.error})
                RUNS.labels(run.source, IngestionRun.Status.FAILED).inc()
                # A database error, whatever failed the run: callers retry on it.
                raise RunNotRecorded(
                    f"{run.source} run #{run.pk} failed ({run.error}) and the database stayed unreachable, so "
                    f"that could not be recorded: the next run of {run.source} closes it as abandoned "
                    f"({str(unrecorded).strip().splitlines()[0] if str(unrecorded).strip() else 'no answer'})"
                ) from exc
            time.sleep(RECORD_PAUSE_SECONDS)


def _after_success(run: IngestionRun) -> None:
    """Link new assets across sources, then compare the run with the previous one and flag what
    looks wrong. Neither can fail a run that has committed: a failure is logged, its savepoint
    rolled back, and the next step still runs."""
    steps: list[Callable[[], object]] = [links_refresh] if source_get(name=run.source).linked else []
    for step in [*steps, lambda: run_checks(run)]:
        try:
            with transaction.atomic():
                step()
        except Exception:  # anything at all: the run's data is committed and must stay reported so
            logger.exception("a check after the run failed; its data is loaded")


def _metrics_record(run: IngestionRun) -> None:
    RUNS.labels(run.source, run.status).inc()
    RECORDS_FETCHED.labels(run.source).inc(run.records_fetched)
    ROWS_UPSERTED.labels(run.source).inc(run.rows_upserted)  # 0 when the run failed: rolled back
    if run.duration_seconds is not None:
        RUN_SECONDS.labels(run.source).observe(run.duration_seconds)
    if run.status == IngestionRun.Status.SUCCEEDED and run.finished_at is not None:
        LAST_SUCCESS.labels(run.source).set(run.finished_at.timestamp())


def _abandoned_runs_close(*, source: str, current: IngestionRun) -> None:
    """Runs still `running` while we hold the source's lock are working for no one if they no
    longer hold their alive mark: their process died (a killed worker, a lost database
    connection). Close them so the record tells the truth. A run waiting for the lock behind
    us holds its mark and is left alone."""
    candidates = IngestionRun.objects.filter(source=source, status=IngestionRun.Status.RUNNING).exclude(pk=current.pk)
    dead = [run_id for run_id in candidates.values_list("pk", flat=True) if not run_alive(run_id=run_id)]
    IngestionRun.objects.filter(pk__in=dead, status=IngestionRun.Status.RUNNING).update(
        status=IngestionRun.Status.FAILED,
        error_kind="transient",
        error="abandoned: its process stopped before the run finished; nothing it fetched was kept",
        finished_at=timezone.now(),
    )


def _is_transient(exc: BaseException) -> bool:
    return bool(getattr(exc, "transient", False)) or isinstance(exc, OperationalError | InterfaceError)


def _finish(run: IngestionRun) -> None:
    run.finished_at = timezone.now()
    run.save()


def _reason(exc: BaseException, *, timed_out: bool) -> str:
    if timed_out:
        return f"ran past its soft time limit (INGEST_SOFT_TIME_LIMIT={settings.INGEST_SOFT_TIME_LIMIT}s)"
    if isinstance(exc, (SourceError, UpstreamError)):
        return str(exc)
    if isinstance(exc, DatabaseError):
        return f"database error: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
    return f"{type(exc).__name__}: {exc}"
