"""The commands the Compose services run (docker/entrypoint.sh web|worker|beat|flower), run here
natively against the test database, a private Redis and the stub upstream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from crypto.models import RawBody
from tests.processes import ROOT, free_port, process_groups_stop, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]
ENTRYPOINT = str(ROOT / "docker" / "entrypoint.sh")


@pytest.fixture
def stack_env(celery_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **celery_env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "WEB_BIND": f"127.0.0.1:{free_port()}",
        "WEB_WORKERS": "2",
        "WORKER_CONCURRENCY": "1",
        "FLOWER_BASIC_AUTH": "ops:compose-pass-0123",
        "FLOWER_ADDRESS": "127.0.0.1",
        "FLOWER_LISTEN_PORT": str(free_port()),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        # Applied by the web service's migrate, as in a deployment.
        "INGEST_INTERVAL_COINGECKO": "2",
        "INGEST_INTERVAL_COINPAPRIKA": "2",
        "INGEST_INTERVAL_CSV": "2",
    }


@pytest.fixture
def stack(stack_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Started in docker-compose.yml's order: worker and beat once web (which migrates) is healthy."""
    started: dict[str, subprocess.Popen[bytes]] = {}

    def start(role: str) -> None:
        log = (tmp_path / f"{role}.log").open("wb")
        started[role] = subprocess.Popen(
            [ENTRYPOINT, role], cwd=ROOT, env=stack_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def web_healthy() -> bool:
        response = web_get(stack_env, "/health")
        return response is not None and response.status_code == 200

    try:
        start("web")
        start("flower")
        with service_logs_on_failure(tmp_path):
            wait_for(web_healthy, timeout=90, what="web to migrate and answer /health with 200 (its healthcheck)")
        start("worker")
        start("beat")
        yield started
    finally:
        process_groups_stop(list(started.values()))


def web_get(stack_env: dict[str, str], path: str) -> requests.Response | None:
    try:
        return requests.get(f"http://{stack_env['WEB_BIND']}{path}", timeout=5)
    except requests.ConnectionError:
        return None


@contextmanager
def service_logs_on_failure(tmp_path: Path) -> Iterator[None]:
    """A wait that times out says what each service logged last."""
    try:
        yield
    except AssertionError as exc:
        tails = "\n".join(
            f"--- {log.name}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            for log in sorted(tmp_path.glob("*.log"))
        )
        raise AssertionError(f"{exc}\n{tails}") from None


def test_web_worker_beat_and_flower_from_the_entry_script_serve_and_ingest_end_to_end(
    stack: dict[str, subprocess.Popen[bytes]], stack_env: dict[str, str], tmp_path: Path
) -> None:
    web = f"http://{stack_env['WEB_BIND']}"

    def healthy() -> dict | None:
        response = web_get(stack_env, "/health")
        body = response.json() if response is not None else None
        return body if body and response.status_code == 200 and body["broker"].get("workers") else None

    with service_logs_on_failure(tmp_path):
        body = wait_for(healthy, timeout=90, what="gunicorn to serve /health with a worker seen")
        assert body["database"]["status"] == "ok" and body["broker"]["status"] == "ok"
        wait_for(
            lambda: {"coingecko", "coinpaprika", "csv"} <= set(RawBody.objects.values_list("source", flat=True)),
            timeout=90,
            what="beat and the worker to ingest every source",
        )
    assert requests.get(f"{web}/api/quotes/?page_size=1", timeout=5).json()["results"]
    assert requests.get(f"{web}/static/admin/css/base.css", timeout=5).status_code == 200, "whitenoise serves static"
    flower = f"http://127.0.0.1:{stack_env['FLOWER_LISTEN_PORT']}"
    assert requests.get(flower, timeout=5).status_code == 401
    assert requests.get(flower, auth=("ops", "compose-pass-0123"), timeout=5).status_code == 200
    # /metrics on a gunicorn worker adds up what the Celery worker process counted.
    metrics = requests.get(f"{web}/metrics", timeout=5).text
    runs = [
        line
        for line in metrics.splitlines()
        if line.startswith("kasparro_ingestion_runs_total{") and 'source="csv"' in line and "succeeded" in line
    ]
    assert runs and float(runs[0].split()[-1]) >= 1, metrics[:2000]
    assert 'kasparro_http_request_duration_seconds_count{method="GET",route="health",status="200"}' in metrics
    assert all(proc.poll() is None for proc in stack.values()), (tmp_path / "web.log").read_text()[-2000:]
    for role in ("web", "worker", "beat"):
        records = json_log_records((tmp_path / f"{role}.log").read_text())
        assert records, f"{role} logged nothing"
    worker_records = json_log_records((tmp_path / "worker.log").read_text())
    assert any(r.get("task_id") and r.get("run_id") and r.get("source") for r in worker_records)
    web_records = json_log_records((tmp_path / "web.log").read_text())
    assert any(r.get("request_id") and r.get("path") == "/health" for r in web_records)


def test_web_with_log_format_plain_logs_plain_lines_gunicorns_included(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "web-plain.log"
    with log.open("wb") as out:
        web = subprocess.Popen(
            [ENTRYPOINT, "web"],
            cwd=ROOT,
            env={**stack_env, "LOG_FORMAT": "plain", "WEB_WORKERS": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: (r := web_get(stack_env, "/health")) is not None and r.status_code == 200, timeout=90, what="web"
        )
        wait_for(lambda: "Listening at" in log.read_text(), timeout=10, what="gunicorn's start line")
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(30)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines and not [line for line in lines if line.lstrip().startswith("{")], lines[:5]


def json_log_records(text: str) -> list[dict]:
    """Every line a JSON object; as root (CI), Celery first warns about root in plain text."""
    records = []
    lines = [line for line in text.splitlines() if line.strip()]
    if os.geteuid() == 0:
        lines = [line for line in lines if not _root_warning(line)]
    for line in lines:
        records.append(json.loads(line))
    return records


def _root_warning(line: str) -> bool:
    return any(
        part in line
        for part in (
            "SecurityWarning",
            "superuser privileges",
            "absolutely not recommended",
            "Please specify a different user",
            "User information: uid=",
            "warnings.warn(SecurityWarning",
        )
    )


@pytest.mark.parametrize(
    ("auth", "says"),
    [
        (None, "is not set as user:password"),
        ("ops", "is not set as user:password"),
        ("ops:change-me", "12 characters or more"),
        ("ops:short", "12 characters or more"),
    ],
)
def test_flower_refuses_to_start_without_a_real_login(celery_env: dict[str, str], auth: str | None, says: str) -> None:
    env = {key: value for key, value in celery_env.items() if key != "FLOWER_BASIC_AUTH"}
    if auth is not None:
        env["FLOWER_BASIC_AUTH"] = auth
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run([ENTRYPOINT, "flower"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 64 and says in result.stderr
