"""History from an upstream API, by coin: a range cut into windows, each window asked in one call
at the finest granularity the upstream gives for a range that long (each source says how long a
window may be), and each window's points turned into records at their own times.

Pure work, like the rest of crypto/sources: no ORM, no settings read here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from crypto.sources.body import Coin, SourceError
from crypto.sources.values import BadValue


@dataclass(frozen=True)
class Window:
    """One call's worth of one coin's history: from `start` to `end`, both in UTC."""

    coin: Coin
    start: datetime
    end: datetime
    position: int  # 1-based, oldest first, within the coin's range

    def __str__(self) -> str:
        return f"{self.coin.upstream_id} {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"


def history_windows(*, coin: Coin, since: datetime, until: datetime, span: timedelta) -> list[Window]:
    """[since, until] cut into consecutive windows of at most `span`, oldest first."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("history ranges are in UTC: give aware datetimes")
    if until <= since:
        raise SourceError(
            f"the range is empty: it ends ({until:%Y-%m-%d %H:%M}) before it starts ({since:%Y-%m-%d %H:%M})"
        )
    if span <= timedelta(0):
        raise ValueError("a window must have a length")
    count = math.ceil((until - since) / span)
    return [
        Window(coin=coin, start=since + span * n, end=min(since + span * (n + 1), until), position=n + 1)
        for n in range(count)
    ]


def time_from_ms(value: Any) -> datetime:
    """A point's time given in Unix milliseconds (CoinGecko's charts), in UTC."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadValue(f"{value!r} is not a time in Unix milliseconds")
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise BadValue(f"{value!r} is not a time in Unix milliseconds") from exc
