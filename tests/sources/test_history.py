"""History by coin from the upstream APIs: windows that keep the finest points, the calls each
window makes, and each window's body turned into records at their own times. The bodies follow
the shapes in the providers' documentation (CoinGecko `/coins/{id}/market_chart/range`, CoinPaprika
`/tickers/{id}/historical`)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from crypto.sources import coingecko, coinpaprika
from crypto.sources.base import FetchContext
from crypto.sources.body import Coin, MalformedBody, SourceError
from crypto.sources.history import history_windows
from crypto.sources.http import JsonResponse

BTC = Coin(upstream_id="bitcoin", symbol="btc", name="Bitcoin")
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@dataclass
class AskedClient:
    """The HTTP client seam: records what was asked and answers `data`."""

    data: Any
    asked: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)

    def get_json(self, url: str, *, params: Any = None, secret_headers: Any = None) -> JsonResponse:
        self.asked.append((url, dict(params or {}), dict(secret_headers or {})))
        return JsonResponse(data=self.data, url=url, status=200, fetched_at=T0, size=0)


def test_a_range_is_cut_into_consecutive_windows_no_longer_than_the_span_oldest_first() -> None:
    until = T0 + timedelta(days=365)
    windows = history_windows(coin=BTC, since=T0, until=until, span=timedelta(days=90))
    assert [w.position for w in windows] == [1, 2, 3, 4, 5]
    assert windows[0].start == T0 and windows[-1].end == until
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))
    assert all(w.end - w.start <= timedelta(days=90) for w in windows)
    assert str(windows[0]) == "bitcoin 2025-01-01 00:00 to 2025-04-01 00:00 UTC"
    with pytest.raises(SourceError, match="the range is empty"):
        history_windows(coin=BTC, since=until, until=T0, span=timedelta(days=90))


def test_coingecko_history_windows_are_90_days_so_its_points_stay_hourly() -> None:
    assert coingecko.source.history_span(context=FetchContext()) == timedelta(days=90)


def test_coingecko_history_asks_the_range_endpoint_for_the_window_in_unix_seconds_with_the_key_in_a_header() -> None:
    client = AskedClient({"prices": [[ms(T0), 93000.5]], "market_caps": [], "total_volumes": []})
    context = FetchContext(client=client, base_url="https://api.coingecko.com/api/v3", api_key="k")
    [window] = history_windows(coin=Coin("wrapped/odd id"), since=T0, until=T0 + timedelta(days=2), span=timedelta(90))
    body = coingecko.source.fetch_history(context=context, window=window)
    [(url, params, headers)] = client.asked
    assert url == "https://api.coingecko.com/api/v3/coins/wrapped%2Fodd%20id/market_chart/range"
    assert params == {"vs_currency": "usd", "from": int(T0.timestamp()), "to": int(T0.timestamp()) + 2 * 86400}
    assert headers == {"x-cg-demo-api-key": "k"}
    assert body.record_count == 1 and body.position == 1


def test_coingecko_history_points_become_one_record_per_time_with_what_each_series_gives() -> None:
    t1, t2 = T0, T0 + timedelta(hours=1)
    body = {
        "prices": [[ms(t1), 93429.1], [ms(t2), 93500]],
        "market_caps": [[ms(t1), 1.85e12], [ms(t2), 1.86e12]],
        "total_volumes": [[ms(t1), 3.2e10]],  # no volume at t2: unknown, never 0
    }
    parsed = coingecko.source.parse_history(data=body, coin=BTC)
    assert not parsed.problems
    first, second = parsed.records
    assert (first.upstream_id, first.symbol, first.name) == ("bitcoin", "btc", "Bitcoin")
    assert first.last_updated == t1 and first.price_usd == Decimal("93429.1")
    assert first.market_cap_usd == Decimal("1850000000000.0") and first.volume_24h_usd == Decimal("32000000000.0")
    assert second.last_updated == t2 and second.price_usd == Decimal("93500") and second.volume_24h_usd is None


def test_coingecko_history_refuses_bad_points_one_by_one_and_a_body_of_another_shape_whole() -> None:
    body = {"prices": [[ms(T0), 1.0], [ms(T0) + 3600_000, "n/a"], "x", [True, 2.0]], "market_caps": None}
    parsed = coingecko.source.parse_history(data=body, coin=BTC)
    assert len(parsed.records) == 1
    assert [p.where for p in parsed.problems] == ["prices[1]", "prices[2]", "prices[3]"]
    assert "expected a [time, value] pair" in parsed.problems[1].message
    assert "not a time in Unix milliseconds" in parsed.problems[2].message
    error = {"error": {"status": {"error_code": 10012, "error_message": "Your request exceeds the allowed range."}}}
    with pytest.raises(MalformedBody, match="should answer an object with a `prices` list"):
        coingecko.source.parse_history(data=error, coin=BTC)


def test_coinpaprika_history_windows_hold_5000_points_of_the_configured_interval() -> None:
    assert coinpaprika.source.history_span(context=FetchContext(history_interval="1d")) == timedelta(days=4999)
    assert coinpaprika.source.history_span(context=FetchContext(history_interval="1h")) == timedelta(hours=4999)
    with pytest.raises(SourceError, match="no history interval '2d'"):
        coinpaprika.source.history_span(context=FetchContext(history_interval="2d"))


def test_coinpaprika_history_asks_the_historical_endpoint_with_rfc3339_times_interval_and_limit() -> None:
    client = AskedClient([])
    context = FetchContext(client=client, base_url="https://api.coinpaprika.com/v1", history_interval="1d")
    [window] = history_windows(
        coin=Coin("btc-bitcoin"), since=T0, until=T0 + timedelta(days=30), span=timedelta(days=4999)
    )
    coinpaprika.source.fetch_history(context=context, window=window)
    [(url, params, headers)] = client.asked
    assert url == "https://api.coinpaprika.com/v1/tickers/btc-bitcoin/historical"
    assert params == {
        "start": "2025-01-01T00:00:00Z",
        "end": "2025-01-31T00:00:00Z",
        "interval": "1d",
        "limit": 5000,
        "quote": "usd",
    }
    assert headers == {}


def test_coinpaprika_history_points_become_records_and_an_unknown_market_cap_of_0_stays_unknown() -> None:
    body = [
        {"timestamp": "2025-01-01T00:00:00Z", "price": 93429.1, "volume_24h": 3.2e10, "market_cap": 1850000000000},
        {"timestamp": "2025-01-02T00:00:00Z", "price": 94000, "volume_24h": 3.1e10, "market_cap": 0},
        {"price": 1},
        {"timestamp": "2025-01-03T00:00:00Z", "price": "n/a"},
    ]
    parsed = coinpaprika.source.parse_history(data=body, coin=Coin("btc-bitcoin", "BTC", "Bitcoin"))
    first, second = parsed.records
    assert first.last_updated == T0 and first.price_usd == Decimal("93429.1") and first.symbol == "BTC"
    assert first.market_cap_usd == Decimal(1850000000000) and second.market_cap_usd is None
    assert [(p.where, p.index) for p in parsed.problems] == [("record 2", 2), ("record 3", 3)]
    assert "no `timestamp`" in parsed.problems[0].message
    with pytest.raises(MalformedBody, match="should answer a JSON list of points"):
        coinpaprika.source.parse_history(data={"error": "id not found"}, coin=Coin("nope"))
