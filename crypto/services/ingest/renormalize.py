"""Rebuild the normalized rows from the stored raw bodies, with no network.

The raw table keeps every body as received, so assets and quotes can always be derived again
(after a parser fix, say). Bodies are read in the order they were stored and upserted on the
same natural keys as live ingestion, so the result equals what live ingestion produced. Work
goes in bounded batches of bodies, each one transaction holding the source's lock, so memory
stays flat and a live run of that source waits rather than interleaves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from crypto.models import Asset, RawBody
from crypto.services.ingest.locks import advisory_xact_lock_wait
from crypto.services.ingest.storage import records_upsert
from crypto.services.ingest.validation import quarantine_replace
from crypto.sources import source_get, source_names
from crypto.sources.body import Coin, ParseResult


@dataclass
class RenormalizeProgress:
    bodies_total: int
    bodies_done: int = 0
    records: int = 0
    rows_upserted: int = 0
    rejected: int = 0


def renormalize_run(
    *,
    source: str | None = None,
    since: datetime | None = None,
    batch_bodies: int = 20,
    on_batch: Callable[[RenormalizeProgress], None] | None = None,
) -> RenormalizeProgress:
    raws = RawBody.objects.all()
    if source:
        raws = raws.filter(source=source)
    if since:
        raws = raws.filter(fetched_at__gte=since)
    ids = list(raws.order_by("id").values_list("id", "source"))
    progress = RenormalizeProgress(bodies_total=len(ids))
    for start in range(0, len(ids), batch_bodies):
        batch = ids[start : start + batch_bodies]
        with transaction.atomic():
            for name in sorted({src for _, src in batch} & set(source_names())):
                advisory_xact_lock_wait(name=f"ingest:{name}")
            for raw in RawBody.objects.filter(pk__in=[pk for pk, _ in batch]).order_by("id"):
                parsed = _parsed(raw)
                quarantine_replace(source=raw.source, raw_id=raw.pk, run_id=raw.run_id, problems=parsed.problems)
                progress.rows_upserted += records_upsert(
                    source=raw.source,
                    records=parsed.records,
                    raw_id=raw.pk,
                    default_time=raw.fetched_at,
                    history=bool(raw.history_of),
                )
                progress.records += raw.record_count
                progress.rejected += len(parsed.problems)
                progress.bodies_done += 1
        if on_batch is not None:
            on_batch(progress)
    return progress


def _parsed(raw: RawBody) -> ParseResult:
    """A stored body parsed again as its kind reads: a window of a coin's history (named as the
    coin's asset is named now), or the source's own."""
    coin = None
    if raw.history_of:
        names = Asset.objects.filter(source=raw.source, upstream_id=raw.history_of).values_list("symbol", "name")
        coin = Coin(raw.history_of, *(names.first() or ("", "")))
    return source_get(name=raw.source).parse_body(data=raw.data, history_of=coin)
