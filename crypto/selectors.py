"""Reads used by the API and the admin. Aggregates run in the database, never over rows in Python."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Count, Exists, Max, Min, OuterRef, Sum

from crypto.models import IngestionRun, RawCryptoData, RunBody, Source
from crypto.sources import source_get


def database_ping() -> float:
    """Round-trip time of `SELECT 1` in milliseconds; raises DatabaseError when unreachable."""
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return round((time.perf_counter() - start) * 1000, 2)


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


def _latest_run(source: str, *statuses: str) -> IngestionRun | None:
    runs = IngestionRun.objects.filter(source=source)
    if statuses:
        runs = runs.filter(status__in=statuses)
    return runs.order_by("-started_at", "-id").first()


def sources_freshness() -> dict[str, dict[str, Any]]:
    """Per source: the last run and the last success (one indexed lookup each)."""
    result = {}
    for source in Source.values:
        last = _latest_run(source, IngestionRun.Status.SUCCEEDED, IngestionRun.Status.FAILED)
        success = (
            last
            if last and last.status == IngestionRun.Status.SUCCEEDED
            else _latest_run(source, IngestionRun.Status.SUCCEEDED)
        )
        result[source] = {
            "last_success_at": success.finished_at if success else None,
            "last_run_status": last.status if last else None,
            "last_error": last.error if last and last.status == IngestionRun.Status.FAILED else None,
        }
    return result


def stats_summary() -> dict[str, Any]:
    raw = {
        row["source"]: row
        for row in RawCryptoData.objects.values("source")
        .order_by()
        .annotate(
            raw_rows=Count("id"),
            records=Sum("record_count"),
            first_fetched_at=Min("fetched_at"),
            last_fetched_at=Max("fetched_at"),
        )
    }
    run_counts: dict[str, dict[str, int]] = {}
    for row in IngestionRun.objects.values("source", "status").order_by().annotate(n=Count("id")):
        run_counts.setdefault(row["source"], {})[row["status"]] = row["n"]

    sources = {}
    for source in Source.values:
        counts = {status: run_counts.get(source, {}).get(status, 0) for status in IngestionRun.Status.values}
        stored = raw.get(source, {})
        sources[source] = {
            "datasets": counts[IngestionRun.Status.SUCCEEDED],
            "raw_rows": stored.get("raw_rows", 0),
            "records": stored.get("records") or 0,
            "first_fetched_at": stored.get("first_fetched_at"),
            "last_fetched_at": stored.get("last_fetched_at"),
            "runs": counts,
            "last_run": _run_brief(_latest_run(source)),
            "last_success": _run_brief(_latest_run(source, IngestionRun.Status.SUCCEEDED)),
        }
    return {
        "sources": sources,
        "totals": {
            "raw_rows": sum(s["raw_rows"] for s in sources.values()),
            "records": sum(s["records"] for s in sources.values()),
            "runs": sum(sum(s["runs"].values()) for s in sources.values()),
        },
    }


@dataclass(frozen=True)
class Dataset:
    run: IngestionRun
    fetched_at: datetime
    data_count: int
    raw_ids: list[int]
    records: list[Any]


def dataset_latest(*, source: str | None, limit: int) -> Dataset | None:
    """Everything the latest successful run that fetched something got from one source.

    A run whose bodies were all unchanged still has a dataset: the bodies it fetched are linked to
    it even though they were stored by an earlier run.
    """
    runs = IngestionRun.objects.filter(status=IngestionRun.Status.SUCCEEDED).filter(
        Exists(RunBody.objects.filter(run=OuterRef("pk")))
    )
    if source:
        runs = runs.filter(source=source)
    run = runs.order_by("-started_at", "-id").first()
    if run is None:
        return None
    links = list(
        RunBody.objects.filter(run=run)
        .order_by("position", "id")
        .values_list("raw_id", "fetched_at", "raw__record_count")
    )
    records: list[Any] = []
    module = source_get(name=run.source)
    for raw_id, _, _ in links:
        if len(records) >= limit:
            break
        data = RawCryptoData.objects.values_list("data", flat=True).get(pk=raw_id)
        records.extend(module.records_of(data=data)[: limit - len(records)])
    return Dataset(
        run=run,
        fetched_at=max(fetched for _, fetched, _ in links),
        data_count=sum(count for _, _, count in links),
        raw_ids=[raw_id for raw_id, _, _ in links],
        records=records,
    )
