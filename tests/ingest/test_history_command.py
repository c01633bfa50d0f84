"""`python manage.py backfill`: coins' history from the upstream APIs, window by window, stored raw and
loaded as quotes marked as history, idempotent, each window failing alone with the upstream's
reason. The upstream is mocked at the HTTP seam with answers shaped as the providers document them
(CoinGecko `/coins/{id}/market_chart/range`, CoinPaprika `/tickers/{id}/historical`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
import responses
from django.core.management import CommandError, call_command
from django.test import Client

from bench.common import chart_body
from crypto.models import Asset, IngestionRun, MarketQuote, RawBody
from crypto.services.ingest.renormalize import renormalize_run
from tests.conftest import mock_gecko_two_pages

pytestmark = pytest.mark.django_db
GECKO_RANGE = re.compile(r"https://api\.coingecko\.com/api/v3/coins/([^/]+)/market_chart/range")
PAPRIKA_HISTORY = re.compile(r"https://api\.coinpaprika\.com/v1/tickers/([^/]+)/historical")
TOO_OLD = (
    "Your request exceeds the allowed time range. Public API users are limited to querying historical data "
    "within the past 365 days."
)


@pytest.fixture(autouse=True)
def generous_budget(settings: Any) -> None:
    settings.COINGECKO_CALLS_PER_MINUTE = 10_000
    settings.COINPAPRIKA_CALLS_PER_MINUTE = 10_000
    settings.COINPAPRIKA_HISTORY_INTERVAL = "1d"


def gecko_chart(request: Any, *, oldest: datetime | None = None) -> tuple[int, dict[str, str], bytes]:
    """Hourly points over the range asked, each coin priced by its name's length; the plan's answer
    (401, error 10012) for a range that starts before `oldest`; 404 for a coin it does not know."""
    coin = GECKO_RANGE.match(request.url).group(1)  # type: ignore[union-attr]
    query = parse_qs(urlparse(request.url).query)
    start, end = int(query["from"][0]) * 1000, int(query["to"][0]) * 1000
    if coin == "no-such-coin":
        return 404, {"Content-Type": "application/json"}, b'{"error":"coin not found"}'
    if oldest is not None and start < oldest.timestamp() * 1000:
        error = {
            "error": {"status": {"timestamp": "2026-12-04T00:00:00Z", "error_code": 10012, "error_message": TOO_OLD}}
        }
        return 401, {"Content-Type": "application/json"}, orjson.dumps(error)
    return 200, {"Content-Type": "application/json"}, chart_body(coin, start // 1000, end // 1000)


def backfill(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("backfill", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def live_gecko(http: responses.RequestsMock) -> IngestionRun:
    mock_gecko_two_pages(http)
    call_command("ingest", "--source", "coingecko", stdout=StringIO())
    return IngestionRun.objects.filter(source="coingecko").latest("id")


def test_history_is_stored_raw_window_by_window_and_loaded_as_history_quotes_once(
    http: responses.RequestsMock, client: Client
) -> None:
    live = live_gecko(http)
    live_quotes = MarketQuote.objects.count()
    http.add_callback(responses.GET, GECKO_RANGE, callback=gecko_chart)

    out, _ = backfill("--source", "coingecko", "--coins", "top:2", "--since", "2025-01-01", "--until", "2025-05-01")
    assert "coingecko: history of 2 coin(s) from 2025-01-01 00:00 to 2025-05-01 00:00 UTC, 4 window(s)" in out
    assert "[1/4] bitcoin 2025-01-01 00:00 to 2025-04-01 00:00 UTC: 2,161 points, 2,161 rows upserted" in out
    assert "[4/4] ethereum 2025-04-01 00:00 to 2025-05-01 00:00 UTC: 721 points" in out
    assert "4 of 4 windows loaded, 0 failed; 5,764 points" in out

    bodies = RawBody.objects.filter(history_of__in=["bitcoin", "ethereum"])
    assert bodies.count() == 4 and all(b.fingerprint is None and "market_chart/range" in b.request for b in bodies)
    history = MarketQuote.objects.filter(history=True)  # 2,161 + 721 a coin, the windows' common hour once
    assert history.count() == 2 * 2881 and MarketQuote.objects.filter(history=False).count() == live_quotes
    point = history.get(asset__upstream_id="bitcoin", last_updated=datetime(2025, 2, 1, tzinfo=UTC))
    assert point.price_usd == Decimal("7.744") and point.raw.history_of == "bitcoin"
    bitcoin = Asset.objects.get(source="coingecko", upstream_id="bitcoin")
    assert (bitcoin.symbol, bitcoin.name) == ("btc", "Bitcoin"), "history answers carry no names: none changed"

    runs = IngestionRun.objects.filter(trigger="history")
    assert runs.count() == 4 and all(r.status == "succeeded" and r.data_fetched_at is None for r in runs)
    assert all(r.comparison == {} for r in runs), "a window of one coin has no like to compare with"
    listed = client.get("/api/quotes/?history=true&upstream_id=bitcoin&page_size=2").json()["results"]
    assert [q["history"] for q in listed] == [True, True] and listed[0]["last_updated"] == "2025-05-01T00:00:00Z"
    live_listed = client.get("/api/quotes/?history=false&upstream_id=bitcoin").json()["results"]
    assert len(live_listed) == 2 and {q["history"] for q in live_listed} == {False}  # both recorded pages
    assert client.get("/api/quotes/?history=maybe").status_code == 400
    data = client.get("/data?source=coingecko").json()
    assert data["data_count"] == 350, "history is no dataset: /data still shows the latest live one"
    assert client.get("/health").json()["sources"]["coingecko"]["last_run_status"] == "succeeded"

    again, _ = backfill("--source", "coingecko", "--coins", "bitcoin", "--since", "2025-01-01", "--until", "2025-05-01")
    assert "2,161 points, 0 rows upserted, unchanged since stored" in again
    assert RawBody.objects.filter(history_of="bitcoin").count() == 2 and history.count() == 2 * 2881

    second_live = live_gecko(http)
    assert second_live.comparison["previous_run"] == live.pk, "a live run is compared with a live run, not history"


def test_each_window_fails_alone_with_the_upstreams_reason_and_the_rest_load(
    http: responses.RequestsMock, settings: Any
) -> None:
    oldest = datetime(2025, 3, 1, tzinfo=UTC)
    http.add_callback(responses.GET, GECKO_RANGE, callback=lambda request: gecko_chart(request, oldest=oldest))
    with pytest.raises(CommandError) as failed:
        backfill(
            "--source", "coingecko", "--coins", "bitcoin,no-such-coin", "--since", "2025-01-01", "--until", "2025-05-01"
        )
    message = str(failed.value)
    assert "bitcoin 2025-01-01 00:00 to 2025-04-01 00:00 UTC failed: GET" in message and TOO_OLD[:40] in message
    assert "no-such-coin 2025-01-01 00:00 to 2025-04-01 00:00 UTC failed" in message and "coin not found" in message
    assert "run the command again to retry these" in message
    [loaded] = IngestionRun.objects.filter(trigger="history", status="succeeded")
    assert MarketQuote.objects.filter(history=True).count() == 721 and loaded.records_fetched == 721
    failures = IngestionRun.objects.filter(trigger="history", status="failed")
    assert failures.count() == 3 and all(r.error_kind == "permanent" for r in failures)
    assert len([c for c in http.calls if "bitcoin" in c.request.url]) == 2, "a permanent refusal is not retried"
    unknown = Asset.objects.filter(upstream_id="no-such-coin")
    assert not unknown.exists(), "nothing of a failed window is kept"


def test_coinpaprika_history_asks_daily_points_and_a_range_beyond_the_plan_fails_at_once(
    http: responses.RequestsMock,
) -> None:
    refusal = "Getting daily historical data before 2025-12-04 is not allowed in this plan. Check plans on …/api"
    asked: list[dict[str, list[str]]] = []

    def answer(request: Any) -> tuple[int, dict[str, str], bytes]:
        query = parse_qs(urlparse(request.url).query)
        asked.append(query)
        if query["start"][0] < "2025-12-04":
            return 402, {"Content-Type": "application/json"}, orjson.dumps({"error": refusal})
        days = [datetime(2025, 12, 4, tzinfo=UTC) + timedelta(days=n) for n in range(3)]
        points = [
            {"timestamp": f"{d:%Y-%m-%dT%H:%M:%SZ}", "price": 90000 + n, "volume_24h": 3.1e10, "market_cap": 0}
            for n, d in enumerate(days)
        ]
        return 200, {"Content-Type": "application/json"}, orjson.dumps(points)

    http.add_callback(responses.GET, PAPRIKA_HISTORY, callback=answer)
    out, _ = backfill(
        "--source", "coinpaprika", "--coins", "btc-bitcoin", "--since", "2025-12-04", "--until", "2025-12-07"
    )
    assert asked[0]["interval"] == ["1d"] and asked[0]["limit"] == ["5000"] and asked[0]["quote"] == ["usd"]
    assert "[1/1] btc-bitcoin 2025-12-04 00:00 to 2025-12-07 00:00 UTC: 3 points, 3 rows upserted" in out
    quotes = MarketQuote.objects.filter(asset__upstream_id="btc-bitcoin", history=True).order_by("last_updated")
    assert [q.price_usd for q in quotes] == [90000, 90001, 90002] and quotes[0].market_cap_usd is None

    with pytest.raises(CommandError, match="plan does not allow this request.*not allowed in this plan"):
        backfill("--source", "coinpaprika", "--coins", "btc-bitcoin", "--since", "2024-01-01", "--until", "2024-02-01")
    assert len(asked) == 2, "asking again cannot help: one call"


def test_top_coins_need_live_data_first_and_bad_arguments_say_what_is_expected() -> None:
    with pytest.raises(CommandError, match="coingecko has no data yet to pick its top 5 coins from"):
        backfill("--source", "coingecko", "--coins", "top:5", "--since", "2025-01-01")
    with pytest.raises(CommandError, match="top:N takes a whole number"):
        backfill("--source", "coingecko", "--coins", "top:many", "--since", "2025-01-01")
    with pytest.raises(CommandError, match="is not a date"):
        backfill("--source", "coingecko", "--coins", "bitcoin", "--since", "last year")
    with pytest.raises(CommandError, match="the range is empty"):
        backfill("--source", "coingecko", "--coins", "bitcoin", "--since", "2025-02-01", "--until", "2025-01-01")
    with pytest.raises(CommandError, match="invalid choice: 'csv'"):
        backfill("--source", "csv", "--coins", "bitcoin", "--since", "2025-01-01")


def test_renormalizing_parses_history_bodies_as_history_and_keeps_them_marked(http: responses.RequestsMock) -> None:
    http.add_callback(responses.GET, GECKO_RANGE, callback=gecko_chart)
    backfill("--source", "coingecko", "--coins", "bitcoin", "--since", "2025-01-01", "--until", "2025-01-03")
    before = list(MarketQuote.objects.order_by("last_updated").values_list("last_updated", "price_usd", "history"))
    MarketQuote.objects.all().delete()
    progress = renormalize_run(source="coingecko")
    assert progress.rejected == 0 and progress.rows_upserted == len(before) == 49
    assert (
        list(MarketQuote.objects.order_by("last_updated").values_list("last_updated", "price_usd", "history")) == before
    )


def test_a_history_point_never_overwrites_a_live_quote_at_the_same_time(http: responses.RequestsMock) -> None:
    live_gecko(http)
    bitcoin = MarketQuote.objects.filter(asset__upstream_id="bitcoin", history=False).latest("last_updated")
    hour = bitcoin.last_updated.replace(minute=0, second=0, microsecond=0)
    MarketQuote.objects.filter(pk=bitcoin.pk).update(last_updated=hour)  # a live quote on the hour
    http.add_callback(responses.GET, GECKO_RANGE, callback=gecko_chart)
    since, until = hour - timedelta(hours=2), hour + timedelta(hours=2)
    backfill(
        "--source",
        "coingecko",
        "--coins",
        "bitcoin",
        "--since",
        f"{since:%Y-%m-%dT%H:%M}",
        "--until",
        f"{until:%Y-%m-%dT%H:%M}",
    )
    kept = MarketQuote.objects.get(pk=bitcoin.pk)
    assert kept.history is False and kept.price_usd == bitcoin.price_usd and kept.raw_id == bitcoin.raw_id
    assert MarketQuote.objects.filter(asset__upstream_id="bitcoin", history=True).count() == 4


def test_an_unreachable_broker_is_one_clear_line_and_the_job_resumes_later(
    http: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crypto.management import jobs as follow

    def refused(job: object) -> int:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.setattr(follow, "job_enqueue", refused)
    with pytest.raises(CommandError, match=r"could not send the windows of job #\d+ .*Connection refused.*resumes it"):
        backfill(
            "--source", "coingecko", "--coins", "bitcoin", "--since", "2025-01-01", "--until", "2025-01-03", "--async"
        )
