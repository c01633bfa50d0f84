"""A source that exists only in the tests: one module and one line in INGEST_SOURCES, and it runs
through the command, a Celery worker, the API and the admin like the real ones.

Its upstream answers `GET {TOY_BASE_URL}/prices` with `[{"id", "symbol", "name", "price", "at"}]`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from crypto.sources.base import FetchContext, JsonListSource
from crypto.sources.body import Body, ParseResult, Record, record_id
from crypto.sources.values import (
    BadValue,
    to_datetime,
    to_decimal,
    to_text,
)


class ToyMarket(JsonListSource):
    name = "toy"
    label = "Toy market"
    interval_setting = "INGEST_INTERVAL_TOY"
    calls_per_minute_setting = "TOY_CALLS_PER_MINUTE"
    used_fields = frozenset({"id", "symbol", "name", "price", "at"})
    expected = "the toy market should answer a JSON list of prices"

    def fetch_context(self, *, settings: Any, client: Any) -> FetchContext:
        return FetchContext(client=client, base_url=settings.TOY_BASE_URL)

    def fetch(self, *, context: FetchContext) -> Iterator[Body]:
        response = context.client.get_json(context.base_url + "/prices", params={}, secret_headers={})
        yield Body.answered(response, position=1, record_count=len(self.records(response.data)))

    def parse_item(self, item: Mapping[str, Any], *, where: str, result: ParseResult) -> None:
        upstream_id = record_id(item, where=where, result=result)
        if upstream_id is None:
            return
        try:
            price, at = to_decimal(item.get("price")), to_datetime(item.get("at"))
        except BadValue as exc:
            result.reject(where, f"{upstream_id}: {exc}")
            return
        if price is None:
            result.reject(where, f"{upstream_id}: no price")
            return
        result.records.append(
            Record(
                upstream_id=upstream_id,
                symbol=to_text(item.get("symbol")),
                name=to_text(item.get("name")),
                last_updated=at,
                price_usd=price,
            )
        )


source = ToyMarket()
