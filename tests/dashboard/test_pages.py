"""The front page and the dashboard, rendered by Django: what each page says, and what each costs
(a bounded number of queries whatever the data, series cut to about a thousand points)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crypto.models import Asset, IngestionRun, MarketQuote
from crypto.services.monitor.progress import progress_note

pytestmark = pytest.mark.django_db


def embedded(html: str, name: str) -> Any:
    found = re.search(rf'<script id="{name}" type="application/json">(.*?)</script>', html, re.S)
    assert found, f"no {name} in the page"
    return json.loads(found.group(1))


def test_the_front_page_says_the_state_of_each_source_and_links_everywhere(client: Client, settings: Any) -> None:
    empty = client.get("/")
    assert empty.status_code == 200 and "text/html" in empty["Content-Type"]
    settings.FLOWER_URL = "http://127.0.0.1:5555/"
    IngestionRun.objects.create(source="coinpaprika", trigger="cli", status="failed", error="HTTP 500 upstream")
    page = client.get("/").content.decode()
    assert "Degraded" in page and "failing: coinpaprika" in page
    assert "HTTP 500 upstream" not in page and "shown to staff" in page, "the reason is withheld, as on /health"
    staff = User.objects.create_user("ops", password="x", is_staff=True)
    client.force_login(staff)
    assert "HTTP 500 upstream" in client.get("/").content.decode(), "staff see it (a page cached apart)"
    client.logout()
    for href in ('href="/dashboard/"', 'href="/api/docs/"', 'href="/api/"', 'href="/admin/"', 'href="/metrics"'):
        assert href in page
    assert 'href="http://127.0.0.1:5555/"' in page, "Flower is linked where configured"


def test_the_overview_shows_freshness_a_timeline_of_runs_and_the_biggest_movers(
    client: Client, market: dict[str, Any]
) -> None:
    page = client.get("/dashboard/").content.decode()
    timeline = {source["source"]: source["runs"] for source in embedded(page, "timeline-data")["sources"]}
    assert [run["id"] for run in timeline["coinpaprika"]] == [market["first"].pk, market["second"].pk]
    assert {run["status"] for run in timeline["coingecko"]} == {"succeeded", "running"} and timeline["csv"] == []
    assert all(run["seconds"] is not None for run in timeline["coinpaprika"]), "how long each took"
    assert "Biggest movers" in page and "CoinPaprika" in page and "quarantined" in page.lower()
    assert f'href="/dashboard/runs/{market["second"].pk}/"' in page


def test_a_coin_overlays_its_sources_marks_the_checks_flags_and_links_each_point_to_its_body(
    client: Client, market: dict[str, Any]
) -> None:
    bitcoin = Asset.objects.get(source="coinpaprika", upstream_id="btc-bitcoin")
    chart = embedded(client.get(f"/dashboard/coins/{bitcoin.pk}/").content.decode(), "coin-data")
    by_source = {series["source"]: series for series in chart["series"]}
    assert set(by_source) == {"coingecko", "coinpaprika"}, "the same coin from both sources, overlaid"
    gecko, paprika = by_source["coingecko"], by_source["coinpaprika"]
    newest = MarketQuote.objects.filter(asset__source="coingecko", asset__upstream_id="bitcoin").latest("last_updated")
    assert len(gecko["t"]) <= 1001, "5,001 quotes cut to a thousand stretches of time at most"
    assert gecko["t"][0] == datetime(2023, 8, 1, tzinfo=UTC).timestamp(), "the first quote is kept"
    assert gecko["t"][-1] == newest.last_updated.timestamp(), "and the newest"
    assert gecko["t"] == sorted(gecko["t"]) and all(raw for raw in paprika["raw"]), "each point has its body"
    second = datetime(2023, 8, 11, 9, 9, 18, tzinfo=UTC).timestamp()
    assert paprika["apart"] == [second], "CoinPaprika's Bitcoin 10% above CoinGecko's at the same hour is marked"
    assert not paprika["moves"], "10% in an hour is no price move (PRICE_MOVE_PCT=50)"
    assert len(paprika["t"]) == 2


def test_search_lists_every_asset_a_repeated_symbol_names_with_its_source_id(
    client: Client, market: dict[str, Any]
) -> None:
    page = client.get("/dashboard/search/", {"q": "btc"}).content.decode()
    assert "<code>bitcoin</code>" in page and "<code>btc-bitcoin</code>" in page
    assert client.get("/dashboard/search/", {"q": "no such coin at all"}).content.decode().count("Nothing matches") == 1


def test_a_running_run_shows_its_progress_and_refreshes_itself_and_a_finished_one_its_comparison(
    client: Client, market: dict[str, Any]
) -> None:
    running = market["running"]
    page = client.get(f"/dashboard/runs/{running.pk}/").content.decode()
    assert 'http-equiv="refresh"' in page and "no body loaded yet" in page
    progress_note(run_id=running.pk, records=500, bodies=2, started=running.started_at, now=timezone.now())
    page = client.get(f"/dashboard/runs/{running.pk}/").content.decode()
    assert "<strong>500</strong> records in 2 bodies so far" in page and "records/s" in page
    done = client.get(f"/dashboard/runs/{market['second'].pk}/").content.decode()
    assert 'http-equiv="refresh"' not in done and f'href="/dashboard/runs/{market["first"].pk}/"' in done
    assert "assets appeared" in done and "rows upserted" in done


@pytest.mark.parametrize("path", ["/", "/dashboard/", "/dashboard/search/?q=btc"])
def test_a_page_costs_the_same_queries_whatever_the_data(client: Client, path: str, tmp_path: Any) -> None:
    with CaptureQueriesContext(connection) as before:
        client.get(path)
    from tests.conftest import PAPRIKA, UPSTREAM
    from tests.dashboard.conftest import load

    for _ in range(3):
        load(UPSTREAM / PAPRIKA, "coinpaprika")
    with CaptureQueriesContext(connection) as after:
        client.get(path)
    assert len(after) <= len(before) + 2, f"{path}: {len(before)} queries empty, {len(after)} with data"


def test_a_page_is_served_again_from_the_cache_until_a_run_starts_or_ends(client: Client) -> None:
    assert "Nothing matches" in client.get("/dashboard/search/", {"q": "zzz"}).content.decode()
    Asset.objects.create(source="coingecko", upstream_id="zzz", symbol="zzz", name="Zed")
    with CaptureQueriesContext(connection) as served:
        again = client.get("/dashboard/search/", {"q": "zzz"}).content.decode()
    assert "Nothing matches" in again and len(served) == 1, "the same data version: the page kept, one query"
    IngestionRun.objects.create(source="coingecko", trigger="cli")
    assert "<code>zzz</code>" in client.get("/dashboard/search/", {"q": "zzz"}).content.decode()


def test_the_front_page_says_the_database_is_unreachable_instead_of_failing(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    from crypto.dashboard import selectors, views

    def away() -> str:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(selectors, "data_version", away)
    monkeypatch.setattr(
        views, "health_report", lambda: {"status": "error", "database": {"status": "down", "error": "refused"}}
    )
    page = client.get("/")
    assert page.status_code == 200 and "Database unreachable" in page.content.decode()
