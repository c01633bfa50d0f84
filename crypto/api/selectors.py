"""Reads used by the API and the admin, the /health verdict among them. Aggregates run in the
database, never over rows in Python."""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, Max
from django.utils import timezone

from crypto.models import IngestionRun, QuarantinedRecord, RunBody, SchemaDrift, SourceTotals
from crypto.services.ingest.schedules import periodic_task_name
from crypto.services.monitor.probes import broker_status
from crypto.sources import source_get, source_names
from crypto.sources.body import json_loads


def health_report() -> dict[str, Any]:
    """What /health answers, in one query whatever the number of sources and runs. `error`
    when the database is unreachable; `degraded` when the broker is down, a source's latest live
    run failed, or a scheduled source is stale; otherwise `ok`.

    A source is scheduled only where a broker runs beat and its periodic task is enabled (not by
    an operator's hand, nor for csv without CSV_SOURCE_PATH): only then can it be stale, and a
    disabled one is not failing. Without a broker nothing is scheduled and a failed latest run is
    failing. A saved file's run neither hides a failing live source nor makes it fresh."""
    now = timezone.now()
    beat_runs = bool(settings.REDIS_URL)
    try:
        rows, latency_ms = _freshness_rows()
        freshness = sources_freshness(rows=rows, beat_runs=beat_runs)
    except DatabaseError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {"status": "error", "time": now, "database": {"status": "down", "error": reason}}
    broker = broker_status()
    failing = sorted(
        name
        for name, info in freshness.items()
        if info["last_run_status"] == IngestionRun.Status.FAILED and (info["scheduled"] or not beat_runs)
    )
    stale = sorted(name for name, info in freshness.items() if info["stale"])
    return {
        "status": "degraded" if failing or stale or broker["status"] == "down" else "ok",
        "time": now,
        "database": {"status": "ok", "latency_ms": latency_ms},
        "broker": broker,
        "failing_sources": failing,
        "stale_sources": stale,
        "sources": freshness,
    }


def run_latest(source: str, *statuses: str) -> IngestionRun | None:
    runs = IngestionRun.objects.filter(source=source)
    if statuses:
        runs = runs.filter(status__in=statuses)
    return runs.order_by("-started_at", "-id").first()


# Per source, in one statement: its latest live run that ended (a saved file's or a history
# window's says nothing of the upstream now), the successful run holding its newest data (an index
# seek each), and its beat schedule as the admin may have edited it (enabled, and the interval in
# seconds).
_FRESHNESS_SQL = """
SELECT s.source, last.status, last.error, newest.finished_at, newest.data_fetched_at,
       task.id IS NOT NULL, task.enabled, task.seconds
FROM unnest(%s::text[], %s::text[]) AS s(source, task_name)
LEFT JOIN LATERAL (
    SELECT status, error FROM ingestion_run
    WHERE source = s.source AND status IN ('succeeded', 'failed') AND trigger NOT IN ('file', 'history')
    ORDER BY started_at DESC, id DESC LIMIT 1
) last ON true
LEFT JOIN LATERAL (
    SELECT finished_at, data_fetched_at FROM ingestion_run
    WHERE source = s.source AND status = 'succeeded' AND data_fetched_at IS NOT NULL
    ORDER BY data_fetched_at DESC, id DESC LIMIT 1
) newest ON true
LEFT JOIN LATERAL (
    SELECT t.id, t.enabled, (i.every * CASE i.period WHEN 'days' THEN 86400 WHEN 'hours' THEN 3600
        WHEN 'minutes' THEN 60 WHEN 'seconds' THEN 1 ELSE 0.000001 END)::bigint AS seconds
    FROM django_celery_beat_periodictask t
    LEFT JOIN django_celery_beat_intervalschedule i ON i.id = t.interval_id
    WHERE t.name = s.task_name
) task ON true
"""


def sources_freshness(*, rows: dict[str, tuple[Any, ...]], beat_runs: bool) -> dict[str, dict[str, Any]]:
    """Per source: its latest live run, its newest data and the run that brought it, and whether
    that data is older than the schedule allows (STALE_AFTER_INTERVALS intervals; `stale` is None
    when nothing schedules the source). One query, whatever the number of sources and runs."""
    now = timezone.now()
    result = {}
    for source, row in rows.items():
        last_status, last_error, last_success_at, data_fetched_at, *schedule = row
        scheduled, every = _schedule(source, *schedule) if beat_runs else (False, None)
        stale = None
        if scheduled and every is not None:
            allowed = timedelta(seconds=every * settings.STALE_AFTER_INTERVALS)
            stale = data_fetched_at is None or now - data_fetched_at > allowed
        result[source] = {
            "last_success_at": last_success_at,
            "data_fetched_at": data_fetched_at,
            "last_run_status": last_status,
            "last_error": (last_error or None) if last_status == IngestionRun.Status.FAILED else None,
            "scheduled": scheduled,
            "schedule_seconds": every,
            "stale": stale,
        }
    return result


def _freshness_rows() -> tuple[dict[str, tuple[Any, ...]], float]:
    """Each source's row of _FRESHNESS_SQL, and the statement's round trip in milliseconds: the
    database's latency as /health reports it (raises DatabaseError when it is unreachable)."""
    names = list(source_names())
    with connection.cursor() as cursor:
        started = time.perf_counter()
        arguments = [names, [periodic_task_name(source=name) for name in names]]
        try:
            _freshness_execute(cursor, arguments)
        except DatabaseError as exc:
            # Prepared on a server connection a pooler has since swapped: prepare it again.
            if getattr(exc.__cause__, "pgcode", None) != "26000" or connection.in_atomic_block:
                raise
            _PREPARED_ON.discard(connection.connection)
            _freshness_execute(cursor, arguments)
        rows = {row[0]: tuple(row[1:]) for row in cursor.fetchall()}
    return rows, round((time.perf_counter() - started) * 1000, 2)


_PREPARED_ON: weakref.WeakSet[Any] = weakref.WeakSet()  # the database connections that have it


def _freshness_execute(cursor: Any, arguments: list[list[str]]) -> None:
    if connection.connection not in _PREPARED_ON:
        # Prepared once per connection: PostgreSQL plans it once, not on every poll of /health.
        cursor.execute(f"PREPARE kasparro_freshness (text[], text[]) AS {_FRESHNESS_SQL % ('$1', '$2')}")
        _PREPARED_ON.add(connection.connection)
    cursor.execute("EXECUTE kasparro_freshness (%s, %s)", arguments)


def _schedule(source: str, has_task: bool, enabled: bool | None, seconds: int | None) -> tuple[bool, int | None]:
    """Whether beat runs the source (its periodic task is enabled) and the interval it uses now;
    None when disabled or on a crontab, solar or clocked schedule. Before `migrate` made the task,
    the interval its setting says."""
    if not has_task:
        return True, getattr(settings, source_get(name=source).interval_setting)
    if not enabled:
        return False, None
    return True, int(seconds) if seconds is not None else None


def schedule_of(*, source: str) -> tuple[bool, int | None]:
    """Whether beat runs `source` and at which interval, as /health reads it."""
    _, _, _, _, *schedule = _freshness_rows()[0][source]
    return _schedule(source, *schedule)


def _run_brief(run: IngestionRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.pk,
        "status": run.status,
        "trigger": run.trigger,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_seconds": run.duration_seconds,
        "records_fetched": run.records_fetched,
        "rows_upserted": run.rows_upserted,
        "error": run.error or None,
    }


def stats_summary() -> dict[str, Any]:
    """Per-source aggregates from the running totals (one small row per source) and the run
    counts (an index-only count over the runs table), whatever the size of the data tables."""
    raw: dict[str, dict[str, Any]] = {
        row["source"]: dict(row)
        for row in SourceTotals.objects.values(
            "source", "raw_rows", "records", "quarantined", "first_fetched_at", "last_fetched_at"
        )
    }
    run_counts: dict[str, dict[str, int]] = {}
    for row in IngestionRun.objects.values("source", "status").order_by().annotate(n=Count("id")):
        run_counts.setdefault(row["source"], {})[row["status"]] = row["n"]

    drift: dict[str, dict[str, int]] = {}
    for row in SchemaDrift.objects.values("source", "severity").order_by().annotate(n=Count("id")):
        drift.setdefault(row["source"], {})[row["severity"]] = row["n"]
    latest_ids = SchemaDrift.objects.values("source").order_by().annotate(last=Max("id")).values("last")
    latest_drift = {d.source: d for d in SchemaDrift.objects.filter(pk__in=latest_ids)} if drift else {}

    sources: dict[str, dict[str, Any]] = {}
    for source in source_names():
        counts = {status: run_counts.get(source, {}).get(status, 0) for status in IngestionRun.Status.values}
        stored: dict[str, Any] = raw.get(source, {})
        sources[source] = {
            "datasets": counts[IngestionRun.Status.SUCCEEDED],
            "raw_rows": stored.get("raw_rows", 0),
            "records": stored.get("records") or 0,
            "first_fetched_at": stored.get("first_fetched_at"),
            "last_fetched_at": stored.get("last_fetched_at"),
            "runs": counts,
            "quarantined": stored.get("quarantined", 0),
            "schema_drift": _drift_brief(drift.get(source, {}), latest_drift.get(source)),
            "last_run": _run_brief(run_latest(source)),
            "last_success": _run_brief(run_latest(source, IngestionRun.Status.SUCCEEDED)),
        }
    return {
        "sources": sources,
        "totals": {
            "raw_rows": sum(s["raw_rows"] for s in sources.values()),
            "records": sum(s["records"] for s in sources.values()),
            "runs": sum(sum(s["runs"].values()) for s in sources.values()),
        },
    }


def _drift_brief(counts: dict[str, int], latest: SchemaDrift | None) -> dict[str, Any]:
    return {
        "events": sum(counts.values()),
        "warnings": counts.get(SchemaDrift.Severity.WARNING, 0),
        "latest": None
        if latest is None
        else {
            "id": latest.pk,
            "severity": latest.severity,
            "summary": latest.summary,
            "detected_at": latest.detected_at,
        },
    }


# A slice of a body's records with their running size as JSON text, so an answer stops within its
# byte budget: cut and measured in the database, never shipped to Python to be counted. Past the
# budget a record comes back as NULL (counted, not sent).
_SLICE_SQL = """
WITH b AS MATERIALIZED (  -- the body read (and decompressed) once, not once per record
    SELECT jsonb_path_query_array(data, %s) AS part, data -> 'header' AS header
    FROM raw_crypto_data WHERE id = %s
)
SELECT CASE WHEN running <= %s THEN value END, running, CASE WHEN ord = 1 THEN header END FROM (
    SELECT t.value, t.ord, b.header, sum(octet_length(t.value::text)) OVER (ORDER BY t.ord) AS running
    FROM b, jsonb_array_elements(b.part) WITH ORDINALITY AS t(value, ord)
) s ORDER BY ord
"""


@dataclass(frozen=True)
class RecordsSlice:
    items: list[Any]
    header: Any  # a CSV body's column names
    cut: bool  # records left out to stay within the byte budget
    used: int  # bytes of the items as JSON text


def _records_slice(*, raw_id: int, path: str, count: int, budget: int, start: int = 0) -> RecordsSlice:
    """`count` records of a stored body from `start`, as many as fit in `budget` bytes."""
    with connection.cursor() as cursor:
        cursor.execute(_SLICE_SQL, [f"{path}[{start} to {start + count - 1}]", raw_id, budget])
        rows = cursor.fetchall()
    kept = [(value, running) for value, running, _ in rows if value is not None]
    header = rows[0][2] if rows else None
    return RecordsSlice(
        items=[_decoded(value) for value, _ in kept],
        header=_decoded(header),
        cut=len(kept) < len(rows),
        used=int(kept[-1][1]) if kept else 0,
    )


def _decoded(value: Any) -> Any:
    return json_loads(value) if isinstance(value, str | bytes) else value


def quarantined_record_raw(quarantined: QuarantinedRecord) -> Any:
    """The quarantined record as its stored body holds it (a CSV row with its header's names);
    one larger than API_MAX_BODY_BYTES is described, not sent."""
    if quarantined.index is None:
        return None
    module = source_get(name=quarantined.source)
    part = _records_slice(
        raw_id=quarantined.raw_id,
        path=module.records_path,
        count=1,
        start=quarantined.index,
        budget=settings.API_MAX_BODY_BYTES,
    )
    if part.cut:
        return {"$omitted": f"the record is larger than API_MAX_BODY_BYTES={settings.API_MAX_BODY_BYTES}"}
    return module.records_view(items=part.items, header=part.header)[0] if part.items else None


@dataclass(frozen=True)
class Dataset:
    run: IngestionRun
    fetched_at: datetime
    data_count: int
    raw_ids: list[int]
    records: list[Any]
    newest_record_at: datetime | None  # how old the data is, by the upstream's own timestamps
    from_saved_file: bool
    bytes_capped: bool  # fewer records than asked: the next would pass API_MAX_BODY_BYTES

    @property
    def returned(self) -> int:
        return len(self.records)

    @property
    def age_seconds(self) -> int | None:
        if self.newest_record_at is None:
            return None
        return int((timezone.now() - self.newest_record_at).total_seconds())


def dataset_latest(*, source: str | None, limit: int) -> Dataset | None:
    """Everything that one successful run got from one source: the run holding the newest data
    (a saved file loaded today after a live run is older data, and a run that got no record
    failed), across sources when none is asked.

    A run whose bodies were all unchanged still has a dataset: the bodies it fetched are linked to
    it even though they were stored by an earlier run.
    """
    runs = IngestionRun.objects.filter(status=IngestionRun.Status.SUCCEEDED, data_fetched_at__isnull=False)
    if source:
        runs = runs.filter(source=source)
    run = runs.order_by("-data_fetched_at", "-id").first()
    if run is None:
        return None
    links = list(
        RunBody.objects.filter(run=run)
        .order_by("position", "id")
        .values_list("raw_id", "fetched_at", "raw__record_count", "raw__newest_record_at")
    )
    records: list[Any] = []
    module = source_get(name=run.source)
    budget, cut = settings.API_MAX_BODY_BYTES, False
    for raw_id, *_ in links:
        if len(records) >= limit or cut:
            break
        part = _records_slice(raw_id=raw_id, path=module.records_path, count=limit - len(records), budget=budget)
        records.extend(module.records_view(items=part.items, header=part.header))
        budget, cut = budget - part.used, part.cut
    return Dataset(
        run=run,
        fetched_at=max(fetched for _, fetched, _, _ in links),
        data_count=sum(count for _, _, count, _ in links),
        raw_ids=[raw_id for raw_id, *_ in links],
        records=records,
        newest_record_at=max((newest for *_, newest in links if newest is not None), default=None),
        from_saved_file=run.trigger == IngestionRun.Trigger.FILE,
        bytes_capped=cut,
    )
