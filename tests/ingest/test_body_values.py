"""What a body holds that the database cannot take as it is (NUL, tabs, values no column can hold,
NaN, lone surrogates): the run stores the body faithfully and rejects only the records it must."""

from __future__ import annotations

import orjson
import pytest
from django.db import transaction

from crypto.models import Asset, MarketQuote, QuarantinedRecord, RawBody
from crypto.services.ingest.run import ingestion_run, saved_file
from tests.conftest import GECKO_SMALL, upstream_json

pytestmark = pytest.mark.django_db


def test_nul_characters_are_removed_rather_than_failing_the_run(tmp_path) -> None:
    data = upstream_json(GECKO_SMALL)
    assert isinstance(data, list)
    data[1]["name"] = "Ether\u0000eum"
    saved = tmp_path / "nul.json"
    saved.write_bytes(orjson.dumps(data))
    run = ingestion_run(source="coingecko", trigger="file", origin=saved_file(path=str(saved)))
    assert run.status == "succeeded", run.error
    assert MarketQuote.objects.get(asset__upstream_id="ethereum").asset.name == "Ethereum"


def test_a_value_too_large_to_store_rejects_that_record_only(tmp_path) -> None:
    data = upstream_json(GECKO_SMALL)
    assert isinstance(data, list)
    data[2]["total_supply"] = 1e40
    data[3]["id"] = "x" * 300
    saved = tmp_path / "big.json"
    saved.write_bytes(orjson.dumps(data))
    run = ingestion_run(source="coingecko", trigger="file", origin=saved_file(path=str(saved)))
    assert run.status == "succeeded" and run.rows_upserted == 98 and run.records_rejected == 2
    assert "too large to store" in run.problems[0] and "longer than 200" in run.problems[1]


def test_values_the_columns_cannot_hold_reject_their_record_and_the_rest_of_the_body_loads(tmp_path) -> None:
    data = upstream_json(GECKO_SMALL)
    assert isinstance(data, list)
    data[2]["market_cap_rank"] = -1  # market_cap_rank is never negative
    data[3]["current_price"] = 1e-30  # below the 24 decimal places kept: it would be stored as 0
    data[4]["last_updated"] = 1700000000000  # milliseconds where seconds are meant: year 55840
    data[5]["total_volume"] = 1e-300  # below the 8 places of an amount: stored as the column rounds it
    saved = tmp_path / "edges.json"
    saved.write_bytes(orjson.dumps(data))
    run = ingestion_run(source="coingecko", trigger="file", origin=saved_file(path=str(saved)))
    assert run.status == "succeeded", run.error
    assert (run.rows_upserted, run.records_rejected) == (97, 3)
    assert ["market_cap_rank" in p for p in run.problems] == [True, False, False]
    assert "current_price" in run.problems[1] and "would be 0" in run.problems[1]
    assert "last_updated" in run.problems[2]
    assert MarketQuote.objects.get(asset__upstream_id=data[5]["id"]).volume_24h_usd == 0


def test_nan_and_a_lone_surrogate_in_a_body_are_stored_and_judged_alike_live_and_on_renormalize(tmp_path) -> None:
    from crypto.services.ingest.renormalize import renormalize_run

    data = upstream_json(GECKO_SMALL)
    assert isinstance(data, list)
    data[0]["current_price"], data[1]["name"], data[2]["id"] = "<nan>", "<surrogate>", "<infinity>"
    data[3]["current_price"], data[3]["total_supply"] = "<huge>", "<wide>"
    # Not JSON, or not for orjson, but a body can say it: the standard parser reads them all, and
    # jsonb can hold none of the first four as they are (1e400 is infinite as a float).
    text = orjson.dumps(data).decode().replace('"<nan>"', "NaN").replace("<surrogate>", "Eth\\ud800")
    text = text.replace('"<infinity>"', "Infinity").replace('"<huge>"', "1e400").replace('"<wide>"', str(2**70))
    saved = tmp_path / "odd.json"
    saved.write_text(text)
    run = ingestion_run(source="coingecko", trigger="file", origin=saved_file(path=str(saved)))
    assert run.status == "succeeded", run.error
    assert run.records_rejected == 3 and "current_price" in run.problems[0] and "no `id`" in run.problems[1]
    assert "current_price" in run.problems[2]
    stored = RawBody.objects.get().data
    assert stored[0]["current_price"] == {"$non_finite": "NaN"} and stored[1]["name"] == "Eth\ufffd"
    assert stored[2]["id"] == {"$non_finite": "Infinity"}
    assert stored[3]["current_price"] == {"$non_finite": "1e400"} and stored[3]["total_supply"] == 2**70
    live = sorted(MarketQuote.objects.values_list("asset__upstream_id", "price_usd"))
    renormalize_run(source="coingecko")
    assert sorted(MarketQuote.objects.values_list("asset__upstream_id", "price_usd")) == live
    assert QuarantinedRecord.objects.count() == 3


def test_a_database_error_during_copy_is_djangos_so_the_run_can_tell_transient_from_permanent() -> None:
    from django.db import DataError

    from crypto.services.ingest.bulk import staged_upsert

    with pytest.raises(DataError), transaction.atomic():
        staged_upsert(source="coingecko", text="not-a-number\tx\n", raw_id=1)


def test_text_with_tabs_newlines_and_backslashes_survives_the_bulk_load(tmp_path) -> None:
    data = upstream_json(GECKO_SMALL)
    assert isinstance(data, list)
    data[0]["name"] = "Bit\tcoin\nC:\\path \\N"
    data[1]["id"] = "ether\\eum\r"
    data[2]["symbol"] = "\\."
    saved = tmp_path / "escapes.json"
    saved.write_bytes(orjson.dumps(data))
    run = ingestion_run(source="coingecko", trigger="file", origin=saved_file(path=str(saved)))
    assert run.status == "succeeded", run.error
    assert Asset.objects.get(upstream_id="bitcoin").name == "Bit\tcoin\nC:\\path \\N"
    assert Asset.objects.filter(upstream_id="ether\\eum").exists()  # the id is stripped, like every text
    assert Asset.objects.get(upstream_id=data[2]["id"]).symbol == "\\."


def test_a_repeated_key_in_one_body_keeps_its_last_record_and_a_rename_updates_the_asset(tmp_path) -> None:
    data = upstream_json(GECKO_SMALL)
    assert isinstance(data, list)
    data.append(dict(data[0], current_price=1.5, name="Bitcoin (renamed)"))
    saved = tmp_path / "repeat.json"
    saved.write_bytes(orjson.dumps(data))
    run = ingestion_run(source="coingecko", trigger="file", origin=saved_file(path=str(saved)))
    assert run.status == "succeeded" and run.rows_upserted == len(data) - 1
    quote = MarketQuote.objects.get(asset__upstream_id="bitcoin")
    assert quote.price_usd == 1.5 and quote.asset.name == "Bitcoin (renamed)"
    untouched = Asset.objects.get(upstream_id="ethereum").updated_at
    renamed = [dict(item, name=item["name"].upper()) if item["id"] == "bitcoin" else item for item in data[:-1]]
    saved.write_bytes(orjson.dumps([dict(item, last_updated="2030-01-01T00:00:00Z") for item in renamed]))
    ingestion_run(source="coingecko", trigger="file", origin=saved_file(path=str(saved)))
    assert Asset.objects.get(upstream_id="bitcoin").name == "BITCOIN"
    assert Asset.objects.get(upstream_id="ethereum").updated_at == untouched, "unchanged assets are not rewritten"
    assert MarketQuote.objects.filter(asset__upstream_id="bitcoin").count() == 2
