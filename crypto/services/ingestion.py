"""The one ingestion use-case. Every entry point (command, task, admin, API) calls `ingestion_run`.

A run of one source is one transaction: fetch each body, store it raw once, upsert its normalized
rows, record the run's counts. Any failure rolls all of it back and leaves a failed run record
with the reason. A transaction-scoped advisory lock keeps one run per source at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from crypto.log_context import log_context
from crypto.metrics import LAST_SUCCESS, RECORDS_FETCHED, ROWS_UPSERTED, RUN_SECONDS, RUNS
from crypto.models import IngestionRun
from crypto.services.canonical import LINKED_SOURCES, links_refresh
from crypto.services.checks import run_checks
from crypto.services.locks import (
    advisory_xact_lock_try,
    advisory_xact_lock_wait,
    run_alive,
    run_alive_mark,
    run_alive_release,
)
from crypto.services.quality import drift_detect, quarantine_store, quarantine_threshold_check
from crypto.services.storage import (
    PreparedBody,
    body_prepare,
    body_records_upsert,
    loaded_file_record,
    raw_body_store,
)
from crypto.sources import source_get
from crypto.sources.base import Body, FetchContext, SourceError
from crypto.sources.http import HttpClient, UpstreamError
from crypto.sources.ratelimit import SharedRateLimiter

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
PROBLEMS_KEPT = 100


class AlreadyRunning(Exception):
    pass


_CALLS_PER_MINUTE = {"coingecko": "COINGECKO_CALLS_PER_MINUTE", "coinpaprika": "COINPAPRIKA_CALLS_PER_MINUTE"}


def http_client_build(*, source: str) -> HttpClient:
    limiter = None
    if source in _CALLS_PER_MINUTE:
        limiter = SharedRateLimiter(
            name=source,
            calls=getattr(settings, _CALLS_PER_MINUTE[source]),
            window_seconds=settings.RATE_LIMIT_WINDOW_SECONDS,
            storage_url=settings.REDIS_URL,
        )
    return HttpClient(
        name=source,
        before_request=limiter.acquire if limiter else None,
        connect_timeout=settings.HTTP_CONNECT_TIMEOUT,
        read_timeout=settings.HTTP_READ_TIMEOUT,
        max_attempts=settings.HTTP_MAX_ATTEMPTS,
        backoff_base=settings.HTTP_BACKOFF_BASE,
        backoff_cap=settings.HTTP_BACKOFF_CAP,
        retry_after_cap=settings.HTTP_RETRY_AFTER_CAP,
    )


def fetch_context_build(*, source: str, client: HttpClient | None = None) -> FetchContext:
    client = client or http_client_build(source=source)
    if source == "coingecko":
        return FetchContext(
            client=client,
            base_url=settings.COINGECKO_BASE_URL,
            api_key=settings.COINGECKO_API_KEY,
            pages=settings.COINGECKO_PAGES,
            per_page=settings.COINGECKO_PER_PAGE,
        )
    if source == "coinpaprika":
        return FetchContext(client=client, base_url=settings.COINPAPRIKA_BASE_URL, api_key=settings.COINPAPRIKA_API_KEY)
    return FetchContext(client=client, path=settings.CSV_SOURCE_PATH, chunk_rows=settings.CSV_CHUNK_ROWS)


def ingestion_run(
    *,
    source: str,
    trigger: str,
    file: str | None = None,
    task_id: str = "",
    progress: Progress | None = None,
    client: HttpClient | None = None,
    retry_allowed: bool = False,
    wait_for_lock: bool = False,
    prepared: Iterable[PreparedBody] | None = None,
) -> IngestionRun:
    """Run one ingestion of `source` now (or load a saved body from `file`) and return the run.
    A backfill passes `file`'s bodies already `prepared` (read and parsed ahead, off the database).

    Never raises for a failed run: the returned run says `failed` with the error. It raises only
    when the failure cannot even be recorded (the database is gone), so a caller can retry.
    """
    module = source_get(name=source)
    say = progress or (lambda message: None)
    with transaction.atomic():
        run = IngestionRun.objects.create(source=source, trigger=trigger, task_id=task_id)
        run_alive_mark(run_id=run.pk)  # before anyone can see it running (see _abandoned_runs_close)
    try:
        with log_context(run_id=run.pk, source=source, trigger=trigger):
            return _run(
                run=run,
                module=module,
                file=file,
                say=say,
                client=client,
                retry_allowed=retry_allowed,
                wait_for_lock=wait_for_lock,
                prepared=prepared,
            )
    finally:
        run_alive_release(run_id=run.pk)


def file_bodies(*, source: str, path: str) -> Iterator[Body]:
    """The bodies of a saved file of `source`."""
    module = source_get(name=source)
    return module.read_file(path=path, **({"chunk_rows": settings.CSV_CHUNK_ROWS} if source == "csv" else {}))


def _run(
    *,
    run: IngestionRun,
    module: Any,
    file: str | None,
    say: Progress,
    client: HttpClient | None,
    retry_allowed: bool,
    wait_for_lock: bool,
    prepared: Iterable[PreparedBody] | None,
) -> IngestionRun:
    source = run.source
    logger.info("ingestion run started")
    try:
        with transaction.atomic():
            if wait_for_lock:
                # A backfill must load every file: it waits its turn rather than skip one.
                advisory_xact_lock_wait(name=f"ingest:{source}")
            elif not advisory_xact_lock_try(name=f"ingest:{source}"):
                raise AlreadyRunning(f"{source} is already being ingested by another run; this one wrote nothing")
            _abandoned_runs_close(source=source, current=run)
            if prepared is None:
                bodies: Iterator[Body] = (
                    file_bodies(source=source, path=file)
                    if file
                    else module.fetch(context=fetch_context_build(source=source, client=client))
                )
                prepared = (body_prepare(body) for body in bodies)
            parsed_records = 0
            read: tuple[str, int] | None = None  # the file as its bodies were read from it
            for item in prepared:
                parsed_records += _body_ingest(run=run, module=module, prepared=item, say=say)
                read = (item.body.file_digest, item.body.file_size) if item.body.file_digest else read
            quarantine_threshold_check(rejected=run.records_rejected, total=parsed_records, where="the run")
            if file:
                loaded_file_record(source=source, path=file, run=run, read=read)
            run.status = IngestionRun.Status.SUCCEEDED
            run.finished_at = timezone.now()
            run.save()
    except AlreadyRunning as exc:
        run.status, run.error = IngestionRun.Status.SKIPPED, str(exc)
        _finish(run)
        say(f"{source}: {exc}")
    except Exception as exc:  # every failure becomes a failed run record, with the reason
        run.status, run.error = IngestionRun.Status.FAILED, _reason(exc)
        run.error_kind = "transient" if _is_transient(exc) else "permanent"
        run.retry_after = getattr(exc, "retry_after", None)
        # Said in the same write as the failure, so nobody reading the run takes it as final.
        run.retry_scheduled = retry_allowed and run.error_kind == IngestionRun.ErrorKind.TRANSIENT
        # What was counted was rolled back with the transaction.
        run.raw_stored = run.raw_duplicates = run.rows_upserted = 0
        if not isinstance(exc, (SourceError, DatabaseError)) and not _is_time_limit(exc):
            logger.exception("ingestion run crashed")
        try:
            if isinstance(exc, OperationalError | InterfaceError) and not connection.in_atomic_block:
                # The server went away mid-run: record the failure on a fresh connection.
                connection.close()
            _finish(run)
        except DatabaseError as unrecorded:
            logger.error("could not record the failed run", extra={"reason": run.error})
            RUNS.labels(run.source, IngestionRun.Status.FAILED).inc()
            # The database error, whatever failed the run: callers retry on it (see the docstring).
            raise unrecorded from exc
        say(f"{source}: failed: {run.error}")
    _metrics_record(run)
    if run.status == IngestionRun.Status.SUCCEEDED:
        _after_success(run)
    logger.info(
        "ingestion run finished",
        extra={"status": run.status, "error": run.error, "rows_upserted": run.rows_upserted},
    )
    return run


def _body_ingest(*, run: IngestionRun, module: Any, prepared: PreparedBody, say: Progress) -> int:
    """Store one body and, when it is new, normalize it; returns the records parsed (0 if unchanged)."""
    body = prepared.body
    raw_id, created = raw_body_store(source=run.source, prepared=prepared, run=run)
    if prepared.nul_removed:
        say(f"{run.source}: body {body.position}: NUL characters removed (the database cannot store them)")
    run.records_fetched += body.record_count
    if not created:
        # Same content as a stored body: its rows are already in, from the run that stored it.
        run.raw_duplicates += 1
        say(f"{run.source}: body {body.position}: {body.record_count} records, unchanged since body #{raw_id}, skipped")
        return 0
    run.raw_stored += 1
    drift = drift_detect(
        run=run, raw_id=raw_id, position=body.position, fingerprint=prepared.fingerprint, used_fields=module.USED_FIELDS
    )
    if drift is not None:
        say(f"{run.source}: body {body.position}: schema drift ({drift.severity}): {drift.summary}")
    parsed = prepared.parsed if prepared.parsed is not None else module.parse(data=prepared.data)
    # Counted first, so a run that fails on them still says which records and why.
    run.records_rejected += len(parsed.problems)
    room = PROBLEMS_KEPT - len(run.problems)
    if room > 0:
        run.problems.extend(f"body {body.position}, {problem}" for problem in parsed.problems[:room])
    quarantine_store(run=run, raw_id=raw_id, body=body, problems=parsed.problems)
    valid, upserted = body_records_upsert(source=run.source, prepared=prepared, records=parsed.records, raw_id=raw_id)
    run.rows_upserted += upserted
    say(
        f"{run.source}: body {body.position}: {body.record_count} records, {upserted} rows upserted"
        + (f", {len(parsed.problems)} rejected" if parsed.problems else "")
    )
    return valid + len(parsed.problems)


def _after_success(run: IngestionRun) -> None:
    """Link new assets across sources, then compare the run with the previous one and flag what
    looks wrong. Neither can fail a run that has committed: a failure is logged, its savepoint
    rolled back, and the next step still runs."""
    steps: list[Callable[[], object]] = [links_refresh] if run.source in LINKED_SOURCES else []
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


def _is_time_limit(exc: BaseException) -> bool:
    # Celery's SoftTimeLimitExceeded, named rather than imported: services do not depend on Celery.
    return type(exc).__name__ == "SoftTimeLimitExceeded"


def _is_transient(exc: BaseException) -> bool:
    return (
        bool(getattr(exc, "transient", False))
        or isinstance(exc, OperationalError | InterfaceError)
        or (_is_time_limit(exc))
    )


def _finish(run: IngestionRun) -> None:
    run.finished_at = timezone.now()
    run.save()


def _reason(exc: BaseException) -> str:
    if _is_time_limit(exc):
        return f"ran past its soft time limit (INGEST_SOFT_TIME_LIMIT={settings.INGEST_SOFT_TIME_LIMIT}s)"
    if isinstance(exc, (SourceError, UpstreamError)):
        return str(exc)
    if isinstance(exc, DatabaseError):
        return f"database error: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
    return f"{type(exc).__name__}: {exc}"
