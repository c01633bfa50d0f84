"""Operators can inspect raw bodies, runs and normalized data in the admin."""

from __future__ import annotations

import pytest
import responses
from django.test import Client

from crypto.models import Asset, IngestionRun, MarketQuote, RawBody
from crypto.services.ingest.run import ingestion_run, saved_file
from tests.conftest import mock_gecko_two_pages

pytestmark = pytest.mark.django_db


@pytest.fixture
def ingested(http: responses.RequestsMock) -> IngestionRun:
    mock_gecko_two_pages(http)
    return ingestion_run(source="coingecko", trigger="cli")


def test_admin_needs_a_staff_login(client: Client) -> None:
    response = client.get("/admin/crypto/rawbody/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_raw_bodies_list_filters_and_pretty_prints_the_body(admin_client: Client, ingested: IngestionRun) -> None:
    listing = admin_client.get("/admin/crypto/rawbody/?source=coingecko")
    assert listing.status_code == 200 and b"250" in listing.content
    raw = RawBody.objects.order_by("position").first()
    assert raw is not None
    detail = admin_client.get(f"/admin/crypto/rawbody/{raw.pk}/change/")
    assert detail.status_code == 200
    assert b"&quot;id&quot;: &quot;bitcoin&quot;," in detail.content, "indented JSON, HTML-escaped"
    assert b"shape " in detail.content and b"current_price: {" in detail.content, "its structure"


def test_runs_show_status_duration_and_error(admin_client: Client, ingested: IngestionRun) -> None:
    listing = admin_client.get("/admin/crypto/ingestionrun/?status=succeeded")
    assert listing.status_code == 200 and b"succeeded" in listing.content
    detail = admin_client.get(f"/admin/crypto/ingestionrun/{ingested.pk}/change/")
    assert detail.status_code == 200 and b"duration" in detail.content


@pytest.mark.parametrize("term", ["weth", "Wrapped", "bitcoin"])
def test_normalized_data_is_searchable_by_symbol_name_and_upstream_id(
    admin_client: Client, ingested: IngestionRun, term: str
) -> None:
    quotes = admin_client.get(f"/admin/crypto/marketquote/?q={term}")
    assets = admin_client.get(f"/admin/crypto/asset/?q={term}")
    assert quotes.status_code == assets.status_code == 200
    expected = (
        Asset.objects.filter(upstream_id__icontains=term).first()
        or Asset.objects.filter(symbol__icontains=term).first()
        or Asset.objects.filter(name__icontains=term).first()
    )
    assert expected is not None and expected.upstream_id.encode() in assets.content
    assert MarketQuote.objects.filter(asset=expected).exists()


def test_data_cannot_be_hand_edited_in_the_admin(admin_client: Client, ingested: IngestionRun) -> None:
    assert admin_client.get("/admin/crypto/rawbody/add/").status_code == 403
    assert admin_client.get("/admin/crypto/marketquote/add/").status_code == 403


def test_pages_that_name_raw_bodies_never_load_them_and_the_raw_list_loads_runs_in_one_query(
    admin_client: Client, ingested: IngestionRun, tmp_path
) -> None:
    import orjson
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from crypto.models import QuarantinedRecord, SchemaDrift
    from tests.conftest import GECKO_SMALL, upstream_json

    body = upstream_json(GECKO_SMALL)
    assert isinstance(body, list)
    body[0]["current_price"] = "abc"  # a quarantined record
    body[1]["new_field"] = 1  # drift against page 1
    saved = tmp_path / "page.json"
    saved.write_bytes(orjson.dumps(body))
    ingestion_run(source="coingecko", trigger="file", origin=saved_file(path=str(saved)))
    quote = MarketQuote.objects.first()
    pages = [
        "/admin/crypto/rawbody/",
        "/admin/crypto/marketquote/",
        f"/admin/crypto/ingestionrun/{ingested.pk}/change/",
        f"/admin/crypto/marketquote/{quote.pk}/change/",
        f"/admin/crypto/quarantinedrecord/{QuarantinedRecord.objects.get().pk}/change/",
        f"/admin/crypto/schemadrift/{SchemaDrift.objects.get().pk}/change/",
    ]
    for page in pages:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(page).status_code == 200, page
        loading_bodies = [q["sql"] for q in queries if '"raw_crypto_data"."data"' in q["sql"]]
        assert loading_bodies == [], page
        if page.endswith("rawbody/"):
            assert not [q for q in queries if q["sql"].startswith('SELECT "ingestion_run"')], "runs are joined"
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get("/admin/crypto/marketquote/").status_code == 200
    assert not [q for q in queries if q["sql"].startswith('SELECT "asset"')], "assets are joined, not one per row"
    assert not [q for q in queries if '"raw_crypto_data"."data"' in q["sql"]]


def test_the_unfiltered_quote_list_of_a_big_table_is_counted_from_the_estimate_not_by_count(
    admin_client: Client, ingested: IngestionRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from crypto.admin import EstimatedCountPaginator

    monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 100)  # 350 quotes count as big here
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE market_quote")

    def counted(url: str) -> bool:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(url)
        assert response.status_code == 200
        return any("COUNT(*)" in q["sql"] and '"market_quote"' in q["sql"] for q in queries)

    assert not counted("/admin/crypto/marketquote/")
    assert counted("/admin/crypto/marketquote/?source=coingecko"), "a filtered list is counted exactly"
    assert b"350 market quotes" in admin_client.get("/admin/crypto/marketquote/").content
