"""Parsing of the real recorded bodies: pure functions, no database."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from crypto.sources import coingecko, coinpaprika
from crypto.sources.body import MalformedBody
from tests.conftest import GECKO_PAGE, PAPRIKA, upstream_json


@pytest.mark.parametrize(
    ("name", "count"),
    [(GECKO_PAGE, 250), ("coingecko_markets_madjin.json", 100), ("coingecko_markets_rciminera.json", 100)],
)
def test_coingecko_recorded_pages_parse_every_record(name: str, count: int) -> None:
    result = coingecko.source.parse(data=upstream_json(name))
    assert len(result.records) == count
    assert result.problems == []
    assert len({r.upstream_id for r in result.records}) == count


def test_coingecko_duplicate_symbols_stay_separate_assets() -> None:
    records = coingecko.source.parse(data=upstream_json(GECKO_PAGE)).records
    symbols = Counter(r.symbol for r in records)
    assert symbols["weth"] == 5 and symbols["usdt"] == 2
    weth_ids = {r.upstream_id for r in records if r.symbol == "weth"}
    assert len(weth_ids) == 5


def test_coingecko_nulls_stay_null_never_zero() -> None:
    records = coingecko.source.parse(data=upstream_json(GECKO_PAGE)).records
    assert sum(r.max_supply is None for r in records) == 117
    bitcoin = next(r for r in records if r.upstream_id == "bitcoin")
    assert bitcoin.max_supply == Decimal("21000000.0")
    ethereum = next(r for r in records if r.upstream_id == "ethereum")
    assert ethereum.max_supply is None


def test_coingecko_values_are_exact_decimals_and_utc_times() -> None:
    first = coingecko.source.parse(data=upstream_json("coingecko_markets_madjin.json")).records[0]
    assert first.upstream_id == "bitcoin"
    assert first.price_usd == Decimal("76134")
    assert first.price_change_24h_usd == Decimal("-319.68068420383497")
    # The percent, not CoinGecko's market_cap_change_24h amount.
    assert first.market_cap_change_pct_24h == Decimal("-0.35888")
    assert first.last_updated == datetime(2026, 4, 30, 2, 29, 6, 506000, tzinfo=UTC)


def test_coingecko_upper_case_symbol_is_kept_as_sent() -> None:
    records = coingecko.source.parse(data=upstream_json("coingecko_markets_rciminera.json")).records
    assert any(r.symbol == "AVAX" for r in records)


def test_coingecko_record_without_id_or_with_bad_price_is_rejected_and_named() -> None:
    data = upstream_json("coingecko_markets_madjin.json")
    assert isinstance(data, list)
    del data[3]["id"]
    data[5]["current_price"] = "n/a"
    result = coingecko.source.parse(data=data)
    assert len(result.records) == 98
    messages = [str(p) for p in result.problems]
    assert messages[0].startswith("record 3: no `id`")
    assert messages[1].startswith(f"record 5: {data[5]['id']}: `current_price`")


def test_coingecko_error_object_instead_of_list_is_a_malformed_body() -> None:
    with pytest.raises(MalformedBody, match="JSON list of markets, got a JSON object with keys \\[status\\]"):
        coingecko.source.parse(data={"status": {"error_code": 429, "error_message": "throttled"}})


def test_coinpaprika_recorded_tickers_parse_with_usd_quotes() -> None:
    result = coinpaprika.source.parse(data=upstream_json(PAPRIKA))
    assert len(result.records) == 2500
    assert result.problems == []
    btc = result.records[0]
    assert (btc.upstream_id, btc.symbol, btc.market_cap_rank) == ("btc-bitcoin", "BTC", 1)
    assert btc.price_usd == Decimal("29427.918932650417")
    # CoinPaprika's market_cap_change_24h is already a percent.
    assert btc.market_cap_change_pct_24h == Decimal("-0.25")
    assert btc.price_change_24h_usd is None


def test_coinpaprika_zero_supply_and_market_cap_mean_unknown() -> None:
    data = upstream_json(PAPRIKA)
    assert isinstance(data, list)
    records = {r.upstream_id: r for r in coinpaprika.source.parse(data=data).records}
    eth_raw = next(t for t in data if t["id"] == "eth-ethereum")
    assert eth_raw["max_supply"] == 0
    assert records["eth-ethereum"].max_supply is None
    zero_caps = [t["id"] for t in data if t["quotes"]["USD"]["market_cap"] == 0]
    assert zero_caps, "the recorded body has coins with market cap 0"
    assert all(records[i].market_cap_usd is None for i in zero_caps)


def test_coinpaprika_duplicate_symbols_stay_separate() -> None:
    records = coinpaprika.source.parse(data=upstream_json(PAPRIKA)).records
    eggs = [r.upstream_id for r in records if r.symbol == "EGG"]
    assert len(eggs) == 3 and len(set(eggs)) == 3


def test_coinpaprika_ticker_without_usd_quote_is_rejected() -> None:
    data = upstream_json(PAPRIKA)
    assert isinstance(data, list)
    data[0]["quotes"] = {"KRW": data[0]["quotes"]["USD"]}
    result = coinpaprika.source.parse(data=data[:3])
    assert [r.upstream_id for r in result.records] == [data[1]["id"], data[2]["id"]]
    assert str(result.problems[0]) == "record 0: btc-bitcoin: no USD quote"


def test_parsed_records_survive_a_json_round_trip_unchanged() -> None:
    """What is stored raw parses to the same records as what came off the wire."""
    data = upstream_json(GECKO_PAGE)
    again = orjson.loads(orjson.dumps(data))
    assert coingecko.source.parse(data=data).records == coingecko.source.parse(data=again).records


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("market_cap_rank", -1, "below 0"),
        ("current_price", 1e-30, "would be 0"),
        ("current_price", "1e-20000", "would be 0"),
        ("last_updated", 1700000000000, "years 1-9999"),
        ("last_updated", "0001-01-01T00:00:00+14:00", "years 1-9999"),
        ("current_price", "NaN", "not a finite number"),
        ("current_price", "  ", "not a number"),  # blanks in a JSON body are not an empty value
        ("current_price", {"$non_finite": "NaN"}, "not a number"),
        ("id", {"$non_finite": "NaN"}, "no `id`"),
    ],
)
def test_a_value_no_column_can_hold_rejects_its_record_by_name(field: str, value: object, says: str) -> None:
    data = upstream_json(GECKO_PAGE)[:2]
    data[1][field] = value
    result = coingecko.source.parse(data=data)
    assert len(result.records) == 1
    assert [field in str(p) and says in str(p) for p in result.problems] == [True], result.problems


def test_values_below_their_last_place_are_rounded_as_the_column_rounds_half_up() -> None:
    data = upstream_json(GECKO_PAGE)[:1]
    data[0]["total_volume"], data[0]["price_change_percentage_24h"] = "1e-20000", 4e-9
    data[0]["market_cap"], data[0]["current_price"] = 6e-9, 6e-25
    record = coingecko.source.parse(data=data).records[0]
    assert (record.volume_24h_usd, record.price_change_pct_24h) == (0, 0)
    assert (record.market_cap_usd, record.price_usd) == (Decimal("1e-8"), Decimal("1e-24"))


def test_json_nested_past_the_cap_is_cut_there_and_brackets_inside_strings_do_not_count() -> None:
    from crypto.sources.body import MAX_NESTING, TOO_DEEP, json_loads

    past = '{"a": "[[{{\\"", "b": ' + "[" * 5000 + "]" * 5000 + ', "c": 1}'
    data = json_loads(past)
    assert data["a"] == '[[{{"' and data["c"] == 1
    depth, value = 2, data["b"]  # the object is level 1
    while value != TOO_DEEP:
        value, depth = value[0], depth + 1
    assert depth == MAX_NESTING + 1
