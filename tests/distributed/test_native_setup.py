"""The native distributed setup of docs/operations.md, step by step, against the embedded PostgreSQL server:
dbserver start, migrate, gunicorn, worker, beat and Flower, then dbserver stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from kasparro.embedded_db import EmbeddedPostgres
from tests.processes import ROOT, free_port, process_groups_stop, wait_for

pytestmark = [pytest.mark.timeout(300)]
BIN = Path(sys.executable).parent
# The lines of docs/operations.md, as written there; the test runs them with free ports instead of 8000 and 5555.
STEPS = {
    "db": ".venv/bin/python manage.py dbserver start",
    "migrate": ".venv/bin/python manage.py migrate",
    "web": ".venv/bin/gunicorn kasparro.wsgi --bind 127.0.0.1:8000",
    "worker": ".venv/bin/celery -A kasparro worker --loglevel=INFO",
    "beat": ".venv/bin/celery -A kasparro beat --loglevel=INFO",
    "flower": ".venv/bin/celery -A kasparro flower --address=127.0.0.1 --port=5555",
    "stop": ".venv/bin/python manage.py dbserver stop",
}


def command(step: str, **ports: int) -> list[str]:
    line = STEPS[step].replace("127.0.0.1:8000", f"127.0.0.1:{ports.get('web', 8000)}")
    line = line.replace("--port=5555", f"--port={ports.get('flower', 5555)}")
    words = line.split()
    return [str(BIN / Path(words[0]).name), *words[1:]]


def test_the_operations_guide_lists_every_step_of_the_native_setup() -> None:
    readme = (ROOT / "docs" / "operations.md").read_text()
    missing = [line for line in STEPS.values() if line not in readme]
    assert not missing, f"docs/operations.md no longer says: {missing}"


def test_the_native_setup_on_the_embedded_database_serves_and_ingests_every_source(
    embedded_home: Path, celery_env: dict[str, str]
) -> None:
    db_port, web_port, flower_port = free_port(), free_port(), free_port()
    env = {key: value for key, value in celery_env.items() if key not in {"DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"}}
    env.update(
        {
            "EMBEDDED_DB_DIR": str(embedded_home / "pgdata"),
            "EMBEDDED_DB_PORT": str(db_port),
            "FLOWER_BASIC_AUTH": "ops:change-me-now",
            "INGEST_INTERVAL_COINGECKO": "2",
            "INGEST_INTERVAL_COINPAPRIKA": "2",
            "INGEST_INTERVAL_CSV": "2",
        }
    )

    def step(name: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(command(name), cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"{STEPS[name]}:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
        return done

    assert f"127.0.0.1:{db_port}" in step("db").stdout
    assert "Created the database kasparro" in step("migrate").stdout

    services: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("web", "worker", "beat", "flower"):
            log = (embedded_home / f"{name}.log").open("wb")
            services[name] = subprocess.Popen(
                command(name, web=web_port, flower=flower_port),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        web = f"http://127.0.0.1:{web_port}"

        def every_source_ingested() -> bool:
            for name, proc in services.items():
                assert proc.poll() is None, f"{name} exited:\n{(embedded_home / f'{name}.log').read_text()[-2000:]}"
            try:
                stats = requests.get(f"{web}/stats", timeout=5).json()
            except (requests.ConnectionError, ValueError):
                return False
            return all(source["records"] > 0 for source in stats["sources"].values())

        wait_for(every_source_ingested, timeout=150, what="beat and the worker to ingest every source", every=1)
        health = requests.get(f"{web}/health", timeout=5).json()
        assert health["database"]["status"] == "ok" and health["broker"]["status"] == "ok"
        flower = f"http://127.0.0.1:{flower_port}"
        assert requests.get(flower, auth=("ops", "change-me-now"), timeout=5).status_code == 200
    finally:
        process_groups_stop(list(services.values()))

    step("stop")
    assert EmbeddedPostgres(data_dir=embedded_home / "pgdata", port=db_port).running_pid() is None
