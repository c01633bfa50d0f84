"""API cost as data grows: seeds PostgreSQL, serves the app with gunicorn, drives it from a second
process with concurrent clients, and prints median latencies and their ratios, measured in one run.

    make bench                     # or: python bench/api_bench.py [--verbose] [--quotes N] [--quick]

Targets: page 1000 of quotes <= 1.5x page 1; /stats, /data and a filtered quotes page at 1M rows
<= 2x the same at 10k rows; /health <= 1.5x a bare view that runs `SELECT 1`
(served beside the app by bench/urls.py); each page of the front page and the dashboard <= 2x
/health at 1M quotes (the coin page on a coin of 200,000 quotes, cut to ~1,000 points).
`--verbose` prints the EXPLAIN ANALYZE of the queries
behind each page. `--quick` runs it all on tiny data in seconds and never fails on a target: the
test suite runs it so that a benchmark broken by a change fails the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from api_seed import LONG_SERIES, count, long_series, seed
from common import bench_database_url, recreate_database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURE = ROOT / "tests" / "fixtures" / "upstream" / "coinpaprika_tickers_greenyun2.json"


SELECT_1 = "/bench/select-1"  # bench/urls.py
FILTERED = "/api/quotes/?source=coingecko&min_market_cap=1000000000"


# --- client mode: the second process ---------------------------------------------------------


def client(base: str, paths: list[str], requests_per_path: int, concurrency: int) -> None:
    import requests

    session_pool = [requests.Session() for _ in range(concurrency)]

    def timed(args: tuple[int, str]) -> float:
        index, path = args
        session = session_pool[index % concurrency]
        start = time.perf_counter()
        response = session.get(base + path, headers={"Accept": "application/json"}, timeout=60)
        elapsed = time.perf_counter() - start
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {response.text[:300]}")
        return elapsed

    results = {}
    with ThreadPoolExecutor(concurrency) as pool:
        for path in paths:
            list(pool.map(timed, [(i, path) for i in range(concurrency * 2)]))  # warm up
            samples = list(pool.map(timed, [(i, path) for i in range(requests_per_path)]))
            results[path] = statistics.median(samples) * 1000
    print(json.dumps(results))


def measure(base: str, paths: list[str], *, requests_per_path: int = 200, concurrency: int = 4) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--client",
            base,
            "--requests",
            str(requests_per_path),
            "--concurrency",
            str(concurrency),
            *paths,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def first_views(base: str, paths: list[str]) -> dict[str, float]:
    """Each dashboard page's first view, rendered from the database (later views of the same data
    come from the cache): milliseconds, one request each."""
    import requests

    times = {}
    for path in paths:
        started = time.perf_counter()
        requests.get(base + path, timeout=60).raise_for_status()
        times[path] = (time.perf_counter() - started) * 1000
    return times


# --- serving ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "kasparro.wsgi:application",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    import requests

    for _ in range(100):
        try:
            if requests.get(base + "/health", timeout=2).status_code == 200:
                return proc, base
        except requests.ConnectionError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    sys.exit("gunicorn did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


# --- plans -----------------------------------------------------------------------------------


def explain(label: str, queryset: object) -> None:
    from django.db import connection

    sql, params = queryset.query.sql_with_params()  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    print(f"\n--- EXPLAIN ANALYZE: {label}\n{plan}")


def page_cursor(ordering: str, offset: int) -> str:
    """The cursor the API hands out at the end of row `offset` (what page-walking would reach)."""
    import base64

    import orjson

    from crypto.models import MarketQuote

    row = MarketQuote.objects.order_by("-last_updated", "-id").values("last_updated", "id")[offset]
    payload = orjson.dumps({"o": ordering, "v": row["last_updated"].isoformat(), "id": row["id"]})
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="print EXPLAIN ANALYZE of the page queries")
    parser.add_argument("--quotes", type=int, default=1_000_000)
    parser.add_argument("--raw", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds; ratios printed, targets not held")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client, args.paths, args.requests, args.concurrency)
        return

    if args.quick:
        args.quotes, args.raw, args.requests = 20_000, 200, 20
    url = bench_database_url("kasparro_bench", quick=args.quick)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "bench.settings", "DJANGO_DEBUG": "false"}
    env.pop("REDIS_URL", None)
    # The clients all come from one address: measure the API, not its throttle.
    env.update({"API_THROTTLE_ANON": "10000000/min", "API_THROTTLE_USER": "10000000/min"})
    os.environ.update(env)
    print(f"Seeding {url} ...", flush=True)
    recreate_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    from crypto.services.ingest.run import ingestion_run, saved_file

    call_command("migrate", verbosity=0)
    assets = 5_000
    small_quotes, small_raw = 10_000, 100
    seed(quotes_from=1, quotes_to=small_quotes, raw_from=1, raw_to=small_raw, assets=assets)
    # The latest dataset is a real 2,500-record CoinPaprika body, as /data serves it.
    run = ingestion_run(source="coinpaprika", trigger="file", origin=saved_file(path=str(FIXTURE)))
    assert run.status == "succeeded", run.error
    print(f"small: {count('market_quote'):,} quotes, {count('raw_crypto_data'):,} raw rows", flush=True)

    proc, base = serve(env)
    try:
        small = measure(
            base, ["/stats", "/data", FILTERED], requests_per_path=args.requests, concurrency=args.concurrency
        )
    finally:
        stop(proc)

    started = time.perf_counter()
    seed(
        quotes_from=small_quotes + 1, quotes_to=args.quotes, raw_from=small_raw + 1, raw_to=args.raw - 1, assets=assets
    )
    print(
        f"large: {count('market_quote'):,} quotes, {count('raw_crypto_data'):,} raw rows "
        f"(seeded in {time.perf_counter() - started:.0f}s)",
        flush=True,
    )

    coin = long_series(points=LONG_SERIES if not args.quick else 5_000)
    print(f"a coin with a long series: {LONG_SERIES if not args.quick else 5_000:,} quotes", flush=True)
    filtered = FILTERED
    page_1000 = page_cursor("-last_updated", 50 * (min(1000, args.quotes // 50) - 1) - 1)
    pages = {
        "front page": "/",
        "dashboard overview": "/dashboard/",
        "coin page (long series)": f"/dashboard/coins/{coin}/",
        "search (a repeated symbol)": "/dashboard/search/?q=B17",
        "run page": f"/dashboard/runs/{run.pk}/",
    }
    paths = [
        "/health",
        "/data",
        "/stats",
        "/api/quotes/",
        f"/api/quotes/?cursor={page_1000}",
        filtered,
        SELECT_1,
        *pages.values(),
    ]
    proc, base = serve(env)
    try:
        first = first_views(base, list(pages.values()))
        measure(base, paths, requests_per_path=10, concurrency=args.concurrency)  # warm up both workers; not kept
        large = measure(base, paths, requests_per_path=args.requests, concurrency=args.concurrency)
    finally:
        stop(proc)

    health = large["/health"]
    rows = [
        ("quotes page 1000 / page 1", large[paths[4]], large["/api/quotes/"], 1.5),
        ("/stats at 1M / at 10k rows", large["/stats"], small["/stats"], 2.0),
        ("/data at 1M / at 10k rows", large["/data"], small["/data"], 2.0),
        ("filtered page at 1M / at 10k rows", large[filtered], small[filtered], 2.0),
        ("/health / a bare SELECT 1 view", health, large[SELECT_1], 1.5),
        *((f"{label} / /health", large[path], health, 2.0) for label, path in pages.items()),
    ]
    print(
        f"\nMedian latency over {args.requests} requests each, {args.concurrency} concurrent clients, "
        f"gunicorn 2 workers, {os.cpu_count()} cores:"
    )
    for path, value in large.items():
        print(f"  {path[:70]:<70} {value:8.2f} ms")
    for path, value in small.items():
        print(f"  {path[:52] + ' (10k quotes, 100 raw rows)':<70} {value:8.2f} ms")
    print("First view of each dashboard page, rendered from the database (later ones come from the cache):")
    for path, value in first.items():
        print(f"  {path[:70]:<70} {value:8.2f} ms")
    print("\nRatios (target):")
    failed = False
    for label, numerator, denominator, target in rows:
        ratio = numerator / denominator
        ok = ratio <= target
        failed |= not ok
        print(f"  {label:<40} {ratio:5.2f}x  (<= {target}x) {'ok' if ok else 'MISSED'}")
    if args.quick:
        print("(quick: tiny data, so the ratios say nothing; the run shows the benchmark works)")
        failed = False

    if args.verbose:
        from django.test import RequestFactory
        from rest_framework.request import Request

        from crypto.api.data_views import QuoteViewSet
        from crypto.api.filters import QuoteFilter
        from crypto.api.pagination import KeysetPagination

        def page_query(query: str) -> object:
            view = QuoteViewSet()
            request = Request(RequestFactory().get("/api/quotes/" + query))
            queryset = QuoteFilter(request.query_params, queryset=view.queryset).qs
            paginator = KeysetPagination()
            paginator.ordering_name = view.keyset_default
            ordering = view.keyset_orderings[view.keyset_default]
            cursor = paginator._decode(request.query_params.get("cursor"), queryset.model, ordering)
            return paginator._section(queryset, ordering, cursor, non_null=False)[:51]

        explain("quotes page 1", page_query(""))
        explain("quotes page 1000", page_query(f"?cursor={page_1000}"))
        explain("filtered quotes page", page_query("?source=coingecko&min_market_cap=1000000000"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
