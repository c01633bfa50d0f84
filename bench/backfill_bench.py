"""Backfill speed and memory, measured in one run on one PostgreSQL.

    make bench                     # or: python bench/backfill_bench.py [--bodies 200] [--quick]

Generates an archive of CoinPaprika `/tickers` bodies from the recorded one (2,500 tickers each,
prices on a random walk, times an hour apart), then prints:
  - records/s of `manage.py ingest --file ARCHIVE` (parse, validate, store raw, normalize, upsert)
    against PostgreSQL's own cost for what a backfill must write: per body, in one transaction,
    one INSERT of the raw body as jsonb (lz4, as the real table) and one COPY of its normalized
    rows into a copy of market_quote with the same indexes and foreign keys (target >= 0.8x);
    and against a naive loader that saves one ORM object per record (target >= 10x);
  - the time of a second backfill of the same archive against the first (target <= 5%);
  - peak RSS of the backfill of all bodies against a backfill of a tenth of them, the command and
    its read-ahead process together (target <= 1.2x).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from common import bench_database_url, ratios_print, recreate_database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURE = ROOT / "tests" / "fixtures" / "upstream" / "coinpaprika_tickers_greenyun2.json"
DATABASE = "kasparro_bench_backfill"
TABLES = "market_quote, asset, ingestion_run_body, loaded_file, raw_crypto_data, ingestion_run, source_totals"


def database_url(*, quick: bool = False) -> str:
    return bench_database_url(DATABASE, quick=quick)


def archive_write(folder: Path, *, bodies: int) -> int:
    """`bodies` files of 2,500 tickers: each price walks randomly, each body is an hour later.
    Returns the number of records written."""
    base = orjson.loads(FIXTURE.read_bytes())
    rng = random.Random(20231108)
    prices = [t["quotes"]["USD"]["price"] for t in base]
    start = datetime(2023, 8, 11, 8, tzinfo=UTC)
    records = 0
    for index in range(bodies):
        when = start + timedelta(hours=index)
        body = []
        for n, ticker in enumerate(base):
            prices[n] *= 1 + rng.uniform(-0.02, 0.02)
            usd = dict(
                ticker["quotes"]["USD"],
                price=prices[n],
                volume_24h=ticker["quotes"]["USD"]["volume_24h"] * rng.uniform(0.5, 1.5),
            )
            # Tickers update at their own moment within the hour.
            updated = when + timedelta(seconds=rng.randrange(3600))
            body.append(dict(ticker, last_updated=updated.strftime("%Y-%m-%dT%H:%M:%SZ"), quotes={"USD": usd}))
        path = folder / f"tickers-{when:%Y%m%dT%H}.json"
        path.write_bytes(orjson.dumps(body))
        os.utime(path, (when.timestamp(),) * 2)
        records += len(body)
    return records


def _peak_rss_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM) since its exec. (`wait4`'s ru_maxrss would also count
    the memory of this process, which the child shares between fork and exec.)"""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


def backfill(env: dict[str, str], target: Path) -> tuple[float, int, str]:
    """Run `manage.py ingest --file` as an operator would; (seconds, peak RSS in KiB, output)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "ingest", "--source", "coinpaprika", "--file", str(target)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        peaks: dict[int, int] = {}  # the command and its read-ahead process
        while proc.poll() is None:  # a high-water mark only grows: the last reading is the peak
            for pid in [proc.pid, *_children(proc.pid)]:
                peaks[pid] = max(peaks.get(pid, 0), _peak_rss_kib(pid))
            time.sleep(0.05)
        peak = sum(peaks.values())
        seconds = time.perf_counter() - started
        out.seek(0)
        output = out.read()
    if proc.returncode != 0:
        sys.exit(f"backfill of {target} failed:\n{output}")
    return seconds, peak, output


def truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")


# The columns of market_quote a baseline COPYs: asset_id, source, last_updated, the values, raw_id, ingested_at.
def quote_columns() -> list[str]:
    from crypto.models import QUOTE_VALUE_FIELDS

    return ["asset_id", "source", "last_updated", *QUOTE_VALUE_FIELDS, "raw_id", "ingested_at"]


def asset_ids() -> dict[str, int]:
    from crypto.models import Asset

    return dict(Asset.objects.filter(source="coinpaprika").values_list("upstream_id", "id"))


def quote_lines(data: object, assets: dict[str, int]) -> list[str]:
    """A body's normalized rows as COPY lines for `quote_columns()`, but for raw_id and ingested_at."""
    from crypto.services.ingest.bulk import copy_rows
    from crypto.sources import coinpaprika

    lines = []
    for record in coinpaprika.source.parse(data=data).records:
        assert record.last_updated is not None
        cells = copy_rows([(0, record, record.last_updated)]).getvalue().rstrip("\n").split("\t")
        lines.append("\t".join([str(assets[record.upstream_id]), "coinpaprika", cells[4], *cells[5:]]))
    return lines


def bare_copy_rate(files: list[Path]) -> tuple[float, int]:
    """COPY the normalized rows of `files` into an empty copy of market_quote; (records/s, rows)."""
    from django.db import connection, transaction

    from crypto.models import RawBody

    raw_id = RawBody.objects.values_list("id", flat=True).first()
    tail = f"\t{raw_id}\t2024-01-01T00:00:00+00:00\n"
    assets = asset_ids()
    lines = [line for path in files for line in quote_lines(orjson.loads(path.read_bytes()), assets)]
    out = io.StringIO(tail.join(lines) + tail)
    rows = len(lines)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bare_copy")
        cursor.execute("CREATE TABLE bare_copy (LIKE market_quote INCLUDING ALL)")
        cursor.execute("CHECKPOINT")
    out.seek(0)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.copy_expert(f"COPY bare_copy ({', '.join(quote_columns())}) FROM STDIN", out)
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bare_copy")
        assert cursor.fetchone()[0] == rows
        cursor.execute("DROP TABLE bare_copy")
    return rows / seconds, rows


def bare_database_rate(files: list[Path]) -> tuple[float, int]:
    """PostgreSQL's own cost for what a backfill must write, with everything else done first:
    per body, one transaction holding one INSERT of its canonical JSON into a copy of the raw
    table (jsonb, lz4) and one COPY of its normalized rows into a copy of market_quote with the
    same indexes and foreign keys (to asset, and to the raw copy); (records/s, rows)."""
    from django.db import connection, transaction

    from crypto.sources.body import canonical_json

    work, assets = [], asset_ids()
    for path in files:
        data = orjson.loads(path.read_bytes())
        work.append((canonical_json(data).decode(), quote_lines(data, assets)))
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bare_quote, bare_raw")
        cursor.execute("CREATE TABLE bare_raw (LIKE raw_crypto_data INCLUDING ALL)")
        cursor.execute("CREATE TABLE bare_quote (LIKE market_quote INCLUDING ALL)")
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'market_quote'::regclass "
            "AND contype = 'f'"
        )
        for (definition,) in cursor.fetchall():
            cursor.execute(f"ALTER TABLE bare_quote ADD {definition.replace('raw_crypto_data', 'bare_raw')}")
        cursor.execute("CHECKPOINT")
    rows = 0
    started = time.perf_counter()
    for n, (body, lines) in enumerate(work):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bare_raw (source, data, fetched_at, content_hash, record_count, request, position) "
                "VALUES ('coinpaprika', %s::jsonb, now(), %s, %s, '', 1) RETURNING id",
                [body, str(n), len(lines)],
            )
            tail = f"\t{cursor.fetchone()[0]}\t2024-01-01T00:00:00+00:00\n"
            text = tail.join(lines) + tail
            with connection.wrap_database_errors:
                cursor.copy_expert(f"COPY bare_quote ({', '.join(quote_columns())}) FROM STDIN", io.StringIO(text))
            rows += len(lines)
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bare_quote")
        assert cursor.fetchone()[0] == rows
        cursor.execute("DROP TABLE bare_quote, bare_raw")
    return rows / seconds, rows


def raw_only_rate(files: list[Path]) -> float:
    """For reference: storing the bodies alone (canonical JSON into an empty copy of the raw table,
    jsonb, one statement per body, one transaction); in records/s."""
    from django.db import connection, transaction

    from crypto.sources.body import canonical_json

    bodies = [canonical_json(orjson.loads(path.read_bytes())).decode() for path in files]
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bare_raw")
        cursor.execute("CREATE TABLE bare_raw (LIKE raw_crypto_data INCLUDING ALL)")
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for n, body in enumerate(bodies):
            cursor.execute(
                "INSERT INTO bare_raw (source, data, fetched_at, content_hash, record_count, request, position) "
                "VALUES ('coinpaprika', %s::jsonb, now(), %s, 2500, '', 1)",
                [body, str(n)],
            )
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bare_raw")
    return len(bodies) * 2500 / seconds


def naive_rate(files: list[Path], *, most: int | None = None) -> tuple[float, int]:
    """What a naive loader does: the body through the ORM, then one get_or_create and one save per
    record, in one transaction per body; (records/s, records)."""
    from django.db import transaction

    from crypto.models import Asset, MarketQuote, RawBody
    from crypto.sources import coinpaprika
    from crypto.sources.files import modified_at

    started = time.perf_counter()
    records = 0
    for path in files:
        data = orjson.loads(path.read_bytes())
        with transaction.atomic():
            raw = RawBody.objects.create(
                source="coinpaprika",
                data=data,
                fetched_at=modified_at(str(path)),
                content_hash=str(path),
                record_count=len(data),
                request=str(path),
            )
            for record in coinpaprika.source.parse(data=data).records[:most]:
                asset, _ = Asset.objects.get_or_create(
                    source="coinpaprika",
                    upstream_id=record.upstream_id,
                    defaults={"symbol": record.symbol, "name": record.name},
                )
                quote = MarketQuote.objects.filter(asset=asset, last_updated=record.last_updated).first()
                quote = quote or MarketQuote(asset=asset, source="coinpaprika", last_updated=record.last_updated)
                for name in ("price_usd", "market_cap_usd", "volume_24h_usd", "market_cap_rank"):
                    setattr(quote, name, getattr(record, name))
                quote.raw = raw
                quote.save()
                records += 1
    return records / (time.perf_counter() - started), records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bodies", type=int, default=200)
    parser.add_argument("--naive-bodies", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a few bodies, seconds; ratios printed, targets not held")
    args = parser.parse_args()
    if args.quick:
        args.bodies, args.naive_bodies = 4, 1
    small_bodies = max(1, args.bodies // 10)

    url = database_url(quick=args.quick)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "kasparro.settings", "DJANGO_DEBUG": "false"}
    env.pop("REDIS_URL", None)
    env["LOG_LEVEL"] = "WARNING"
    os.environ.update(env)
    recreate_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    with tempfile.TemporaryDirectory(prefix="kasparro-archive-") as tmp:
        folder = Path(tmp) / "archive"
        folder.mkdir()
        started = time.perf_counter()
        records = archive_write(folder, bodies=args.bodies)
        files = sorted(folder.iterdir())
        size = sum(p.stat().st_size for p in files) / 1e6
        print(
            f"Archive: {len(files)} CoinPaprika bodies, {records:,} records, {size:,.0f} MB "
            f"(written in {time.perf_counter() - started:.0f}s)",
            flush=True,
        )
        small = Path(tmp) / "small"
        small.mkdir()
        for path in files[:small_bodies]:
            os.link(path, small / path.name)

        first_seconds, rss_all, output = backfill(env, folder)
        print(
            f"first backfill: {first_seconds:.1f}s, peak RSS {rss_all / 1024:.0f} MiB\n"
            f"  {output.strip().splitlines()[-1]}",
            flush=True,
        )
        second_seconds, _, output = backfill(env, folder)
        print(f"second backfill: {second_seconds:.2f}s\n  {output.strip().splitlines()[-1]}", flush=True)
        bare_per_s, rows = bare_database_rate(files)
        print(
            f"bare database work (raw INSERT + COPY per body): {rows:,} rows at {bare_per_s:,.0f} records/s", flush=True
        )
        copy_per_s, rows = bare_copy_rate(files)
        print(f"bare COPY of the rows alone (for reference): {rows:,} rows at {copy_per_s:,.0f} rows/s", flush=True)
        raw_per_s = raw_only_rate(files[:small_bodies])
        print(f"raw bodies alone (jsonb, for reference): {raw_per_s:,.0f} records/s", flush=True)

        truncate()
        _, rss_small, _ = backfill(env, small)
        print(f"backfill of {small_bodies} bodies: peak RSS {rss_small / 1024:.0f} MiB", flush=True)

        truncate()
        naive_per_s, naive_records = naive_rate(files[: args.naive_bodies], most=300 if args.quick else None)
        print(f"naive ORM loader: {naive_records:,} records at {naive_per_s:,.0f} records/s", flush=True)

    backfill_per_s = records / first_seconds
    rows_out = [
        ("backfill / bare database work (records/s)", backfill_per_s / bare_per_s, ">=", 0.8),
        ("backfill / one ORM save per record", backfill_per_s / naive_per_s, ">=", 10.0),
        ("second backfill / first (time)", second_seconds / first_seconds, "<=", 0.05),
        (f"peak RSS {args.bodies} / {small_bodies} bodies", rss_all / rss_small, "<=", 1.2),
    ]
    print(
        f"\nBackfill: {backfill_per_s:,.0f} records/s ({records:,} records in {first_seconds:.1f}s), "
        f"{os.cpu_count()} cores"
    )
    missed = ratios_print(rows_out)
    if args.quick:
        print("(quick: a few bodies, so the ratios say nothing; the run shows the benchmark works)")
    print(
        f"\n(peak RSS: {rss_all / 1024:.0f} MiB for {args.bodies} bodies, "
        f"{rss_small / 1024:.0f} MiB for {small_bodies})"
    )
    sys.exit(1 if missed and not args.quick else 0)


if __name__ == "__main__":
    main()
