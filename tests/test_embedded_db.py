"""The embedded PostgreSQL server (kasparro/embedded_db.py) and `manage.py dbserver`: what `make run`
stands on when no DATABASE_URL is set."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from kasparro.embedded_db import EmbeddedDatabaseError, EmbeddedPostgres, free_port
from tests.processes import ROOT, wait_for

pytestmark = pytest.mark.timeout(180)


def sql(url: str, statement: str) -> list[tuple]:
    conn = psycopg2.connect(url, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchall() if cursor.description else []
    finally:
        conn.close()


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def embedded_env(embedded_home: Path, port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    return {**env, "EMBEDDED_DB_DIR": str(embedded_home / "pgdata"), "EMBEDDED_DB_PORT": str(port)}


def test_the_server_starts_on_127_0_0_1_keeps_its_data_across_restarts_and_stops(embedded_home: Path) -> None:
    server = EmbeddedPostgres(data_dir=embedded_home / "pgdata", port=free_port())
    assert server.start() is True
    assert server.start() is False  # already running: reused, not started twice
    sql(server.url("postgres"), "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
    assert sql(server.url("postgres"), "SHOW listen_addresses") == [("127.0.0.1",)]
    assert server.stop() is True and server.running_pid() is None
    with pytest.raises(psycopg2.OperationalError):
        sql(server.url("postgres"), "SELECT 1")

    assert server.start() is True
    assert sql(server.url("postgres"), "SELECT n FROM kept") == [(42,)]
    server.stop()


def test_a_server_killed_outright_leaves_a_pid_file_that_does_not_block_the_next_start(embedded_home: Path) -> None:
    server = EmbeddedPostgres(data_dir=embedded_home / "pgdata", port=free_port())
    server.start()
    pid = server.running_pid()
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)  # the postmaster leads its own session: it and its children die
    wait_for(lambda: _gone(pid), timeout=30, what="the killed server to be gone")
    # After a reboot the pid in the file may belong to another, live process.
    pid_file = server.data_dir / "postmaster.pid"
    lines = pid_file.read_text().splitlines()
    pid_file.write_text("\n".join([str(os.getpid()), *lines[1:]]) + "\n")
    assert server.running_pid() is None

    assert server.start() is True
    assert sql(server.url("postgres"), "SELECT 1") == [(1,)]
    server.stop()


def test_a_port_taken_by_another_program_stops_the_start_with_a_line_that_says_what_to_do(embedded_home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = EmbeddedPostgres(data_dir=embedded_home / "pgdata", port=port)
        with pytest.raises(EmbeddedDatabaseError, match=f"127.0.0.1:{port} is taken by another program: set EMBEDDED"):
            server.start()
    assert server.running_pid() is None


def test_dbserver_run_gives_the_command_the_embedded_database_and_stops_the_server_after(embedded_home: Path) -> None:
    port = free_port()
    env = embedded_env(embedded_home, port)
    probe = "import os, psycopg2; psycopg2.connect(os.environ['DATABASE_URL'].replace('/kasparro', '/postgres')); "
    probe += "print('child saw', os.environ['DATABASE_URL'])"
    result = manage("dbserver", "run", "--", sys.executable, "-c", probe, env=env)
    assert result.returncode == 0, result.stderr
    assert "Database: embedded PostgreSQL 18" in result.stdout
    assert f"child saw postgres://postgres@127.0.0.1:{port}/kasparro" in result.stdout
    assert "Stopped the embedded PostgreSQL" in result.stdout
    assert EmbeddedPostgres(data_dir=embedded_home / "pgdata", port=port).running_pid() is None

    failing = manage("dbserver", "run", "--", sys.executable, "-c", "raise SystemExit(3)", env=env)
    assert failing.returncode == 3  # the command's status, and the server stopped all the same
    assert EmbeddedPostgres(data_dir=embedded_home / "pgdata", port=port).running_pid() is None


def test_dbserver_run_leaves_a_server_started_by_hand_running_and_stops_one_a_killed_run_left(
    embedded_home: Path,
) -> None:
    port = free_port()
    env = embedded_env(embedded_home, port)
    server = EmbeddedPostgres(data_dir=embedded_home / "pgdata", port=port)
    assert manage("dbserver", "start", env=env).returncode == 0
    assert manage("dbserver", "run", "--", "true", env=env).returncode == 0
    assert server.running_pid() is not None  # `dbserver start` means: keep it running

    # A run killed before it could stop its server left its pid as the owner.
    owner = embedded_home / ".pgdata.owner"
    dead = subprocess.Popen(["true"])
    dead.wait()
    owner.write_text(str(dead.pid))
    assert manage("dbserver", "run", "--", "true", env=env).returncode == 0
    assert server.running_pid() is None and not owner.exists()

    status = manage("dbserver", "status", env=env)
    assert status.returncode == 1 and "not running" in status.stdout


def test_a_command_with_no_database_to_reach_says_what_to_run_in_one_line(embedded_home: Path) -> None:
    env = {**embedded_env(embedded_home, free_port()), "DJANGO_SECRET_KEY": "test-only"}
    result = manage("ingest", "--source", "csv", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no database answers at 127.0.0.1" in result.stderr and "dbserver start" in result.stderr


def test_migrate_creates_a_missing_database_and_says_what_to_run_when_the_user_may_not() -> None:
    from django.db import connection

    from tests.conftest import database_url

    admin = database_url({**connection.settings_dict, "NAME": "postgres"})
    name = f"kasparro_created_{os.getpid()}"
    env = {**os.environ, "DATABASE_URL": database_url({**connection.settings_dict, "NAME": name})}
    try:
        created = manage("migrate", "--noinput", env=env, timeout=180)
        assert created.returncode == 0, created.stderr
        assert f"Created the database {name}" in created.stdout
        assert sql(admin, f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == [(1,)]
        again = manage("migrate", "--noinput", env=env)
        assert again.returncode == 0 and "Created the database" not in again.stdout

        sql(admin, "DROP ROLE IF EXISTS kasparro_nocreate; CREATE ROLE kasparro_nocreate LOGIN NOCREATEDB")
        denied_url = env["DATABASE_URL"].replace(f"//{connection.settings_dict['USER']}", "//kasparro_nocreate")
        denied = manage("migrate", env={**env, "DATABASE_URL": denied_url.replace(name, f"{name}_no")})
        assert denied.returncode != 0 and "Traceback" not in denied.stderr
        assert "may not create it" in denied.stderr and f"-O kasparro_nocreate {name}_no" in denied.stderr
    finally:
        sql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        sql(admin, "DROP ROLE IF EXISTS kasparro_nocreate")


def _gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False
