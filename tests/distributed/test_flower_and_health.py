"""Flower against the same broker, behind basic auth; /health reporting broker and workers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
import requests
from django.test import override_settings

from crypto.services.ingest.schedules import schedules_sync
from tests.distributed.conftest import send_task
from tests.processes import ROOT, CeleryProcess, RedisServer, free_port, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


@pytest.fixture
def flower(celery_env: dict[str, str], tmp_path) -> Iterator[str]:
    port = free_port()
    env = {**celery_env, "FLOWER_BASIC_AUTH": "ops:s3cret-pass"}
    log = (tmp_path / "flower.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "kasparro", "flower", f"--port={port}", "--address=127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(url, timeout=1).status_code in (200, 401)
        except requests.ConnectionError:
            return False

    wait_for(up, timeout=60, what="flower to listen")
    yield url
    proc.terminate()
    proc.wait(20)
    log.close()


def test_flower_requires_basic_auth_and_shows_ingestion_tasks_by_name_and_source(
    flower: str, celery_env: dict[str, str], processes: Callable[..., CeleryProcess]
) -> None:
    assert requests.get(flower, timeout=5).status_code == 401
    assert requests.get(flower, auth=("ops", "wrong"), timeout=5).status_code == 401
    assert requests.get(flower, auth=("ops", "s3cret-pass"), timeout=5).status_code == 200

    processes("worker", celery_env, "w1")
    task_id = send_task(celery_env["REDIS_URL"], "csv")

    def seen() -> dict:
        tasks = requests.get(f"{flower}/api/tasks", auth=("ops", "s3cret-pass"), timeout=5).json()
        task = tasks.get(task_id, {})
        return task if task.get("state") == "SUCCESS" else {}

    task = wait_for(seen, timeout=60, what="flower to see the task succeed")
    assert task["name"] == "tasks.ingest_source"
    assert task["kwargs"] == "{'source': 'csv'}"
    assert task["args"] == "()"
    page = requests.get(f"{flower}/tasks", auth=("ops", "s3cret-pass"), timeout=5).text
    assert '<th data-column="kwargs">' in page and '<th data-column="result">' in page, "the source shows in the list"


def test_flower_shows_a_skipped_run_as_a_failed_task_not_a_success(
    flower: str, celery_env: dict[str, str], processes: Callable[..., CeleryProcess]
) -> None:
    import psycopg2
    from django.db import connection

    from crypto.services.ingest.locks import _NAMESPACE, name_key
    from tests.conftest import database_url

    processes("worker", celery_env, "w1")
    other_run = psycopg2.connect(database_url(connection.settings_dict))  # another run holds csv
    try:
        other_run.cursor().execute("SELECT pg_advisory_xact_lock(%s, %s)", [_NAMESPACE, name_key("ingest:csv")])
        task_id = send_task(celery_env["REDIS_URL"], "csv")

        def seen() -> dict:
            tasks = requests.get(f"{flower}/api/tasks", auth=("ops", "s3cret-pass"), timeout=5).json()
            task = tasks.get(task_id, {})
            return task if task.get("state") in ("SUCCESS", "FAILURE") else {}

        task = wait_for(seen, timeout=60, what="flower to see the task end")
    finally:
        other_run.close()
    assert task["state"] == "FAILURE" and "IngestionSkipped" in task["exception"]
    assert "already being ingested" in task["exception"]


def health(env: dict[str, str]) -> dict:
    """GET /health in a process configured like a deployment (REDIS_URL set at startup)."""
    script = (
        "import django, json; django.setup(); from django.test import Client;"
        "print(json.dumps(Client().get('/health', HTTP_ACCEPT='application/json').json()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_health_reports_the_broker_and_the_workers_it_sees(
    celery_env: dict[str, str], processes: Callable[..., CeleryProcess], redis_server: RedisServer
) -> None:
    with override_settings(CSV_SOURCE_PATH=celery_env["CSV_SOURCE_PATH"]):
        schedules_sync()  # as the migrate of a deployment with every source configured
    processes("worker", celery_env, "w1")
    body = health(celery_env)
    assert body["broker"]["status"] == "ok"
    assert any(name.startswith("w1@") for name in body["broker"]["workers"])
    # Nothing has run yet, so every scheduled source is stale against its schedule.
    assert body["status"] == "degraded" and body["stale_sources"] == ["coingecko", "coinpaprika", "csv"]

    redis_server.stop()
    down = health(celery_env)
    assert down["status"] == "degraded" and down["broker"]["status"] == "down"
    assert down["database"]["status"] == "ok"
    redis_server.start()
