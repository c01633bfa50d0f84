"""What the benchmarks share: their databases, and the upstream answers their stubs serve."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlparse, urlunparse

import orjson

HOUR_MS = 3600 * 1000


def bench_database_url(name: str, *, quick: bool) -> str:
    """The benchmark's own database `name` (`name_quick` in quick mode) on DATABASE_URL's server."""
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/kasparro"
    parsed = urlparse(base)
    if not parsed.scheme.startswith("postgres"):
        sys.exit("make bench needs PostgreSQL: set DATABASE_URL to a postgres:// URL")
    return urlunparse(parsed._replace(path=f"/{name}_quick" if quick else f"/{name}"))


def recreate_database(url: str) -> None:
    """Drop and create the database `url` names (sessions a killed run left are ended)."""
    import psycopg2

    parsed = urlparse(url)
    admin = psycopg2.connect(urlunparse(parsed._replace(path="/postgres")))
    admin.autocommit = True
    name = parsed.path.lstrip("/")
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def chart_body(coin: str, start_s: int, end_s: int) -> bytes:
    """A CoinGecko `/coins/{id}/market_chart/range` answer shaped as its documentation shows: hourly
    [ms, value] points over the range asked, the coin priced by the length of its id plus a drift."""
    first = -(-start_s * 1000 // HOUR_MS) * HOUR_MS
    times = range(first, end_s * 1000 + 1, HOUR_MS)
    price = float(len(coin))
    return orjson.dumps(
        {
            "prices": [[t, price + (t - first) / HOUR_MS / 1000] for t in times],
            "market_caps": [[t, price * 1e9] for t in times],
            "total_volumes": [[t, price * 1e7] for t in times],
        }
    )


def ratios_print(rows: list[tuple[str, float, str, float]], *, width: int = 42) -> bool:
    """Print each (label, ratio, ">=" or "<=", target) against its target; whether one was missed."""
    print("Ratios (target):")
    missed = False
    for label, ratio, sense, target in rows:
        ok = ratio >= target if sense == ">=" else ratio <= target
        missed |= not ok
        print(f"  {label:<{width}} {ratio:7.3f}x  ({sense} {target}x) {'ok' if ok else 'MISSED'}")
    return missed
