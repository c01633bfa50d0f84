"""Checks after a successful run: how it compares with the source's previous successful run, and
anomalies worth a person's look (a record count collapse, prices that jumped, two sources that
disagree about one coin). Findings are flags on the run; they never undo what the run loaded."""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection

from crypto.models import IngestionRun, RawBody
from crypto.services.monitor.metrics import RUN_FLAGS
from crypto.sources import source_get

logger = logging.getLogger(__name__)
EXAMPLES = 10  # examples kept per flag


def run_checks(run: IngestionRun) -> None:
    """Compare `run` with the previous successful run of its source and store flags on it."""
    earlier = IngestionRun.objects.filter(source=run.source, status=IngestionRun.Status.SUCCEEDED, id__lt=run.pk)
    # Like with like: a saved file is compared with the file loaded before it, a fetch with a fetch;
    # a window of one coin's history has no like.
    file, history = IngestionRun.Trigger.FILE, IngestionRun.Trigger.HISTORY
    earlier = earlier.filter(trigger=file) if run.trigger == file else earlier.exclude(trigger__in=[file, history])
    previous = earlier.order_by("-id").first() if run.trigger != history else None
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


# A finished run's bodies never change: the ids of a run, told by the run itself as it read its
# bodies or read once from its stored bodies, serve again when the next run of its source compares
# itself with it. The start time is in the key so that a database rebuilt from scratch, reusing
# ids, cannot hit an old entry.
_IDS_KEPT = 16
_ids_of_runs: OrderedDict[tuple[int, str, datetime | None], frozenset[str]] = OrderedDict()


def run_upstream_ids_remember(run: IngestionRun, ids: frozenset[str]) -> None:
    """The upstream ids of every body `run` fetched (`Source.upstream_ids`), told by the run, so
    its checks need not read its bodies again."""
    key = (run.pk, run.source, run.started_at)
    _ids_of_runs[key] = ids
    _ids_of_runs.move_to_end(key)
    while len(_ids_of_runs) > _IDS_KEPT:
        _ids_of_runs.popitem(last=False)


def _upstream_ids(run: IngestionRun) -> frozenset[str]:
    key = (run.pk, run.source, run.started_at)
    if key not in _ids_of_runs:
        run_upstream_ids_remember(run, _upstream_ids_stored(run.pk, run.source))
    return _ids_of_runs[key]


def _upstream_ids_stored(run_id: int, source: str) -> frozenset[str]:
    """The upstream ids in every body the run fetched, stored or unchanged, read from the stored
    bodies: the same as `Source.upstream_ids` of each."""
    module = source_get(name=source)
    if module.records_path == "$":  # a list of records with an `id` each
        with connection.cursor() as cursor:  # read inside the database: no 2 MB body comes to Python
            # Strict: lax mode would unwrap a record that is a list, or an id that is one.
            cursor.execute(
                "SELECT DISTINCT v #>> '{}' FROM ingestion_run_body b "
                "JOIN raw_crypto_data r ON r.id = b.raw_id CROSS JOIN LATERAL jsonb_path_query(r.data, "
                '\'strict $[*] ? (@.type() == "object" && @.id.type() == "string").id\') v '
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


# The quotes a run wrote, each with one probe of the (asset, time) index for its neighbour: a
# LATERAL join evaluates the probe once a quote (a subquery in SELECT and WHERE would run it for
# each place it appears).
_RUN_QUOTES = "q.raw_id IN (SELECT id FROM raw_crypto_data WHERE run_id = %(run)s) AND q.price_usd IS NOT NULL"
_PRICE_MOVES = f"""
SELECT a.upstream_id, q.price_usd, p.price_usd
FROM market_quote q
JOIN asset a ON a.id = q.asset_id
CROSS JOIN LATERAL (
    SELECT price_usd FROM market_quote p
    WHERE p.asset_id = q.asset_id AND p.last_updated < q.last_updated
    ORDER BY p.last_updated DESC LIMIT 1
) p
WHERE {_RUN_QUOTES} AND p.price_usd > 0
  AND (q.price_usd > p.price_usd * (1 + %(share)s) OR q.price_usd < p.price_usd * (1 - %(share)s))
"""
_PRICE_DISAGREEMENTS = f"""
SELECT c.name, q.price_usd, o.source, o.price_usd
FROM market_quote q
JOIN asset a ON a.id = q.asset_id AND a.canonical_id IS NOT NULL
JOIN canonical_asset c ON c.id = a.canonical_id
CROSS JOIN LATERAL (
    SELECT o.source, o.price_usd FROM market_quote o JOIN asset oa ON oa.id = o.asset_id
    WHERE oa.canonical_id = a.canonical_id AND o.source <> %(source)s AND o.price_usd IS NOT NULL
      AND o.last_updated BETWEEN q.last_updated - %(window)s * interval '1 second'
                           AND q.last_updated + %(window)s * interval '1 second'
    ORDER BY o.last_updated DESC, o.id DESC LIMIT 1
) o
WHERE {_RUN_QUOTES} AND o.price_usd <> 0
"""


def _price_moves(run: IngestionRun) -> list[dict[str, Any]]:
    """Quotes this run wrote whose price moved beyond PRICE_MOVE_PCT since the asset's previous quote."""
    share = Decimal(str(settings.PRICE_MOVE_PCT)) / 100
    # Filtered in the database: only the moved quotes come back, not every quote of the run.
    with connection.cursor() as cursor:
        cursor.execute(_PRICE_MOVES, {"run": run.pk, "share": share})
        rows = cursor.fetchall()
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
    window = settings.PRICE_DISAGREEMENT_WINDOW_SECONDS
    with connection.cursor() as cursor:
        cursor.execute(_PRICE_DISAGREEMENTS, {"run": run.pk, "source": run.source, "window": window})
        rows = cursor.fetchall()
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
