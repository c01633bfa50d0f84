"""Two runs of one source at the same time, each on its own database connection."""

from __future__ import annotations

import threading

import pytest
import responses
from django.db import connection

from crypto.models import IngestionRun, MarketQuote, RawCryptoData
from crypto.services.ingestion import ingestion_run
from tests.conftest import PAPRIKA, paprika_url, upstream_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_second_concurrent_run_of_a_source_reports_already_running_and_writes_nothing(
    http: responses.RequestsMock,
) -> None:
    first_is_fetching = threading.Event()
    release_first = threading.Event()

    def slow_upstream(request: object) -> tuple[int, dict, bytes]:
        # The first run holds the lock while it waits here; the second arrives meanwhile.
        first_is_fetching.set()
        assert release_first.wait(10)
        return 200, {"Content-Type": "application/json"}, upstream_bytes(PAPRIKA)

    http.add_callback(responses.GET, paprika_url(), callback=slow_upstream)
    runs: list[IngestionRun] = []

    def first() -> None:
        try:
            runs.append(ingestion_run(source="coinpaprika", trigger="task"))
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    assert first_is_fetching.wait(10)
    second = ingestion_run(source="coinpaprika", trigger="cli")
    release_first.set()
    thread.join(20)

    assert second.status == IngestionRun.Status.SKIPPED
    assert "already being ingested" in second.error
    assert runs[0].status == IngestionRun.Status.SUCCEEDED
    assert len(http.calls) == 1, "the second run did not even call the upstream"
    assert RawCryptoData.objects.count() == 1
    assert MarketQuote.objects.count() == 2500


def test_runs_of_different_sources_do_not_block_each_other(http: responses.RequestsMock, settings) -> None:
    from tests.conftest import FIXTURES

    settings.CSV_SOURCE_PATH = str(FIXTURES / "csv" / "simple_markets.csv")
    release = threading.Event()

    def slow_upstream(request: object) -> tuple[int, dict, bytes]:
        assert release.wait(10)
        return 200, {"Content-Type": "application/json"}, upstream_bytes(PAPRIKA)

    http.add_callback(responses.GET, paprika_url(), callback=slow_upstream)
    thread = threading.Thread(target=lambda: (ingestion_run(source="coinpaprika", trigger="task"), connection.close()))
    thread.start()
    csv_run = ingestion_run(source="csv", trigger="cli")
    release.set()
    thread.join(20)
    assert csv_run.status == IngestionRun.Status.SUCCEEDED
    assert IngestionRun.objects.filter(status="succeeded").count() == 2
