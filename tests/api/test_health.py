"""/health: its verdict in every mode, what each client may read, and what it costs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import responses
from django.test import Client

from crypto.services.ingest.run import ingestion_run
from tests.conftest import mock_paprika

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_health_is_ok_with_database_detail_and_sources(api: Client, http: responses.RequestsMock) -> None:
    mock_paprika(http)
    ingestion_run(source="coinpaprika", trigger="cli")
    body = api.get("/health").json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "ok" and body["database"]["latency_ms"] >= 0
    assert body["broker"]["status"] == "not_configured"
    assert set(body["sources"]) == {"coingecko", "coinpaprika", "csv"}
    assert body["sources"]["coinpaprika"]["last_run_status"] == "succeeded"
    assert body["sources"]["coinpaprika"]["last_success_at"].endswith("Z")
    assert body["sources"]["coingecko"]["last_success_at"] is None


def test_health_is_degraded_when_a_sources_latest_run_failed(api: Client, http: responses.RequestsMock) -> None:
    mock_paprika(http, body=b'{"error": "bad key"}', status=401)
    ingestion_run(source="coinpaprika", trigger="cli")
    response = api.get("/health", HTTP_AUTHORIZATION=f"Token {token_key()}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["failing_sources"] == ["coinpaprika"]
    assert "HTTP 401" in body["sources"]["coinpaprika"]["last_error"]


def token_key(*, staff: bool = False) -> str:
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    user = User.objects.create_user(username=f"script-{User.objects.count()}", is_staff=staff)
    return str(Token.objects.create(user=user).key)


def test_health_names_no_path_host_or_exception_to_anonymous_clients_and_all_to_staff_and_tokens(
    api: Client, settings
) -> None:
    from django.contrib.auth.models import User

    settings.CSV_SOURCE_PATH = "/srv/private-share/markets.csv"
    ingestion_run(source="csv", trigger="cli")  # fails: no such file, named in the error
    broker_down = {"status": "down", "error": "ConnectionError: Error 111 connecting to 10.1.2.3:6379", "workers": []}
    staff = Client(HTTP_ACCEPT="application/json")
    staff.force_login(User.objects.create_user(username="operator", is_staff=True))
    with mock.patch("crypto.api.selectors.broker_status", return_value=broker_down):
        anonymous = api.get("/health").content.decode()
        bad_token = api.get("/health", HTTP_AUTHORIZATION="Token not-a-real-token").content.decode()
        token = api.get("/health", HTTP_AUTHORIZATION=f"Token {token_key()}").content.decode()
        session = staff.get("/health").content.decode()
    for answer in (anonymous, bad_token):
        assert "/srv/private-share" not in answer and "10.1.2.3" not in answer and "ConnectionError" not in answer
        assert '"failing_sources":["csv"]' in answer and '"status":"down"' in answer
    for answer in (token, session):
        assert "/srv/private-share/markets.csv" in answer and "10.1.2.3:6379" in answer


@pytest.mark.parametrize("broker", ["none", "ok"])
def test_health_is_coherent_in_every_mode_stale_only_where_scheduled_and_every_stale_source_listed(
    api: Client, http: responses.RequestsMock, settings, broker: str
) -> None:
    from django.utils import timezone

    from crypto.models import IngestionRun

    settings.REDIS_URL = "" if broker == "none" else "redis://127.0.0.1:1/0"
    mock_paprika(http)
    ingestion_run(source="coinpaprika", trigger="cli")
    IngestionRun.objects.update(data_fetched_at=timezone.now() - timezone.timedelta(days=2))
    with mock.patch("crypto.api.selectors.broker_status", return_value={"status": "ok", "workers": ["w1"]}):
        body = api.get("/health").json()
    sources = body["sources"]
    assert body["stale_sources"] == sorted(name for name, info in sources.items() if info["stale"])
    assert (body["status"] == "degraded") == bool(body["stale_sources"] or body["failing_sources"])
    if broker == "none":  # nothing schedules: nothing is scheduled, nothing judged stale
        assert {(info["scheduled"], info["schedule_seconds"], info["stale"]) for info in sources.values()} == {
            (False, None, None)
        }
        assert body["status"] == "ok"
    else:
        assert sources["coinpaprika"]["scheduled"] and sources["coinpaprika"]["stale"]
        assert "coinpaprika" in body["stale_sources"] and body["status"] == "degraded"


def test_health_answers_in_one_query_whatever_the_sources_and_runs(
    api: Client, http: responses.RequestsMock, django_assert_max_num_queries
) -> None:
    mock_paprika(http)
    for _ in range(3):
        ingestion_run(source="coinpaprika", trigger="cli")
    assert api.get("/health").status_code == 200  # the first on a connection prepares the statement too
    with django_assert_max_num_queries(1):  # one statement for every source, its round trip the latency
        assert api.get("/health").status_code == 200


def test_health_with_a_broker_counts_a_failure_only_for_a_source_still_scheduled(
    api: Client, http: responses.RequestsMock, settings
) -> None:
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    from crypto.services.ingest.schedules import schedules_sync

    settings.CSV_SOURCE_PATH = "/nowhere/markets.csv"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # beat runs where a broker is configured
    schedules_sync()
    PeriodicTask.objects.filter(name="ingest csv").update(enabled=True)
    ingestion_run(source="csv", trigger="task")  # fails: no such file
    with mock.patch("crypto.api.selectors.broker_status", return_value={"status": "ok", "workers": ["w1"]}):
        assert api.get("/health").json()["failing_sources"] == ["csv"]
        task = PeriodicTask.objects.get(name="ingest csv")
        task.interval, task.crontab = None, CrontabSchedule.objects.create(minute="*/15")  # edited to a crontab
        task.save()
        on_crontab = api.get("/health").json()
        PeriodicTask.objects.filter(name="ingest csv").update(enabled=False)  # as without CSV_SOURCE_PATH
        body = api.get("/health").json()
    assert on_crontab["failing_sources"] == ["csv"] and on_crontab["sources"]["csv"]["scheduled"]
    assert body["failing_sources"] == [] and body["sources"]["csv"]["last_run_status"] == "failed"
    assert body["sources"]["csv"]["scheduled"] is False


def test_health_answers_503_error_when_the_database_is_unreachable() -> None:
    # A real process whose database is a closed port: no mocking of the ORM.
    script = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/health', HTTP_ACCEPT='application/json');"
        "print(r.status_code, json.dumps(r.json()))"
    )
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:9/nothing",
        "DJANGO_SETTINGS_MODULE": "kasparro.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    status, _, body = result.stdout.strip().partition(" ")
    assert status == "503", result.stderr[-2000:]
    assert '"status": "error"' in body and '"database": {"status": "down"' in body
    assert "127.0.0.1" not in body and "nothing" not in body, "anonymous clients see no host or database"


def test_health_ignores_credentials_it_does_not_need(api: Client) -> None:
    response = api.get("/health", HTTP_AUTHORIZATION="Token not-a-real-token")
    assert response.status_code == 200 and response.json()["status"] in ("ok", "degraded")


@pytest.mark.django_db(transaction=True)
def test_health_prepares_its_statement_again_when_a_pooler_swapped_the_connection(api: Client) -> None:
    from django.db import connection

    assert api.get("/health").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE kasparro_freshness")  # as a new server connection behind a pooler
    assert api.get("/health").status_code == 200
