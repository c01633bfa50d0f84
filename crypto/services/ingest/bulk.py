"""The PostgreSQL write path: a body's records go in by COPY into a temporary staging table, then
one `INSERT ... SELECT ... ON CONFLICT` per table. No ORM object per record, no per-row round trip.

Guarantees are the ORM path's (crypto/services/ingest/storage.py): the same natural keys, one row per key
(the last record of a key in a body wins), and everything inside the caller's transaction, so a
failed body or run leaves nothing behind.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import orjson
from django.db import connection

from crypto.models import QUOTE_VALUE_FIELDS
from crypto.services.ingest.prepare import PreparedBody
from crypto.sources.body import Record

STAGE = "quote_stage"
# Lives as long as the connection and is emptied by every commit: no catalog churn per body.
_STAGE_DDL = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} (
    seq integer NOT NULL,
    upstream_id text NOT NULL,
    symbol text NOT NULL,
    name text NOT NULL,
    last_updated timestamptz NOT NULL,
    price_usd numeric, market_cap_usd numeric, volume_24h_usd numeric, market_cap_rank bigint,
    circulating_supply numeric, total_supply numeric, max_supply numeric,
    price_change_24h_usd numeric, price_change_pct_24h numeric, market_cap_change_pct_24h numeric
) ON COMMIT DELETE ROWS
"""
_COLUMNS = ["seq", "upstream_id", "symbol", "name", "last_updated", *QUOTE_VALUE_FIELDS]
_VALUES = ", ".join(QUOTE_VALUE_FIELDS)

# New assets only: an anti-join first, so assets that exist (nearly all, after the first body)
# are neither written nor locked. The last record of an id in the body names it.
_ASSETS_INSERT = f"""
INSERT INTO asset (source, upstream_id, symbol, name, first_seen_at, updated_at)
SELECT DISTINCT ON (s.upstream_id) %(source)s, s.upstream_id, s.symbol, s.name, now(), now()
FROM {STAGE} s
WHERE NOT EXISTS (SELECT 1 FROM asset a WHERE a.source = %(source)s AND a.upstream_id = s.upstream_id)
ORDER BY s.upstream_id, s.seq DESC
ON CONFLICT (source, upstream_id) DO NOTHING
"""
# Renamed assets: written only when the symbol or name really changed.
_ASSETS_RENAME = f"""
UPDATE asset a SET symbol = s.symbol, name = s.name, updated_at = now()
FROM (SELECT DISTINCT ON (upstream_id) upstream_id, symbol, name FROM {STAGE} ORDER BY upstream_id, seq DESC) s
WHERE a.source = %(source)s AND a.upstream_id = s.upstream_id
  AND (a.symbol, a.name) IS DISTINCT FROM (s.symbol, s.name)
"""
_QUOTES_UPSERT = f"""
INSERT INTO market_quote (asset_id, source, last_updated, {_VALUES}, raw_id, ingested_at, history)
SELECT a.id, %(source)s, s.last_updated, {", ".join(f"s.{name}" for name in QUOTE_VALUE_FIELDS)}, %(raw_id)s, now(),
    %(history)s
FROM {STAGE} s JOIN asset a ON a.source = %(source)s AND a.upstream_id = s.upstream_id
ON CONFLICT (asset_id, last_updated) DO UPDATE SET
    {", ".join(f"{name} = excluded.{name}" for name in QUOTE_VALUE_FIELDS)},
    raw_id = excluded.raw_id, ingested_at = excluded.ingested_at, history = excluded.history
WHERE market_quote.history OR NOT excluded.history  -- history never overwrites a live observation
"""

# How old the body's data is: its newest record, for /data to say.
_RAW_NEWEST = f"""
UPDATE raw_crypto_data SET newest_record_at = (SELECT max(last_updated) FROM {STAGE}) WHERE id = %(raw_id)s
"""

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: str) -> str:
    return value.translate(_ESCAPES)


def _field(value: Decimal | int | datetime | None) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def copy_rows(records: Iterable[tuple[int, Record, datetime]]) -> io.StringIO:
    """The records in COPY text format, one line per (seq, record, its time)."""
    out = io.StringIO()
    write = out.write
    for seq, r, when in records:
        write(
            f"{seq}\t{_text(r.upstream_id)}\t{_text(r.symbol[:100])}\t{_text(r.name[:300])}\t{when.isoformat()}\t"
            f"{_field(r.price_usd)}\t{_field(r.market_cap_usd)}\t{_field(r.volume_24h_usd)}\t"
            f"{_field(r.market_cap_rank)}\t{_field(r.circulating_supply)}\t{_field(r.total_supply)}\t"
            f"{_field(r.max_supply)}\t{_field(r.price_change_24h_usd)}\t{_field(r.price_change_pct_24h)}\t"
            f"{_field(r.market_cap_change_pct_24h)}\n"
        )
    out.seek(0)
    return out


def stage_text(records: list[Record], *, default_time: datetime) -> str:
    """The records as COPY text for the staging table, one line per natural key (the last record
    of a key wins: PostgreSQL refuses to update one row twice in one INSERT ... ON CONFLICT).
    Pure work, so a backfill does it in its read-ahead process."""
    latest: dict[tuple[str, datetime], tuple[int, Record, datetime]] = {}
    for seq, record in enumerate(records):
        when = record.last_updated or default_time  # no upstream time: the body's, stable on reload
        latest[(record.upstream_id, when)] = (seq, record, when)
    return copy_rows(latest.values()).getvalue()


def records_copy_upsert(
    *, source: str, records: list[Record], raw_id: int, default_time: datetime, history: bool = False
) -> int:
    """Upsert assets and quotes of one body through a staging table; returns the quote rows written."""
    text = stage_text(records, default_time=default_time)
    return staged_upsert(source=source, text=text, raw_id=raw_id, history=history)


def staged_upsert(*, source: str, text: str, raw_id: int, history: bool = False) -> int:
    """Load `stage_text` output into the staging table, then upsert assets and quotes from it.
    History (`history`) marks its quotes so, and never renames an asset: its answers carry no
    names, and the live data's are the newer."""
    params: dict[str, str | int | bool] = {"source": source, "raw_id": raw_id, "history": history}
    with connection.cursor() as cursor:
        cursor.execute(_STAGE_DDL)
        cursor.execute(f"DELETE FROM {STAGE}")  # an earlier body of this transaction
        # copy_expert is psycopg2's own: wrapped, its errors are Django's like every other statement's
        # (a lost connection is then an OperationalError the run takes as transient, and retries).
        with connection.wrap_database_errors:
            cursor.copy_expert(f"COPY {STAGE} ({', '.join(_COLUMNS)}) FROM STDIN", io.StringIO(text))
        cursor.execute(_ASSETS_INSERT, params)
        if not history:
            cursor.execute(_ASSETS_RENAME, params)
        cursor.execute(_QUOTES_UPSERT, params)
        written = cursor.rowcount
        cursor.execute(_RAW_NEWEST, params)
        return written


def raw_insert(*, source: str, prepared: PreparedBody, run_id: int) -> tuple[int, bool]:
    """Store a body's canonical JSON text unless this source already has that content: (id, created).
    The text goes to jsonb as is, with no second serialization by the ORM."""
    body = prepared.body
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO raw_crypto_data (source, data, fetched_at, content_hash, record_count, request, position, "
            "run_id, fingerprint, history_of) VALUES (%s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s::jsonb, %s) "
            "ON CONFLICT (source, content_hash) DO NOTHING RETURNING id",
            [
                source,
                prepared.canonical.decode(),
                body.fetched_at,
                prepared.digest,
                body.record_count,
                body.request[:2000],
                body.position,
                run_id,
                None if prepared.fingerprint is None else orjson.dumps(prepared.fingerprint).decode(),
                body.history_of.upstream_id if body.history_of else "",
            ],
        )
        row = cursor.fetchone()
        if row is not None:
            return row[0], True
        cursor.execute(
            "SELECT id FROM raw_crypto_data WHERE source = %s AND content_hash = %s", [source, prepared.digest]
        )
        return cursor.fetchone()[0], False
