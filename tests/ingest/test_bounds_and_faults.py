"""Runs under faults and hostile input: a store away, values nested or written past every
limit, an upstream that drips or inflates."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
import responses

from crypto.services.ingest.run import ingestion_run
from tests.conftest import (
    PAPRIKA,
    mock_paprika,
    upstream_bytes,
)

pytestmark = pytest.mark.django_db


def test_an_unreachable_rate_limiter_store_fails_the_run_as_transient_with_a_clear_reason(settings) -> None:
    from crypto.sources.ratelimit import SharedRateLimiter

    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # Redis away: nothing listens there
    run = ingestion_run(source="coinpaprika", trigger="task")  # no HTTP mock: no call may be made
    assert (run.status, run.error_kind) == ("failed", "transient")
    assert "rate limit" in run.error and "unreachable" in run.error and "Traceback" not in run.error
    limiter = SharedRateLimiter(name="coinpaprika", calls=5, window_seconds=60, storage_url=settings.REDIS_URL)
    with pytest.raises(Exception) as raised:
        limiter.acquire()
    assert getattr(raised.value, "transient", False) is True


def test_a_record_nested_too_deep_is_quarantined_with_its_reason_and_the_rest_of_the_body_loads(
    http: responses.RequestsMock,
) -> None:
    from crypto.models import QuarantinedRecord

    tickers = orjson.loads(upstream_bytes(PAPRIKA))
    deep = b"[" * 5000 + b"1" + b"]" * 5000  # past every JSON parser's own limit
    tickers[0]["extra"] = "@DEEP@"  # a field the source does not read
    tickers[1]["quotes"] = "@DEEP@"  # the field its price comes from
    body = orjson.dumps(tickers).replace(b'"@DEEP@"', deep)
    mock_paprika(http, body=body)
    run = ingestion_run(source="coinpaprika", trigger="cli")
    assert run.status == "succeeded", run.error
    assert run.rows_upserted == len(tickers) - 1 and run.records_rejected == 1
    quarantined = QuarantinedRecord.objects.get()
    assert quarantined.index == 1 and "nested deeper than" in quarantined.reason


def test_an_overlong_csv_field_is_kept_whole_in_quarantine_and_the_rows_around_it_load(settings, tmp_path) -> None:
    from crypto.api.selectors import quarantined_record_raw
    from crypto.models import QuarantinedRecord

    huge = "9" * 300_000  # past the csv module's 128 KiB field limit
    path = tmp_path / "markets.csv"
    path.write_text(
        "symbol,name,price_usd,market_cap,volume_24h,timestamp\n"
        "BTC,Bitcoin,90340.5,1781894307530,67993024393,2024-11-16T15:55:07Z\n"
        f'HUGE,"Huge",{huge},1,1,2024-11-16T15:55:07Z\n'
        "ETH,Ethereum,3135.35,377266553719,,2024-11-16T15:55:09Z\n"
    )
    settings.CSV_SOURCE_PATH = str(path)
    run = ingestion_run(source="csv", trigger="cli")
    assert run.status == "succeeded", run.error
    assert (run.records_fetched, run.rows_upserted, run.records_rejected) == (3, 2, 1)
    quarantined = QuarantinedRecord.objects.get()
    assert quarantined.where == "line 3" and "price" in quarantined.reason
    assert quarantined_record_raw(quarantined)["price_usd"] == huge


class HostileUpstream:
    """An upstream on 127.0.0.1 that answers one byte at a time, or with a small gzip body that
    inflates to hundreds of MB."""

    def __init__(self, mode: str) -> None:
        import threading
        import zlib
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        bomb = b""
        if mode == "bomb":
            packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip
            bomb = b"".join(packer.compress(b" " * (1 << 20)) for _ in range(300)) + packer.flush()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if mode == "bomb":
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(bomb)))
                    self.end_headers()
                    self.wfile.write(bomb)
                    return
                self.send_header("Content-Length", "100000")
                self.end_headers()
                try:
                    for _ in range(100000):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(0.1)
                except OSError:
                    pass  # the client gave up, as it should

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()


def test_an_upstream_that_drips_cannot_hold_a_run_past_its_time_limit(settings) -> None:
    upstream = HostileUpstream("drip")
    settings.COINPAPRIKA_BASE_URL, settings.INGEST_SOFT_TIME_LIMIT = upstream.url, 2
    started = time.monotonic()
    try:
        run = ingestion_run(source="coinpaprika", trigger="cli")
    finally:
        upstream.close()
    assert time.monotonic() - started < 10
    assert (run.status, run.error_kind) == ("failed", "transient")
    assert "INGEST_SOFT_TIME_LIMIT=2s" in run.error


def test_a_compressed_answer_that_inflates_past_the_cap_is_refused_as_it_is_read(settings) -> None:
    import tracemalloc

    upstream = HostileUpstream("bomb")  # 300 MB once inflated
    settings.COINPAPRIKA_BASE_URL, settings.HTTP_MAX_BODY_BYTES = upstream.url, 4 << 20
    tracemalloc.start()
    try:
        run = ingestion_run(source="coinpaprika", trigger="cli")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        upstream.close()
    assert (run.status, run.error_kind) == ("failed", "permanent")
    assert "more than 4,194,304 bytes (HTTP_MAX_BODY_BYTES)" in run.error
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB held while reading a 300 MB answer"
