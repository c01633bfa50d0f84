"""Structured logs: one JSON object per line, with the ids of the work, and no secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import responses
from django.conf import settings
from django.test import Client

from crypto.services.ingest.run import ingestion_run
from tests.conftest import mock_gecko_page, mock_gecko_two_pages

pytestmark = pytest.mark.django_db
SECRET = "CG-structured-log-secret-9911"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The root handler's formatter and filters, writing to a buffer."""
    configured = logging.getLogger().handlers[0]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configured.formatter)
    for log_filter in configured.filters:
        handler.addFilter(log_filter)
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_logs_are_json_lines_formatted_by_default() -> None:
    assert settings.LOG_FORMAT == "json"
    assert type(logging.getLogger().handlers[0].formatter).__name__ == "JsonFormatter"


def test_a_run_logs_json_with_its_run_id_and_source_and_no_key(
    http: responses.RequestsMock, settings, json_lines: io.StringIO
) -> None:
    settings.COINGECKO_API_KEY = SECRET
    mock_gecko_page(http, 1, b'{"error": "rate limited"}', status=429, headers={"Retry-After": "0"})
    mock_gecko_two_pages(http)
    run = ingestion_run(source="coingecko", trigger="cli")
    lines = records(json_lines)
    ours = [line for line in lines if line["logger"].startswith("crypto")]
    assert {"ingestion run started", "upstream call failed, retrying", "ingestion run finished"} <= {
        line["message"] for line in ours
    }
    assert all(line["run_id"] == run.pk and line["source"] == "coingecko" for line in ours)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert SECRET not in json_lines.getvalue()


def test_a_secret_logged_by_mistake_is_redacted(settings, json_lines: io.StringIO) -> None:
    settings.COINPAPRIKA_API_KEY = SECRET
    logging.getLogger("anything").warning("oops %s", SECRET, extra={"header": f"Authorization: {SECRET}"})
    line = records(json_lines)[-1]
    assert line["message"] == "oops ***" and line["header"] == "Authorization: ***"


def test_requests_get_an_id_on_their_log_line_and_response(json_lines: io.StringIO) -> None:
    response = Client().get("/stats", HTTP_X_REQUEST_ID="req-123", HTTP_ACCEPT="application/json")
    assert response["X-Request-ID"] == "req-123"
    line = next(line for line in records(json_lines) if line["logger"] == "kasparro.request")
    assert (line["request_id"], line["path"], line["status"]) == ("req-123", "/stats", 200)
    generated = Client().get("/health", HTTP_X_REQUEST_ID="bad id with spaces")["X-Request-ID"]
    assert len(generated) == 32 and " " not in generated


def test_a_secret_inside_a_traceback_is_redacted(settings, json_lines: io.StringIO) -> None:
    settings.COINGECKO_API_KEY = SECRET
    try:
        raise RuntimeError(f"upstream said {SECRET}")
    except RuntimeError:
        logging.getLogger("anything").exception("it broke")
    line = records(json_lines)[-1]
    assert "RuntimeError: upstream said ***" in line["exc_info"]
    assert SECRET not in json_lines.getvalue()


def test_plain_log_lines_keep_the_fields_of_a_request_and_of_a_retry() -> None:
    from django.utils.module_loading import import_string

    plain = settings.LOGGING["formatters"]["plain"]  # as LOG_FORMAT=plain configures it
    built = import_string(plain["()"])(plain["format"])
    request = logging.makeLogRecord(
        {
            "name": "kasparro.request",
            "levelname": "INFO",
            "msg": "request",
            "method": "GET",
            "path": "/data",
            "status": 200,
            "duration_ms": 3.5,
            "request_id": "abc",
        }
    )
    retry = logging.makeLogRecord(
        {
            "name": "crypto.sources.http",
            "levelname": "WARNING",
            "msg": "upstream call failed, retrying",
            "url": "https://api.coinpaprika.com/v1/tickers",
            "attempt": 2,
            "delay_s": 0.4,
            "reason": "the upstream had a server error (503)",
        }
    )
    assert built.format(request).endswith(
        "INFO kasparro.request request method=GET path=/data status=200 duration_ms=3.5 request_id=abc"
    )
    assert built.format(retry).endswith(
        "retrying url=https://api.coinpaprika.com/v1/tickers attempt=2 delay_s=0.4 "
        'reason="the upstream had a server error (503)"'
    )


@pytest.mark.django_db(transaction=True)
def test_a_command_run_without_a_terminal_logs_its_run_as_json_lines() -> None:
    import os
    import subprocess
    import sys

    from django.db import connection

    from tests.conftest import FIXTURES, database_url
    from tests.processes import ROOT

    env = {
        **os.environ,
        "CSV_SOURCE_PATH": str(FIXTURES / "csv" / "simple_markets.csv"),
        "LOG_FORMAT": "json",
        "DATABASE_URL": database_url(connection.settings_dict),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "ingest", "--source", "csv"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    finished = [line for line in logged if line["message"] == "ingestion run finished"]
    assert finished and finished[0]["source"] == "csv" and finished[0]["status"] == "succeeded"
    assert "csv" in result.stdout, "the summary is still printed"
