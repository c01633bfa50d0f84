"""Two runs of one source at the same time, each on its own database connection."""

from __future__ import annotations

import threading

import pytest
import responses
from django.db import connection

from crypto.models import IngestionRun, MarketQuote, RawBody
from crypto.services.ingest.run import ingestion_run, saved_file
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
    assert RawBody.objects.count() == 1
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


def test_a_run_waiting_for_the_source_lock_is_alive_and_only_dead_runs_are_closed_as_abandoned(tmp_path) -> None:
    import psycopg2
    from django.db import transaction

    from crypto.services.ingest.lifecycle import _abandoned_runs_close
    from crypto.services.ingest.locks import _NAMESPACE, name_key
    from tests.conftest import database_url
    from tests.processes import wait_for

    saved = tmp_path / "tickers.json"
    saved.write_bytes(upstream_bytes(PAPRIKA))
    holder = psycopg2.connect(database_url(connection.settings_dict))  # another process holding the lock
    holder.cursor().execute("SELECT pg_advisory_xact_lock(%s, %s)", [_NAMESPACE, name_key("ingest:coinpaprika")])
    waited: list[IngestionRun] = []

    def backfill_file() -> None:
        try:
            waited.append(ingestion_run(source="coinpaprika", trigger="file", origin=saved_file(path=str(saved))))
        finally:
            connection.close()

    thread = threading.Thread(target=backfill_file)
    thread.start()
    try:

        def waiting() -> bool:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                return bool(cursor.fetchone()[0])

        wait_for(waiting, timeout=10, what="the file run to wait for the source's lock")
        waiter = IngestionRun.objects.get(trigger="file")
        dead = IngestionRun.objects.create(source="coinpaprika", trigger="task")  # its process is gone
        with transaction.atomic():
            _abandoned_runs_close(source="coinpaprika", current=IngestionRun.objects.create(source="coinpaprika"))

        dead.refresh_from_db()
        waiter.refresh_from_db()
        assert dead.status == "failed" and dead.error.startswith("abandoned")
        assert waiter.status == "running", "a run waiting its turn is not abandoned"
    finally:
        holder.rollback()
        holder.close()
        thread.join(30)
    assert waited[0].status == "succeeded" and waited[0].pk == waiter.pk


def test_a_finished_run_leaves_no_advisory_lock_held_by_its_session(tmp_path) -> None:
    saved = tmp_path / "tickers.json"
    saved.write_bytes(upstream_bytes(PAPRIKA))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert ingestion_run(source="coinpaprika", trigger="file", origin=saved_file(path=str(saved))).status == "succeeded"
    assert ingestion_run(source="coinpaprika", trigger="file", origin=saved_file(path=str(bad))).status == "failed"
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
        assert cursor.fetchone()[0] == 0
