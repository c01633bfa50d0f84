"""History from the upstream APIs (`manage.py backfill --source S --coins ... --since DATE`).

The coins asked for (the source's top N by market cap in its latest data, or ids named), each
coin's range cut into windows that keep the finest points the upstream gives
(crypto/sources/history.py), and each window loaded as its own run: its body stored raw like any
other, its points upserted as quotes at their own times, marked as history. A window's run holds a
lock of its coin, not the source's, so live runs go on beside it. A window that fails (a range
the plan does not allow, a coin the upstream does not know) fails alone, with the upstream's
reason, and the others go on. Loading a window twice changes nothing: the body is stored once
and the quotes are upserted on their natural keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from crypto.models import Asset, IngestionRun, MarketQuote
from crypto.services.ingest.backfill import pace
from crypto.services.ingest.run import history_window, ingestion_run
from crypto.sources import source_get, source_names
from crypto.sources.body import Coin, SourceError
from crypto.sources.history import Window, history_windows
from crypto.sources.values import MAX_ID_LENGTH


@dataclass
class HistoryProgress:
    windows_total: int
    windows_done: int = 0
    windows_failed: int = 0
    records: int = 0
    rows_upserted: int = 0
    started: float = field(default_factory=time.monotonic)
    failures: list[tuple[Window, str]] = field(default_factory=list)

    @property
    def windows_left(self) -> int:
        return self.windows_total - self.windows_done - self.windows_failed

    @property
    def records_per_second(self) -> float:
        return self._pace()[0]

    @property
    def eta_seconds(self) -> float | None:
        return self._pace()[1]

    def _pace(self) -> tuple[float, float | None]:
        ended = self.windows_done + self.windows_failed
        return pace(records=self.records, started=self.started, ended=ended, total=self.windows_total)


def history_sources() -> list[str]:
    """The sources whose upstream has a history API."""
    return [name for name in source_names() if _span(name) is not None]


def history_coins(*, source: str, coins: str) -> list[Coin]:
    """The coins `coins` names: `top:N`, the source's N first by market cap rank in its latest
    data; or upstream ids separated by commas. Each with its symbol and name where known."""
    text = coins.strip()
    if text.lower().startswith("top:"):
        count = text[4:].strip()
        if not count.isdigit() or int(count) < 1:
            raise SourceError(f"--coins {coins!r}: top:N takes a whole number of coins, 1 or more")
        return _top(source=source, count=int(count))
    ids = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not ids:
        raise SourceError(f"--coins {coins!r}: name the coins by their {source} ids (bitcoin,ethereum) or top:N")
    if too_long := [upstream_id for upstream_id in ids if len(upstream_id) > MAX_ID_LENGTH]:
        raise SourceError(f"--coins: {too_long[0][:40]}... is longer than {MAX_ID_LENGTH} characters")
    known = {
        upstream_id: (symbol, name)
        for upstream_id, symbol, name in Asset.objects.filter(source=source, upstream_id__in=ids).values_list(
            "upstream_id", "symbol", "name"
        )
    }
    return [Coin(upstream_id, *known.get(upstream_id, ("", ""))) for upstream_id in ids]


def history_plan(*, source: str, coins: list[Coin], since: datetime, until: datetime) -> list[Window]:
    """Every window of every coin, coin by coin, oldest first."""
    span = _span(source)
    if span is None:
        raise SourceError(f"{source} has no history API; history comes from {', '.join(history_sources())}")
    return [window for coin in coins for window in history_windows(coin=coin, since=since, until=until, span=span)]


def history_load(
    *,
    source: str,
    windows: list[Window],
    on_window: Callable[[HistoryProgress, Window, IngestionRun], None] | None = None,
) -> HistoryProgress:
    """Load each window as its own run, in this process; a failed window is counted and the rest go on."""
    progress = HistoryProgress(windows_total=len(windows))
    for window in windows:
        run = ingestion_run(
            source=source, trigger=IngestionRun.Trigger.HISTORY, origin=history_window(source=source, window=window)
        )
        if run.status == IngestionRun.Status.SUCCEEDED:
            progress.windows_done += 1
            progress.records += run.records_fetched
            progress.rows_upserted += run.rows_upserted
        else:
            progress.windows_failed += 1
            progress.failures.append((window, run.error))
        if on_window is not None:
            on_window(progress, window, run)
    return progress


def _span(source: str) -> timedelta | None:
    module = source_get(name=source)
    return module.history_span(context=module.fetch_context(settings=settings, client=None))


def _top(*, source: str, count: int) -> list[Coin]:
    latest = (
        IngestionRun.objects.filter(source=source, status=IngestionRun.Status.SUCCEEDED, data_fetched_at__isnull=False)
        .order_by("-data_fetched_at", "-id")
        .first()
    )
    if latest is None:
        raise SourceError(
            f"{source} has no data yet to pick its top {count} coins from: run `manage.py ingest --source {source}` "
            "first, or name the coins"
        )
    ranked = (
        MarketQuote.objects.filter(raw__runbody__run=latest, market_cap_rank__isnull=False)
        .order_by("market_cap_rank", "asset_id")
        .values_list("asset__upstream_id", "asset__symbol", "asset__name")
    )
    coins: dict[str, Coin] = {}
    for upstream_id, symbol, name in ranked.iterator():
        coins.setdefault(upstream_id, Coin(upstream_id, symbol, name))
        if len(coins) == count:
            break
    return list(coins.values())
