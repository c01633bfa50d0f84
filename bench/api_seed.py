"""The API benchmark's data: quotes, raw rows and assets seeded in bulk by SQL, a coin with a long
series, and the running totals /stats reads; everything vacuumed and analyzed before it is measured."""

from __future__ import annotations

SEED_SQL = """
INSERT INTO asset (source, upstream_id, symbol, name, first_seen_at, updated_at)
SELECT CASE WHEN i %% 2 = 0 THEN 'coingecko' ELSE 'coinpaprika' END, 'bench-coin-' || i, 'B' || (i %% 3000),
       'Bench coin ' || i, now(), now()
FROM generate_series(1, %(assets)s) AS i
ON CONFLICT DO NOTHING;

INSERT INTO raw_crypto_data (source, data, fetched_at, content_hash, record_count, request, position)
SELECT CASE WHEN i %% 2 = 0 THEN 'coingecko' ELSE 'coinpaprika' END, '[]'::jsonb,
       timestamptz '2024-01-01' + make_interval(mins => i), md5('bench-raw-' || i), 250, 'bench', 1
FROM generate_series(%(raw_from)s, %(raw_to)s) AS i;

INSERT INTO market_quote (asset_id, source, last_updated, price_usd, market_cap_usd, volume_24h_usd,
                          market_cap_rank, price_change_pct_24h, ingested_at)
SELECT a.id, a.source, timestamptz '2024-01-01' + make_interval(mins => 5 * (q.i / %(assets)s)),
       round((random() * 1000)::numeric, 8),
       CASE WHEN q.i %% 10 = 0 THEN NULL ELSE round((random() * 1e11)::numeric, 2) END,
       round((random() * 1e9)::numeric, 2), 1 + q.i %% 5000, round((random() * 20 - 10)::numeric, 4), now()
FROM generate_series(%(quotes_from)s, %(quotes_to)s) AS q(i)
JOIN asset a ON a.upstream_id = 'bench-coin-' || (1 + q.i %% %(assets)s);
"""

TOTALS_SQL = """
DELETE FROM source_totals;
INSERT INTO source_totals (source, raw_rows, records, quarantined, first_fetched_at, last_fetched_at)
SELECT source, count(*), sum(record_count), 0, min(fetched_at), max(fetched_at) FROM raw_crypto_data GROUP BY source;
ANALYZE;
"""


LONG_SERIES = 200_000  # quotes of one coin, for the coin page: its series is cut to ~1,000 points
LONG_SQL = """
INSERT INTO asset (source, upstream_id, symbol, name, first_seen_at, updated_at)
VALUES ('coingecko', 'bench-long', 'LONG', 'Bench coin with a long series', now(), now());
INSERT INTO market_quote (asset_id, source, last_updated, price_usd, market_cap_usd, volume_24h_usd, ingested_at)
SELECT (SELECT id FROM asset WHERE upstream_id = 'bench-long'), 'coingecko',
       timestamptz '2020-01-01' + make_interval(mins => 5 * i), round((100 + random())::numeric, 8),
       round((random() * 1e10)::numeric, 2), round((random() * 1e8)::numeric, 2), now()
FROM generate_series(1, %(points)s) AS i;
"""


def long_series(*, points: int) -> int:
    """One coin with `points` quotes five minutes apart; its asset id."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(LONG_SQL, {"points": points})
        # Every table vacuumed now, so that autovacuum does not wake up while latencies are measured.
        cursor.execute("VACUUM (ANALYZE)")
        cursor.execute("SELECT id FROM asset WHERE upstream_id = 'bench-long'")
        return int(cursor.fetchone()[0])


def seed(*, quotes_from: int, quotes_to: int, raw_from: int, raw_to: int, assets: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        # Quotes in chunks of 200k so one statement never holds too much in memory.
        step = 200_000
        for start in range(quotes_from, quotes_to + 1, step):
            cursor.execute(
                SEED_SQL,
                {
                    "assets": assets,
                    "quotes_from": start,
                    "quotes_to": min(start + step - 1, quotes_to),
                    "raw_from": raw_from if start == quotes_from else 1,
                    "raw_to": raw_to if start == quotes_from else 0,
                },
            )
        cursor.execute(TOTALS_SQL)


def count(table: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return int(cursor.fetchone()[0])
