"""Checks on each new body, inside its run's transaction: invalid records go to quarantine (or fail
the run when most of the body is invalid), and the body's structure is compared with the source's
previous body at the same position to record schema drift."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F

from crypto.models import IngestionRun, QuarantinedRecord, RawBody, SchemaDrift, SourceTotals
from crypto.services.monitor.metrics import QUARANTINED, SCHEMA_DRIFT
from crypto.sources.body import Body, Problem, SourceError
from crypto.sources.fingerprint import drift_between

logger = logging.getLogger(__name__)


class BodyRejected(SourceError):
    """Most of a body's records are invalid: the upstream changed or broke, not a few bad rows."""


# Below this many records a body is judged with the rest of its run, not alone: one bad record
# on a short last page is not "most of the body failed".
THRESHOLD_MIN_RECORDS = 20


def quarantine_threshold_check(*, rejected: int, total: int, where: str, first: Problem | None = None) -> None:
    """Fail when more than QUARANTINE_MAX_FRACTION of `total` records are invalid."""
    if total and rejected / total > settings.QUARANTINE_MAX_FRACTION:
        raise BodyRejected(
            f"{where}: {rejected} of {total} records are invalid, more than "
            f"QUARANTINE_MAX_FRACTION={settings.QUARANTINE_MAX_FRACTION:g}" + (f"; the first: {first}" if first else "")
        )


def quarantine_store(*, run: IngestionRun, raw_id: int, body: Body, problems: list[Problem]) -> None:
    """Keep every invalid record with its reason and place in the body; fail the run instead when
    their share passes QUARANTINE_MAX_FRACTION (in a body of THRESHOLD_MIN_RECORDS or more; the
    run checks its total at the end)."""
    if not problems:
        return
    total = body.record_count
    if total >= THRESHOLD_MIN_RECORDS:
        quarantine_threshold_check(
            rejected=len(problems), total=total, where=f"body {body.position}", first=problems[0]
        )
    quarantine_replace(source=run.source, raw_id=raw_id, run_id=run.pk, problems=problems)
    transaction.on_commit(lambda: QUARANTINED.labels(run.source).inc(len(problems)))


def quarantine_replace(*, source: str, raw_id: int, run_id: int | None, problems: list[Problem]) -> None:
    """A body parsed again (renormalize, after a parser fix, say): its quarantine becomes what this
    parse rejected, and the source's count follows."""
    removed, _ = QuarantinedRecord.objects.filter(raw_id=raw_id).delete()
    QuarantinedRecord.objects.bulk_create(
        [
            QuarantinedRecord(
                source=source, run_id=run_id, raw_id=raw_id, where=p.where[:100], index=p.index, reason=p.message
            )
            for p in problems
        ],
        batch_size=1000,
    )
    if removed != len(problems):
        SourceTotals.objects.filter(source=source).update(quarantined=F("quarantined") - removed + len(problems))


def drift_detect(
    *, run: IngestionRun, raw_id: int, position: int, fingerprint: dict[str, Any], used_fields: frozenset[str]
) -> SchemaDrift | None:
    """Compare a new body's fingerprint with the source's previous body at the same position (page
    or chunk), and record what changed. Drift on fields we normalize is a warning."""
    previous = (
        RawBody.objects.filter(source=run.source, position=position, fingerprint__isnull=False, record_count__gt=0)
        .exclude(pk=raw_id)
        .order_by("-id")
        .values_list("id", "fingerprint")
        .first()
    )
    if previous is None:
        return None
    drift = drift_between(previous[1] or {}, fingerprint, null_rate_threshold=settings.DRIFT_NULL_RATE_JUMP)
    if drift.empty:
        return None
    used = sorted(path for path in drift.fields() if path in used_fields)
    severity = SchemaDrift.Severity.WARNING if used else SchemaDrift.Severity.INFO
    event = SchemaDrift.objects.create(
        source=run.source,
        raw_id=raw_id,
        previous_id=previous[0],
        run=run,
        severity=severity,
        added=drift.added,
        removed=drift.removed,
        type_changed={path: list(change) for path, change in drift.type_changed.items()},
        null_rate_jumps={path: list(change) for path, change in drift.null_rate_jumps.items()},
        used_fields=used,
        summary=drift.summary(),
    )
    transaction.on_commit(lambda: SCHEMA_DRIFT.labels(run.source, severity).inc())
    log = logger.warning if used else logger.info
    log("schema drift", extra={"severity": severity, "summary": event.summary, "raw_id": raw_id})
    return event
