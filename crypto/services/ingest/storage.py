"""Writes of one body: the raw row (once per content), and the normalized rows (upserted on their
natural keys). Callers run these inside the run's transaction. The rows themselves go through
crypto/services/ingest/bulk.py: COPY into a staging table and set-based upserts."""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, Value
from django.db.models.functions import Coalesce, Greatest, Least

from crypto.models import (
    IngestionRun,
    LoadedFile,
    RunBody,
    SourceTotals,
)
from crypto.services.ingest import bulk
from crypto.services.ingest.prepare import PreparedBody
from crypto.sources.body import Record
from crypto.sources.files import file_digest


def raw_body_store(*, source: str, prepared: PreparedBody, run: IngestionRun) -> tuple[int, bool]:
    """Store a body unless the same content is already stored for this source, and link it to
    the run either way (the run's dataset includes bodies it fetched that were not new).
    Returns the raw row's id and whether it was stored now."""
    body = prepared.body
    raw_id, created = bulk.raw_insert(source=source, prepared=prepared, run_id=run.pk)
    if created:
        source_totals_add(source=source, records=body.record_count, fetched_at=body.fetched_at)
    RunBody.objects.get_or_create(
        run=run, raw_id=raw_id, defaults={"position": body.position, "fetched_at": body.fetched_at}
    )
    return raw_id, created


def body_records_upsert(
    *, source: str, prepared: PreparedBody, records: list[Record], raw_id: int, history: bool = False
) -> tuple[int, int]:
    """Upsert a new body's valid records: from the COPY text a backfill read ahead when there is
    one, else from `records`. Returns (valid records, quote rows written)."""
    if prepared.staged is not None:
        valid = prepared.staged_records
        return valid, bulk.staged_upsert(source=source, text=prepared.staged, raw_id=raw_id) if valid else 0
    upserted = records_upsert(
        source=source, records=records, raw_id=raw_id, default_time=prepared.body.fetched_at, history=history
    )
    return len(records), upserted


def records_upsert(
    *, source: str, records: list[Record], raw_id: int, default_time: datetime, history: bool = False
) -> int:
    """Upsert assets and quotes on their natural keys; returns the number of quote rows written."""
    if not records:
        return 0
    return bulk.records_copy_upsert(
        source=source, records=records, raw_id=raw_id, default_time=default_time, history=history
    )


def source_totals_add(*, source: str, records: int, fetched_at: datetime) -> None:
    """Count a newly stored body in the source's running totals (same transaction as the body)."""
    totals, _ = SourceTotals.objects.get_or_create(source=source)
    SourceTotals.objects.filter(pk=totals.pk).update(
        raw_rows=F("raw_rows") + 1,
        records=F("records") + records,
        first_fetched_at=Coalesce(Least("first_fetched_at", Value(fetched_at)), Value(fetched_at)),
        last_fetched_at=Coalesce(Greatest("last_fetched_at", Value(fetched_at)), Value(fetched_at)),
    )


def loaded_file_record(*, source: str, path: str, run: IngestionRun, read: tuple[str, int] | None) -> None:
    """Mark a saved file as loaded by `run` (in the run's transaction: a failed run marks nothing),
    known by the digest and size of the bytes its bodies were `read` from (hashed now only when
    it held no body)."""
    digest, size = read or file_digest(path)
    LoadedFile.objects.get_or_create(
        source=source,
        digest=digest,
        defaults={"path": path[:2000], "size": size, "records": run.records_fetched, "run": run},
    )
