"""`python manage.py ingest`: summary output and exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import responses
from django.core.management import CommandError, call_command

from crypto.models import IngestionRun, RawBody
from tests.conftest import FIXTURES, PAPRIKA, UPSTREAM, database_url, mock_gecko_two_pages, mock_paprika

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def ingest(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("ingest", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_all_sources_succeed_print_progress_and_a_summary(http: responses.RequestsMock, settings) -> None:
    settings.CSV_SOURCE_PATH = str(FIXTURES / "csv" / "simple_markets.csv")
    mock_gecko_two_pages(http)
    mock_paprika(http)
    out, err = ingest("--source", "all")
    assert "coingecko: body 2: 100 records, 100 rows upserted" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1]}
    assert lines["coingecko"][1:7] == ["succeeded", "350", "2", "0", "350", "0"]
    assert lines["coinpaprika"][1:7] == ["succeeded", "2500", "1", "0", "2500", "0"]
    assert lines["csv"][1:7] == ["succeeded", "9", "1", "0", "5", "4"]
    assert "csv: rejected body 1, line 4: SOL" in err
    assert IngestionRun.objects.filter(trigger="cli", status="succeeded").count() == 3


def test_a_failed_source_makes_the_command_fail_with_the_reason(http: responses.RequestsMock) -> None:
    mock_paprika(http, body=b'{"error": "invalid key"}', status=401)
    with pytest.raises(CommandError, match=r"coinpaprika failed \(run #\d+\): .*HTTP 401"):
        ingest("--source", "coinpaprika")


def test_file_loads_a_saved_body_through_the_same_pipeline() -> None:
    out, _ = ingest("--source", "coinpaprika", "--file", str(UPSTREAM / PAPRIKA))
    assert "coinpaprika  succeeded      2500" in out
    run = IngestionRun.objects.get()
    assert run.trigger == "file"
    assert RawBody.objects.get().request.startswith("file:")


def test_file_needs_one_source() -> None:
    with pytest.raises(CommandError, match="--file needs one --source"):
        ingest("--source", "all", "--file", "x.json")


def test_fallback_file_is_loaded_when_the_live_fetch_fails_and_says_so(http: responses.RequestsMock) -> None:
    mock_paprika(http, status=503, body=b'{"error": "down"}')
    out, _ = ingest("--source", "coinpaprika", "--fallback-file", f"coinpaprika={UPSTREAM / PAPRIKA}")
    assert "live fetch failed, so loading the bundled recorded response" in out
    assert list(IngestionRun.objects.order_by("id").values_list("status", "trigger")) == [
        ("failed", "cli"),
        ("succeeded", "file"),
    ]


@pytest.mark.django_db(transaction=True)  # the subprocess commits: flush its rows afterwards
def test_exit_status_of_the_real_command() -> None:
    env = {**os.environ, "COINPAPRIKA_BASE_URL": "http://127.0.0.1:9/v1", "HTTP_MAX_ATTEMPTS": "1"}
    from django.db import connection

    env["DATABASE_URL"] = database_url(connection.settings_dict)
    ok = subprocess.run(
        [sys.executable, "manage.py", "ingest", "--source", "coinpaprika", "--file", str(UPSTREAM / PAPRIKA)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    failed = subprocess.run(
        [sys.executable, "manage.py", "ingest", "--source", "coinpaprika"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1
    assert "coinpaprika failed" in failed.stderr and "connection to 127.0.0.1 refused" in failed.stderr
    assert "Traceback" not in failed.stderr
