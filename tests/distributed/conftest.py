"""Fixtures for tests with real Celery workers and beat, private Redis/PostgreSQL, a stub upstream."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from tests.conftest import FIXTURES, GECKO_PAGE, GECKO_SMALL, PAPRIKA, database_url, upstream_bytes
from tests.processes import CeleryProcess, RedisServer, StubUpstream

GECKO_PATH, PAPRIKA_PATH = "/api/v3/coins/markets", "/v1/tickers"


@pytest.fixture
def stub() -> Iterator[StubUpstream]:
    server = StubUpstream(
        {
            (GECKO_PATH, "1"): upstream_bytes(GECKO_PAGE),  # 250 records: a full page, so page 2 is asked
            (GECKO_PATH, "2"): upstream_bytes(GECKO_SMALL),  # 100 records: the last page
            (PAPRIKA_PATH, ""): upstream_bytes(PAPRIKA),
        }
    )
    yield server
    server.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def celery_env(transactional_db: None, stub: StubUpstream, redis_server: RedisServer) -> dict[str, str]:
    """Environment for worker, beat and CLI processes: the test database, a private Redis, the stub
    upstream, and limits short enough for tests (time limits, backoff, visibility timeout)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COINGECKO_", "COINPAPRIKA_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "kasparro.settings",
            "DATABASE_URL": database_url(connection.settings_dict),
            "REDIS_URL": redis_server.url,
            "COINGECKO_BASE_URL": stub.base + "/api/v3",
            "COINPAPRIKA_BASE_URL": stub.base + "/v1",
            "COINGECKO_PAGES": "2",
            "CSV_SOURCE_PATH": str(FIXTURES / "csv" / "simple_markets.csv"),
            "HTTP_MAX_ATTEMPTS": "3",
            "HTTP_BACKOFF_BASE": "0.1",
            "HTTP_BACKOFF_CAP": "0.5",
            "INGEST_SOFT_TIME_LIMIT": "8",
            "INGEST_TIME_LIMIT": "10",
            "INGEST_RETRY_BACKOFF_BASE": "0.5",
            "INGEST_RETRY_BACKOFF_CAP": "2",
            "CELERY_VISIBILITY_TIMEOUT": "13",
            "CELERY_UNACKED_RESTORE_INTERVAL": "1",
            "CELERY_BEAT_MAX_LOOP_INTERVAL": "1",
            "BEAT_LOCK_TTL_SECONDS": "6",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def processes(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., CeleryProcess]]:
    started: list[CeleryProcess] = []

    def start(kind: str, env: dict[str, str], name: str, *args: str, ready: bool = True) -> CeleryProcess:
        extra = ["-c", "1", "-n", f"{name}@%h", "--without-gossip", "--without-mingle"] if kind == "worker" else []
        process = CeleryProcess(kind, env, tmp_path / f"{name}.log", *extra, *args)
        started.append(process)
        if ready:
            process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()


def send_task(redis_url: str, source: str) -> str:
    """Publish `tasks.ingest_source` to the private broker, as beat or `ingest --async` would."""
    sender = Celery("sender", broker=redis_url, set_as_current=False)
    sender.conf.update(task_serializer="json", accept_content=["json"])
    with sender.connection_for_write() as conn:
        return str(sender.send_task("tasks.ingest_source", kwargs={"source": source}, connection=conn).id)
