"""Who may do what: reading is anonymous but throttled; triggering ingestion needs staff."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.throttling import SimpleRateThrottle

from crypto.models import IngestionRun
from tests.conftest import FIXTURES

pytestmark = pytest.mark.django_db


def token_client(*, staff: bool) -> Client:
    user = User.objects.create_user(f"{'ops' if staff else 'reader'}", password="x", is_staff=staff)
    token = Token.objects.create(user=user)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}", HTTP_ACCEPT="application/json")


def test_triggering_ingestion_without_credentials_is_401() -> None:
    response = Client().post("/api/runs/", {"source": "csv"}, content_type="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert not IngestionRun.objects.exists()


def test_triggering_ingestion_as_a_non_staff_user_is_403() -> None:
    response = token_client(staff=False).post("/api/runs/", {"source": "csv"}, content_type="application/json")
    assert response.status_code == 403
    assert not IngestionRun.objects.exists()


def test_a_staff_token_triggers_ingestion_recorded_as_api(settings) -> None:
    settings.CSV_SOURCE_PATH = str(FIXTURES / "csv" / "simple_markets.csv")
    response = token_client(staff=True).post("/api/runs/", {"source": "csv"}, content_type="application/json")
    assert response.status_code == 200, response.content  # no broker: it ran here, and succeeded
    assert response.json()[0] | {"task_id": ""} == {"source": "csv", "task_id": "", "status": "succeeded", "error": ""}
    run = IngestionRun.objects.get()
    assert (run.trigger, run.status) == ("api", "succeeded")


def test_a_trigger_that_ran_here_and_failed_is_502_naming_the_failure_not_accepted(settings) -> None:
    settings.CSV_SOURCE_PATH = "/nowhere/markets.csv"
    response = token_client(staff=True).post("/api/runs/", {"source": "csv"}, content_type="application/json")
    assert response.status_code == 502, response.content
    [outcome] = response.json()
    assert outcome["status"] == "failed" and "no such file" in outcome["error"]
    assert IngestionRun.objects.get().status == "failed"


def test_a_trigger_handed_to_the_workers_is_202_queued(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from celery import current_app

    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    current_app.loader.import_default_modules()
    sent: list[dict] = []
    monkeypatch.setattr(current_app.tasks["tasks.ingest_source"], "apply_async", lambda **kw: sent.append(kw))
    response = token_client(staff=True).post("/api/runs/", {"source": "csv"}, content_type="application/json")
    assert response.status_code == 202, response.content
    assert response.json()[0]["status"] == "queued" and sent[0]["kwargs"] == {"source": "csv", "trigger": "api"}
    assert not IngestionRun.objects.exists()


def test_a_post_without_the_trailing_slash_triggers_too_rather_than_being_redirected(settings) -> None:
    settings.CSV_SOURCE_PATH = str(FIXTURES / "csv" / "simple_markets.csv")
    response = token_client(staff=True).post("/api/runs", {"source": "csv"}, content_type="application/json")
    assert response.status_code == 200
    assert IngestionRun.objects.filter(trigger="api").count() == 1


def test_an_unknown_source_is_400() -> None:
    response = token_client(staff=True).post("/api/runs/", {"source": "binance"}, content_type="application/json")
    assert response.status_code == 400 and "source" in response.json()["errors"]


def test_triggering_is_throttled(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    settings.CSV_SOURCE_PATH = str(FIXTURES / "csv" / "simple_markets.csv")
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": None, "user": None, "trigger": "2/min"})
    client = token_client(staff=True)
    codes = [
        client.post("/api/runs/", {"source": "csv"}, content_type="application/json").status_code for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    assert IngestionRun.objects.count() == 2


def test_anonymous_reading_is_throttled_but_health_never_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "3/min", "user": None, "trigger": None})
    client = Client(HTTP_ACCEPT="application/json")
    codes = [client.get("/api/runs/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert "detail" in client.get("/api/runs/").json()
    assert all(client.get("/health").status_code == 200 for _ in range(5))


def test_reading_still_answers_when_the_throttle_counts_in_redis_are_unreachable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from django.test import override_settings

    from tests.processes import free_port

    unreachable = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
    }
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "3/min", "user": None, "trigger": None})
    client = Client(HTTP_ACCEPT="application/json")
    with override_settings(CACHES={"default": unreachable}):
        codes = [client.get(path).status_code for path in ["/api/runs/", "/stats", "/api/assets/", "/api/runs/"] * 2]
    assert codes == [200] * 8, "not throttled while the counts are unreachable, and never a 500"
    assert "requests are not throttled" in caplog.text


def test_the_admin_needs_a_staff_login_and_its_action_triggers_ingestion(settings) -> None:
    settings.CSV_SOURCE_PATH = str(FIXTURES / "csv" / "simple_markets.csv")
    reader = User.objects.create_user("reader", password="x")
    client = Client()
    client.force_login(reader)
    assert client.get("/admin/crypto/ingestionrun/").status_code == 302  # not staff: back to login
    done = IngestionRun.objects.create(source="csv", trigger="cli", status="succeeded")
    staff = User.objects.create_superuser("ops", password="x")
    client.force_login(staff)
    response = client.post(
        "/admin/crypto/ingestionrun/", {"action": "ingest_again", "_selected_action": [done.pk]}, follow=True
    )
    assert response.status_code == 200
    assert IngestionRun.objects.filter(trigger="admin", status="succeeded").count() == 1


@pytest.mark.parametrize("depth", [100, 100_000])
def test_a_request_body_nested_too_deep_is_a_400_naming_the_cause_never_a_500(depth: int) -> None:
    body = "[" * depth + "]" * depth
    response = token_client(staff=True).post("/api/runs/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert not IngestionRun.objects.exists()


def test_throttles_hold_their_limit_exactly_under_concurrent_clients(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import threading

    from django.test import RequestFactory, override_settings

    from crypto.api.throttling import AnonRateThrottle
    from tests.processes import RedisServer

    redis = RedisServer(tmp_path)
    redis.start()
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "10/min", "user": None, "trigger": None})
    shared = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis.url}
    try:
        with override_settings(CACHES={"default": shared}):
            for client in range(5):  # five addresses, each hit by twenty clients at once
                request = RequestFactory().get("/api/runs/", REMOTE_ADDR=f"10.0.0.{client}")
                request.user = None  # anonymous, as DRF's request says
                start, allowed = threading.Barrier(20), []

                def ask(request=request, start=start, allowed=allowed) -> None:
                    throttle = AnonRateThrottle()  # one per request, as DRF makes them
                    start.wait()
                    allowed.append(throttle.allow_request(request, None))

                threads = [threading.Thread(target=ask) for _ in range(20)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                assert allowed.count(True) == 10, f"{allowed.count(True)} of 20 let through for a limit of 10"
    finally:
        redis.stop()
