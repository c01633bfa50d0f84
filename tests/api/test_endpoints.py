"""The contract of /health, /data and /stats (DESIGN.md section 3)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from unittest import mock

import pytest
import responses
from django.db import ProgrammingError
from django.test import Client

from crypto.services.ingest.run import ingestion_run
from tests.conftest import FIXTURES, mock_gecko_page, mock_gecko_two_pages, mock_paprika, upstream_bytes

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "path",
    [
        *["/health", "/health/", "/data", "/data/", "/stats", "/stats/"],
        *["/api/quotes", "/api/quotes/", "/api/runs", "/api/runs/", "/api/assets", "/api/canonical-assets"],
        *["/api/quarantine", "/api/drift", "/api/raw", "/api/runs/999", "/api/runs/999/"],
        *["/api/schema", "/api/schema/", "/metrics", "/metrics/", "/api", "/api/"],
    ],
)
def test_endpoints_answer_with_or_without_trailing_slash_and_never_redirect(api: Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code in (200, 404), response.status_code
    assert response["Content-Type"].split(";")[0] in (
        "application/json",
        "application/vnd.oai.openapi+json",
        "text/plain",
    )


def test_errors_django_answers_itself_have_the_one_json_shape(settings) -> None:
    settings.DEBUG = False
    bad_host = Client(HTTP_HOST="evil.example.com").get("/health")
    assert (bad_host.status_code, bad_host["Content-Type"], bad_host.json()) == (
        400,
        "application/json",
        {"detail": "Bad request."},
    )
    crashing = Client(raise_request_exception=False)
    with mock.patch("crypto.api.views.selectors.stats_summary", side_effect=RuntimeError("boom")):
        crashed = crashing.get("/stats")
    assert crashed.status_code == 500 and crashed.json() == {"detail": "Server error; it has been logged."}
    # A database error that is a bug, not an outage, is not passed off as "unavailable".
    with mock.patch("crypto.api.views.selectors.stats_summary", side_effect=ProgrammingError("no such column")):
        assert crashing.get("/stats").status_code == 500


def test_data_is_404_with_a_clear_detail_when_nothing_was_ingested(api: Client) -> None:
    response = api.get("/data")
    assert response.status_code == 404
    assert "No data has been ingested yet" in response.json()["detail"]
    assert "for source 'csv'" in api.get("/data?source=csv").json()["detail"]


def test_data_returns_the_latest_dataset_with_all_pages_of_the_run(api: Client, http: responses.RequestsMock) -> None:
    mock_gecko_two_pages(http)
    mock_paprika(http)
    gecko = ingestion_run(source="coingecko", trigger="cli")
    paprika = ingestion_run(source="coinpaprika", trigger="cli")

    latest = api.get("/data").json()
    assert (latest["source"], latest["run_id"], latest["data_count"]) == ("coinpaprika", paprika.pk, 2500)
    assert latest["returned"] == 100 and len(latest["data"]) == 100
    assert latest["data"][0]["id"] == "btc-bitcoin"

    body = api.get("/data?source=coingecko&limit=300").json()
    assert (body["source"], body["run_id"], body["data_count"]) == ("coingecko", gecko.pk, 350)
    assert len(body["raw_ids"]) == 2 and body["returned"] == 300
    assert body["data"][250]["id"] == "bitcoin", "the second page follows the first"
    assert body["fetched_at"].endswith("Z")


def test_data_of_an_unchanged_run_is_still_the_whole_dataset(api: Client, http: responses.RequestsMock) -> None:
    mock_gecko_two_pages(http)
    ingestion_run(source="coingecko", trigger="cli")
    again = ingestion_run(source="coingecko", trigger="cli")
    body = api.get("/data?source=coingecko").json()
    assert (body["run_id"], body["data_count"]) == (again.pk, 350)


def test_data_skips_failed_runs(api: Client, http: responses.RequestsMock) -> None:
    mock_gecko_two_pages(http)
    good = ingestion_run(source="coingecko", trigger="cli")
    http.reset()
    mock_gecko_page(http, 1, upstream_bytes("coingecko_markets_madjin.json"), status=503)
    assert ingestion_run(source="coingecko", trigger="cli").status == "failed"
    assert api.get("/data?source=coingecko").json()["run_id"] == good.pk


@pytest.mark.parametrize("query", ["source=binance", "limit=0", "limit=abc", "limit=100000"])
def test_bad_data_parameters_answer_400_naming_the_parameter(api: Client, query: str) -> None:
    response = api.get(f"/data?{query}")
    assert response.status_code == 400
    body = response.json()
    name = query.split("=")[0]
    assert name in body["errors"] and body["detail"].startswith(f"Invalid request: {name}:")


def test_csv_dataset_rows_carry_their_line_numbers(api: Client, settings: object) -> None:
    settings.CSV_SOURCE_PATH = str(FIXTURES / "csv" / "simple_markets.csv")  # type: ignore[attr-defined]
    ingestion_run(source="csv", trigger="cli")
    body = api.get("/data?source=csv").json()
    assert body["data_count"] == 9
    assert body["data"][0] == {
        "line": 2,
        "symbol": "BTC",
        "name": "Bitcoin",
        "price_usd": "90340.5",
        "market_cap": "1781894307530",
        "volume_24h": "67993024393",
        "timestamp": "2024-11-16T15:55:07Z",
    }


def test_stats_aggregates_per_source(api: Client, http: responses.RequestsMock) -> None:
    mock_gecko_two_pages(http)
    ingestion_run(source="coingecko", trigger="cli")
    ingestion_run(source="coingecko", trigger="cli")
    http.reset()
    mock_gecko_page(http, 1, b'{"error": "no"}', status=401)
    failed = ingestion_run(source="coingecko", trigger="cli")
    body = api.get("/stats").json()
    gecko = body["sources"]["coingecko"]
    assert gecko["datasets"] == 2 and gecko["raw_rows"] == 2 and gecko["records"] == 350
    assert gecko["runs"] == {"running": 0, "succeeded": 2, "failed": 1, "skipped": 0}
    assert gecko["last_run"]["id"] == failed.pk and gecko["last_run"]["status"] == "failed"
    assert "HTTP 401" in gecko["last_run"]["error"] and gecko["last_run"]["duration_seconds"] >= 0
    assert gecko["last_success"]["status"] == "succeeded"
    assert gecko["first_fetched_at"] <= gecko["last_fetched_at"]
    assert body["sources"]["csv"]["raw_rows"] == 0 and body["sources"]["csv"]["last_run"] is None
    assert body["totals"] == {"raw_rows": 2, "records": 350, "runs": 3}


def test_stats_is_computed_by_a_fixed_number_of_queries(
    api: Client, http: responses.RequestsMock, django_assert_max_num_queries
) -> None:
    from crypto.models import RawBody, SchemaDrift

    mock_paprika(http)
    for _ in range(3):
        ingestion_run(source="coinpaprika", trigger="cli")
    raw = RawBody.objects.first()
    for source in ("coinpaprika", "coingecko", "csv"):  # drift of every source: still no query per source
        SchemaDrift.objects.create(source=source, raw=raw, severity="info", summary="added x")
    with django_assert_max_num_queries(10):
        assert api.get("/stats").status_code == 200


def test_browsable_api_renders_html_for_a_browser(http: responses.RequestsMock) -> None:
    response = Client().get("/stats", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"Stats" in response.content and response["Content-Type"].startswith("text/html")


def test_an_empty_answer_fails_its_run_keeps_the_dataset_and_degrades_health(
    api: Client, http: responses.RequestsMock
) -> None:
    mock_paprika(http)
    good = ingestion_run(source="coinpaprika", trigger="cli")
    http.reset()
    mock_paprika(http, body=b"[]")
    empty = ingestion_run(source="coinpaprika", trigger="cli")
    assert (empty.status, empty.error_kind) == ("failed", "transient")
    assert "held no records" in empty.error
    data = api.get("/data?source=coinpaprika").json()
    assert data["run_id"] == good.pk and data["data_count"] == 2500
    health = api.get("/health").json()
    assert health["status"] == "degraded" and health["failing_sources"] == ["coinpaprika"]


def test_an_old_saved_file_loaded_after_live_runs_neither_replaces_the_data_nor_hides_a_failing_source(
    api: Client, http: responses.RequestsMock, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from crypto.services.ingest.run import saved_file

    mock_paprika(http)
    live = ingestion_run(source="coinpaprika", trigger="cli")
    http.reset()
    mock_paprika(http, body=b'{"error": "server busy"}', status=401)
    assert ingestion_run(source="coinpaprika", trigger="cli").status == "failed"
    old = json.loads(upstream_bytes("coinpaprika_tickers_greenyun2.json"))
    old[0]["quotes"]["USD"]["price"] = 1.5  # other content: stored as a body of its own
    saved = tmp_path / "tickers-2025-01-01.json"
    saved.write_text(json.dumps(old))
    january = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    os.utime(saved, (january, january))
    backfill = ingestion_run(source="coinpaprika", trigger="file", origin=saved_file(path=str(saved)))
    assert backfill.status == "succeeded" and backfill.raw_stored == 1

    data = api.get("/data?source=coinpaprika").json()
    assert data["run_id"] == live.pk and data["from_saved_file"] is False
    health = api.get("/health").json()
    assert health["failing_sources"] == ["coinpaprika"] and health["status"] == "degraded"
    live.refresh_from_db()
    assert health["sources"]["coinpaprika"]["data_fetched_at"] == live.data_fetched_at.isoformat().replace(
        "+00:00", "Z"
    )


def test_data_says_how_old_its_data_is_and_whether_it_is_a_saved_file(
    api: Client, http: responses.RequestsMock, tmp_path: Path
) -> None:
    from crypto.services.ingest.run import saved_file

    saved = tmp_path / "tickers.json"
    saved.write_bytes(upstream_bytes("coinpaprika_tickers_greenyun2.json"))
    ingestion_run(source="coinpaprika", trigger="file", origin=saved_file(path=str(saved)))
    recorded = api.get("/data").json()
    newest = max(ticker["last_updated"] for ticker in json.loads(saved.read_bytes()) if ticker.get("last_updated"))
    assert recorded["from_saved_file"] is True
    assert recorded["newest_record_at"].replace("Z", "") == newest.replace("Z", "")
    assert recorded["age_seconds"] > 24 * 3600, "a recording is not today's market"


def test_answers_carrying_upstream_data_stay_within_api_max_body_bytes(
    api: Client, http: responses.RequestsMock, settings
) -> None:
    from crypto.models import RawBody

    mock_paprika(http)
    ingestion_run(source="coinpaprika", trigger="cli")
    raw = RawBody.objects.get()
    whole = api.get(f"/api/raw/{raw.pk}/")
    assert whole.json()["data_omitted"] is None and len(whole.json()["data"]) == 2500

    settings.API_MAX_BODY_BYTES = 20_000  # a 1.8 MB body, records of about 700 bytes
    capped = api.get(f"/api/raw/{raw.pk}/")
    assert len(capped.content) < 20_000 and capped.json()["data"] is None
    assert capped.json()["data_bytes"] > 1_000_000 and "API_MAX_BODY_BYTES" in capped.json()["data_omitted"]
    data = api.get("/data?source=coinpaprika&limit=5000")
    assert data.status_code == 200 and len(data.content) < 20_000 + 2_000  # the records, and a few fields
    assert data.json()["bytes_capped"] is True and 0 < data.json()["returned"] < 100
    assert data.json()["data_count"] == 2500
    uncapped = api.get("/data?source=coinpaprika&limit=5")
    assert uncapped.json()["bytes_capped"] is False and uncapped.json()["returned"] == 5
