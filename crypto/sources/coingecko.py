"""CoinGecko v3 `GET /coins/markets`: paged, 250 records a page at most, 1-based pages, an empty
list past the end. Records are keyed on `id` (`bitcoin`, `avalanche-2`); symbols repeat.

Units: every value is USD because we ask `vs_currency=usd`. `market_cap_change_24h` is an amount
here (CoinPaprika's field of that name is a percent), so we keep CoinGecko's percent field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlparse

from crypto.sources.base import FetchContext, JsonListSource
from crypto.sources.body import Body, Coin, MalformedBody, ParseResult, Record, describe_json, record_id
from crypto.sources.history import Window, time_from_ms
from crypto.sources.values import (
    BadValue,
    Converter,
    convert_fields,
    to_datetime,
    to_decimal,
    to_int,
    to_text,
)

ENDPOINT = "/coins/markets"
# History: `/coins/{id}/market_chart/range` answers `prices`, `market_caps` and `total_volumes` as
# [Unix ms, value] pairs, at a granularity it picks by the range's length: hourly from 2 to 90 days
# (and for a day that does not end now), daily beyond; so a window is 90 days at most. The Demo
# plan reaches 365 days back and answers error 10012 (HTTP 401) for anything older.
HISTORY_ENDPOINT = "/coins/{id}/market_chart/range"
HISTORY_SPAN = timedelta(days=90)
HISTORY_SERIES = (("prices", "price_usd"), ("market_caps", "market_cap_usd"), ("total_volumes", "volume_24h_usd"))


def key_header(base_url: str, api_key: str) -> dict[str, str]:
    """The demo and pro plans take the key in differently named headers, never in the URL."""
    if not api_key:
        return {}
    host = urlparse(base_url).hostname or ""
    header = "x-cg-pro-api-key" if host.startswith("pro-api.") else "x-cg-demo-api-key"
    return {header: api_key}


# (Record attribute, CoinGecko key, converter): the fields we normalize, in USD.
FIELDS: list[tuple[str, str, Converter]] = [
    ("last_updated", "last_updated", to_datetime),
    ("price_usd", "current_price", to_decimal),
    ("market_cap_usd", "market_cap", to_decimal),
    ("volume_24h_usd", "total_volume", to_decimal),
    ("market_cap_rank", "market_cap_rank", to_int),
    ("circulating_supply", "circulating_supply", to_decimal),
    ("total_supply", "total_supply", to_decimal),
    ("max_supply", "max_supply", to_decimal),
    ("price_change_24h_usd", "price_change_24h", to_decimal),
    ("price_change_pct_24h", "price_change_percentage_24h", to_decimal),
    # CoinGecko's `market_cap_change_24h` is an amount; the percent lives here.
    ("market_cap_change_pct_24h", "market_cap_change_percentage_24h", to_decimal),
]


# The fields we normalize: drift on these is a warning, on the rest information.
USED_FIELDS = frozenset({"id", "symbol", "name", *(key for _, key, _ in FIELDS)})


def parse_market(item: Mapping[str, Any], *, where: str, result: ParseResult) -> None:
    """One CoinGecko market object (also a row of the flattened CSV layout, as strings)."""
    upstream_id = record_id(item, where=where, result=result)
    if upstream_id is None:
        return
    try:
        values = convert_fields(item, FIELDS)
    except BadValue as exc:
        result.reject(where, f"{upstream_id}: {exc}")
        return
    result.records.append(
        Record(
            upstream_id=upstream_id,
            symbol=to_text(item.get("symbol")),
            name=to_text(item.get("name")),
            **values,
        )
    )


class CoinGecko(JsonListSource):
    name = "coingecko"
    label = "CoinGecko"
    interval_setting = "INGEST_INTERVAL_COINGECKO"
    calls_per_minute_setting = "COINGECKO_CALLS_PER_MINUTE"
    linked = True
    used_fields = USED_FIELDS
    expected = "CoinGecko /coins/markets should answer a JSON list of markets"

    def fetch_context(self, *, settings: Any, client: Any) -> FetchContext:
        return FetchContext(
            client=client,
            base_url=settings.COINGECKO_BASE_URL,
            api_key=settings.COINGECKO_API_KEY,
            pages=settings.COINGECKO_PAGES,
            per_page=settings.COINGECKO_PER_PAGE,
        )

    def fetch(self, *, context: FetchContext) -> Iterator[Body]:
        for page in range(1, context.pages + 1):
            response = context.client.get_json(
                context.base_url + ENDPOINT,
                params={"vs_currency": "usd", "order": "market_cap_desc", "per_page": context.per_page, "page": page},
                secret_headers=key_header(context.base_url, context.api_key),
            )
            records = self.records(response.data)
            if not records:
                return  # past the last page
            yield Body.answered(response, position=page, record_count=len(records))
            if len(records) < context.per_page:
                return

    def parse_item(self, item: Mapping[str, Any], *, where: str, result: ParseResult) -> None:
        parse_market(item, where=where, result=result)

    def history_span(self, *, context: FetchContext) -> timedelta:
        return HISTORY_SPAN

    def fetch_history(self, *, context: FetchContext, window: Window) -> Body:
        response = context.client.get_json(
            context.base_url + HISTORY_ENDPOINT.format(id=quote(window.coin.upstream_id, safe="")),
            params={"vs_currency": "usd", "from": int(window.start.timestamp()), "to": int(window.end.timestamp())},
            secret_headers=key_header(context.base_url, context.api_key),
        )
        body = Body.answered(response, position=window.position, record_count=len(_history_times(response.data)))
        return dataclasses.replace(body, history_of=window.coin)

    def parse_history(self, *, data: Any, coin: Coin) -> ParseResult:
        """One record per time any series has a point at; a value no series gives stays unknown."""
        result = ParseResult()
        points: dict[datetime, dict[str, Any]] = {}
        for key, field in HISTORY_SERIES:
            for index, point in enumerate(_history_series(data, key)):
                where = f"{key}[{index}]"
                if not isinstance(point, list) or len(point) != 2:
                    got = describe_json(point)
                    result.reject(where, f"{coin.upstream_id}: expected a [time, value] pair, got {got}")
                    continue
                try:
                    points.setdefault(time_from_ms(point[0]), {})[field] = to_decimal(point[1])
                except BadValue as exc:
                    result.reject(where, f"{coin.upstream_id}: {exc}")
        for when in sorted(points):
            values = points[when]
            result.records.append(
                Record(upstream_id=coin.upstream_id, symbol=coin.symbol, name=coin.name, last_updated=when, **values)
            )
        return result


def _history_series(data: Any, key: str) -> list[Any]:
    if not isinstance(data, dict) or not isinstance(data.get("prices"), list):
        raise MalformedBody(
            f"CoinGecko {HISTORY_ENDPOINT} should answer an object with a `prices` list, got {describe_json(data)}"
        )
    series = data.get(key)
    if series is None:
        return []
    if not isinstance(series, list):
        raise MalformedBody(f"CoinGecko {HISTORY_ENDPOINT}: `{key}` should be a list, got {describe_json(series)}")
    return series


def _history_times(data: Any) -> set[Any]:
    """The distinct times of a history body's points: its record count."""
    return {
        point[0]
        for key, _ in HISTORY_SERIES
        for point in _history_series(data, key)
        if isinstance(point, list) and point and isinstance(point[0], (int, float))
    }


source = CoinGecko()
