"""What `make run` does on a bare machine: the embedded PostgreSQL, no network, the bundled
recorded responses, and Ctrl-C leaving nothing running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kasparro.embedded_db import EmbeddedPostgres, free_port
from tests.processes import ROOT, wait_for

pytestmark = pytest.mark.timeout(600)


class MakeRun:
    """`make run` in its own process group, as in a terminal, so Ctrl-C reaches every process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.port = int(env["PORT"])
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                ["make", "--no-print-directory", "run"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            return json.loads(response.read())

    def wait_serving(self) -> None:
        def health() -> bool:
            assert self.proc.poll() is None, f"make run ended early:\n{self.output[-3000:]}"
            try:
                return self.get("/health")["status"] in {"ok", "degraded"}
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False

        wait_for(health, timeout=300, what=f"make run to serve /health\n{self.output[-2000:]}", every=0.5)

    def ctrl_c(self) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=60)


def test_make_run_offline_serves_the_bundled_data_from_the_embedded_database_and_ctrl_c_stops_all(
    embedded_home: Path,
) -> None:
    db_port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        {
            "EMBEDDED_DB_DIR": str(embedded_home / "pgdata"),
            "EMBEDDED_DB_PORT": str(db_port),
            "PORT": str(free_port()),
            # Unreachable upstreams: a closed local port answers at once, like a machine offline.
            "COINGECKO_BASE_URL": "http://127.0.0.1:9/api/v3",
            "COINPAPRIKA_BASE_URL": "http://127.0.0.1:9/v1",
            "HTTP_MAX_ATTEMPTS": "1",
        }
    )
    env.pop("CSV_SOURCE_PATH", None)  # make run points it at the bundled CSV
    server = EmbeddedPostgres(data_dir=embedded_home / "pgdata", port=db_port)

    first = MakeRun(env, embedded_home / "first.log")
    first.wait_serving()
    output = first.output
    assert f"Database: embedded PostgreSQL 18.6 on 127.0.0.1:{db_port}, data in {embedded_home / 'pgdata'}" in output
    assert output.count("live fetch failed, so loading the bundled recorded response") == 2
    counts = {name: s["records"] for name, s in first.get("/stats")["sources"].items()}
    assert counts == {"coingecko": 100, "coinpaprika": 2500, "csv": 250}
    recorded = first.get("/data?source=coinpaprika&limit=1")
    assert recorded["data_count"] == 2500 and recorded["from_saved_file"] is True
    assert recorded["age_seconds"] > 365 * 86400, "the bundled recording is not passed off as today's market"
    # The exact decimal docs/api.md shows, served as PostgreSQL stores it.
    btc = [row for row in first.get("/api/quotes/?symbol=btc")["results"] if row["upstream_id"] == "btc-bitcoin"]
    assert [row["price_usd"] for row in btc] == ["29427.918932650417"]

    assert first.ctrl_c() in {0, 130, -signal.SIGINT}  # make re-raises the SIGINT it got
    assert server.running_pid() is None, "Ctrl-C left the embedded PostgreSQL running"
    assert _group_gone(first.proc.pid), "Ctrl-C left a process of make run behind"
    assert "Stopped the embedded PostgreSQL" in first.output

    # A second make run finds the data of the first: the same totals, nothing stored twice.
    second = MakeRun(env, embedded_home / "second.log")
    second.wait_serving()
    assert {name: s["records"] for name, s in second.get("/stats")["sources"].items()} == counts
    second.ctrl_c()
    assert server.running_pid() is None

    # Stopped by a process manager (SIGTERM) rather than Ctrl-C, it stops its database all the same.
    third = MakeRun(env, embedded_home / "third.log")
    third.wait_serving()
    os.killpg(third.proc.pid, signal.SIGTERM)
    third.proc.wait(timeout=60)  # make passes SIGTERM on and leaves at once: the command stops after it
    # As long as the stop itself may take (pg_ctl stop -t 60, then an immediate stop), with room:
    # on a loaded machine a fast shutdown has taken longer than 30 s.
    wait_for(lambda: server.running_pid() is None, timeout=90, what="the embedded PostgreSQL to stop")
    wait_for(lambda: _group_gone(third.proc.pid), timeout=30, what="make run's processes to end")

    # A start that fails leaves nothing running either: a step failing after the database started
    # (a CSV file that is not there), and a web port that is taken.
    broken = MakeRun({**env, "CSV_SOURCE_PATH": str(embedded_home / "missing.csv")}, embedded_home / "broken.log")
    assert broken.proc.wait(timeout=300) != 0
    assert "csv failed" in broken.output and "Stopped the embedded PostgreSQL" in broken.output
    assert server.running_pid() is None and _group_gone(broken.proc.pid)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        failed = MakeRun({**env, "PORT": str(taken.getsockname()[1])}, embedded_home / "failed.log")
        assert failed.proc.wait(timeout=300) != 0
        assert f"127.0.0.1:{taken.getsockname()[1]} is taken" in failed.output
    assert server.running_pid() is None and _group_gone(failed.proc.pid)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False
