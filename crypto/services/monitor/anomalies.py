"""Checks after a successful run: how it compares with the source's previous successful run, and
anomalies worth a person's look (a record count collapse, prices that jumped, two sources that
disagree about one coin). Findings are flags on the run; they never undo what the run loaded."""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F, OuterRef, Q, Subquery

from crypto.models import IngestionRun, MarketQuote, RawBody
from crypto.services.monitor.metrics import RUN_FLAGS
from crypto.sources import source_get

logger = logging.getLogger(__name__)
EXAMPLES = 10  # examples kept per flag


def run_checks(run: IngestionRun) -> None:
    """Compare `run` with the previous successful run of its source and store flags on it."""
    earlier = IngestionRun.objects.filter(source=run.source, status=IngestionRun.Status.SUCCEEDED, id__lt=run.pk)
    # Like with like: a saved file is compared with the file loaded before it, a fetch with a fetch.
    file = IngestionRun.Trigger.FILE
    earlier = earlier.filter(trigger=file) if run.trigger == file else earlier.exclude(trigger=file)
    previous = earlier.order_by("-id").first()
    flags: list[dict[str, Any]] = []
    comparison: dict[str, Any] = {}
    if previous is not None:
        comparison, dropped = _compare(run, previous)
        flags += dropped
    flags += _price_moves(run)
    flags += _price_disagreements(run)
    run.comparison, run.flags = comparison, flags
    run.save(update_fields=["comparison", "flags"])
    for flag in flags:
        RUN_FLAGS.labels(run.source, flag["kind"]).inc()
        logger.warning("run flagged", extra={"kind": flag["kind"], "flag": flag["message"]})


def _upstream_ids(run: IngestionRun) -> frozenset[str]:
    return _upstream_ids_of(run.pk, run.source, run.started_at)


# A finished run's bodies never change: the ids found for a run serve again when the next run of
# its source compares itself with it (one body scan a run, not two). The start time is in the key
# so that a database rebuilt from scratch, reusing ids, cannot hit an old entry.
@functools.lru_cache(maxsize=16)
def _upstream_ids_of(run_id: int, source: str, started_at: datetime | None) -> frozenset[str]:
    """The upstream ids (non-empty strings) in every body the run fetched, stored or unchanged."""
    module = source_get(name=source)
    if module.records_path == "$":  # a list of records with an `id` each
        with connection.cursor() as cursor:  # read inside the database: no 2 MB body comes to Python
            cursor.execute(
                "SELECT DISTINCT v #>> '{}' FROM ingestion_run_body b "
                "JOIN raw_crypto_data r ON r.id = b.raw_id CROSS JOIN LATERAL jsonb_path_query(r.data, "
                '\'lax $[*] ? (@.type() == "object").id ? (@.type() == "string")\') v '
                "WHERE b.run_id = %s AND jsonb_typeof(r.data) = 'array'",
                [run_id],
            )
            # Stripped here, as parsing strips them (str.strip, not SQL's btrim of spaces only).
            return frozenset(row[0].strip() for row in cursor.fetchall() if row[0].strip())
    ids: set[str] = set()  # CSV chunks: the row's id is what parsing makes of it
    for data in RawBody.objects.filter(runbody__run_id=run_id).values_list("data", flat=True).iterator():
        ids |= {record.upstream_id for record in module.parse(data=data).records}
    return frozenset(ids)


def _compare(run: IngestionRun, previous: IngestionRun) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    before, now = previous.records_fetched, run.records_fetched
    change = (now - before) / before * 100 if before else None
    assets_before, assets_now = _upstream_ids(previous), _upstream_ids(run)
    comparison = {
        "previous_run": previous.pk,
        "records": [before, now],
        "records_change_pct": None if change is None else round(change, 1),
        "assets_appeared": len(assets_now - assets_before),
        "assets_disappeared": len(assets_before - assets_now),
        "duration_seconds": [previous.duration_seconds, run.duration_seconds],
    }
    flags = []
    if change is not None and -change > settings.RUN_RECORD_DROP_PCT:
        flags.append(
            {
                "kind": "record_count_drop",
                "message": f"records fell {-change:.0f}% ({before} -> {now}) against run #{previous.pk} "
                f"(RUN_RECORD_DROP_PCT={settings.RUN_RECORD_DROP_PCT:g})",
            }
        )
    return comparison, flags


def _pct(a: Decimal, b: Decimal) -> float:
    return float(abs(a - b) / abs(b) * 100)


def _price_moves(run: IngestionRun) -> list[dict[str, Any]]:
    """Quotes this run wrote whose price moved beyond PRICE_MOVE_PCT since the asset's previous quote."""
    previous_price = (
        MarketQuote.objects.filter(asset_id=OuterRef("asset_id"), last_updated__lt=OuterRef("last_updated"))
        .order_by("-last_updated", "-id")
        .values("price_usd")[:1]
    )
    share = Decimal(str(settings.PRICE_MOVE_PCT)) / 100
    # Filtered in the database: only the moved quotes come back, not every quote of the run.
    rows = (
        MarketQuote.objects.filter(raw__run=run, price_usd__isnull=False)
        .annotate(previous=Subquery(previous_price))
        .filter(previous__gt=0)
        .filter(Q(price_usd__gt=F("previous") * (1 + share)) | Q(price_usd__lt=F("previous") * (1 - share)))
        .values_list("asset__upstream_id", "price_usd", "previous")
    )
    moved = sorted(((_pct(price, before), uid, before, price) for uid, price, before in rows), reverse=True)
    if not moved:
        return []
    examples = ", ".join(f"{uid} {pct:.0f}% ({before:g} -> {price:g})" for pct, uid, before, price in moved[:EXAMPLES])
    return [
        {
            "kind": "price_move",
            "message": f"{len(moved)} prices moved more than {settings.PRICE_MOVE_PCT:g}% since their previous "
            f"quote: {examples}",
            "count": len(moved),
        }
    ]


def _price_disagreements(run: IngestionRun) -> list[dict[str, Any]]:
    """Linked coins this run priced that another source priced within the window, differently."""
    window = timedelta(seconds=settings.PRICE_DISAGREEMENT_WINDOW_SECONDS)
    other = (
        MarketQuote.objects.filter(
            asset__canonical_id=OuterRef("asset__canonical_id"),
            last_updated__gte=OuterRef("last_updated") - window,
            last_updated__lte=OuterRef("last_updated") + window,
            price_usd__isnull=False,
        )
        .exclude(source=run.source)
        .order_by("-last_updated", "-id")  # both subqueries below pick the same row
    )
    rows = (
        MarketQuote.objects.filter(raw__run=run, asset__canonical__isnull=False, price_usd__isnull=False)
        .annotate(
            other_price=Subquery(other.values("price_usd")[:1]), other_source=Subquery(other.values("source")[:1])
        )
        .filter(other_price__isnull=False)
        .exclude(other_price=0)
        .values_list("asset__canonical__name", "price_usd", "other_source", "other_price")
    )
    apart = sorted(
        (
            (_pct(price, other_price), name, price, other_source, other_price)
            for name, price, other_source, other_price in rows
        ),
        reverse=True,
    )
    apart = [row for row in apart if row[0] > settings.PRICE_DISAGREEMENT_PCT]
    if not apart:
        return []
    examples = ", ".join(
        f"{name}: {price:g} here, {other_price:g} on {other_source} ({pct:.1f}%)"
        for pct, name, price, other_source, other_price in apart[:EXAMPLES]
    )
    return [
        {
            "kind": "price_disagreement",
            "message": f"{len(apart)} coins priced more than {settings.PRICE_DISAGREEMENT_PCT:g}% apart from "
            f"another source within {settings.PRICE_DISAGREEMENT_WINDOW_SECONDS}s: {examples}",
            "count": len(apart),
        }
    ]
