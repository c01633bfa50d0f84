"""What `make run` does, on a bare machine: SQLite, no network, bundled recorded responses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import CSV_GECKO, GECKO_SMALL, PAPRIKA, UPSTREAM

ROOT = Path(__file__).resolve().parents[1]


def test_offline_quickstart_on_sqlite_ends_with_data_and_says_it_used_recorded_responses(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        # Unreachable upstreams: a closed local port answers at once, like a machine offline.
        "COINGECKO_BASE_URL": "http://127.0.0.1:9/api/v3",
        "COINPAPRIKA_BASE_URL": "http://127.0.0.1:9/v1",
        "CSV_SOURCE_PATH": str(UPSTREAM / CSV_GECKO),
        "HTTP_MAX_ATTEMPTS": "1",
    }

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    assert manage("migrate", "--noinput").returncode == 0
    ingest = manage(
        "ingest",
        "--source",
        "all",
        f"--fallback-file=coingecko={UPSTREAM / GECKO_SMALL}",
        f"--fallback-file=coinpaprika={UPSTREAM / PAPRIKA}",
    )
    assert ingest.returncode == 0, ingest.stderr
    assert ingest.stdout.count("live fetch failed, so loading the bundled recorded response") == 2
    assert "connection to 127.0.0.1 refused" in ingest.stdout

    show = (
        "import django, json; django.setup(); from django.test import Client; c = Client();"
        "print(json.dumps([c.get(p, {'limit': 1}).json() for p in ('/data', '/stats')]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", show],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "DJANGO_SETTINGS_MODULE": "kasparro.settings"},
    )
    data, stats = json.loads(result.stdout)
    assert data["source"] == "csv" and data["data_count"] == 250
    assert {name: s["records"] for name, s in stats["sources"].items()} == {
        "coingecko": 100,
        "coinpaprika": 2500,
        "csv": 250,
    }
