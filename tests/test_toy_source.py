"""Adding a source is one module: a source defined in the tests alone (tests/toy/source.py) runs
through the command, the API, the admin and the schedule like the real ones; the Celery worker
side is in tests/distributed/test_toy_source_worker.py."""

from __future__ import annotations

from io import StringIO
from typing import Any

import orjson
import pytest
import responses
from django.core.management import call_command
from django.test import Client
from django_celery_beat.models import PeriodicTask

from crypto.models import IngestionRun, MarketQuote, QuarantinedRecord, RawBody
from crypto.services.ingest.schedules import schedules_sync
from tests.toy.settings import TOY_SETTINGS

pytestmark = pytest.mark.django_db

TOY_BODY = [
    {"id": "toy-coin", "symbol": "TOY", "name": "Toy Coin", "price": "1.25", "at": "2026-12-01T10:00:00Z"},
    {"id": "toy-two", "symbol": "TWO", "name": "Toy Two", "price": 2.5, "at": "2026-12-01T10:00:00Z"},
    {"id": "", "symbol": "BAD", "name": "no id", "price": 1, "at": "2026-12-01T10:00:00Z"},
]


@pytest.fixture
def toy(settings: Any, http: responses.RequestsMock) -> None:
    for name, value in TOY_SETTINGS.items():
        setattr(settings, name, value)
    http.add(
        responses.GET,
        TOY_SETTINGS["TOY_BASE_URL"] + "/prices",
        body=orjson.dumps(TOY_BODY),
        content_type="application/json",
    )


def test_a_source_in_one_module_ingests_through_the_command_and_is_served_by_the_api(toy: None, client: Client) -> None:
    out = StringIO()
    call_command("ingest", source="toy", stdout=out)
    assert "toy: body 1: 3 records, 2 rows upserted, 1 rejected" in out.getvalue()
    run = IngestionRun.objects.get(source="toy")
    assert run.status == IngestionRun.Status.SUCCEEDED and run.trigger == IngestionRun.Trigger.CLI
    assert RawBody.objects.get(source="toy").data == TOY_BODY  # stored as received
    assert QuarantinedRecord.objects.get(source="toy").index == 2

    data = client.get("/data", {"source": "toy"}).json()
    assert data["source"] == "toy" and data["data_count"] == 3 and data["data"] == TOY_BODY
    quotes = client.get("/api/quotes/", {"source": "toy"}).json()["results"]
    assert sorted((q["upstream_id"], q["price_usd"]) for q in quotes) == [("toy-coin", "1.25"), ("toy-two", "2.5")]
    assert client.get("/stats").json()["sources"]["toy"]["records"] == 3
    health = client.get("/health").json()
    assert health["sources"]["toy"]["last_run_status"] == "succeeded"
    assert client.get("/data", {"source": "nope"}).status_code == 400


def test_a_source_in_one_module_is_listed_and_ingested_again_from_the_admin_and_scheduled(
    toy: None, admin_client: Client
) -> None:
    call_command("ingest", source="toy", stdout=StringIO())
    run = IngestionRun.objects.get(source="toy")
    listing = admin_client.get("/admin/crypto/rawbody/", {"source": "toy"})
    assert listing.status_code == 200 and "Toy market" in listing.content.decode()

    response = admin_client.post(
        "/admin/crypto/ingestionrun/", {"action": "ingest_again", "_selected_action": [run.pk]}, follow=True
    )
    assert response.status_code == 200
    again = IngestionRun.objects.filter(source="toy").exclude(pk=run.pk).get()
    assert again.trigger == IngestionRun.Trigger.ADMIN and again.status == IngestionRun.Status.SUCCEEDED
    assert again.raw_duplicates == 1 and MarketQuote.objects.filter(source="toy").count() == 2  # nothing twice

    schedules_sync()
    task = PeriodicTask.objects.get(name="ingest toy")
    assert task.enabled and task.interval.every == 60
