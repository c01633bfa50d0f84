"""The one ingestion use-case. Every entry point (command, task, admin, API) calls `ingestion_run`.

A run of one source stores each body it gets raw once and upserts its normalized rows, all in one
transaction (crypto/services/ingest/lifecycle.py holds the run's life: its row, lock, failure and
checks). Where the bodies come from is an `Origin` handed to it: a live fetch, a saved file, or
bodies a backfill read ahead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from django.conf import settings
from django.utils import timezone

from crypto.models import IngestionRun
from crypto.services.ingest.lifecycle import Progress, RunRequest, TaskCaller, run_lifecycle
from crypto.services.ingest.prepare import PreparedBody, body_prepare
from crypto.services.ingest.storage import body_records_upsert, loaded_file_record, raw_body_store
from crypto.services.ingest.validation import drift_detect, quarantine_store, quarantine_threshold_check
from crypto.services.monitor.anomalies import run_upstream_ids_remember
from crypto.services.monitor.metrics import UPSTREAM_CALLS, UPSTREAM_RETRIES
from crypto.services.monitor.progress import progress_note
from crypto.sources import source_get
from crypto.sources.base import Source
from crypto.sources.body import Body, SourceError
from crypto.sources.deadline import deadline_check
from crypto.sources.history import Window
from crypto.sources.http import HttpClient, HttpHooks, HttpPolicy
from crypto.sources.ratelimit import SharedRateLimiter

logger = logging.getLogger(__name__)

PROBLEMS_KEPT = 100


class EmptyResult(SourceError):
    """A run got no record at all: it fails, so an empty answer never replaces the data, and
    /health shows the source failing. From the upstream it is transient: worth asking again."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, kw_only=True)
class Origin:
    """Where a run's bodies come from. `bodies` is called inside the run, holding its lock."""

    bodies: Callable[[Source], Iterable[PreparedBody]]
    file: str | None = None  # a saved file, marked loaded (by the bytes read) when the run succeeds
    # A lock of its own, waited for, instead of the source's: windows of history of different coins
    # load side by side, and beside the source's live runs.
    lock: str = ""


def live() -> Origin:
    """The upstream, now, through the one HTTP client and the source's rate budget."""
    return Origin(bodies=lambda source: map(body_prepare, _fetched(source)))


def saved_file(*, path: str, prepared: Iterable[PreparedBody] | None = None) -> Origin:
    """A saved upstream body (or CSV file), read now, or already read and parsed ahead by a backfill."""
    if prepared is not None:
        return Origin(bodies=lambda source: prepared, file=path)
    return Origin(bodies=lambda source: map(body_prepare, file_bodies(source=source.name, path=path)), file=path)


def history_window(*, source: str, window: Window) -> Origin:
    """One window of one coin's history from the upstream, through the source's rate budget."""

    def bodies(source: Source) -> list[PreparedBody]:
        context = source.fetch_context(settings=settings, client=http_client_build(source=source, history=True))
        return [body_prepare(source.fetch_history(context=context, window=window))]

    return Origin(bodies=bodies, lock=f"ingest:{source}:history:{window.coin.upstream_id}")


def ingestion_run(
    *,
    source: str,
    trigger: str,
    origin: Origin | None = None,
    task: TaskCaller | None = None,
    progress: Progress | None = None,
) -> IngestionRun:
    """Run one ingestion of `source` now, from the upstream unless another `origin` is given, and
    return the run. A saved file waits for a run of its source ahead rather than skip: it must be
    loaded.

    Never raises for a failed run: the returned run says `failed` with the error. It raises only
    when the failure cannot even be recorded (the database is gone), so a caller can retry.
    """
    module = source_get(name=source)
    origin = origin or live()
    say = progress or (lambda message: None)
    request = RunRequest(
        source=source, trigger=trigger, task=task, wait_for_lock=bool(origin.file or origin.lock), lock=origin.lock
    )

    def work(run: IngestionRun) -> None:
        parsed_records = 0
        read: tuple[str, int] | None = None  # the file as its bodies were read from it
        ids: set[str] | None = set()  # the upstream ids of every body, for the checks after the run
        bodies = 0
        for item in origin.bodies(module):
            deadline_check(doing=f"{source}: body {item.body.position}")
            parsed_records += _body_ingest(run=run, module=module, prepared=item, say=say)
            bodies += 1
            progress_note(
                run_id=run.pk, records=run.records_fetched, bodies=bodies, started=run.started_at, now=timezone.now()
            )
            read = (item.body.file_digest, item.body.file_size) if item.body.file_digest else read
            if item.body.history_of:
                ids = None  # history is no dataset: not the latest data, not compared with a run before
                continue
            run.data_fetched_at = max(filter(None, (run.data_fetched_at, item.body.fetched_at)))
            body_ids = item.upstream_ids if item.upstream_ids is not None else module.upstream_ids(data=item.data)
            if ids is not None and body_ids is not None:
                ids.update(body_ids)
            else:
                ids = None  # a body only parsing can tell: the checks read the stored bodies
        if run.records_fetched == 0:
            raise EmptyResult(
                f"{source}: {'the file' if origin.file else 'the upstream'} held no records; "
                "the previous dataset stays the latest",
                transient=not origin.file,
            )
        quarantine_threshold_check(rejected=run.records_rejected, total=parsed_records, where="the run")
        if origin.file:
            loaded_file_record(source=source, path=origin.file, run=run, read=read)
        if ids is not None:
            run_upstream_ids_remember(run, frozenset(ids))

    return run_lifecycle(request=request, work=work, say=say)


def http_client_build(*, source: Source, history: bool = False) -> HttpClient:
    """The one HTTP client, with the source's share of its upstream's rate budget when it has one.
    History (`history`) also takes its calls from a part of the budget of its own
    (HISTORY_BUDGET_SHARE), so however many windows wait, the live runs find calls left."""
    limiters = _limiters(source=source, history=history)
    limiter = limiters[-1] if limiters else None  # the upstream's whole budget

    def before_request() -> None:
        for each in limiters:
            each.acquire()

    policy = HttpPolicy(
        connect_timeout=settings.HTTP_CONNECT_TIMEOUT,
        read_timeout=settings.HTTP_READ_TIMEOUT,
        max_attempts=settings.HTTP_MAX_ATTEMPTS,
        backoff_base=settings.HTTP_BACKOFF_BASE,
        backoff_cap=settings.HTTP_BACKOFF_CAP,
        retry_after_cap=settings.HTTP_RETRY_AFTER_CAP,
        max_body_bytes=settings.HTTP_MAX_BODY_BYTES,
    )
    hooks = HttpHooks(
        before_request=before_request,
        outcome=lambda outcome: UPSTREAM_CALLS.labels(source.name, outcome).inc(),
        retried=lambda: UPSTREAM_RETRIES.labels(source.name).inc(),
        paused=limiter.pause if limiter else lambda seconds: None,
    )
    return HttpClient(policy=policy, hooks=hooks)


def _limiters(*, source: Source, history: bool) -> list[SharedRateLimiter]:
    """The budgets a call waits for, the upstream's whole budget last."""
    if not source.calls_per_minute_setting:
        return []
    calls = getattr(settings, source.calls_per_minute_setting)

    def budget(name: str, calls: int) -> SharedRateLimiter:
        return SharedRateLimiter(
            name=name, calls=calls, window_seconds=settings.RATE_LIMIT_WINDOW_SECONDS, storage_url=settings.REDIS_URL
        )

    whole = budget(source.name, calls)
    if not history:
        return [whole]
    return [budget(f"{source.name}:history", max(1, math.floor(calls * settings.HISTORY_BUDGET_SHARE))), whole]


def file_bodies(*, source: str, path: str) -> Iterator[Body]:
    """The bodies of a saved file of `source`."""
    module = source_get(name=source)
    context = module.fetch_context(settings=settings, client=None)
    return module.read_file(path=path, context=replace(context, max_body_bytes=settings.HTTP_MAX_BODY_BYTES))


def _fetched(source: Source) -> Iterator[Body]:
    return source.fetch(context=source.fetch_context(settings=settings, client=http_client_build(source=source)))


def _body_ingest(*, run: IngestionRun, module: Source, prepared: PreparedBody, say: Progress) -> int:
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
    if prepared.fingerprint is not None:
        drift = drift_detect(
            run=run,
            raw_id=raw_id,
            position=body.position,
            fingerprint=prepared.fingerprint,
            used_fields=module.used_fields,
        )
        if drift is not None:
            say(f"{run.source}: body {body.position}: schema drift ({drift.severity}): {drift.summary}")
    parsed = (
        prepared.parsed
        if prepared.parsed is not None
        else module.parse_body(data=prepared.data, history_of=body.history_of)
    )
    # Counted first, so a run that fails on them still says which records and why.
    run.records_rejected += len(parsed.problems)
    room = PROBLEMS_KEPT - len(run.problems)
    if room > 0:
        run.problems.extend(f"body {body.position}, {problem}" for problem in parsed.problems[:room])
    quarantine_store(run=run, raw_id=raw_id, body=body, problems=parsed.problems)
    valid, upserted = body_records_upsert(
        source=run.source, prepared=prepared, records=parsed.records, raw_id=raw_id, history=bool(body.history_of)
    )
    run.rows_upserted += upserted
    say(
        f"{run.source}: body {body.position}: {body.record_count} records, {upserted} rows upserted"
        + (f", {len(parsed.problems)} rejected" if parsed.problems else "")
    )
    return valid + len(parsed.problems)
