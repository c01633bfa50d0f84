"""History across the workers: throughput as worker processes are added, and the shared budget held.

    make bench                      # or: python bench/history_bench.py [--windows 48] [--quick]

Serves CoinGecko's `/coins/{id}/market_chart/range` from a stub on 127.0.0.1 that answers each
call after a fixed delay (200 ms; hourly points over the range asked, as the documentation shows),
starts a private Redis, and for 1, 2 and 4 `celery worker` processes (one child each) loads the
same backfill job (`manage.py backfill --async`'s job: one task per window) into an emptied
database, timing from the first window sent to the last one done. Prints, measured in one run:
  - history throughput (points/s) with 2 workers against 1 (target >= 1.8x) and 4 against 1
    (target >= 3x);
  - with a tight budget (COINGECKO_CALLS_PER_MINUTE over a short RATE_LIMIT_WINDOW_SECONDS) and 4
    workers, the most calls the stub saw in any window against the budget (target <= 1.0x).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from common import bench_database_url, chart_body, ratios_print, recreate_database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATABASE = "kasparro_bench_history"
TABLES = (
    "backfill_window, backfill_job, market_quote, asset, ingestion_run_body, raw_crypto_data, ingestion_run, "
    "source_totals"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stub:
    """CoinGecko's range endpoint on 127.0.0.1, answering after `delay` seconds; every call's time kept."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: list[float] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.calls.append(time.time())
                time.sleep(stub.delay)
                url = urlparse(self.path)
                query = parse_qs(url.query)
                coin = url.path.split("/coins/", 1)[-1].split("/", 1)[0]
                body = chart_body(coin, int(query["from"][0]), int(query["to"][0]))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v3"


def redis_start(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("the history benchmark needs redis-server (scripts/with-services.sh installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    sys.exit("redis-server did not start")


def workers_start(count: int, env: dict[str, str], logs: Path) -> list[subprocess.Popen[bytes]]:
    """`count` worker processes, one child each, serving the history queue; returned once each is ready."""
    procs = []
    for n in range(count):
        log = (logs / f"worker-{count}-{n}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "kasparro", "worker", "-c", "1", "-n", f"bench{n}@%h",
                 "--without-gossip", "--without-mingle", "--loglevel=INFO"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        )  # fmt: skip
    deadline = time.monotonic() + 90
    for n in range(count):
        path = logs / f"worker-{count}-{n}.log"
        while "ready." not in path.read_text(errors="replace"):
            if time.monotonic() > deadline:
                sys.exit(f"worker {n} did not start: {path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
    return procs


def workers_stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def job_load(*, windows: int, days: int, workers: int, env: dict[str, str], logs: Path) -> tuple[float, int]:
    """The same job into an emptied database with `workers` processes: (seconds, points)."""
    from django.db import connection

    from crypto.models import BackfillWindow
    from crypto.services.ingest.history import history_plan
    from crypto.services.ingest.jobs import history_job_start, job_enqueue, job_progress
    from crypto.sources.body import Coin

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    since = datetime(2025, 1, 1, tzinfo=UTC)
    coins = [Coin(f"coin-{n:04d}") for n in range(windows)]
    plan = history_plan(source="coingecko", coins=coins, since=since, until=since + timedelta(days=days))
    procs = workers_start(workers, env, logs)
    try:
        job, _ = history_job_start(source="coingecko", windows=plan, request=f"bench {workers}", until=str(days))
        started = time.perf_counter()
        job_enqueue(job)
        deadline = time.monotonic() + 600
        while not (progress := job_progress(job)).finished:
            if time.monotonic() > deadline:
                sys.exit(f"the job did not finish with {workers} workers: {progress}")
            time.sleep(0.05)
        seconds = time.perf_counter() - started
    finally:
        workers_stop(procs)
    failed = job.windows.filter(status=BackfillWindow.Status.FAILED).first()
    if failed is not None:
        sys.exit(f"a window failed: {failed.error}")
    return seconds, progress.records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=48, help="windows in the job (one coin each)")
    parser.add_argument("--days", type=int, default=14, help="days in each window (hourly points)")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the stub takes to answer a call")
    parser.add_argument("--quick", action="store_true", help="a few windows, seconds; ratios printed, targets not held")
    args = parser.parse_args()
    if args.quick:
        args.windows, args.days, args.delay = 6, 2, 0.05

    stub = Stub(args.delay)
    tmp = Path(tempfile.mkdtemp(prefix="kasparro-history-bench-"))
    redis, redis_url = redis_start(tmp)
    url = bench_database_url(DATABASE, quick=args.quick)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "kasparro.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "bench-only",
        "LOG_LEVEL": "WARNING",
        "COINGECKO_BASE_URL": stub.base,
        "COINGECKO_API_KEY": "",
        "COINGECKO_CALLS_PER_MINUTE": "100000",  # generous: the workers, not the budget, set the pace
        "HISTORY_BUDGET_SHARE": "0.99",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
    }
    os.environ.update(env)
    recreate_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        counts = (1, 2) if args.quick else (1, 2, 4)
        rates: dict[int, float] = {}
        for workers in counts:
            seconds, points = job_load(windows=args.windows, days=args.days, workers=workers, env=env, logs=tmp)
            rates[workers] = points / seconds
            print(
                f"{workers} worker process(es): {args.windows} windows, {points:,} points in {seconds:.2f}s "
                f"({rates[workers]:,.0f} points/s, {args.windows / seconds:.1f} windows/s)",
                flush=True,
            )

        # A tight budget: 4 workers (2 in quick mode) against few calls per short window.
        calls, window = (4, 2) if args.quick else (6, 3)
        tight = {**env, "COINGECKO_CALLS_PER_MINUTE": str(calls), "RATE_LIMIT_WINDOW_SECONDS": str(window)}
        stub.calls.clear()
        seconds, _ = job_load(windows=args.windows, days=args.days, workers=counts[-1], env=tight, logs=tmp)
        times = sorted(stub.calls)
        busiest = max(sum(1 for t in times if start <= t < start + window) for start in times)
        print(
            f"tight budget ({calls} calls per {window}s, {counts[-1]} workers): {len(times)} calls in {seconds:.1f}s, "
            f"at most {busiest} in any {window}s",
            flush=True,
        )
    finally:
        redis.terminate()
        redis.wait(10)
        stub.server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    rows = [("2 workers / 1 (points/s)", rates[2] / rates[1], ">=", 1.8)]
    if 4 in rates:
        rows.append(("4 workers / 1 (points/s)", rates[4] / rates[1], ">=", 3.0))
    rows.append(("busiest window / budget (calls)", busiest / calls, "<=", 1.0))
    print(f"\nHistory: {os.cpu_count()} cores, the stub answering after {args.delay * 1000:.0f} ms")
    missed = ratios_print(rows, width=36)
    if args.quick:
        print("(quick: a few windows, so the ratios say little; the run shows the benchmark works)")
    sys.exit(1 if missed and not args.quick else 0)


if __name__ == "__main__":
    main()
