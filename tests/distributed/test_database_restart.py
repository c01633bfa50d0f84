"""PostgreSQL restarted under a running ingestion: a private cluster, a real worker."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import psycopg2
import pytest

from kasparro import embedded_db
from kasparro.embedded_db import EmbeddedPostgres
from tests.distributed.conftest import GECKO_PATH, send_task
from tests.processes import ROOT, CeleryProcess, StubUpstream, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


@pytest.fixture
def private_pg() -> Iterator[EmbeddedPostgres]:
    """A cluster of our own to restart: the embedded server's binaries, on a free port."""
    with embedded_db.throwaway() as server:
        yield server


def query(url: str, sql: str) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    conn.close()
    return rows


def test_postgres_restarted_during_a_run_fails_that_run_cleanly_and_the_retry_succeeds(
    celery_env: dict[str, str],
    processes: Callable[..., CeleryProcess],
    stub: StubUpstream,
    private_pg: EmbeddedPostgres,
) -> None:
    env = {**celery_env, "DATABASE_URL": private_pg.url("kasparro")}  # migrate creates the database
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert migrate.returncode == 0, migrate.stderr

    stub.delay[GECKO_PATH] = 3
    processes("worker", env, "w1")
    task_id = send_task(env["REDIS_URL"], "coingecko")
    assert stub.arrived[GECKO_PATH].wait(30)
    private_pg.stop(mode="fast")  # the run's connection dies while it waits on the upstream
    private_pg.start()

    def runs() -> list[tuple]:
        try:
            rows = query(
                env["DATABASE_URL"],
                f"SELECT status, error, retry_scheduled FROM ingestion_run "
                f"WHERE task_id = '{task_id}' ORDER BY started_at, id",
            )
        except psycopg2.OperationalError:
            return []
        return rows if rows and rows[-1][0] == "succeeded" else []

    history = wait_for(runs, timeout=90, what="the retried run to succeed")
    failed = [row for row in history if row[0] == "failed"]
    assert failed and all(row[2] or "abandoned" in row[1] for row in failed)
    assert any("database" in row[1] or "abandoned" in row[1] for row in failed)
    assert [row[0] for row in history].count("succeeded") == 1
    assert query(env["DATABASE_URL"], "SELECT count(*) FROM raw_crypto_data")[0][0] == 2
    assert query(env["DATABASE_URL"], "SELECT count(*) FROM market_quote")[0][0] == 350


def migrated(env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_a_database_outage_during_a_command_run_is_one_line_and_the_run_is_recorded_or_closed_later(
    celery_env: dict[str, str], stub: StubUpstream, private_pg: EmbeddedPostgres
) -> None:
    env = {**celery_env, "DATABASE_URL": private_pg.url("kasparro")}
    migrated(env)
    ingest = [sys.executable, "manage.py", "ingest", "--source", "coingecko"]
    stub.delay[GECKO_PATH] = 3

    def run_through(outage: Callable[[], None]) -> subprocess.CompletedProcess[str]:
        stub.arrived[GECKO_PATH].clear()
        command = subprocess.Popen(ingest, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert stub.arrived[GECKO_PATH].wait(30)
        outage()
        out, err = command.communicate(timeout=120)
        return subprocess.CompletedProcess(ingest, command.returncode, out, err)

    def restart() -> None:  # a restart: back within seconds
        private_pg.stop(mode="fast")
        private_pg.start()

    brief = run_through(restart)
    assert brief.returncode == 1 and "Traceback" not in brief.stderr, brief.stderr
    assert "coingecko failed" in brief.stderr and "database" in brief.stderr
    assert query(env["DATABASE_URL"], "SELECT status FROM ingestion_run") == [("failed",)], "recorded, not running"

    long = run_through(lambda: private_pg.stop(mode="fast"))  # down until the command has given up
    private_pg.start()
    assert long.returncode == 1 and "Traceback" not in long.stderr, long.stderr
    assert "could not be recorded" in long.stderr and "closes it as abandoned" in long.stderr
    said = [line for line in long.stderr.splitlines() if not line.startswith("{")]  # beside the JSON log lines
    assert len(said) == 1 and said[0].startswith("CommandError: coingecko run #2 failed")
    stub.delay[GECKO_PATH] = 0
    again = subprocess.run(ingest, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    statuses = query(env["DATABASE_URL"], "SELECT status, error FROM ingestion_run ORDER BY id")
    assert [row[0] for row in statuses] == ["failed", "failed", "succeeded"]
    assert "abandoned" in statuses[1][1]


def test_a_database_away_longer_than_the_retries_leaves_a_task_waiting_that_ingests_once_it_is_back(
    celery_env: dict[str, str],
    processes: Callable[..., CeleryProcess],
    stub: StubUpstream,
    private_pg: EmbeddedPostgres,
) -> None:
    env = {**celery_env, "DATABASE_URL": private_pg.url("kasparro"), "INGEST_MAX_RETRIES": "1"}
    migrated(env)
    worker = processes("worker", env, "w1")
    private_pg.stop(mode="fast")
    first, second = send_task(env["REDIS_URL"], "coinpaprika"), send_task(env["REDIS_URL"], "coinpaprika")
    wait_for(lambda: "waiting for it" in worker.output(), timeout=60, what="a task to wait past its retries", every=0.5)
    private_pg.start()

    def recorded() -> list[tuple]:
        try:
            runs = query(env["DATABASE_URL"], "SELECT task_id, status FROM ingestion_run")
        except psycopg2.OperationalError:
            return []
        return runs if runs and all(status != "running" for _, status in runs) else []

    runs = wait_for(recorded, timeout=90, what="the run, once the database is back")
    assert len(runs) == 1 and runs[0][0] in (first, second) and runs[0][1] == "succeeded"
    assert query(env["DATABASE_URL"], "SELECT count(*) FROM market_quote")[0][0] == 2500
