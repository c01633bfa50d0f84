"""Quotes, assets, runs and raw bodies under /api/: filters, keyset pages, 400s, JSON shape."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import pytest
import responses
from django.test import Client

from crypto.models import MarketQuote
from crypto.services.ingest.run import ingestion_run, saved_file
from tests.conftest import GECKO_PAGE, PAPRIKA, UPSTREAM, mock_paprika

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> Client:
    return Client(HTTP_ACCEPT="application/json")


@pytest.fixture
def loaded() -> None:
    for source, name in (("coinpaprika", PAPRIKA), ("coingecko", GECKO_PAGE)):
        assert (
            ingestion_run(source=source, trigger="file", origin=saved_file(path=str(UPSTREAM / name))).status
            == "succeeded"
        )


def walk(api: Client, url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    pages = 0
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        rows += body["results"]
        url = body["next"]
        pages += 1
        assert pages < 1000
    return rows


def test_every_quote_is_on_exactly_one_page_even_when_thousands_share_a_time(api: Client, loaded: None) -> None:
    # The 2,500 CoinPaprika tickers all have the same last_updated: ties must not lose or repeat rows.
    rows = walk(api, "/api/quotes/?page_size=300")
    assert len(rows) == MarketQuote.objects.count() == 2750
    assert len({row["id"] for row in rows}) == 2750
    times = [datetime.fromisoformat(row["last_updated"]) for row in rows]
    assert times == sorted(times, reverse=True)


def test_ordering_by_market_cap_puts_unknown_caps_last_and_pages_through_all(api: Client, loaded: None) -> None:
    for ordering in ("-market_cap_usd", "market_cap_usd"):
        rows = walk(api, f"/api/quotes/?ordering={ordering}&page_size=400")
        assert len({row["id"] for row in rows}) == len(rows) == 2750
        caps = [row["market_cap_usd"] for row in rows]
        known = [float(c) for c in caps if c is not None]
        assert caps[len(known) :] == [None] * (len(caps) - len(known)), "NULLs come last"
        assert known == sorted(known, reverse=ordering.startswith("-"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("symbol=btc", {("coingecko", "bitcoin"), ("coinpaprika", "btc-bitcoin")}),
        ("upstream_id=btc-bitcoin", {("coinpaprika", "btc-bitcoin")}),
        (
            "symbol=EGG&source=coinpaprika",
            {("coinpaprika", u) for u in ("egg-eggdog", "egg-egg-finance", "egg-nestegg-coin")},
        ),
    ],
)
def test_quotes_filter_by_symbol_upstream_id_and_source(
    api: Client, loaded: None, query: str, expected: set[tuple[str, str]]
) -> None:
    rows = walk(api, f"/api/quotes/?{query}")
    found = {(row["source"], row["upstream_id"]) for row in rows}
    if "EGG" in query:
        assert len(found) == 3 and all(s == "coinpaprika" for s, _ in found)
    else:
        assert found == expected


def test_quotes_filter_by_time_range_and_market_cap_bounds(api: Client, loaded: None) -> None:
    rows = walk(api, "/api/quotes/?since=2025-01-01T00:00:00Z&min_market_cap=1000000000&page_size=500")
    assert rows and all(row["source"] == "coingecko" for row in rows)
    assert all(float(row["market_cap_usd"]) >= 1e9 for row in rows)
    older = walk(api, "/api/quotes/?until=2024-01-01T00:00:00Z&max_market_cap=1000&page_size=500")
    assert older and all(row["source"] == "coinpaprika" and float(row["market_cap_usd"]) <= 1000 for row in older)


def test_decimals_are_exact_strings_and_times_are_utc(api: Client, loaded: None) -> None:
    row = walk(api, "/api/quotes/?upstream_id=btc-bitcoin")[0]
    assert row["price_usd"] == "29427.918932650417"
    assert row["market_cap_usd"] == "572489440087"
    assert row["max_supply"] == "21000000"
    assert row["price_change_24h_usd"] is None
    assert row["last_updated"] == "2023-08-11T08:09:18Z"


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("ordering=price", "ordering"),
        ("since=yesterday", "since"),
        ("until=2024-13-45", "until"),
        ("min_market_cap=lots", "min_market_cap"),
        ("max_market_cap=1e400", "max_market_cap"),
        ("cursor=not-a-cursor", "cursor"),
        ("page_size=abc", "page_size"),
        ("page_size=0", "page_size"),
        ("source=binance", "source"),
        ("asset=-3", "asset"),
        ("asset=99999999999999999999", "asset"),
    ],
)
def test_bad_parameters_answer_400_naming_the_parameter(api: Client, query: str, parameter: str) -> None:
    response = api.get(f"/api/quotes/?{query}")
    assert response.status_code == 400, response.content
    body = response.json()
    assert parameter in body["errors"], body
    assert body["detail"].startswith("Invalid request:")


def test_a_cursor_is_tied_to_its_ordering(api: Client, loaded: None) -> None:
    next_url = api.get("/api/quotes/?page_size=5").json()["next"]
    cursor = next_url.split("cursor=")[1]
    response = api.get(f"/api/quotes/?ordering=-market_cap_usd&cursor={cursor}")
    assert response.status_code == 400 and "keep the ordering" in response.json()["errors"]["cursor"][0]


def test_forged_cursor_values_are_refused_not_crashed_on(api: Client, loaded: None) -> None:
    for payload in (
        {"o": "-last_updated", "v": "not a time", "id": 1},
        {"o": "-last_updated", "v": "x", "id": 2**70},
        {"o": "-market_cap_usd", "v": "NaN?", "id": 1},
        [1, 2],
    ):
        cursor = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
        ordering = payload["o"] if isinstance(payload, dict) else "-last_updated"
        response = api.get(f"/api/quotes/?ordering={ordering}&cursor={cursor}")
        assert response.status_code == 400, (payload, response.content)


def test_page_size_above_the_cap_is_clamped(api: Client, loaded: None) -> None:
    body = api.get("/api/quotes/?page_size=100000").json()
    assert body["page_size"] == 500 and len(body["results"]) == 500


def test_assets_carry_their_upstream_id_and_latest_quote(api: Client, loaded: None) -> None:
    rows = walk(api, "/api/assets/?symbol=usdt&source=coingecko")
    assert {row["upstream_id"] for row in rows} == {"tether", "bridged-usdt"} or len(rows) == 2
    tether = next(row for row in rows if row["upstream_id"] == "tether")
    assert tether["latest_quote"]["price_usd"] is not None
    assert tether["latest_quote"]["source"] == "coingecko"


def test_runs_are_listed_newest_first_and_filter_by_status(api: Client, http: responses.RequestsMock) -> None:
    mock_paprika(http, body=b'{"error": "no"}', status=401)
    ingestion_run(source="coinpaprika", trigger="cli")
    ingestion_run(
        source="csv", trigger="file", origin=saved_file(path=str(UPSTREAM / "coingecko_markets_csv_Global-rd.csv"))
    )
    rows = api.get("/api/runs/").json()["results"]
    assert [r["source"] for r in rows] == ["csv", "coinpaprika"]
    failed = api.get("/api/runs/?status=failed").json()["results"]
    assert [r["source"] for r in failed] == ["coinpaprika"] and "HTTP 401" in failed[0]["error"]
    one = api.get(f"/api/runs/{failed[0]['id']}/").json()
    assert one["error_kind"] == "permanent" and one["duration_seconds"] >= 0


def test_raw_bodies_are_listed_without_their_body_and_shown_with_it(api: Client, loaded: None) -> None:
    rows = api.get("/api/raw/?source=coinpaprika").json()["results"]
    assert len(rows) == 1 and "data" not in rows[0] and rows[0]["record_count"] == 2500
    one = api.get(f"/api/raw/{rows[0]['id']}/").json()
    assert len(one["data"]) == 2500 and one["data"][0]["id"] == "btc-bitcoin"
    assert api.get("/api/raw/abc/").status_code == 404
    assert api.get("/api/raw/99999999/").status_code == 404


def test_api_root_and_docs_work_offline(api: Client) -> None:
    assert set(api.get("/api/").json()) == {
        "quotes",
        "assets",
        "canonical-assets",
        "runs",
        "raw",
        "quarantine",
        "drift",
        "backfills",
    }
    page = api.get("/api/backfills/", HTTP_ACCEPT="text/html").content.decode()
    assert page.count(">Api Root<") == 1, "the browsable API's breadcrumb names the root once"
    assert api.get("/api").json() == api.get("/api/").json()
    docs = Client().get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    static = Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert static.status_code == 200
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200 and "/api/quotes/" in schema.content.decode()
