"""The ingestion service against real PostgreSQL, with the network mocked by recorded bodies."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import responses
from django.db import connection

from crypto.models import Asset, IngestionRun, MarketQuote, RawBody, RunBody
from crypto.services.ingest.run import ingestion_run, saved_file
from tests.conftest import (
    GECKO_PAGE,
    GECKO_SMALL,
    PAPRIKA,
    UPSTREAM,
    mock_gecko_page,
    mock_gecko_two_pages,
    mock_paprika,
    upstream_bytes,
    upstream_json,
)

pytestmark = pytest.mark.django_db


def snapshot() -> dict[str, object]:
    """Everything ingestion writes, minus run bookkeeping and write timestamps."""
    return {
        "raw": sorted(RawBody.objects.values_list("source", "content_hash", "record_count")),
        "assets": sorted(Asset.objects.values_list("source", "upstream_id", "symbol", "name")),
        "quotes": sorted(
            (
                q["asset__upstream_id"],
                q["source"],
                q["last_updated"],
                q["price_usd"],
                q["market_cap_usd"],
                q["max_supply"],
                q["raw_id"],
            )
            for q in MarketQuote.objects.values(
                "asset__upstream_id",
                "source",
                "last_updated",
                "price_usd",
                "market_cap_usd",
                "max_supply",
                "raw_id",
            )
        ),
    }


def test_coingecko_run_stores_each_page_raw_and_upserts_its_records(http: responses.RequestsMock) -> None:
    mock_gecko_two_pages(http)
    run = ingestion_run(source="coingecko", trigger="cli")
    assert run.status == IngestionRun.Status.SUCCEEDED, run.error
    assert (run.records_fetched, run.raw_stored, run.raw_duplicates) == (350, 2, 0)
    raw = list(RawBody.objects.order_by("position"))
    assert [r.record_count for r in raw] == [250, 100]
    assert raw[0].data == upstream_json(GECKO_PAGE)
    assert "page=1" in raw[0].request and "per_page=250" in raw[0].request
    assert all(r.run_id == run.pk for r in raw)
    # bitcoin is on both pages with different last_updated: one asset, two observations.
    assert Asset.objects.filter(source="coingecko", upstream_id="bitcoin").count() == 1
    assert MarketQuote.objects.filter(asset__upstream_id="bitcoin").count() == 2
    assert MarketQuote.objects.count() == run.rows_upserted == 350
    assert run.finished_at is not None and run.finished_at >= run.started_at


def test_stops_paging_at_an_empty_page(http: responses.RequestsMock, settings: object) -> None:
    settings.COINGECKO_PAGES = 5  # type: ignore[attr-defined]
    mock_gecko_page(http, 1, upstream_bytes(GECKO_PAGE))
    mock_gecko_page(http, 2, b"[]")
    run = ingestion_run(source="coingecko", trigger="cli")
    assert run.status == "succeeded" and run.raw_stored == 1
    assert len(http.calls) == 2


def test_ingesting_twice_leaves_the_database_as_ingesting_once(http: responses.RequestsMock) -> None:
    mock_gecko_two_pages(http)
    mock_paprika(http)
    for source in ("coingecko", "coinpaprika"):
        ingestion_run(source=source, trigger="cli")
    once = snapshot()
    second = [ingestion_run(source=source, trigger="cli") for source in ("coingecko", "coinpaprika")]
    assert snapshot() == once
    assert all(r.status == "succeeded" and r.raw_stored == 0 and r.rows_upserted == 0 for r in second)
    assert [r.raw_duplicates for r in second] == [2, 1]
    # The unchanged bodies still belong to the second runs' datasets.
    assert RunBody.objects.filter(run__in=second).count() == 3


def test_a_changed_body_adds_a_raw_row_and_new_observations(http: responses.RequestsMock) -> None:
    mock_paprika(http)
    ingestion_run(source="coinpaprika", trigger="cli")
    data = upstream_json(PAPRIKA)
    assert isinstance(data, list)
    data[0]["last_updated"] = "2023-08-11T08:14:18Z"
    data[0]["quotes"]["USD"]["price"] = 29500.5
    http.replace(responses.GET, http.registered()[0].url, body=orjson.dumps(data), content_type="application/json")
    run = ingestion_run(source="coinpaprika", trigger="cli")
    assert run.raw_stored == 1
    assert RawBody.objects.count() == 2
    btc = MarketQuote.objects.filter(asset__upstream_id="btc-bitcoin").order_by("last_updated")
    assert [str(q.price_usd).rstrip("0") for q in btc] == ["29427.918932650417", "29500.5"]
    # Observations of other coins, unchanged, are the same rows, not copies.
    assert MarketQuote.objects.count() == 2501


def test_same_content_formatted_differently_is_not_stored_twice(http: responses.RequestsMock, tmp_path) -> None:
    mock_paprika(http)
    ingestion_run(source="coinpaprika", trigger="cli")
    indented = tmp_path / "tickers.json"
    indented.write_bytes(orjson.dumps(upstream_json(PAPRIKA), option=orjson.OPT_INDENT_2))
    run = ingestion_run(source="coinpaprika", trigger="file", origin=saved_file(path=str(indented)))
    assert (run.status, run.raw_stored, run.raw_duplicates) == ("succeeded", 0, 1)


def test_failure_on_a_later_page_rolls_back_the_whole_run(http: responses.RequestsMock) -> None:
    mock_gecko_page(http, 1, upstream_bytes(GECKO_PAGE))
    mock_gecko_page(http, 2, b'{"error": "invalid api key"}', status=401)
    run = ingestion_run(source="coingecko", trigger="cli")
    assert run.status == "failed" and run.error_kind == "permanent"
    assert "HTTP 401" in run.error and "API key" in run.error
    assert (RawBody.objects.count(), Asset.objects.count(), MarketQuote.objects.count()) == (0, 0, 0)
    assert RunBody.objects.count() == 0
    assert (run.raw_stored, run.rows_upserted) == (0, 0)


def test_failure_keeps_everything_earlier_runs_wrote(http: responses.RequestsMock) -> None:
    mock_gecko_two_pages(http)
    ingestion_run(source="coingecko", trigger="cli")
    before = snapshot()
    http.replace(
        responses.GET,
        http.registered()[0].url,
        body="<html><head></head></html>",
        content_type="text/html",
        match=http.registered()[0].match,
    )
    run = ingestion_run(source="coingecko", trigger="cli")
    assert run.status == "failed" and "HTML page" in run.error
    assert snapshot() == before


def test_database_error_mid_run_rolls_back_and_is_recorded(http: responses.RequestsMock, monkeypatch) -> None:
    mock_gecko_two_pages(http)
    from crypto.services.ingest import run as ingestion

    calls = {"n": 0}
    real = ingestion.body_records_upsert

    def upsert_then_break(**kwargs: Any) -> tuple[int, int]:
        calls["n"] += 1
        if calls["n"] == 2:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1/0")
        return real(**kwargs)

    monkeypatch.setattr(ingestion, "body_records_upsert", upsert_then_break)
    run = ingestion_run(source="coingecko", trigger="cli")
    assert run.status == "failed" and run.error.startswith("database error: division by zero")
    assert RawBody.objects.count() == MarketQuote.objects.count() == 0


def test_a_failure_that_cannot_be_recorded_raises_the_database_error_for_the_caller_to_retry(
    http: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    from crypto.services.ingest import lifecycle

    mock_paprika(http, body=b'{"error": "invalid key"}', status=401)

    def database_gone(run: IngestionRun) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(lifecycle, "_finish", database_gone)
    with pytest.raises(OperationalError) as raised:
        ingestion_run(source="coinpaprika", trigger="task")
    assert "HTTP 401" in str(raised.value.__cause__), "the run's own failure is kept as the cause"


def test_401_fails_fast_without_retrying_or_writing(http: responses.RequestsMock) -> None:
    mock_paprika(http, body=b'{"error": "invalid key"}', status=401)
    run = ingestion_run(source="coinpaprika", trigger="cli")
    assert run.status == "failed" and "(invalid key)" in run.error
    assert len(http.calls) == 1
    assert RawBody.objects.count() == 0


def test_429_with_retry_after_waits_then_succeeds(http: responses.RequestsMock) -> None:
    http.add(
        responses.GET,
        "https://api.coinpaprika.com/v1/tickers",
        status=429,
        json={"error": "Too many requests"},
        headers={"Retry-After": "1"},
    )
    mock_paprika(http)
    started = time.monotonic()
    run = ingestion_run(source="coinpaprika", trigger="cli")
    assert run.status == "succeeded", run.error
    assert time.monotonic() - started >= 1.0
    assert len(http.calls) == 2 and RawBody.objects.count() == 1


@pytest.mark.parametrize("body", [b'[{"id": "btc-bitcoin", "na', b"<!DOCTYPE html><html>blocked</html>"])
def test_truncated_or_html_bodies_fail_the_run_cleanly(http: responses.RequestsMock, body: bytes) -> None:
    http.add(
        responses.GET,
        "https://api.coinpaprika.com/v1/tickers",
        body=body,
        content_type="text/html" if body.startswith(b"<") else "application/json",
    )
    run = ingestion_run(source="coinpaprika", trigger="cli")
    assert run.status == "failed" and run.error_kind == "permanent"
    assert "not JSON" in run.error or "not valid JSON" in run.error
    assert RawBody.objects.count() == 0


def test_api_key_goes_in_the_header_and_nowhere_in_the_database(http: responses.RequestsMock, settings: object) -> None:
    secret = "CG-demo-key-abc123"
    settings.COINGECKO_API_KEY = secret  # type: ignore[attr-defined]
    settings.COINPAPRIKA_API_KEY = secret + "p"  # type: ignore[attr-defined]
    mock_gecko_two_pages(http)
    mock_paprika(http)
    ingestion_run(source="coingecko", trigger="cli")
    ingestion_run(source="coinpaprika", trigger="cli")
    assert http.calls[0].request.headers["x-cg-demo-api-key"] == secret
    assert http.calls[2].request.headers["Authorization"] == secret + "p"
    assert all(secret not in call.request.url for call in http.calls)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM raw_crypto_data WHERE request LIKE %s OR data::text LIKE %s",
            [f"%{secret}%", f"%{secret}%"],
        )
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM ingestion_run WHERE error LIKE %s", [f"%{secret}%"])
        assert cursor.fetchone()[0] == 0


def test_pro_key_uses_the_pro_header(http: responses.RequestsMock, settings: object) -> None:
    from crypto.sources.coingecko import key_header

    assert key_header("https://pro-api.coingecko.com/api/v3", "k") == {"x-cg-pro-api-key": "k"}
    assert key_header("https://api.coingecko.com/api/v3", "k") == {"x-cg-demo-api-key": "k"}
    assert key_header("https://api.coingecko.com/api/v3", "") == {}


def test_csv_run_loads_good_rows_and_records_bad_ones_on_the_run(settings: object) -> None:
    settings.CSV_SOURCE_PATH = str(UPSTREAM.parent / "csv" / "simple_markets.csv")  # type: ignore[attr-defined]
    run = ingestion_run(source="csv", trigger="cli")
    assert run.status == "succeeded"
    assert (run.records_fetched, run.rows_upserted, run.records_rejected) == (9, 5, 4)
    assert run.problems[0].startswith("body 1, line 4: SOL: `price_usd`")
    stored = RawBody.objects.get(source="csv")
    assert [row["line"] for row in stored.data["rows"]] == [2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_csv_with_undecodable_bytes_fails_the_run_with_the_line(settings: object, tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"symbol,name,price_usd,market_cap,volume_24h,timestamp\nBTC,Bitcoin\xff,1,1,1,1\n")
    settings.CSV_SOURCE_PATH = str(bad)  # type: ignore[attr-defined]
    run = ingestion_run(source="csv", trigger="cli")
    assert run.status == "failed" and "line 2 is not UTF-8 text" in run.error
    assert RawBody.objects.count() == 0


def test_record_without_upstream_time_is_keyed_on_the_fetch_time(tmp_path) -> None:
    data = upstream_json(GECKO_SMALL)
    assert isinstance(data, list)
    data[0]["last_updated"] = None
    saved = tmp_path / "page.json"
    saved.write_bytes(orjson.dumps(data[:2]))
    run = ingestion_run(source="coingecko", trigger="file", origin=saved_file(path=str(saved)))
    raw = RawBody.objects.get()
    assert run.status == "succeeded"
    quote = MarketQuote.objects.get(asset__upstream_id="bitcoin")
    assert quote.last_updated == raw.fetched_at
    assert raw.fetched_at == datetime.fromtimestamp(saved.stat().st_mtime, tz=UTC)


def test_saved_error_body_given_as_a_file_fails_clearly(tmp_path) -> None:
    saved = tmp_path / "error.json"
    saved.write_text('{"status": {"error_code": 429, "error_message": "rate limited"}}')
    run = ingestion_run(source="coingecko", trigger="file", origin=saved_file(path=str(saved)))
    assert run.status == "failed"
    assert run.error == (
        "CoinGecko /coins/markets should answer a JSON list of markets, got a JSON object with keys [status]"
    )


def test_source_totals_always_equal_the_raw_table(http: responses.RequestsMock, settings: object) -> None:
    from django.db.models import Count, Max, Min, Sum

    from crypto.models import SourceTotals

    settings.CSV_SOURCE_PATH = str(UPSTREAM.parent / "csv" / "simple_markets.csv")  # type: ignore[attr-defined]
    mock_gecko_two_pages(http)
    mock_paprika(http)
    for source in ("coingecko", "coinpaprika", "csv", "coingecko"):
        ingestion_run(source=source, trigger="cli")
    http.replace(
        responses.GET, http.registered()[2].url, body=b'{"error": "x"}', status=401, content_type="application/json"
    )
    ingestion_run(source="coinpaprika", trigger="cli")  # failed: rolled back, totals too
    expected = {
        row["source"]: (row["n"], row["records"], row["first"], row["last"])
        for row in RawBody.objects.values("source")
        .order_by()
        .annotate(n=Count("id"), records=Sum("record_count"), first=Min("fetched_at"), last=Max("fetched_at"))
    }
    totals = {
        t.source: (t.raw_rows, t.records, t.first_fetched_at, t.last_fetched_at) for t in SourceTotals.objects.all()
    }
    assert totals == expected
    assert totals["coingecko"][:2] == (2, 350)
