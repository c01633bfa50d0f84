"""Metrics at /metrics, moved by the pipeline itself (multi-process: tests/distributed/test_entrypoint.py)."""

from __future__ import annotations

import pytest
import responses
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from crypto.services.ingest.run import ingestion_run
from tests.conftest import mock_paprika, paprika_url

pytestmark = pytest.mark.django_db


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = Client().get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def test_an_ingestion_moves_the_run_record_upstream_and_request_metrics(http: responses.RequestsMock) -> None:
    before = scrape()
    http.add(responses.GET, paprika_url(), status=429, json={"error": "slow"}, headers={"Retry-After": "0"})
    mock_paprika(http)
    run = ingestion_run(source="coinpaprika", trigger="cli")
    Client().get("/stats")
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("kasparro_ingestion_runs_total", source="coinpaprika", status="succeeded") == 1
    assert delta("kasparro_records_fetched_total", source="coinpaprika") == 2500
    assert delta("kasparro_rows_upserted_total", source="coinpaprika") == 2500
    assert delta("kasparro_ingestion_run_duration_seconds_count", source="coinpaprika") == 1
    assert delta("kasparro_upstream_calls_total", upstream="coinpaprika", status="429") == 1
    assert delta("kasparro_upstream_calls_total", upstream="coinpaprika", status="200") == 1
    assert delta("kasparro_upstream_retries_total", upstream="coinpaprika") == 1
    assert value(after, "kasparro_last_success_timestamp_seconds", source="coinpaprika") == pytest.approx(
        run.finished_at.timestamp()
    )
    assert delta("kasparro_http_request_duration_seconds_count", method="GET", route="stats", status="200") == 1


def test_a_failed_run_counts_as_failed_and_upserts_nothing(http: responses.RequestsMock) -> None:
    before = scrape()
    mock_paprika(http, body=b'{"error": "no"}', status=401)
    ingestion_run(source="coinpaprika", trigger="cli")
    after = scrape()
    key = ("kasparro_ingestion_runs_total", (("source", "coinpaprika"), ("status", "failed")))
    assert after.get(key, 0) - before.get(key, 0) == 1
    assert value(after, "kasparro_rows_upserted_total", source="coinpaprika") == value(
        before, "kasparro_rows_upserted_total", source="coinpaprika"
    )


def test_metrics_can_require_a_bearer_token(settings) -> None:
    settings.METRICS_TOKEN = "scrape-token-123"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-123").status_code == 200
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer \u00e9t\u00e9").status_code == 401  # not a 500
    settings.METRICS_TOKEN = "\u00e9t\u00e9-token"  # as the header's UTF-8 bytes arrive, decoded as latin-1
    sent = "Bearer \u00e9t\u00e9-token".encode().decode("latin-1")
    assert Client().get("/metrics", HTTP_AUTHORIZATION=sent).status_code == 200


def test_made_up_http_methods_do_not_make_new_series() -> None:
    Client().generic("FROBNICATE", "/nowhere")
    metrics = scrape()
    assert (
        value(metrics, "kasparro_http_request_duration_seconds_count", method="OTHER", route="unmatched", status="404")
        >= 1
    )
    assert not any(dict(labels).get("method") == "FROBNICATE" for _, labels in metrics)


@pytest.mark.django_db(transaction=True)
def test_metrics_sum_the_runs_of_every_process_the_command_included() -> None:
    import os
    import subprocess
    import sys

    from django.db import connection

    from tests.conftest import FIXTURES, database_url
    from tests.processes import ROOT

    before = scrape()
    env = {
        **os.environ,
        "CSV_SOURCE_PATH": str(FIXTURES / "csv" / "simple_markets.csv"),
        "DATABASE_URL": database_url(connection.settings_dict),
    }
    command = [sys.executable, "manage.py", "ingest", "--source", "csv"]
    assert subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=120).returncode == 0
    after = scrape()  # served by this process; the run was made by another one
    key = ("kasparro_ingestion_runs_total", (("source", "csv"), ("status", "succeeded")))
    assert after.get(key, 0) - before.get(key, 0) == 1


def test_a_start_removes_the_metrics_of_ended_processes_and_keeps_the_running_ones(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import socket
    import subprocess

    from crypto.services.monitor.metrics import metrics_files_clear

    finished = subprocess.Popen(["true"])
    finished.wait()
    host = socket.gethostname().replace("_", "-")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    (tmp_path / f"counter_{host}-{finished.pid}.db").write_bytes(b"an earlier start's")
    (tmp_path / f"counter_{host}-{os.getpid()}.db").write_bytes(b"this process's")
    (tmp_path / f"counter_other-host-{finished.pid}.db").write_bytes(b"another host's")
    (tmp_path / "notes.txt").write_text("kept")
    assert metrics_files_clear() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{host}-{os.getpid()}.db", f"counter_other-host-{finished.pid}.db", "notes.txt"]
    )
