"""The task as a thin interface: retry policy, and embedded mode (no broker) running in process."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
import responses
from django.core.management import call_command
from django.test import override_settings

from crypto.models import IngestionRun
from tasks.ingest import ingest_source, retry_delay
from tests.conftest import FIXTURES, mock_paprika

pytestmark = pytest.mark.django_db


@override_settings(INGEST_RETRY_BACKOFF_BASE=10.0, INGEST_RETRY_BACKOFF_CAP=300)
def test_retry_delay_grows_honours_retry_after_and_never_passes_the_cap() -> None:
    assert all(0 <= retry_delay(retries=0, retry_after=None) <= 10 for _ in range(50))
    assert all(retry_delay(retries=2, retry_after=None) <= 40 for _ in range(50))
    assert all(retry_delay(retries=20, retry_after=None) <= 300 for _ in range(50))
    assert all(retry_delay(retries=0, retry_after=42) >= 42 for _ in range(50))
    assert retry_delay(retries=0, retry_after=10_000) == 300


def test_visibility_timeout_outlasts_the_longest_task_and_retry_delay(settings) -> None:
    transport = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    assert transport["visibility_timeout"] > settings.CELERY_TASK_TIME_LIMIT + settings.INGEST_RETRY_BACKOFF_CAP
    assert settings.CELERY_TASK_SOFT_TIME_LIMIT < settings.CELERY_TASK_TIME_LIMIT
    assert (settings.CELERY_TASK_ACKS_LATE, settings.CELERY_TASK_REJECT_ON_WORKER_LOST) == (True, True)
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    assert settings.CELERY_ACCEPT_CONTENT == ["json"] and settings.CELERY_TASK_SERIALIZER == "json"


def test_task_records_its_id_and_trigger_on_the_run(http: responses.RequestsMock) -> None:
    mock_paprika(http)
    result = ingest_source.apply(kwargs={"source": "coinpaprika"}, task_id="task-123")
    assert result.get()["status"] == "succeeded"
    run = IngestionRun.objects.get()
    assert (run.task_id, run.trigger) == ("task-123", "task")


def test_a_permanent_failure_fails_the_task_at_once(http: responses.RequestsMock) -> None:
    mock_paprika(http, body=b'{"error": "bad key"}', status=401)
    result = ingest_source.apply(kwargs={"source": "coinpaprika"}, throw=False)
    assert result.failed() and "HTTP 401" in str(result.result)
    assert IngestionRun.objects.get().retry_scheduled is False


def test_unknown_source_fails_without_a_run() -> None:
    result = ingest_source.apply(kwargs={"source": "binance"}, throw=False)
    assert result.failed() and "unknown source 'binance'" in str(result.result)
    assert not IngestionRun.objects.exists()


def test_ingest_async_without_a_broker_runs_in_process_and_says_so(http: responses.RequestsMock) -> None:
    mock_paprika(http)
    out = StringIO()
    call_command("ingest", "--source", "coinpaprika", "--async", stdout=out, stderr=StringIO())
    assert "No REDIS_URL: no broker, so each task runs here" in out.getvalue()
    assert IngestionRun.objects.get().status == "succeeded"


def test_a_trigger_is_sent_only_when_the_callers_transaction_commits(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    from django.db import transaction
    from django.db.transaction import on_commit

    from crypto.services.ingest.enqueue import ingestion_enqueue

    settings.CSV_SOURCE_PATH = str(FIXTURES / "csv" / "simple_markets.csv")
    monkeypatch.setattr("crypto.services.ingest.enqueue.on_commit", on_commit)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        [queued] = ingestion_enqueue(sources=["csv"], trigger="api")
        assert not IngestionRun.objects.exists(), "nothing runs before the caller's transaction commits"
    assert IngestionRun.objects.get(task_id=queued["task_id"]).status == "succeeded"
