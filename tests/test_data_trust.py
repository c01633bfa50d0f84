"""Data you can trust: quarantine, schema drift, run comparison and anomaly flags, and one asset across
sources, on the real recorded bodies and variants derived from them."""

from __future__ import annotations

import copy
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.test import Client

from crypto.models import Asset, IngestionRun, MarketQuote, QuarantinedRecord, RawBody, SchemaDrift
from crypto.services.ingest.run import Origin, ingestion_run, saved_file
from crypto.services.link.refresh import links_refresh
from tests.conftest import GECKO_PAGE, PAPRIKA, upstream_json
from tests.link.test_rule import EXPECTED

pytestmark = pytest.mark.django_db


def tickers() -> list[dict[str, Any]]:
    data = upstream_json(PAPRIKA)
    assert isinstance(data, list)
    return data


def markets() -> list[dict[str, Any]]:
    data = upstream_json(GECKO_PAGE)
    assert isinstance(data, list)
    return data


def load(tmp_path: Path, source: str, body: Any, name: str = "body.json") -> IngestionRun:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(body))
    return ingestion_run(source=source, trigger="file", origin=saved_file(path=str(path)))


def later(body: list[dict[str, Any]], hours: int) -> list[dict[str, Any]]:
    """The same tickers an hour later (new observations, so a new body)."""
    return [dict(t, last_updated=t["last_updated"].replace("T08:", f"T{8 + hours:02d}:")) for t in body]


# --- quarantine --------------------------------------------------------------------------------


def test_invalid_records_are_quarantined_with_reason_and_raw_reference_and_good_ones_load(
    tmp_path: Path, client: Client
) -> None:
    body = tickers()
    body[3] = {k: v for k, v in body[3].items() if k != "quotes"}
    body[4] = dict(body[4], quotes={"KRW": body[4]["quotes"]["USD"]})
    body[5] = dict(body[5], quotes={"USD": dict(body[5]["quotes"]["USD"], price="n/a")})
    del body[6]["id"]
    run = load(tmp_path, "coinpaprika", body)
    assert run.status == "succeeded", run.error
    assert run.records_rejected == 4 and run.rows_upserted == 2496
    raw = RawBody.objects.get()
    quarantined = list(QuarantinedRecord.objects.order_by("index"))
    assert [q.index for q in quarantined] == [3, 4, 5, 6]
    assert {(q.raw_id, q.run_id) for q in quarantined} == {(raw.pk, run.pk)}
    assert "no USD quote" in quarantined[0].reason and "no USD quote" in quarantined[1].reason
    assert "`price` 'n/a' is not a number" in quarantined[2].reason and "no `id`" in quarantined[3].reason

    listing = client.get("/api/quarantine/?source=coinpaprika").json()
    assert [item["index"] for item in listing["results"]] == [6, 5, 4, 3]
    detail = client.get(f"/api/quarantine/{quarantined[2].pk}/").json()
    assert detail["record"]["id"] == body[5]["id"] and detail["record"]["quotes"]["USD"]["price"] == "n/a"
    assert client.get("/stats").json()["sources"]["coinpaprika"]["quarantined"] == 4


def test_a_body_where_most_records_are_invalid_fails_the_run_instead(tmp_path: Path, settings: Any) -> None:
    krw = [dict(t, quotes={"KRW": t["quotes"]["USD"]}) for t in tickers()]  # `?quotes=KRW`: no USD at all
    run = load(tmp_path, "coinpaprika", krw)
    assert run.status == "failed" and "2500 of 2500 records are invalid" in run.error
    assert "QUARANTINE_MAX_FRACTION=0.5" in run.error and run.records_rejected == 2500
    assert not RawBody.objects.exists() and not QuarantinedRecord.objects.exists()
    assert not MarketQuote.objects.exists()

    settings.QUARANTINE_MAX_FRACTION = 1.0
    run = load(tmp_path, "coinpaprika", krw)
    assert run.status == "succeeded" and QuarantinedRecord.objects.count() == 2500


# --- schema drift -------------------------------------------------------------------------------


def test_drift_on_an_unused_field_is_information_and_on_a_used_field_a_warning(
    tmp_path: Path, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    body = tickers()
    assert load(tmp_path, "coinpaprika", body).status == "succeeded"
    assert not SchemaDrift.objects.exists(), "the first body has nothing to drift from"

    # CoinPaprika before 2019: no first_data_at (a field we do not use).
    older = [{k: v for k, v in t.items() if k != "first_data_at"} for t in later(body, 1)]
    run = load(tmp_path, "coinpaprika", older)
    drift = SchemaDrift.objects.get()
    assert drift.severity == "info" and drift.removed == ["first_data_at"] and drift.run_id == run.pk
    assert drift.used_fields == [] and "removed first_data_at" in drift.summary

    # A type changed on a field we normalize: prices sent as strings.
    stringly = copy.deepcopy(later(body, 2))
    for ticker in stringly:
        ticker["quotes"]["USD"]["price"] = str(ticker["quotes"]["USD"]["price"])
    with django_capture_on_commit_callbacks(execute=True):  # metrics count what was committed
        run = load(tmp_path, "coinpaprika", stringly)
    warning = SchemaDrift.objects.order_by("-id").first()
    assert warning is not None and warning.severity == "warning" and warning.used_fields == ["quotes.USD.price"]
    assert warning.type_changed == {"quotes.USD.price": [["number"], ["string"]]}
    assert run.status == "succeeded" and run.rows_upserted == 2500, "numeric strings still load"

    events = client.get("/api/drift/?severity=warning").json()["results"]
    assert [e["id"] for e in events] == [warning.pk] and "quotes.USD.price" in events[0]["summary"]
    stats = client.get("/stats").json()["sources"]["coinpaprika"]["schema_drift"]
    assert stats["events"] == 2 and stats["warnings"] == 1 and stats["latest"]["id"] == warning.pk
    metrics = client.get("/metrics").content.decode()
    assert 'kasparro_schema_drift_total{severity="warning",source="coinpaprika"}' in metrics


def test_a_renamed_field_and_a_removed_usd_quote_are_named_in_the_drift(tmp_path: Path, settings: Any) -> None:
    settings.QUARANTINE_MAX_FRACTION = 1.0
    page = markets()
    load(tmp_path, "coingecko", page)
    renamed = [dict({k: v for k, v in m.items() if k != "current_price"}, price=m["current_price"]) for m in page]
    load(tmp_path, "coingecko", renamed)
    drift = SchemaDrift.objects.get()
    assert drift.severity == "warning" and drift.added == ["price"] and drift.removed == ["current_price"]

    load(tmp_path, "coinpaprika", tickers())
    load(tmp_path, "coinpaprika", [dict(t, quotes={"KRW": t["quotes"]["USD"]}) for t in tickers()])
    krw = SchemaDrift.objects.filter(source="coinpaprika").get()
    assert "quotes.USD.price" in krw.removed and "quotes.KRW.price" in krw.added and krw.severity == "warning"


# --- run comparison and anomalies ---------------------------------------------------------------


def test_each_run_is_compared_with_the_previous_one_and_a_record_count_collapse_is_flagged(
    tmp_path: Path, client: Client
) -> None:
    body = tickers()
    first = load(tmp_path, "coinpaprika", body)
    assert first.comparison == {} and not first.flagged
    second = load(tmp_path, "coinpaprika", later(body, 1))
    assert not second.flagged and second.comparison["records"] == [2500, 2500]
    assert second.comparison["assets_appeared"] == 0 and second.comparison["assets_disappeared"] == 0

    cut = load(tmp_path, "coinpaprika", later(body, 2)[:1000])  # the free tier was cut
    assert cut.flagged and cut.comparison["previous_run"] == second.pk
    assert cut.comparison["records"] == [2500, 1000] and cut.comparison["records_change_pct"] == -60.0
    assert cut.comparison["assets_disappeared"] == 1500
    assert [flag["kind"] for flag in cut.flags] == ["record_count_drop"]
    assert "records fell 60% (2500 -> 1000)" in cut.flags[0]["message"]

    listed = client.get("/api/runs/?flagged=true").json()["results"]
    assert [run["id"] for run in listed] == [cut.pk] and listed[0]["flags"] == cut.flags
    assert len(client.get("/api/runs/?flagged=false").json()["results"]) == 2
    assert [run["id"] for run in client.get("/api/runs/?flagged=1").json()["results"]] == [cut.pk]
    unreadable = client.get("/api/runs/?flagged=maybe")
    assert unreadable.status_code == 400 and "flagged" in unreadable.json()["errors"]


def test_a_price_move_beyond_the_threshold_is_flagged_and_small_moves_are_not(tmp_path: Path) -> None:
    body = tickers()
    load(tmp_path, "coinpaprika", body)
    moved = copy.deepcopy(later(body, 1))
    for ticker in moved:
        ticker["quotes"]["USD"]["price"] *= 1.2  # every price up 20%: below PRICE_MOVE_PCT=50
    moved[0]["quotes"]["USD"]["price"] = body[0]["quotes"]["USD"]["price"] * 3  # bitcoin tripled
    run = load(tmp_path, "coinpaprika", moved)
    [flag] = run.flags
    assert flag["kind"] == "price_move" and flag["count"] == 1 and flag["message"].count("btc-bitcoin 200%") == 1


# --- one asset across sources --------------------------------------------------------------------


def both_sources(tmp_path: Path) -> None:
    assert load(tmp_path, "coingecko", markets(), "markets.json").status == "succeeded"
    assert load(tmp_path, "coinpaprika", tickers(), "tickers.json").status == "succeeded"


def test_the_top_100_coingecko_assets_link_to_the_right_coinpaprika_ids_after_ingestion(
    tmp_path: Path, client: Client
) -> None:
    both_sources(tmp_path)
    top = sorted(markets(), key=lambda m: m["market_cap_rank"])[:100]
    linked = {
        a.upstream_id: a.canonical.assets.exclude(pk=a.pk).get().upstream_id if a.canonical else None
        for a in Asset.objects.filter(source="coingecko", upstream_id__in=[m["id"] for m in top])
    }
    assert linked == {m["id"]: EXPECTED[m["id"]] for m in top}

    bitcoin = Asset.objects.get(source="coingecko", upstream_id="bitcoin")
    assert bitcoin.link_status == "linked" and bitcoin.link_note
    listed = client.get("/api/canonical-assets/?page_size=500").json()["results"]
    assert {"coingecko": "bitcoin", "coinpaprika": "btc-bitcoin"} in [c["assets"] for c in listed]
    assert client.get("/api/assets/?upstream_id=btc-bitcoin").json()["results"][0]["canonical"] == bitcoin.canonical_id


def test_ambiguous_assets_stay_unlinked_and_are_listed_with_their_candidates(tmp_path: Path, client: Client) -> None:
    both_sources(tmp_path)
    ambiguous = client.get("/api/assets/?link_status=ambiguous&page_size=500").json()["results"]
    by_id = {a["upstream_id"]: a for a in ambiguous}
    assert {"dydx", "dydx-chain"} <= set(by_id), "two CoinGecko dYdX tokens match one CoinPaprika dYdX equally"
    assert all(a["canonical"] is None for a in ambiguous) and "dydx-dydx" in by_id["dydx"]["link_note"]
    bridged = Asset.objects.get(source="coingecko", upstream_id="mantle-bridged-usdt-mantle")
    assert bridged.symbol == "usdt" and bridged.canonical is None, "a shared symbol alone links nothing"


def test_an_operator_links_and_unlinks_in_the_admin_and_the_rule_respects_it(admin_client: Client) -> None:
    from crypto.models import CanonicalAsset

    floki = Asset.objects.create(source="coingecko", upstream_id="floki", symbol="floki", name="FLOKI")
    inu = Asset.objects.create(source="coinpaprika", upstream_id="floki-floki-inu", symbol="FLOKI", name="Floki Inu")
    links_refresh()
    floki.refresh_from_db()
    assert floki.canonical is None and floki.link_status == "no_match", "the rule cannot be sure of this one"

    url = "/admin/crypto/asset/"
    response = admin_client.post(url, {"action": "link", "_selected_action": [floki.pk, inu.pk]}, follow=True)
    assert response.status_code == 200 and "Linked as" in response.content.decode()
    floki.refresh_from_db()
    inu.refresh_from_db()
    assert floki.canonical_id == inu.canonical_id is not None and floki.link_status == "operator_linked"

    admin_client.post(url, {"action": "unlink", "_selected_action": [inu.pk]}, follow=True)
    floki.refresh_from_db()
    inu.refresh_from_db()
    assert inu.canonical is None and inu.link_status == "operator_unlinked" and floki.canonical is None
    assert not CanonicalAsset.objects.exists()
    links_refresh(force=True)
    inu.refresh_from_db()
    assert inu.link_status == "operator_unlinked", "the rule never undoes an operator's decision"

    refused = admin_client.post(url, {"action": "link", "_selected_action": [inu.pk]}, follow=True)
    assert "Not linked: select two or more assets" in refused.content.decode()


def test_two_sources_pricing_a_linked_coin_apart_at_the_same_time_are_flagged(tmp_path: Path) -> None:
    page = markets()
    load(tmp_path, "coingecko", page, "markets.json")
    gecko = {m["id"]: m for m in page}
    # CoinPaprika at the same moment as the CoinGecko page: Bitcoin 10% apart, Ethereum 1% apart.
    body = tickers()
    for ticker, gecko_id, factor in ((body[0], "bitcoin", 1.10), (body[1], "ethereum", 1.01)):
        assert ticker["id"] == EXPECTED[gecko_id]
        ticker["last_updated"] = gecko[gecko_id]["last_updated"]
        ticker["quotes"]["USD"]["price"] = gecko[gecko_id]["current_price"] * factor
    run = load(tmp_path, "coinpaprika", body, "tickers.json")
    [flag] = [f for f in run.flags if f["kind"] == "price_disagreement"]
    assert flag["count"] == 1 and "Bitcoin" in flag["message"] and "Ethereum" not in flag["message"]
    assert "(10.0%)" in flag["message"] and "on coingecko" in flag["message"]
    btc = MarketQuote.objects.get(asset__upstream_id="btc-bitcoin")
    assert btc.price_usd == pytest.approx(Decimal(str(gecko["bitcoin"]["current_price"] * 1.10)))


# --- edges found in review ------------------------------------------------------------------------


def test_runs_after_one_with_a_record_without_id_are_still_compared(tmp_path: Path) -> None:
    body = tickers()
    load(tmp_path, "coinpaprika", body)
    broken = later(body, 1)
    del broken[7]["id"]
    broken[8] = "not an object"  # type: ignore[call-overload]
    second = load(tmp_path, "coinpaprika", broken)
    third = load(tmp_path, "coinpaprika", later(body, 2))
    assert second.comparison["assets_disappeared"] == 2 and third.comparison["assets_appeared"] == 2
    assert third.comparison["previous_run"] == second.pk


def test_the_ids_a_run_tells_its_checks_are_the_ids_read_back_from_its_stored_bodies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crypto.services.monitor import anomalies
    from crypto.sources import source_get

    body = tickers()
    odd: list[Any] = [
        dict(body[7], id=[body[7]["id"]]),  # an id that is a list
        [body[8]],  # a record that is a list
        dict(body[9], id="   "),  # a blank id
        dict(body[10], id=f"  {body[10]['id']}\t"),  # padding
        dict(body[11], id=11),  # not a string
    ]
    broken = later(body, 1)
    broken[7:12] = odd
    monkeypatch.setattr(anomalies, "_ids_of_runs", anomalies.OrderedDict())
    first = load(tmp_path, "coinpaprika", body)
    second = load(tmp_path, "coinpaprika", broken, "second.json")
    told = {key[0]: ids for key, ids in anomalies._ids_of_runs.items()}  # by each run, as it read its bodies
    assert told[second.pk] == source_get(name="coinpaprika").upstream_ids(data=broken)
    assert body[10]["id"] in told[second.pk] and body[7]["id"] not in told[second.pk]
    for run in (first, second):  # a new process reads them from the stored bodies: the same ids
        assert anomalies._upstream_ids_stored(run.pk, "coinpaprika") == told[run.pk]
    assert second.comparison["assets_disappeared"] == 4


def test_a_failing_check_after_the_run_never_fails_the_committed_run(tmp_path: Path, monkeypatch) -> None:
    from crypto.services.ingest import lifecycle

    def broken(run: IngestionRun) -> None:
        raise RuntimeError("a bug in a check")

    monkeypatch.setattr(lifecycle, "run_checks", broken)
    run = load(tmp_path, "coingecko", markets())
    assert run.status == "succeeded" and MarketQuote.objects.count() == 250
    assert Asset.objects.filter(source="coingecko", link_status="no_match").count() == 250, "linking still ran"


def test_one_invalid_record_on_a_short_last_page_is_quarantined_not_a_failed_run(tmp_path: Path) -> None:
    run = load(tmp_path, "coingecko", [{"id": "x", "current_price": "n/a"}])
    assert run.status == "failed" and "the run: 1 of 1 records are invalid" in run.error
    page = markets()
    for name, body in (("page1.json", page[:249]), ("page2.json", [{"id": "x", "current_price": "n/a"}])):
        (tmp_path / name).write_bytes(orjson.dumps(body))

    def two_pages(**kwargs: Any):
        from crypto.services.ingest.prepare import body_prepare
        from crypto.sources.files import json_bodies

        for position, name in enumerate(("page1.json", "page2.json"), start=1):
            [body] = json_bodies(str(tmp_path / name), count=len)
            yield body_prepare(dataclass_replace(body, position=position))

    run = ingestion_run(source="coingecko", trigger="file", origin=Origin(bodies=lambda source: two_pages()))
    assert run.status == "succeeded" and run.records_rejected == 1 and QuarantinedRecord.objects.count() == 1


def dataclass_replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_linking_two_assets_already_on_coins_leaves_no_one_sided_coin(admin_client: Client) -> None:
    from crypto.models import CanonicalAsset
    from crypto.services.link.refresh import assets_link

    a, b = (Asset.objects.create(source="coingecko", upstream_id=u, symbol="a", name=u) for u in ("a1", "a2"))
    p, q = (Asset.objects.create(source="coinpaprika", upstream_id=u, symbol="A", name=u) for u in ("p1", "p2"))
    assets_link(assets=Asset.objects.filter(pk__in=[a.pk, q.pk]), who="op")
    assets_link(assets=Asset.objects.filter(pk__in=[b.pk, p.pk]), who="op")
    coin = assets_link(assets=Asset.objects.filter(pk__in=[a.pk, p.pk]), who="op")
    states = {x.upstream_id: (x.canonical_id, x.link_status) for x in Asset.objects.all()}
    assert states["a1"] == states["p1"] == (coin.pk, "operator_linked")
    assert states["p2"] == (None, "operator_unlinked") and states["a2"] == (None, "no_match")
    assert list(CanonicalAsset.objects.values_list("pk", flat=True)) == [coin.pk]


def test_a_coin_cannot_hold_two_assets_of_one_source() -> None:
    from django.db import IntegrityError, transaction

    from crypto.models import CanonicalAsset

    coin = CanonicalAsset.objects.create(symbol="X", name="X")
    Asset.objects.create(source="coingecko", upstream_id="x1", canonical=coin)
    with pytest.raises(IntegrityError), transaction.atomic():
        Asset.objects.create(source="coingecko", upstream_id="x2", canonical=coin)


def test_assets_not_examined_yet_can_be_listed(client: Client) -> None:
    Asset.objects.create(source="csv", upstream_id="usdt-tether", symbol="USDT", name="Tether")
    listed = client.get("/api/assets/?link_status=pending").json()["results"]
    assert [a["upstream_id"] for a in listed] == ["usdt-tether"]


def test_renormalize_keeps_one_quarantine_entry_per_invalid_record(tmp_path: Path, client: Client) -> None:
    from django.core.management import call_command

    body = tickers()
    body[0] = dict(body[0], quotes={})
    body[1] = dict(body[1], rank="first")
    load(tmp_path, "coinpaprika", body)
    call_command("renormalize", stdout=StringIO(), stderr=StringIO())
    assert QuarantinedRecord.objects.count() == 2
    assert client.get("/stats").json()["sources"]["coinpaprika"]["quarantined"] == 2
