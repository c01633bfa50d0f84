"""CoinPaprika v1 `GET /tickers`: every coin in one call (2,000-2,500 on the free tier, ~1.8 MB).

Records are keyed on `id` (`btc-bitcoin`); symbols are upper case and repeat (`EGG` x3).
Quirks: unknown supply and market cap are written as 0, not null; `quotes` holds only the
currencies asked for, so a ticker without a `USD` quote cannot be normalized; and
`market_cap_change_24h` is a percent here, unlike CoinGecko's amount of the same name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from crypto.sources.base import FetchContext, JsonListSource
from crypto.sources.body import (
    Body,
    Coin,
    ParseResult,
    Record,
    SourceError,
    json_list,
    json_objects,
    record_id,
)
from crypto.sources.history import Window
from crypto.sources.values import (
    BadValue,
    Converter,
    convert_fields,
    to_datetime,
    to_decimal,
    to_int,
    to_text,
    zero_is_unknown,
)

ENDPOINT = "/tickers"


def _unknown_if_zero(value: Any) -> Any:
    if not value and type(value) in (int, float):  # the common 0, with no Decimal made
        return None
    return zero_is_unknown(to_decimal(value))


def _rank(value: Any) -> int | None:
    rank = to_int(value)
    return rank if rank else None  # 0 means unranked


# History: `/tickers/{id}/historical?start=&end=&interval=&limit=` answers a list of
# {"timestamp", "price", "volume_24h", "market_cap"}, at most 5,000 points a call, at the interval
# asked (COINPAPRIKA_HISTORY_INTERVAL). The free plan gives daily points a year back and hourly
# ones a day back, and answers 402 with its reason for anything else.
HISTORY_ENDPOINT = "/tickers/{id}/historical"
HISTORY_LIMIT = 5000
HISTORY_INTERVALS = {
    **{f"{n}m": timedelta(minutes=n) for n in (5, 10, 15, 30, 45)},
    **{f"{n}h": timedelta(hours=n) for n in (1, 2, 3, 6, 12, 24)},
    **{f"{n}d": timedelta(days=n) for n in (1, 7, 14, 30, 90, 365)},
}
HISTORY_FIELDS: list[tuple[str, str, Converter]] = [
    ("last_updated", "timestamp", to_datetime),
    ("price_usd", "price", to_decimal),
    ("volume_24h_usd", "volume_24h", to_decimal),
    ("market_cap_usd", "market_cap", _unknown_if_zero),
]


TICKER_FIELDS: list[tuple[str, str, Converter]] = [
    ("last_updated", "last_updated", to_datetime),
    ("market_cap_rank", "rank", _rank),
    ("circulating_supply", "circulating_supply", _unknown_if_zero),
    ("total_supply", "total_supply", _unknown_if_zero),
    ("max_supply", "max_supply", _unknown_if_zero),
]
USD_FIELDS: list[tuple[str, str, Converter]] = [
    ("price_usd", "price", to_decimal),
    ("market_cap_usd", "market_cap", _unknown_if_zero),
    ("volume_24h_usd", "volume_24h", to_decimal),
    ("price_change_pct_24h", "percent_change_24h", to_decimal),
    # A percent on CoinPaprika (CoinGecko's field of this name is an amount).
    ("market_cap_change_pct_24h", "market_cap_change_24h", to_decimal),
]


# The fields we normalize: drift on these is a warning, on the rest information.
USED_FIELDS = frozenset(
    {"id", "symbol", "name", "quotes", "quotes.USD"}
    | {key for _, key, _ in TICKER_FIELDS}
    | {f"quotes.USD.{key}" for _, key, _ in USD_FIELDS}
)


def auth_header(api_key: str) -> dict[str, str]:
    return {"Authorization": api_key} if api_key else {}


class CoinPaprika(JsonListSource):
    name = "coinpaprika"
    label = "CoinPaprika"
    interval_setting = "INGEST_INTERVAL_COINPAPRIKA"
    calls_per_minute_setting = "COINPAPRIKA_CALLS_PER_MINUTE"
    linked = True
    used_fields = USED_FIELDS
    expected = "CoinPaprika /tickers should answer a JSON list of tickers"

    def fetch_context(self, *, settings: Any, client: Any) -> FetchContext:
        return FetchContext(
            client=client,
            base_url=settings.COINPAPRIKA_BASE_URL,
            api_key=settings.COINPAPRIKA_API_KEY,
            history_interval=settings.COINPAPRIKA_HISTORY_INTERVAL,
        )

    def fetch(self, *, context: FetchContext) -> Iterator[Body]:
        response = context.client.get_json(
            context.base_url + ENDPOINT, params={"quotes": "USD"}, secret_headers=auth_header(context.api_key)
        )
        yield Body.answered(response, position=1, record_count=len(self.records(response.data)))

    def history_span(self, *, context: FetchContext) -> timedelta:
        return history_interval(context.history_interval) * (HISTORY_LIMIT - 1)

    def fetch_history(self, *, context: FetchContext, window: Window) -> Body:
        response = context.client.get_json(
            context.base_url + HISTORY_ENDPOINT.format(id=quote(window.coin.upstream_id, safe="")),
            params={
                "start": window.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end": window.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "interval": context.history_interval,
                "limit": HISTORY_LIMIT,
                "quote": "usd",
            },
            secret_headers=auth_header(context.api_key),
        )
        body = Body.answered(response, position=window.position, record_count=len(_history_points(response.data)))
        return dataclasses.replace(body, history_of=window.coin)

    def parse_history(self, *, data: Any, coin: Coin) -> ParseResult:
        result = ParseResult()
        for where, item in json_objects(_history_points(data), result):
            try:
                values = convert_fields(item, HISTORY_FIELDS)
            except BadValue as exc:
                result.reject(where, f"{coin.upstream_id}: {exc}")
                continue
            if values["last_updated"] is None:
                result.reject(where, f"{coin.upstream_id}: no `timestamp`")
                continue
            result.records.append(Record(upstream_id=coin.upstream_id, symbol=coin.symbol, name=coin.name, **values))
        return result

    def parse_item(self, item: Mapping[str, Any], *, where: str, result: ParseResult) -> None:
        upstream_id = record_id(item, where=where, result=result)
        if upstream_id is None:
            return
        quotes = item.get("quotes")
        usd = quotes.get("USD") if isinstance(quotes, dict) else None
        if not isinstance(usd, dict):
            result.reject(where, f"{upstream_id}: no USD quote")
            return
        try:
            values = convert_fields(usd, USD_FIELDS, convert_fields(item, TICKER_FIELDS))
        except BadValue as exc:
            result.reject(where, f"{upstream_id}: {exc}")
            return
        result.records.append(
            Record(
                upstream_id=upstream_id,
                symbol=to_text(item.get("symbol")),
                name=to_text(item.get("name")),
                price_change_24h_usd=None,  # CoinPaprika gives the 24h change as a percent only
                **values,
            )
        )


def history_interval(name: str) -> timedelta:
    """The length of a CoinPaprika history interval (`1d`, `1h`, `5m`, ...)."""
    try:
        return HISTORY_INTERVALS[name]
    except KeyError:
        raise SourceError(
            f"CoinPaprika has no history interval {name!r}; it takes {', '.join(HISTORY_INTERVALS)}"
        ) from None


def _history_points(data: Any) -> list[Any]:
    return json_list(data, expected=f"CoinPaprika {HISTORY_ENDPOINT} should answer a JSON list of points")


source = CoinPaprika()
