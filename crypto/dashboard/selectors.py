"""The reads behind the front page and the dashboard. Each costs about the same at any table size:
index seeks and bounded sets (a run's dataset, a page of runs, about a thousand points of one
series), never a scan of the quotes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q

from crypto.models import Asset, IngestionRun, SchemaDrift
from crypto.services.monitor.progress import run_progress
from crypto.sources import source_get, source_names

SERIES_POINTS = 1000  # a long series is cut into this many buckets, the last quote of each kept
RUNS_SHOWN = 60


def data_version() -> str:
    """What the dashboard shows changes when a run starts or ends: the newest run's id, status and
    end, in one index seek (`run_started_id`)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, status, finished_at FROM ingestion_run ORDER BY started_at DESC, id DESC LIMIT 1")
        row = cursor.fetchone()
    return "none" if row is None else f"{row[0]}-{row[1]}-{row[2].timestamp() if row[2] else ''}"


def recent_runs(*, limit: int = RUNS_SHOWN) -> list[IngestionRun]:
    """The newest runs of every source (the `run_started_id` index), newest first."""
    return list(IngestionRun.objects.order_by("-started_at", "-id").defer("problems", "comparison")[:limit])


_MOVERS = """
SELECT a.id, a.source, a.upstream_id, a.symbol, a.name, q.price_usd, q.price_change_pct_24h, q.raw_id
FROM market_quote q JOIN asset a ON a.id = q.asset_id
WHERE q.raw_id IN (SELECT raw_id FROM ingestion_run_body WHERE run_id = %(run)s)
  AND q.price_change_pct_24h IS NOT NULL
ORDER BY abs(q.price_change_pct_24h) DESC, a.id
LIMIT %(limit)s
"""


def biggest_movers(*, limit: int = 10) -> list[dict[str, Any]]:
    """Per source, the quotes of its latest dataset that moved most in 24 hours (a dataset is a
    few thousand quotes at most, whatever the table holds)."""
    movers = []
    for run in _latest_datasets():
        with connection.cursor() as cursor:
            cursor.execute(_MOVERS, {"run": run.pk, "limit": limit})
            columns = [c.name for c in cursor.description]
            movers += [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return sorted(movers, key=lambda m: -abs(m["price_change_pct_24h"]))[:limit]


def _latest_datasets() -> list[IngestionRun]:
    latest = []
    for source in source_names():
        run = (
            IngestionRun.objects.filter(
                source=source, status=IngestionRun.Status.SUCCEEDED, data_fetched_at__isnull=False
            )
            .order_by("-data_fetched_at", "-id")
            .only("id", "source")
            .first()
        )
        if run is not None:
            latest.append(run)
    return latest


def asset_search(*, text: str, limit: int = 100) -> list[Asset]:
    """Assets whose symbol or upstream id is `text` (any case) or whose name holds it: symbols
    repeat, so every match is listed with its source and id."""
    text = text.strip()
    if not text:
        return []
    matches = Asset.objects.filter(
        Q(symbol__iexact=text) | Q(upstream_id__iexact=text) | Q(name__icontains=text)
    ).select_related("canonical")
    return list(matches.order_by("symbol", "source", "upstream_id")[:limit])


@dataclass(frozen=True)
class Point:
    at: datetime
    price: Decimal | None
    market_cap: Decimal | None
    volume: Decimal | None
    raw_id: int | None
    history: bool


# One series at about SERIES_POINTS points whatever its length: the bucket boundaries are generated,
# and each takes the asset's last quote before it by one probe of the (asset, time) index.
_SERIES = """
WITH bounds AS (
    SELECT (SELECT last_updated FROM market_quote WHERE asset_id = %(asset)s ORDER BY last_updated LIMIT 1) AS first,
           (SELECT last_updated FROM market_quote WHERE asset_id = %(asset)s ORDER BY last_updated DESC LIMIT 1)
           AS last
)
SELECT DISTINCT ON (q.id) q.last_updated, q.price_usd, q.market_cap_usd, q.volume_24h_usd, q.raw_id, q.history
FROM bounds,
     generate_series(0, %(points)s) AS n,
     LATERAL (
        SELECT id, last_updated, price_usd, market_cap_usd, volume_24h_usd, raw_id, history FROM market_quote
        WHERE asset_id = %(asset)s
          AND last_updated <= bounds.first + (bounds.last - bounds.first) * n / %(points)s
        ORDER BY last_updated DESC LIMIT 1
     ) q
WHERE bounds.first IS NOT NULL
ORDER BY q.id
"""


def asset_series(*, asset_id: int, points: int = SERIES_POINTS) -> list[Point]:
    """The asset's quotes, oldest first, cut to about `points` (the last of each bucket of time)."""
    with connection.cursor() as cursor:
        cursor.execute(_SERIES, {"asset": asset_id, "points": points})
        rows = sorted(cursor.fetchall())
    return [Point(*row) for row in rows]


def coin_assets(asset: Asset) -> list[Asset]:
    """The asset and, when it is linked, the same coin's assets of the other sources."""
    if asset.canonical_id is None:
        return [asset]
    return list(Asset.objects.filter(canonical_id=asset.canonical_id).order_by("source"))


# The runs' checks at the points shown, at full resolution: each point against the quote before it
# (a price move) and against the other sources' latest quote within the window (a disagreement),
# one probe of the (asset, time) index a point.
_FLAGS = """
SELECT p.t,
       prev.price_usd > 0 AND abs(p.price - prev.price_usd) > prev.price_usd * %(move)s AS moved,
       other.price_usd <> 0 AND abs(p.price - other.price_usd) > abs(other.price_usd) * %(apart)s AS apart
FROM unnest(%(times)s::timestamptz[], %(prices)s::numeric[]) AS p(t, price)
LEFT JOIN LATERAL (
    SELECT price_usd FROM market_quote WHERE asset_id = %(asset)s AND last_updated < p.t
    ORDER BY last_updated DESC LIMIT 1
) prev ON true
LEFT JOIN LATERAL (
    SELECT price_usd FROM market_quote
    WHERE asset_id = ANY(%(others)s) AND price_usd IS NOT NULL
      AND last_updated BETWEEN p.t - %(window)s * interval '1 second' AND p.t + %(window)s * interval '1 second'
    ORDER BY last_updated DESC, id DESC LIMIT 1
) other ON true
WHERE p.price IS NOT NULL
"""


def series_flags(*, asset_id: int, others: list[int], series: list[Point]) -> tuple[list[Point], list[Point]]:
    """The points shown that the runs' checks would flag: (moved beyond PRICE_MOVE_PCT since the
    quote before, priced beyond PRICE_DISAGREEMENT_PCT apart from another source within
    PRICE_DISAGREEMENT_WINDOW_SECONDS)."""
    priced = [p for p in series if p.price is not None]
    if not priced:
        return [], []
    params: dict[str, Any] = {
        "asset": asset_id,
        "others": others or [0],
        "times": [p.at for p in priced],
        "prices": [p.price for p in priced],
        "move": Decimal(str(settings.PRICE_MOVE_PCT)) / 100,
        "apart": Decimal(str(settings.PRICE_DISAGREEMENT_PCT)) / 100,
        "window": settings.PRICE_DISAGREEMENT_WINDOW_SECONDS,
    }
    with connection.cursor() as cursor:
        cursor.execute(_FLAGS, params)
        rows = cursor.fetchall()
    moved = {t for t, was_moved, _ in rows if was_moved}
    apart = {t for t, _, was_apart in rows if was_apart}
    return [p for p in priced if p.at in moved], [p for p in priced if p.at in apart]


def run_drift(run: IngestionRun) -> list[SchemaDrift]:
    return list(SchemaDrift.objects.filter(run=run).order_by("id")[:20])


def run_estimate(run: IngestionRun) -> dict[str, Any] | None:
    """A running run's progress (records and bodies so far, records/s) and an ETA from the last
    successful runs of its source and trigger; None when it said nothing yet."""
    progress = run_progress(run.pk)
    if progress is None:
        return None
    seconds = progress["seconds"]
    earlier = [
        r.duration_seconds
        for r in IngestionRun.objects.filter(
            source=run.source, trigger=run.trigger, status=IngestionRun.Status.SUCCEEDED, finished_at__isnull=False
        ).order_by("-started_at")[:10]
    ]
    durations = [d for d in earlier if d is not None]
    typical = sum(durations) / len(durations) if durations else None
    return {
        **progress,
        "rate": progress["records"] / seconds if seconds > 0 else 0.0,
        "eta": None if typical is None else max(typical - seconds, 0.0),
    }


def source_label(name: str) -> str:
    try:
        return str(source_get(name=name).label)
    except Exception:  # a source no longer configured still has runs
        return name
