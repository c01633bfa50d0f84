from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from crypto.sources import csvfile
from crypto.sources.fingerprint import RECORDS, Drift, drift_between, fingerprint, fingerprint_digest, record_count
from tests.conftest import CSV_GECKO, GECKO_PAGE, GECKO_SMALL, PAPRIKA, UPSTREAM, upstream_json

GECKO_2021 = "coingecko_markets_rciminera.json"
PAPRIKA_TOP = {
    "id",
    "name",
    "symbol",
    "rank",
    "circulating_supply",
    "total_supply",
    "max_supply",
    "beta_value",
    "first_data_at",
    "last_updated",
    "quotes",
}


def records(name: str) -> list[dict[str, Any]]:
    data = upstream_json(name)
    assert isinstance(data, list)
    return data


def drift(before: Any, now: Any, **kwargs: Any) -> Drift:
    return drift_between(fingerprint(before), fingerprint(now), **kwargs)


def reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reversed_keys(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def test_a_2500_record_coinpaprika_body_is_counted_per_record_with_nested_quote_paths() -> None:
    body = records(PAPRIKA)
    fp = fingerprint(body)
    assert fp[RECORDS] == {"array": 2500} and record_count(fp) == 2500
    quote_fields = set(body[0]["quotes"]["USD"])
    assert set(fp) == {RECORDS, *PAPRIKA_TOP, "quotes.USD"} | {f"quotes.USD.{f}" for f in quote_fields}
    assert fp["id"] == {"string": 2500}
    assert fp["quotes"] == {"object": 2500} and fp["quotes.USD"] == {"object": 2500}
    assert fp["quotes.USD.price"] == {"number": 2500}
    assert all(sum(types.values()) == 2500 for types in fp.values())


@pytest.mark.parametrize("name", [GECKO_PAGE, PAPRIKA])
def test_the_same_body_reserialized_and_reordered_gives_the_same_fingerprint_and_digest(name: str) -> None:
    body = records(name)
    reserialized = json.loads(json.dumps(body, indent=2, sort_keys=True))
    reordered = reversed_keys(list(reversed(body)))
    fp = fingerprint(body)
    assert fingerprint(reserialized) == fp and fingerprint(reordered) == fp
    assert fingerprint_digest(fingerprint(reserialized)) == fingerprint_digest(fingerprint(reordered))
    assert fingerprint_digest(fingerprint(reordered)) == fingerprint_digest(fp)
    assert list(fingerprint(reordered)) == list(fp)  # paths come out sorted whatever the body's order


def test_two_real_coingecko_pages_with_the_same_fields_show_no_drift_though_ints_and_floats_mix() -> None:
    # The 2025 page was asked with price_change_percentage=1h,24h,1y; without those fields it is the 2026 page's shape.
    page_2025 = [{k: v for k, v in r.items() if not k.endswith("_in_currency")} for r in records(GECKO_PAGE)]
    page_2026 = records(GECKO_SMALL)
    for page in (page_2025, page_2026):
        assert {type(r["total_volume"]) for r in page} == {int, float}
    assert {type(r["current_price"]) for r in page_2026} == {int, float}

    result = drift(page_2025, page_2026)

    assert result.empty and result.fields() == [] and result.summary() == "no drift"
    assert fingerprint_digest(fingerprint(page_2025)) == fingerprint_digest(fingerprint(page_2026))


def test_a_field_all_ints_in_one_page_and_all_floats_in_the_next_is_one_number_type() -> None:
    ints = copy.deepcopy(records(GECKO_SMALL))
    floats = copy.deepcopy(ints)
    for as_int, as_float in zip(ints, floats, strict=True):
        as_int["current_price"] = int(as_int["current_price"])
        as_float["current_price"] = float(as_float["current_price"])
    assert fingerprint(ints)["current_price"] == {"number": 100}
    assert drift(ints, floats).empty


def test_pages_with_different_query_fields_and_null_rates_show_that_drift() -> None:
    result = drift(records(GECKO_SMALL), records(GECKO_2021))
    assert result.added == ["price_change_percentage_1y_in_currency"] and result.removed == []
    assert result.null_rate_jumps == {"fully_diluted_valuation": (0.0, 0.65)}
    assert result.summary() == (
        "added price_change_percentage_1y_in_currency; null rate of fully_diluted_valuation 0% -> 65%"
    )
    assert fingerprint_digest(fingerprint(records(GECKO_SMALL))) != fingerprint_digest(fingerprint(records(GECKO_2021)))


def test_a_renamed_field_shows_one_added_and_one_removed_path() -> None:
    before = records(GECKO_PAGE)
    now = [{("price" if k == "current_price" else k): v for k, v in r.items()} for r in before]

    result = drift(before, now)

    assert result.added == ["price"] and result.removed == ["current_price"]
    assert result.type_changed == {} and result.null_rate_jumps == {}
    assert result.fields() == ["current_price", "price"]
    assert result.summary() == "added price; removed current_price"


def test_prices_turned_into_strings_are_a_type_change_with_before_and_after_types() -> None:
    before = records(PAPRIKA)
    now = copy.deepcopy(before)
    for ticker in now:
        ticker["quotes"]["USD"]["price"] = str(ticker["quotes"]["USD"]["price"])

    result = drift(before, now)

    assert result.type_changed == {"quotes.USD.price": (["number"], ["string"])}
    assert result.added == result.removed == [] and result.null_rate_jumps == {}
    assert result.summary() == "type changed quotes.USD.price: number -> string"


def test_a_price_that_is_sometimes_a_string_shows_both_types_now() -> None:
    before = records(GECKO_PAGE)
    now = copy.deepcopy(before)
    now[3]["current_price"] = "1.0"
    assert drift(before, now).type_changed == {"current_price": (["number"], ["number", "string"])}


def test_quotes_keyed_krw_instead_of_usd_show_the_usd_paths_removed_and_the_krw_paths_added() -> None:
    before = records(PAPRIKA)
    now = copy.deepcopy(before)
    for ticker in now:
        ticker["quotes"] = {"KRW": ticker["quotes"]["USD"]}
    quote_fields = sorted(before[0]["quotes"]["USD"])

    result = drift(before, now)

    assert result.removed == ["quotes.USD"] + [f"quotes.USD.{f}" for f in quote_fields]
    assert result.added == ["quotes.KRW"] + [f"quotes.KRW.{f}" for f in quote_fields]
    assert result.type_changed == {} and result.null_rate_jumps == {}
    n = len(quote_fields)
    assert result.summary() == f"added quotes.KRW (+{n} nested); removed quotes.USD (+{n} nested)"


def test_max_supply_null_in_90_percent_of_records_is_a_null_rate_jump() -> None:
    before = records(GECKO_PAGE)
    assert sum(r["max_supply"] is None for r in before) == 117
    now = copy.deepcopy(before)
    for i, coin in enumerate(now):
        if i % 10:
            coin["max_supply"] = None
    rate_now = sum(r["max_supply"] is None for r in now) / 250

    result = drift(before, now)

    assert result.null_rate_jumps == {"max_supply": (pytest.approx(117 / 250), pytest.approx(rate_now))}
    assert result.added == result.removed == [] and result.type_changed == {}
    assert rate_now > 0.9 and result.summary() == f"null rate of max_supply 47% -> {rate_now:.0%}"


def test_a_null_rate_change_below_the_threshold_is_not_reported() -> None:
    before = records(GECKO_PAGE)
    now = copy.deepcopy(before)
    nulled = [coin for coin in now if coin["max_supply"] is not None][:20]
    for coin in nulled:
        coin["max_supply"] = None

    assert drift(before, now).empty
    assert list(drift(before, now, null_rate_threshold=0.05).null_rate_jumps) == ["max_supply"]


def test_a_nested_object_gone_null_everywhere_reports_its_fields_removed() -> None:
    before = records(GECKO_PAGE)
    now = copy.deepcopy(before)
    for coin in now:
        coin["roi"] = None
    result = drift(before, now)
    assert result.removed == ["roi.currency", "roi.percentage", "roi.times"]
    assert fingerprint(now)["roi"] == {"null": 250}


def test_a_coinpaprika_body_without_first_data_at_reports_it_removed() -> None:
    before = records(PAPRIKA)
    now = [{k: v for k, v in ticker.items() if k != "first_data_at"} for ticker in before]

    result = drift(before, now)

    assert result.removed == ["first_data_at"] and result.added == []
    assert result.type_changed == {} and result.null_rate_jumps == {}
    assert result.summary() == "removed first_data_at"
    assert fingerprint_digest(fingerprint(now)) != fingerprint_digest(fingerprint(before))


def test_a_stored_csv_chunk_has_the_header_columns_as_fields() -> None:
    chunks = [body.data for body in csvfile.read_csv(UPSTREAM / CSV_GECKO, chunk_rows=100)]
    assert [len(chunk["rows"]) for chunk in chunks] == [100, 100, 50]
    header = chunks[0]["header"]
    fps = [fingerprint(chunk) for chunk in chunks]

    assert set(fps[0]) == {RECORDS, *header} and fps[0][RECORDS] == {"csv": 100}
    assert fps[0]["id"] == {"string": 100} and fps[0]["current_price"] == {"number": 100}
    # pandas wrote a null as an empty cell; `roi` is a Python dict written as text.
    assert fps[0]["roi"]["string"] + fps[0]["roi"]["null"] == 100
    empty_max_supply = sum(row["values"][header.index("max_supply")] == "" for row in chunks[0]["rows"])
    assert fps[0]["max_supply"]["null"] == empty_max_supply > 0
    assert len({fingerprint_digest(fp) for fp in fps}) == 1
    assert drift_between(fps[0], fps[2]).empty


def test_a_csv_chunk_with_a_renamed_column_and_text_prices_shows_that_drift() -> None:
    chunk = next(csvfile.read_csv(UPSTREAM / CSV_GECKO, chunk_rows=100)).data
    changed = copy.deepcopy(chunk)
    changed["header"] = ["price" if c == "current_price" else c for c in chunk["header"]]
    column = chunk["header"].index("total_volume")
    for row in changed["rows"]:
        row["values"][column] = "n/a"

    result = drift_between(fingerprint(chunk), fingerprint(changed))

    assert result.added == ["price"] and result.removed == ["current_price"]
    assert result.type_changed == {"total_volume": (["number"], ["string"])}


def test_an_empty_list_body_has_no_fields_and_no_drift_either_way() -> None:
    empty = fingerprint([])
    assert empty == {RECORDS: {"array": 0}} and record_count(empty) == 0
    page = fingerprint(records(GECKO_PAGE))
    assert drift_between(page, empty).empty and drift_between(empty, page).empty
    assert fingerprint_digest(empty) == fingerprint_digest(fingerprint([]))
    assert fingerprint_digest(empty) != fingerprint_digest(page)


def test_an_error_object_body_is_walked_as_one_record_and_drifts_from_a_page() -> None:
    error = {"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit."}}
    fp = fingerprint(error)
    assert fp == {
        RECORDS: {"object": 1},
        "status": {"object": 1},
        "status.error_code": {"number": 1},
        "status.error_message": {"string": 1},
    }

    result = drift_between(fingerprint(records(GECKO_SMALL)), fp)

    assert result.added == ["status", "status.error_code", "status.error_message"]
    assert "current_price" in result.removed and "roi.times" in result.removed
    assert result.summary().startswith("added status (+2 nested); removed ")


@pytest.mark.parametrize("body", ["rate limited", None, 42, [1, "a", None], [[1, 2], {"a": [{"b": True}]}]])
def test_scalar_bodies_and_lists_of_non_objects_do_not_crash(body: Any) -> None:
    fp = fingerprint(body)
    assert record_count(fp) == (len(body) if isinstance(body, list) else 1)
    assert len(fingerprint_digest(fp)) == 16
    assert drift_between(fp, fp).empty


def test_arrays_are_walked_as_element_paths() -> None:
    fp = fingerprint([{"tags": ["a", "b"], "links": [{"url": "x"}]}, {"tags": [], "links": None}])
    assert fp["tags"] == {"array": 2} and fp["tags[]"] == {"string": 2}
    assert fp["links"] == {"array": 1, "null": 1} and fp["links[]"] == {"object": 1}
    assert fp["links[].url"] == {"string": 1}
